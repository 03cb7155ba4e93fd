"""End to end: brain-tuning on the simulated study (tiny test env, 3 subjects) in one ``kedro run``.

MiniLM is brain-tuned once per outer fold on sub-01 and sub-02 (sub-03 left out), with the
permuted-block control; both become ``tuned`` conditions scored by the one encoding path, with
the low-level impact (derived residual conditions), the data-efficiency curve of sub-03 and the
downstream probes. Checks against independent recomputations from the score table and the
folds table, not against the code's own earlier output.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro

pytestmark = pytest.mark.slow
CONDS = ("pretrained-brain", "pretrained-brain-permuted")


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_data) -> Path:
    def update(p):
        p["synthetic"] = {**p["synthetic"], "n_subjects": 3}
        p["layers"] = [6]
        p["conditions"] = {**p["conditions"], "lowlevel": {"kind": "lowlevel", "features": ["word_rate"]}}
        p["encoding"] = {**p["encoding"], "bootstrap": {"enabled": False}}
        p["brain_tuning"] = {"enabled": True, "epochs": 1, "condition": {"layers": [6]}, "targets": {"rois": None},
                             "downstream": {"max_examples": 100, "tasks": ["sst2"]},
                             "data_efficiency": {"fractions": [0.5, 1.0], "layer": 6}}

    dest = copy_project(tmp_path_factory.mktemp("brain_tuning") / "project", env="test", update=update)
    run_kedro(dest, "run", "--env", "test", timeout=900,
              env_vars={"BRAINALIGN_NLU_DIR": str(shared_data / "nlu")})
    return dest


def _csv(project, name):
    return pd.read_csv(project / "data" / "08_reporting" / name)


def test_one_model_per_fold_fitted_on_its_training_samples_only(project):
    folds = pd.read_parquet(project / "data/05_model_input/folds.parquet")
    for cond in CONDS:
        root = project / "data/06_models" / cond
        top = json.loads((root / "brainalign.json").read_text())
        assert top["per_fold"] and top["method"] == cond.removeprefix("pretrained-")
        assert top["subjects"] == ["sub-01", "sub-02"]
        for f in sorted(folds["fold"].unique()):
            info = json.loads((root / f"fold_{f}" / "brainalign.json").read_text())
            fitted = np.concatenate([np.arange(a, b + 1) for a, b in info["fitted_samples"]])
            train = folds[(folds["fold"] == f) & (folds["role"] == "train")]["sample"].to_numpy()
            test = folds[(folds["fold"] == f) & (folds["role"] == "test")]["sample"].to_numpy()
            np.testing.assert_array_equal(np.sort(fitted), np.sort(train))
            assert np.intersect1d(fitted, test).size == 0
    hist = _csv(project, "brain_tuning_history.csv")
    assert set(hist["condition"]) == set(CONDS)
    assert (hist.groupby(["condition", "fold"])["epoch"].min() == 0).all()    # epoch 0: the untuned backbone
    assert (project / "data/08_reporting/brain_tuning_history.png").stat().st_size > 10_000


def test_gain_table_scores_what_the_score_table_scores(project):
    scores = pd.read_parquet(project / "data/07_model_output/encoding_scores.parquet")
    gain = _csv(project, "brain_tuning_gain.csv")
    subj = scores.groupby(["subject", "condition", "layer", "roi"])["r"].mean()
    for row in gain.itertuples():
        a = subj.xs((row.condition, row.layer), level=("condition", "layer")).xs(row.roi, level="roi")
        b = subj.xs(("pretrained", row.layer), level=("condition", "layer")).xs(row.roi, level="roi")
        assert row.gain == pytest.approx(float((a - b).mean()), abs=1e-9)
        assert row.r_condition == pytest.approx(float(a.mean()), abs=1e-9)
        assert 0 <= row.p <= 1 and row.q >= row.p - 1e-12
    assert set(gain["condition"]) == set(CONDS) and gain["n_subjects"].eq(3).all()


def test_lowlevel_impact_is_the_drop_to_the_residual_conditions(project):
    scores = pd.read_parquet(project / "data/07_model_output/encoding_scores.parquet")
    imp = _csv(project, "lowlevel_impact.csv")
    assert set(imp["condition"]) == {"pretrained", *CONDS}
    m = scores.groupby(["subject", "condition", "layer", "roi"])["r"].mean().groupby(["condition", "layer", "roi"]).mean()
    for row in imp.itertuples():
        assert row.r == pytest.approx(m[(row.condition, row.layer, row.roi)], abs=1e-9)
        assert row.r_minus_lowlevel == pytest.approx(m[(f"{row.condition}-minus-lowlevel", row.layer, row.roi)], abs=1e-9)
        if row.r > 0:
            assert row.drop_pct == pytest.approx(100 * (row.r - row.r_minus_lowlevel) / row.r)


def test_data_efficiency_of_the_left_out_subject(project):
    scores = pd.read_parquet(project / "data/07_model_output/encoding_scores.parquet")
    eff = _csv(project, "brain_tuning_efficiency.csv")
    assert set(eff["subject"]) == {"sub-03"} and set(eff["fraction"]) == {0.5, 1.0}
    assert set(eff["condition"]) == {"pretrained", *CONDS}
    full = eff[eff["fraction"] == 1.0]
    s3 = scores[(scores["subject"] == "sub-03") & (scores["layer"] == 6)].groupby(["condition", "roi"])["r"].mean()
    for row in full.itertuples():   # all the training data: the encoding cell's own fit
        assert row.mean_r == pytest.approx(s3[(row.condition, row.roi)], abs=1e-6)
    half = eff[eff["fraction"] == 0.5]
    assert (half["n_train"] < full["n_train"].max()).all()


def test_downstream_probes_and_the_report(project):
    ds = _csv(project, "brain_tuning_downstream.csv")
    assert set(ds["condition"]) == {"pretrained", *CONDS} and set(ds["task"]) == {"sst2"}
    assert ds.loc[ds["condition"] == "pretrained", "n_models"].item() == 1
    assert (ds.loc[ds["condition"] != "pretrained", "n_models"] == 2).all()        # one model per fold
    assert (ds["accuracy"] > ds["majority"] + 0.1).all()                           # MiniLM sentence embeddings
    conds = pd.read_csv(project / "data/08_reporting/conditions.csv")
    brain = conds.set_index("condition").loc[list(CONDS)]
    assert list(brain["method"]) == ["brain", "brain-permuted"] and (brain["base_model"] == "all-MiniLM-L6-v2").all()
    assert (project / "data/08_reporting/brain_tuning.png").stat().st_size > 20_000


FAMILIES = ("wav2vec2", "hubert", "whisper")


@pytest.fixture(scope="module")
def speech_project(tmp_path_factory, shared_data) -> Path:
    """The same study with a tiny random model of each speech family as brain-tuning sources."""
    from tiny_speech import save_tiny_speech_model

    root = tmp_path_factory.mktemp("brain_tuning_speech")
    models = {f: str(save_tiny_speech_model(root / f, f)) for f in FAMILIES}

    def update(p):
        p["synthetic"] = {**p["synthetic"], "n_subjects": 3}
        p["layers"] = [2]
        p["conditions"] = {"pretrained": None, "lowlevel": {"kind": "lowlevel", "features": ["word_rate"]},
                           **{f: {"kind": "speech", "model": m, "window_s": 4.0, "stride_s": 0.5}
                              for f, m in models.items()}}
        p["encoding"] = {**p["encoding"], "bootstrap": {"enabled": False}, "null_model": {"enabled": False}}
        p["brain_tuning"] = {"enabled": True, "source": list(FAMILIES), "methods": ["brain"], "epochs": 1,
                             "train_top_layers": None, "lr": {"backbone": 1e-3, "head": 1e-3},
                             "condition": {"layers": [2]}, "targets": {"rois": None},
                             "data_efficiency": {"fractions": [0.5, 1.0], "layer": 2},
                             "downstream": {"tasks": ["sst2"], "layer": 2, "max_examples": 15, "n_folds": 3}}

    dest = copy_project(root / "project", env="test", update=update)
    run_kedro(dest, "run", "--env", "test", timeout=900,
              env_vars={"BRAINALIGN_NLU_DIR": str(shared_data / "nlu")})
    return dest


def test_each_speech_family_brain_tunes_with_the_evaluations(speech_project):
    p = speech_project
    scores = pd.read_parquet(p / "data/07_model_output/encoding_scores.parquet")
    brain = [f"{f}-brain" for f in FAMILIES]
    assert {*FAMILIES, *brain} <= set(scores["condition"])
    for f in FAMILIES:                              # the tuned weights differ from the untuned ones
        info = json.loads((p / "data/06_models" / f"{f}-brain" / "brainalign.json").read_text())
        assert info["modality"] == "speech" and info["family"] == f
        assert (p / "data/06_models" / f"{f}-brain" / "fold_0" / "model.safetensors").exists()
    gain = _csv(p, "brain_tuning_gain.csv")
    assert set(zip(gain["condition"], gain["source"])) == {(f"{f}-brain", f) for f in FAMILIES}     # (a)
    imp = _csv(p, "lowlevel_impact.csv")
    assert set(imp["condition"]) == {*FAMILIES, *brain}                                              # (b)
    eff = _csv(p, "brain_tuning_efficiency.csv")
    assert set(eff["condition"]) == {*FAMILIES, *brain} and set(eff["subject"]) == {"sub-03"}
    ds = _csv(p, "brain_tuning_downstream.csv")                                                     # (c)
    assert set(ds["condition"]) == {*FAMILIES, *brain} and (ds["modality"] == "speech").all()   # read aloud
    assert ds.set_index("condition")["n_models"].to_dict() == {**{f: 1 for f in FAMILIES}, **{b: 2 for b in brain}}
    assert (ds["n_examples"] == 30).all() and ds["accuracy"].between(0, 1).all()
