"""The optional download step: offline it fails at once, saying where to put the files."""
from __future__ import annotations

import json
import logging
import time

import pytest

from brainalign.io import StudyDataset
from brainalign.io import download as dl
from brainalign.io.readers import MissingDataError, get_reader


def test_offline_fetch_fails_at_once_with_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "online", lambda *a, **k: False)
    source = dl.DatasetSource(openneuro="ds003020", url="https://openneuro.org/datasets/ds003020", size="~10 GB")
    t = time.perf_counter()
    with pytest.raises(MissingDataError) as err:
        dl.fetch(source, tmp_path / "lebel", "lebel")
    assert time.perf_counter() - t < 1.0
    msg = str(err.value)
    assert "cannot reach openneuro.org" in msg and str(tmp_path / "lebel") in msg
    assert "BRAINALIGN_LEBEL_DIR" in msg and "https://openneuro.org/datasets/ds003020" in msg
    assert not (tmp_path / "lebel").exists()  # nothing half-written


def test_no_source_and_no_tool(tmp_path, monkeypatch):
    with pytest.raises(MissingDataError, match="no download source"):
        dl.fetch(None, tmp_path / "x", "x")
    monkeypatch.setattr(dl, "online", lambda *a, **k: True)
    monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    monkeypatch.setitem(__import__("sys").modules, "openneuro", None)  # import fails
    with pytest.raises(MissingDataError, match="pip install openneuro-py"):
        dl.fetch(dl.DatasetSource(openneuro="ds000001"), tmp_path / "y", "y")


@pytest.mark.parametrize("reader", ["lebel", "narratives", "smn4lang"])
def test_readers_declare_a_source(reader):
    cls = get_reader(reader)
    src = cls("/nonexistent").source
    assert src is not None and (src.openneuro or src.datalad)


def test_loading_the_study_never_downloads(tmp_path, monkeypatch):
    """``download`` of the catalog's raw_study entry is accepted and ignored: loading never fetches."""
    calls = []
    monkeypatch.setattr(dl, "fetch", lambda *a: calls.append(a))
    ds = StudyDataset(root=str(tmp_path / "missing"), reader="lebel", download=True)
    reader = ds.load()
    assert calls == []
    with pytest.raises(MissingDataError, match="missing"):
        reader.check()


def test_download_node_fetches_a_missing_study_and_reports_it(tmp_path, monkeypatch):
    """data_prep's download_study fetches when the reader's check fails, then checks again."""
    from brainalign.pipelines.data_prep.nodes import download_study

    root = tmp_path / "lebel"
    calls = []

    def fake_fetch(source, where, name):  # what the real download would leave behind
        calls.append((source.openneuro, str(where), name))
        for sub in ("derivative/preprocessed_data/UTS01", "derivative/TextGrids"):
            (root / sub).mkdir(parents=True)
        (root / "derivative" / "respdict.json").write_text("{}")

    monkeypatch.setattr(dl, "fetch", fake_fetch)
    params = {"reader": "lebel", "root": str(root), "options": {}}
    report = download_study(params)
    assert calls == [("ds003020", str(root), "lebel")]
    assert report["status"] == "fetched" and report["source"] == "ds003020" and report["include"]
    assert json.loads(json.dumps(report)) == report  # the JSON dataset can save it
    again = download_study(params)  # present now: nothing fetched
    assert again["status"] == "present" and again["include"] == [] and len(calls) == 1


def test_download_node_offline_fails_saying_where_to_put_the_files(tmp_path, monkeypatch):
    from brainalign.pipelines.data_prep.nodes import download_study

    monkeypatch.setattr(dl, "online", lambda *a, **k: False)
    with pytest.raises(MissingDataError, match="BRAINALIGN_LEBEL_DIR"):
        download_study({"reader": "lebel", "root": str(tmp_path / "lebel")})


def test_grid_of_a_missing_study_never_downloads(tmp_path, monkeypatch, caplog):
    """Building the grid of a missing real study lists nothing, fetches nothing, and says to run
    data_prep first; ``download`` puts the download node before every reader of raw_study."""
    from brainalign.pipelines import data_prep
    from brainalign.pipelines.grid import grid_from_params

    monkeypatch.setattr(dl, "fetch", lambda *a: pytest.fail("the grid downloaded"))
    params = {"study": {"simulate": False, "reader": "lebel", "root": str(tmp_path / "none"),
                        "download": True, "subjects": "auto"}, "conditions": {}, "layers": [1]}
    with caplog.at_level(logging.WARNING, logger="brainalign.pipelines.grid"):
        grid = grid_from_params(params)
    assert grid.subjects == () and grid.download
    assert any("kedro run --pipeline data_prep" in r.getMessage() for r in caplog.records)
    pipe = data_prep.create_pipeline(grid)
    for name in ("read_stimuli", "read_ground_truth"):
        (n,) = [n for n in pipe.nodes if n.name == name]
        assert "study_download" in n.inputs
    assert [n.name for n in pipe.nodes][0] == "download_study"  # topological order
    (tmp_path / "none" / "derivative" / "preprocessed_data" / "UTS01").mkdir(parents=True)
    grid = grid_from_params(params)  # the subject folders are listed, nothing is read
    assert grid.subjects == ("UTS01",)
    (n,) = [n for n in data_prep.create_pipeline(grid).nodes if n.name == "data_prep.UTS01.prepare_responses"]
    assert "study_download" in n.inputs
    grid = grid_from_params({**params, "study": {**params["study"], "download": False}})
    assert not grid.download and "download_study" not in {n.name for n in data_prep.create_pipeline(grid).nodes}
