"""``kedro run --env test`` with task tuning on: six tiny tuning cells (SST-2 and CoNLL-2003 x P-tuning
v2, prompt tuning and LoRA, on MiniLM, a few dozen real examples each) whose tuned models
become ``tuned`` conditions of the encoding study. Checks read what the run wrote: the results
table against each model directory's brainalign.json and the real dev sets, the score table, the
conditions table, MLflow's per-epoch metrics, and that ``--only-missing-outputs`` retrains nothing."""
from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from kedro_project import ROOT, copy_project, only_conditions, run_kedro

pytestmark = pytest.mark.slow
NLU = ROOT.parent / "shared" / "data" / "nlu"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if not NLU.is_dir():
        pytest.skip(f"the NLU task sets are not at {NLU}")

    def update(p):
        only_conditions(p, pretrained={"model": "all-MiniLM-L6-v2", "context_words": 5})
        p["task_tuning"] = {"enabled": True, "nlu_root": str(NLU), "tasks": ["sst2", "conll2003"],
                            "methods": ["prefix", "prompt", "lora"], "max_examples": {"train": 48, "dev": 32},
                            "epochs": 1, "batch_size": 16, "max_length": 48,
                            "method_params": {"prefix": {"prefix_length": 4}, "prompt": {"num_virtual_tokens": 4},
                                              "lora": {"r": 4}},
                            "condition": {"layers": [4], "context_words": 5}}
        p["decoding"] = {"enabled": True, "layers": [4], "null_model": {"n_draws": 9, "min_shift": 15}}

    proj = copy_project(tmp_path_factory.mktemp("tt") / "project", "test", update)
    run_kedro(proj, "run", "--env", "test", timeout=900)
    return proj


def test_results_table_matches_the_model_directories(project):
    res = pd.read_csv(project / "data/08_reporting/task_tuning_results.csv")
    assert len(res) == 6 and set(res["method"]) == {"prefix", "prompt", "lora"}
    assert list(res.columns[:7]) == ["task", "method", "base_model", "condition", "trainable_params", "total_params",
                                     "trainable_fraction"]
    for row in res.itertuples():
        info = json.loads((project / "data/06_models" / row.condition / "brainalign.json").read_text())
        assert info["method"] == row.method and info["task"] == row.task
        assert info["trainable_fraction"] == pytest.approx(row.trainable_fraction)
        assert row.trainable_fraction == pytest.approx(row.trainable_params / row.total_params)
        assert 0 < row.trainable_fraction < 0.05          # adapters: a small share of MiniLM's 22.7M
        assert row.n_train == 48 and row.n_dev == 32
    sst2 = res[res.task == "sst2"]
    assert set(sst2["metric"]) == {"accuracy"} and set(res[res.task == "conll2003"]["metric"]) == {"entity_f1"}
    # the majority baseline is a share of the 32 dev sentences drawn from the real dev file
    dev = pd.read_csv(NLU / "SST2/dev.tsv", sep="\t")
    assert len(dev) == 872
    assert all(abs(b * 32 - round(b * 32)) < 1e-9 and 0.5 <= b < 1 for b in sst2["majority_baseline"])


def test_tuned_models_are_conditions_of_the_encoding_study(project):
    scores = pd.read_parquet(project / "data/07_model_output/encoding_scores.parquet")
    conds = set(scores["condition"])
    tuned = {c for c in conds if c != "pretrained"}
    assert tuned == {f"all-MiniLM-L6-v2-{m}-{t}" for t in ("sst2", "conll2003") for m in ("prefix", "prompt", "lora")}
    assert set(scores[scores.condition.isin(tuned)]["layer"]) == {4}
    n = scores.groupby("condition").size()
    assert n[list(tuned)].nunique() == 1   # every tuned condition scores every subject and target
    table = pd.read_csv(project / "data/08_reporting/conditions.csv").set_index("condition")
    for c in tuned:
        assert table.loc[c, "kind"] == "tuned" and table.loc[c, "method"] in ("prefix", "prompt", "lora")
        assert 0 < float(table.loc[c, "trainable_fraction"]) < 0.05


def test_tuning_comparison_report(project):
    """The comparison tables read what the encoding, decoding and similarity tables hold (pandas
    recomputations); every tuned condition is compared with pretrained in every ROI."""
    rep = project / "data/08_reporting"
    scores = pd.read_parquet(project / "data/07_model_output/encoding_scores.parquet")
    dec = pd.read_parquet(project / "data/07_model_output/decoding_scores.parquet")
    table = pd.read_csv(rep / "tuning_comparison.csv")
    rois = set(scores["roi"])
    assert set(table["method"]) == {"pretrained", "prefix", "prompt", "lora"} and set(table["roi"]) >= rois
    enc = (scores.groupby(["condition", "layer", "roi", "subject"])["r"].mean()
           .groupby(["condition", "layer", "roi"]).mean())
    acc = dec.groupby(["condition", "layer", "roi"])["pairwise_accuracy"].mean()
    for r in table[table["roi"].isin(rois)].itertuples():
        assert r.encoding_r == pytest.approx(enc[(r.condition, r.layer, r.roi)], abs=1e-9)
        assert r.decoding_accuracy == pytest.approx(acc[(r.condition, r.decoding_layer, r.roi)], abs=1e-9)
    tests = pd.read_csv(rep / "tuning_tests.csv")
    vs = tests[tests["contrast"].str.endswith("vs pretrained") & (tests["measure"] == "encoding_r")]
    assert len(vs) == 6 * len(rois)
    assert tests["p"].isna().all()   # 2 subjects: no group test, said in the note
    assert tests["note"].str.contains("subject").all()
    sim = pd.read_csv(rep / "similarity.csv")
    assert set(sim["condition"]) == {c for c in table["condition"] if c != "pretrained"}
    assert set(sim["base_condition"]) == {"pretrained"} and sim["cka"].between(0, 1).all()
    assert (rep / "tuning_comparison.png").stat().st_size > 20_000
    claims = json.loads((rep / "tuning_claims.json").read_text())
    assert set(claims["encoding_r_by_method"]) == {"pretrained", "prefix", "prompt", "lora"}


def test_mlflow_has_per_epoch_tuning_metrics(project):
    con = sqlite3.connect(project / "mlflow.db")
    keys = {k for (k,) in con.execute("select distinct key from metrics")}
    assert any(k.startswith("tuning.all-MiniLM-L6-v2-lora-conll2003.") and k.endswith("train_loss") for k in keys)


def test_only_missing_outputs_retrains_nothing(project):
    folder = project / "data/06_models/all-MiniLM-L6-v2-lora-sst2"
    before = folder.stat().st_mtime_ns
    proc = run_kedro(project, "run", "--env", "test", "--pipeline", "task_tuning", "--only-missing-outputs")
    assert "tune_cell(" not in proc.stdout + proc.stderr
    assert folder.stat().st_mtime_ns == before
