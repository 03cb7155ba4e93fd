"""The MLflow hook: its helpers (metric filter, run names, run kinds, summary metrics, stale
outputs, git state) and, in process, that a run logs only what its own nodes produced.
End to end (kedro runs of the tiny project): tests/pipelines/test_mlflow_runs.py."""
import logging
import math
import shutil
import subprocess
from types import SimpleNamespace

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.text import TextDataset

from brainalign.hooks import (
    MAX_PARAM_VALUE,
    MlflowHook,
    downstream_stale,
    finite_metrics,
    git_state,
    param_values,
    refresh_command,
    report_files,
    run_kind,
    run_name,
    runs_table_url,
    summary_metrics,
    claim_metrics,
    decoding_metrics,
)


def test_finite_metrics_drops_nan_and_inf_by_name():
    kept, dropped = finite_metrics({"r.base.layer_1.mean": 0.25, "noise mean r": math.nan,
                                    "x": math.inf, "n_subjects_excluded": 1})
    assert kept == {"r.base.layer_1.mean": 0.25, "n_subjects_excluded": 1.0}
    assert dropped == ["noise mean r", "x"]
    kept, _ = finite_metrics({"a b": 1.5, "r.c.layer_0.L IFG (orb)": 0.5})
    assert kept == {"a_b": 1.5, "r.c.layer_0.L_IFG__orb_": 0.5}


def test_run_name_says_env_pipelines_namespaces_and_resume():
    base = {"pipeline_names": None, "namespaces": None, "only_missing_outputs": False}
    assert run_name("synthetic", "test", base) == "synthetic-test-__default__"
    assert run_name("alice", None, {**base, "pipeline_names": ["encoding", "analysis"]}) == \
        "alice-local-encoding+analysis"
    one = run_name("synthetic", "test", {**base, "pipeline_names": ["encoding"], "namespaces": ["sub-01.a.layer_0"]})
    assert one == "synthetic-test-encoding[sub-01.a.layer_0]"
    many = run_name("synthetic", "test", {**base, "namespaces": ["a", "b", "c", "d"], "tags": ["x"],
                                          "only_missing_outputs": True})
    assert many == "synthetic-test-__default__[a,b,+2 more]+filtered-resume"


def test_run_kind():
    every = {"a", "b", "c"}
    assert run_kind(set(), every, True) == "no-op"
    assert run_kind(set(), every, False) == "no-op"
    assert run_kind(every, every, True) == "full"
    assert run_kind({"a"}, every, True) == "resume"
    assert run_kind({"a"}, every, False) == "partial"


def test_param_values_are_strings_cut_at_mlflow_limit():
    out = param_values({"dataset": "synthetic", "layers": [0, 4], "enc": {"alphas": {"n": 7}},
                        "long": "x" * (MAX_PARAM_VALUE + 100), "bad key(1)": True})
    assert out["dataset"] == "synthetic" and out["layers"] == "[0, 4]" and out["enc.alphas.n"] == "7"
    assert out["bad_key_1_"] == "true"
    assert len(out["long"]) == MAX_PARAM_VALUE and out["long"].endswith("(truncated)")


def test_summary_metrics_best_layer_and_finite_ceilings():
    rows = []
    for layer, r in [(0, 0.1), (4, 0.3), (8, 0.2)]:
        for roi, ceiling in [("A1", 0.5), ("IFG", math.nan)]:
            rows.append({"condition": "pretrained", "layer": layer, "roi": roi,
                         "mean_r": r + (0.1 if roi == "A1" else 0),
                         "mean_noise_ceiling": ceiling, "mean_isc_loso": 0.2,
                         "r_norm": (r + 0.1) / ceiling if roi == "A1" else math.nan})
    m = summary_metrics(pd.DataFrame(rows))
    assert m["best_layer.pretrained"] == 4.0
    assert m["r.pretrained.best_layer.mean"] == pytest.approx(0.35)
    assert m["noise_ceiling.A1"] == pytest.approx(0.5) and "noise_ceiling.IFG" not in m  # NaN ceilings left out
    assert m["isc_loso.IFG"] == pytest.approx(0.2)
    assert m["r_norm.pretrained.best_layer.A1"] == pytest.approx(0.8) and "r_norm.pretrained.best_layer.IFG" not in m
    assert summary_metrics(pd.DataFrame()) == {} and summary_metrics(None) == {}


