"""The optional download step: offline it fails at once, saying where to put the files."""
from __future__ import annotations

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


def test_catalog_entry_with_download_fetches_a_missing_study(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(dl, "fetch", lambda source, root, name: calls.append((source, root, name)))
    ds = StudyDataset(root=str(tmp_path / "missing"), reader="lebel", download=True)
    ds.load()
    assert calls and calls[0][2] == "lebel" and calls[0][0].openneuro == "ds003020"
    plain = StudyDataset(root=str(tmp_path / "missing"), reader="lebel")
    with pytest.raises(Exception, match="missing"):
        plain.load().check()
