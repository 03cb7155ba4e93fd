"""The four pipelines run together with SequentialRunner on a tiny simulated study.

The catalog is built here, in memory, except for the raw study, which is written to disk in its
real formats (NIfTI + TSV) and read back by the registered ``bids_volume`` reader. Checks use
the planted ground truth and scipy, never earlier outputs of the code.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from scipy import stats

from brainalign.io import StudyDataset
from brainalign.pipeline_registry import register_pipelines
from brainalign.pipelines import analysis, data_prep, embedding, encoding
from brainalign.pipelines.grid import grid_from_params, set_active_parameters

ROOT = Path(__file__).resolve().parents[2]
SCORE_COLUMNS = ["dataset", "subject", "condition", "layer", "target", "roi", "r", "r2", "alpha"]


def tiny_parameters(tmp_path) -> dict:
    from brainalign.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(str(ROOT / "conf"), env="test", **CONFIG_LOADER_ARGS)
    params = copy.deepcopy(loader["parameters"])
    params["study"]["root"] = str(tmp_path / "study")
    params["embedding"]["cache_dir"] = str(tmp_path / "cache")
    return params


class KeptMemoryDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read every intermediate."""

    def _release(self) -> None:
        pass


def _catalog(params: dict, tmp_path: Path, pipe) -> DataCatalog:
    catalog = DataCatalog(datasets={"raw_study": StudyDataset(root=str(tmp_path / "study"),
                                                              reader="bids_volume")})
    for name in pipe.datasets():
        if name != "raw_study" and not name.startswith("params:"):
            catalog[name] = KeptMemoryDataset()
    for key, value in _flat_params(params).items():
        catalog[key] = MemoryDataset(value, copy_mode="assign")
    return catalog


def _flat_params(params: dict, prefix: str = "params:") -> dict:
    out = {}
    for k, v in params.items():
        out[f"{prefix}{k}"] = v
        if isinstance(v, dict):
            out.update(_flat_params(v, f"{prefix}{k}."))
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("seq")
    params = tiny_parameters(tmp_path)
    grid = grid_from_params(params)
    pipe = (data_prep.create_pipeline(grid) + embedding.create_pipeline(grid)
            + encoding.create_pipeline(grid) + analysis.create_pipeline(grid))
    catalog = _catalog(params, tmp_path, pipe)
    SequentialRunner().run(pipe, catalog)
    return params, grid, catalog, tmp_path


def test_grid_and_namespaces(tmp_path):
    params = tiny_parameters(tmp_path)
    grid = grid_from_params(params)
    assert grid.subjects == ("sub-01", "sub-02")
    assert grid.layers == (0, 4)
    enc = encoding.create_pipeline(grid)
    # one fit per subject x condition x layer, each in its own namespace
    assert len(enc.nodes) == 2 * 1 * 2
    one = enc.only_nodes_with_namespaces(["sub-02.pretrained.layer_4"])
    assert [n.name for n in one.nodes] == ["sub-02.pretrained.layer_4.fit_encoding"]
    assert one.outputs() == {"sub-02.pretrained.layer_4.scores"}


def test_registry_builds_the_active_grid(tmp_path):
    params = tiny_parameters(tmp_path)
    set_active_parameters(params)
    try:
        pipes = register_pipelines()
    finally:
        set_active_parameters(None)
    assert set(pipes) == {"data_prep", "task_tuning", "brain_tuning", "embedding", "encoding", "decoding",
                          "analysis", "__default__"}
    assert all(len(pipes[k].nodes) == 0 for k in ("task_tuning", "brain_tuning", "decoding"))   # off in conf/test
    default = pipes["__default__"]
    assert len(default.nodes) == sum(len(p.nodes) for k, p in pipes.items() if k != "__default__")


def test_score_table_contract(tiny_run):
    params, grid, catalog, tmp_path = tiny_run
    scores = catalog.load("encoding_scores")
    assert list(scores.columns[:len(SCORE_COLUMNS)]) == SCORE_COLUMNS
    assert not scores[["r", "r2", "alpha"]].isna().any().any()
    assert set(scores["subject"]) == set(grid.subjects)
    assert set(scores["layer"]) == set(grid.layers)
    assert (scores["dataset"] == "synthetic").all()
    # every kept voxel of every subject appears once per cell
    for s in grid.subjects:
        targets = catalog.load(f"{s}.targets")
        excl = catalog.load(f"{s}.exclusions")
        kept = set(targets["target"]) - set(excl["target"])
        for k in grid.layers:
            cell = scores[(scores.subject == s) & (scores.layer == k)]
            assert set(cell["target"]) == kept
            assert cell["target"].is_unique


def test_planted_truth_is_recovered(tiny_run):
    """The recovered r at the planted layer correlates with the planted expected r."""
    params, grid, catalog, tmp_path = tiny_run
    scores = catalog.load("encoding_scores")
    truth = pd.read_parquet(tmp_path / "study" / "ground_truth.parquet")
    layer = params["synthetic"].get("semantic_layer", 4)
    assert layer in grid.layers
    m = scores[scores.layer == layer].merge(truth, on=["subject", "target"])
    assert len(m) == (scores.layer == layer).sum()
    r, _ = stats.pearsonr(m["r"], m["expected_r"])
    print(f"recovery r={r:.3f} n={len(m)}")
    assert r > 0.5, r
    noise = m[m["expected_r"] == 0]
    assert len(noise) > 20
    # pure-noise voxels are centred on 0: within 4 standard errors
    assert abs(noise["r"].mean()) < 4 * noise["r"].std(ddof=1) / np.sqrt(len(noise)) + 0.01