def test_claim_metrics_flatten_every_finite_number():
    claims = {"encoding_r_by_method": {"full": 0.15, "prefix": 0.16},
              "method_contrast_q": {"prefix vs full": {"LPTL": 0.005, "LATL": math.nan}},
              "supported": {"prefix_ge_full": True}, "note": "text is left out"}
    m = claim_metrics(claims)
    assert m == {"claims.encoding_r_by_method.full": 0.15, "claims.encoding_r_by_method.prefix": 0.16,
                 "claims.method_contrast_q.prefix vs full.LPTL": 0.005, "claims.supported.prefix_ge_full": 1.0}
    assert claim_metrics(None) == {} and claim_metrics([1, 2]) == {}


def test_decoding_metrics_one_per_condition_layer_roi():
    summary = pd.DataFrame({"condition": ["pretrained", "pretrained"], "layer": [4, 4], "roi": ["A1", "WM"],
                            "unit": ["roi", "roi"], "mean_accuracy": [0.9, 0.49], "mean_null": [0.5, 0.5],
                            "q": [0.001, math.nan]})
    m = decoding_metrics(summary)
    assert m == {"decoding.pretrained.layer_4.A1.accuracy": 0.9, "decoding.pretrained.layer_4.A1.null": 0.5,
                 "decoding.pretrained.layer_4.A1.q": 0.001, "decoding.pretrained.layer_4.WM.accuracy": 0.49,
                 "decoding.pretrained.layer_4.WM.null": 0.5}
    assert decoding_metrics(None) == {} and decoding_metrics(pd.DataFrame()) == {}


def _f(*args):
    return args[0] if args else 1


def _project_pipelines():
    cells = Pipeline([node(_f, "feat", "s1.c.layer_0.scores", name="fit_1"),
                      node(_f, "feat", "s2.c.layer_0.scores", name="fit_2")])
    analysis = Pipeline([node(_f, ["s1.c.layer_0.scores", "s2.c.layer_0.scores"], "encoding_scores",
                              name="collect_scores"),
                         node(_f, "encoding_scores", "roi_summary", name="roi_summary"),
                         node(_f, "roi_summary", ["summary_md", "tracking_metrics"], name="report"),
                         node(_f, "params:conditions", "conditions_table", name="conditions_table")])
    return {"encoding": cells, "analysis": analysis, "__default__": cells + analysis}


def test_stale_outputs_and_the_command_that_refreshes_them():
    reg = _project_pipelines()
    nodes = list(reg["__default__"].nodes)
    stale = downstream_stale(nodes, {"fit_1"}, {"s1.c.layer_0.scores"})
    assert [n.name for n in stale] == ["collect_scores", "roi_summary", "report"]  # not conditions_table
    assert refresh_command("test", reg, stale) == "kedro run --env test --pipelines analysis"
    every = {n.name for n in nodes}
    assert downstream_stale(nodes, every, {o for n in nodes for o in n.outputs}) == []
    assert downstream_stale(nodes, {"report"}, {"summary_md", "tracking_metrics"}) == []


def test_git_state(tmp_path):
    assert git_state(tmp_path / "missing", None) == {}
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert git_state(tmp_path) == {}  # not a work tree
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    state = git_state(tmp_path / "missing", tmp_path)
    assert state["git_commit"] == head and state["git_dirty"] == "false"
    (tmp_path / "a.txt").write_text("b")
    assert git_state(tmp_path)["git_dirty"] == "true"


def test_runs_table_url():
    assert runs_table_url("7") == "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"


