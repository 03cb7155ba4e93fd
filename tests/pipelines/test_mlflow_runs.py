"""End to end: what the MLflow runs of ``kedro run --env test`` record (docs/tracking.md).

One copy of the tiny project, made a git repository, and three runs:
a full run, one encoding cell (``--pipelines encoding --namespaces sub-01.pretrained.layer_0``)
and a no-op ``--only-missing-outputs``. The SQLite store is then read with MlflowClient.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro

pytestmark = pytest.mark.slow

CELL = "grid.sub-01.pretrained.layer_0"
REPORT_FILES = {"layer_profile.png", "roi_bars.png", "roi_summary.csv", "summary.md", "conditions.csv"}
WIDE = {"COLUMNS": "2000"}  # log lines unwrapped, so a message is found in one piece


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    dest = copy_project(tmp_path_factory.mktemp("mlflow_project"))
    if shutil.which("git"):
        git = ["git", "-C", str(dest), "-c", "user.email=test@example.org", "-c", "user.name=test"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "project"], check=True)
    return dest


@pytest.fixture(scope="module")
def runs(project) -> dict:
    logs = {}
    for key, args in [("full", []), ("cell", ["--pipelines", "encoding", "--namespaces", CELL]),
                      ("noop", ["--only-missing-outputs"])]:
        proc = run_kedro(project, "run", "--env", "test", *args, env_vars=WIDE)
        logs[key] = proc.stdout + proc.stderr
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    exp = client.get_experiment_by_name("brainalign")
    found = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(found) == 3, [r.info.run_name for r in found]
    out = {"client": client, "experiment": exp, "logs": logs}
    for key, run in zip(["full", "cell", "noop"], found):
        out[key] = run
        out[key + "_artifacts"] = {a.path for a in client.list_artifacts(run.info.run_id)}
    return out


def test_run_names_say_env_pipelines_and_namespaces(runs):
    assert runs["full"].info.run_name == "synthetic-test-__default__"
    assert runs["cell"].info.run_name == f"synthetic-test-encoding[{CELL}]"
    assert runs["noop"].info.run_name == "synthetic-test-__default__-resume"
    assert runs["cell"].data.tags["kedro.pipelines"] == "encoding"
    assert runs["cell"].data.tags["kedro.namespaces"] == CELL


def test_runs_carry_git_commit_grid_and_resolved_parameters(project, runs):
    if shutil.which("git"):
        head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        for key in ("full", "cell", "noop"):
            tags = runs[key].data.tags
            assert tags["git_commit"] == head and tags["mlflow.source.git.commit"] == head
            assert tags["git_dirty"] == "false"  # data/ and mlflow.db are untracked
    assert len({runs[k].data.tags["grid_id"] for k in ("full", "cell", "noop")}) == 1
    params = runs["full"].data.params
    assert params["dataset"] == "synthetic" and params["layers"] == "[0, 4]"
    assert params["encoding.alphas.n"] == "7"  # conf/test over conf/base, resolved
    assert params["tracking.uri"].startswith("sqlite:///")  # ${env:...} resolved
    local = runs["client"].download_artifacts(runs["full"].info.run_id, "kedro/parameters.json", str(project))
    assert json.loads(Path(local).read_text())["layers"] == [0, 4]


def test_experiment_is_a_model_training_experiment(runs):
    assert runs["experiment"].tags["mlflow.experimentKind"] == "custom_model_development"


def test_full_run_has_its_metrics_best_layer_ceilings_and_reports(project, runs):
    run = runs["full"]
    assert run.data.tags["run_kind"] == "full" and run.data.tags["partial"] == "false"
    m = run.data.metrics
    saved = json.loads((project / "data/08_reporting/metrics.json").read_text())
    assert all(m[k] == pytest.approx(v) for k, v in saved.items() if math.isfinite(v))
    summary = pd.read_csv(project / "data/08_reporting/roi_summary.csv")
    by_layer = summary.groupby("layer")["mean_r"].mean()
    assert m["best_layer.pretrained"] == by_layer.idxmax()
    assert m["r.pretrained.best_layer.mean"] == pytest.approx(by_layer.max())
    for roi, ceiling in summary.groupby("roi")["mean_noise_ceiling"].mean().items():
        # 2 subjects: the inter-subject ceiling needs 3, so it is NaN here and left out
        assert (f"noise_ceiling.{roi}" in m) == math.isfinite(ceiling)
        if math.isfinite(ceiling):
            assert m[f"noise_ceiling.{roi}"] == pytest.approx(ceiling)
    isc = summary.groupby("roi")["mean_isc_loso"].mean()
    assert all(m[f"isc_loso.{roi}"] == pytest.approx(v) for roi, v in isc.items() if math.isfinite(v))
    assert {f"cell.sub-0{s}.pretrained.layer_{k}.mean_r" for s in (1, 2) for k in (0, 4)} <= set(m)
    assert REPORT_FILES | {"kedro"} <= runs["full_artifacts"]
    assert "Stale outputs" not in runs["logs"]["full"]


def test_one_cell_run_records_only_that_cell_and_says_what_is_stale(runs):
    run = runs["cell"]
    assert run.data.tags["partial"] == "true" and run.data.tags["run_kind"] == "partial"
    assert run.data.tags["kedro.nodes_run"] == "1"
    # the metric is named from the cell's datasets (no grid. prefix); nothing read back from metrics.json
    assert set(run.data.metrics) == {f"cell.{CELL.removeprefix('grid.')}.mean_r"}
    assert runs["cell_artifacts"] == {"kedro"}  # no report file of the earlier full run
    assert "encoding_scores" in run.data.tags["stale_outputs"].split(",")
    log = runs["logs"]["cell"]
    warning = [line for line in log.splitlines() if "Stale outputs" in line]
    assert warning and "WARNING" in warning[0]
    assert "encoding_scores.parquet" in warning[0] and "`kedro run --env test --pipelines analysis`" in warning[0]
    assert "kedro run --env test --pipelines analysis" in run.data.tags["mlflow.note.content"]


def test_no_op_resume_logs_no_metrics(runs):
    run = runs["noop"]
    assert run.data.tags["run_kind"] == "no-op" and run.data.tags["partial"] == "true"
    assert run.data.tags["kedro.nodes_run"] == "0"
    assert run.data.metrics == {}
    assert runs["noop_artifacts"] == {"kedro"}
    assert "Running node:" not in runs["logs"]["noop"] and "Stale outputs" not in runs["logs"]["noop"]