def test_null_model_beside_every_score(tiny_run):
    """conf/test asks for the circular-shift null: r_null sits beside r, centred near 0, and far
    below r where the planted signal is strong."""
    params, grid, catalog, tmp_path = tiny_run
    scores = catalog.load("encoding_scores")
    assert {"r_null", "r2_null"} <= set(scores.columns)
    assert np.isfinite(scores[["r_null", "r2_null"]].to_numpy()).all()
    truth = pd.read_parquet(tmp_path / "study" / "ground_truth.parquet")
    m = scores[scores.layer == 4].merge(truth, on=["subject", "target"])
    strong = m[m["expected_r"] > 0.5]
    assert len(strong) > 10
    assert strong["r"].mean() > strong["r_null"].mean() + 0.3
    assert abs(scores["r_null"].mean()) < 0.1
    summary = catalog.load("roi_summary")
    assert "mean_r_null" in summary.columns


def test_tr_block_intervals(tiny_run):
    """conf/test asks for the TR-block bootstrap: every target's interval holds its r (r is the
    statistic of the resampled data at full weight, so it sits inside unless the draws are
    badly skewed), the ROI interval is shared by the ROI's targets and holds the ROI mean, and
    ``subject_intervals`` lists it per subject, condition, layer and ROI."""
    params, grid, catalog, tmp_path = tiny_run
    scores = catalog.load("encoding_scores")
    assert {"r_ci_low", "r_ci_high", "roi_ci_low", "roi_ci_high"} <= set(scores.columns)
    assert (scores["r_ci_low"] < scores["r_ci_high"]).all()
    inside = (scores["r_ci_low"] <= scores["r"]) & (scores["r"] <= scores["r_ci_high"])
    assert inside.mean() > 0.95
    cis = catalog.load("subject_intervals")
    keys = ["subject", "condition", "layer", "roi"]
    assert len(cis) == len(scores[keys].drop_duplicates())
    m = scores.groupby(keys)["r"].mean().rename("expected").reset_index().merge(cis, on=keys)
    np.testing.assert_allclose(m["mean_r"], m["expected"], atol=1e-9)
    assert ((m["ci_low"] <= m["mean_r"]) & (m["mean_r"] <= m["ci_high"])).all()
    assert (scores.groupby(keys)["roi_ci_low"].nunique() == 1).all()
    # planted signal is told from pure noise: intervals of strong planted targets exclude 0 far
    # more often than those of pure-noise targets (conditional intervals: docs/methods.md)
    truth = pd.read_parquet(tmp_path / "study" / "ground_truth.parquet")
    m = scores[scores.layer == 4].merge(truth, on=["subject", "target"])
    excl = lambda d: float((d["r_ci_low"] > 0).mean())   # noqa: E731
    strong, noise = m[m["expected_r"] > 0.6], m[m["is_noise"]]
    assert len(strong) > 20 and len(noise) > 20
    assert excl(strong) > excl(noise) + 0.4, (excl(strong), excl(noise))


def test_summary_matches_scores(tiny_run):
    params, grid, catalog, tmp_path = tiny_run
    scores = catalog.load("encoding_scores")
    summary = catalog.load("roi_summary")
    # recompute one ROI x layer independently: mean over subjects of per-subject ROI means
    row = summary.iloc[0]
    sub = scores[(scores.layer == row["layer"]) & (scores.roi == row["roi"])
                 & (scores.condition == row["condition"])]
    per_subject = sub.groupby("subject")["r"].mean()
    assert row["mean_r"] == pytest.approx(per_subject.mean(), abs=1e-6)
    assert row["sem_r"] == pytest.approx(stats.sem(per_subject.to_numpy()), abs=1e-6)
    assert not summary[["mean_r"]].isna().any().any()
    # the report and the plots were produced
    assert "synthetic" in catalog.load("summary_md")
    metrics = catalog.load("tracking_metrics")
    assert metrics and all(np.isfinite(v) for v in metrics.values())


def test_noise_ceiling_two_subjects_report_the_isc_under_its_own_name(tiny_run):
    """Two subjects: no inter-subject ceiling (it needs 3), the leave-one-subject-out ISC beside."""
    params, grid, catalog, tmp_path = tiny_run
    nc = catalog.load("noise_ceiling")
    assert set(nc["method"]) == {"none"} and nc["noise_ceiling"].isna().all()
    # independent: subject 1 vs mean of the others (only one other here), on shared targets
    r1 = catalog.load("sub-01.responses")
    r2 = catalog.load("sub-02.responses")
    stories = sorted(r1)
    y1 = np.concatenate([np.asarray(r1[s]) for s in stories])
    y2 = np.concatenate([np.asarray(r2[s]) for s in stories])
    t = catalog.load("sub-01.targets")["target"].tolist()
    j = 0
    expected = stats.pearsonr(y1[:, j], y2[:, j])[0]
    got = nc[(nc.subject == "sub-01") & (nc.target == t[j])]["isc_loso"].iloc[0]
    assert got == pytest.approx(expected, abs=1e-5)