def _catalog(tmp_path):
    rep = tmp_path / "data" / "08_reporting"
    return DataCatalog({
        "s1.c.layer_0.scores": ParquetDataset(filepath=str(tmp_path / "data/07_model_output/s1.parquet")),
        "encoding_scores": ParquetDataset(filepath=str(tmp_path / "data/07_model_output/encoding_scores.parquet")),
        "roi_summary": CSVDataset(filepath=str(rep / "roi_summary.csv"), save_args={"index": False}),
        "summary_md": TextDataset(filepath=str(rep / "summary.md")),
        "tracking_metrics": JSONDataset(filepath=str(rep / "metrics.json")),
    })


def test_report_files_are_those_of_the_named_datasets_under_the_report_folder(tmp_path):
    catalog = _catalog(tmp_path)
    catalog.save("summary_md", "# s")
    catalog.save("tracking_metrics", {"r": 1})
    catalog.save("encoding_scores", pd.DataFrame({"r": [0.1]}))
    rep = tmp_path / "data" / "08_reporting"
    (rep / "other.png").write_bytes(b"png")
    files = report_files(catalog, {"summary_md", "tracking_metrics", "encoding_scores", "not_declared"},
                         rep.relative_to(tmp_path), tmp_path)
    assert files == [(rep / "summary.md", None)]  # .json is logged as metrics, parquet is outside


@pytest.fixture
def hook_run(tmp_path, caplog, monkeypatch):
    """Runs the MlflowHook's hooks in process as Kedro would for a run of the nodes named in ``ran``
    (``{node: outputs}``) of _project_pipelines() (also the hook's pipeline registry): the selected
    pipeline is those nodes, or all of ``__default__`` with ``only_missing_outputs``. Returns
    (run, client, experiment)."""
    import mlflow

    monkeypatch.setattr(MlflowHook, "_registry", lambda self: _project_pipelines())

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    params = {"dataset": "synthetic", "tracking": {"enabled": True, "uri": uri, "experiment": "hooktest",
                                                  "artifacts_dir": str(tmp_path / "data" / "08_reporting")}}
    context = SimpleNamespace(config_loader={"parameters": params}, env="test", project_path=tmp_path)
    full = _project_pipelines()["__default__"]
    catalog = _catalog(tmp_path)
    # outputs of an earlier run that this one must not attach
    catalog.save("summary_md", "# old report")
    catalog.save("tracking_metrics", {"r.c.layer_0.mean": 0.9})

    def run(ran: dict, node_hooks: bool = True, **run_params):
        hook = MlflowHook()
        hook.after_context_created(context)
        rp = {"run_id": "x", "pipeline_names": None, "namespaces": None, "only_missing_outputs": False,
              "runner": "SequentialRunner", "kedro_version": "1", **run_params}
        pipe = full if rp["only_missing_outputs"] else Pipeline([n for n in full.nodes if n.name in ran])
        hook.before_pipeline_run(rp, pipe, catalog)
        for n in pipe.nodes:
            if n.name in ran:
                for name, value in ran[n.name].items():
                    if catalog.get(name) is not None:  # the others are memory datasets, not saved
                        catalog.save(name, value)
                if node_hooks:  # not under ParallelRunner or DaskRunner: nodes run in other processes
                    hook.after_node_run(n, catalog, {}, ran[n.name])
        with caplog.at_level(logging.INFO, logger="brainalign.hooks"):
            hook.after_pipeline_run(rp, pipe, catalog)
        client = mlflow.MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("hooktest")
        return client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0], client, exp
    return run


