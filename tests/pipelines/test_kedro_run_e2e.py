"""End to end: ``kedro run --env test`` in a fresh copy of the project, then resume, one
namespace alone, MLflow and kedro-viz.

The project (pyproject.toml, conf/, src/) is copied to a temporary folder so the run writes
nothing into the checkout; the installed package is the one under test.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    dest = copy_project(tmp_path_factory.mktemp("project"))
    run_kedro(dest, "run", "--env", "test")
    return dest


def test_run_writes_scores_plots_and_report(project):
    scores = pd.read_parquet(project / "data/07_model_output/encoding_scores.parquet")
    assert list(scores.columns[:9]) == ["dataset", "subject", "condition", "layer", "target", "roi",
                                        "r", "r2", "alpha"]
    assert len(scores) > 0 and not scores[["r", "r2", "alpha"]].isna().any().any()
    for name in ["layer_profile.png", "roi_bars.png", "roi_summary.csv", "summary.md"]:
        f = project / "data/08_reporting" / name
        assert f.is_file() and f.stat().st_size > 0, name
    assert (project / "data/08_reporting/layer_profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mlflow_run_has_metrics_and_artifacts(project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["brainalign"])
    assert len(runs) >= 1
    run = runs.iloc[-1]
    metric_cols = [c for c in runs.columns if c.startswith("metrics.")]
    assert metric_cols, "no metrics logged"
    assert any("layer" in c for c in metric_cols)
    assert run["params.dataset"] == "synthetic"
    assert run["tags.kedro.env"] == "test"
    client = mlflow.tracking.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(run["run_id"])}
    assert {"layer_profile.png", "roi_bars.png"} <= artifacts


def test_only_missing_outputs_resumes_a_deleted_cell(project):
    cell = project / "data/07_model_output/cells/sub-02/pretrained/layer_4.parquet"
    assert cell.is_file()
    before = pd.read_parquet(cell)
    other = project / "data/07_model_output/cells/sub-01/pretrained/layer_0.parquet"
    other_mtime = other.stat().st_mtime_ns
    cell.unlink()
    proc = run_kedro(project, "run", "--env", "test", "--only-missing-outputs")
    log = proc.stdout + proc.stderr
    ran = [line for line in log.splitlines() if "Running node:" in line]
    assert len(ran) == 1 and "sub-02.pretrained.layer_4.scores" in ran[0], ran
    assert other.stat().st_mtime_ns == other_mtime
    after = pd.read_parquet(cell)
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_one_namespace_runs_alone(project):
    proc = run_kedro(project, "run", "--env", "test", "--pipeline", "encoding", "--namespaces",
                  "grid.sub-01.pretrained.layer_0")
    log = proc.stdout + proc.stderr
    ran = [line for line in log.splitlines() if "Running node:" in line]
    assert len(ran) == 1 and "sub-01.pretrained.layer_0.scores" in ran[0], ran


def test_viz_build_shows_every_registered_pipeline(project):
    run_kedro(project, "viz", "build", timeout=300)
    built = {p.name for p in (project / "build/api/pipelines").iterdir()}
    assert {"__default__", "data_prep", "embedding", "encoding", "analysis"} <= built
    main = json.loads((project / "build/api/main").read_text())
    assert any(n["name"].endswith("fit_encoding") for n in main["nodes"])