def test_hook_logs_only_what_the_run_produced(hook_run, caplog):
    cell = pd.DataFrame({"r": [0.2, 0.4], "target": [0, 1]})
    run, client, exp = hook_run({"fit_1": {"s1.c.layer_0.scores": cell}}, pipeline_names=["encoding"],
                                namespaces=["s1.c.layer_0"])
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.run_name == "synthetic-test-encoding[s1.c.layer_0]"
    assert run.data.metrics == {"cell.s1.c.layer_0.mean_r": pytest.approx(0.3)}  # not metrics.json's
    assert run.data.tags["partial"] == "true" and run.data.tags["run_kind"] == "partial"
    assert run.data.tags["stale_outputs"] == "encoding_scores,roi_summary,summary_md,tracking_metrics"
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert arts == {"kedro"}  # the old summary.md is not attached
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Stale" in r.getMessage()]
    assert warning and "kedro run --env test --pipelines analysis" in warning[0]
    assert "encoding_scores.parquet" in warning[0]


def test_hook_full_and_no_op_runs(hook_run, caplog):
    summary = pd.DataFrame({"condition": ["c", "c"], "layer": [0, 4], "roi": ["A1", "A1"], "mean_r": [0.1, 0.3],
                            "mean_noise_ceiling": [0.6, 0.6]})
    ran = {"fit_1": {"s1.c.layer_0.scores": pd.DataFrame({"r": [0.5]})},
           "fit_2": {"s2.c.layer_0.scores": pd.DataFrame({"r": [0.1]})},
           "collect_scores": {"encoding_scores": pd.DataFrame({"r": [0.5, 0.1]})},
           "roi_summary": {"roi_summary": summary},
           "report": {"summary_md": "# new", "tracking_metrics": {"r.c.layer_4.mean": 0.3}},
           "conditions_table": {"conditions_table": pd.DataFrame()}}
    run, client, _ = hook_run(ran)
    assert run.data.tags["run_kind"] == "full" and run.data.tags["partial"] == "false"
    m = run.data.metrics
    assert m["r.c.layer_4.mean"] == 0.3 and m["best_layer.c"] == 4 and m["noise_ceiling.A1"] == 0.6
    assert {"summary.md", "kedro"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert not [r for r in caplog.records if "Stale" in r.getMessage()]

    run, client, _ = hook_run({}, only_missing_outputs=True)
    assert run.data.tags["run_kind"] == "no-op" and run.data.metrics == {}
    assert run.info.run_name.endswith("-resume")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"kedro"}


def test_hook_under_runners_without_node_hooks(hook_run):
    """ParallelRunner and brainalign.runner.DaskRunner call no node hook in the kedro process."""
    summary = pd.DataFrame({"condition": ["c"], "layer": [0], "roi": ["A1"], "mean_r": [0.2]})
    ran = {"fit_1": {"s1.c.layer_0.scores": pd.DataFrame({"r": [0.5]})},
           "roi_summary": {"roi_summary": summary},
           "report": {"summary_md": "# new", "tracking_metrics": {"r.c.layer_0.mean": 0.2}}}
    run, client, _ = hook_run(ran, node_hooks=False)  # a finished run ran every selected node
    assert run.data.tags["run_kind"] == "partial" and run.data.tags["kedro.nodes_run"] == "3"
    assert run.data.metrics["best_layer.c"] == 0  # roi_summary read back
    assert run.data.metrics["r.c.layer_0.mean"] == 0.2  # read back from metrics.json of this run
    assert run.data.metrics["cell.s1.c.layer_0.mean_r"] == 0.5
    assert "summary.md" in {a.path for a in client.list_artifacts(run.info.run_id)}

    # a resume: the nodes whose files appeared or changed ran
    run, client, _ = hook_run({"fit_1": {"s1.c.layer_0.scores": pd.DataFrame({"r": [0.25]})}},
                              node_hooks=False, only_missing_outputs=True)
    assert run.data.tags["run_kind"] == "resume" and run.data.tags["kedro.nodes_run"] == "1"
    assert run.data.metrics == {"cell.s1.c.layer_0.mean_r": 0.25}
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"kedro"}
    run, _, _ = hook_run({}, node_hooks=False, only_missing_outputs=True)
    assert run.data.tags["run_kind"] == "no-op" and run.data.metrics == {}
