"""``kedro run --env alice`` on the real Alice files (a subset of subjects and one layer, to
keep the suite short): every ROI gets a finite mean r, and s33 is excluded with a log line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro

ROOT = Path(__file__).resolve().parents[2]
ALICE = ROOT.parent / "shared" / "data" / "alice2016"
ROIS = {"LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"}


@pytest.mark.slow
@pytest.mark.skipif(not ALICE.is_dir(), reason=f"real data not found at {ALICE}")
def test_alice_env_run(tmp_path):
    def subset(params):
        params["study"]["subjects"] = ["s18", "s22", "s33"]
        params["layers"] = [2]
        params["cv"]["n_folds"] = 3                  # the env's contiguous blocks, 3 instead of 5 (the suite's time)
        params["variance_partition"]["n_iter"] = 5   # the partition of the env, cheaper
        params["encoding"]["null_model"]["n_draws"] = 50
        # the env's property removal, one tag-based property (the tagger trained on the treebank sample)
        params["removal"].update(layers=[2], properties=["tense"], drop_test={"n_perm": 200})
        # the env's brain-tuning, one epoch: s18 and s22 tuned, s33 (excluded in data_prep) left out
        # (`brain` only and one step per epoch, for the suite's time: the permuted control's path is
        # the same code on shuffled responses, run end to end in tests/pipelines/test_brain_tuning_e2e.py)
        params["brain_tuning"].update(leave_out=1, epochs=1, steps_per_epoch=1, methods=["brain"],
                                      condition={"layers": [2]},
                                      data_efficiency={"layer": 2, "fractions": [0.5, 1.0]}, downstream={"tasks": []})

    copy_project(tmp_path, "alice", subset)
    proc = run_kedro(tmp_path, "run", "--env", "alice", env_vars={"BRAINALIGN_ALICE_DIR": str(ALICE),
                                                               "BRAINALIGN_NLU_DIR": str(ROOT.parent / "shared" / "data" / "nlu")})
    log = proc.stdout + proc.stderr
    assert "subject s33 excluded" in log
    report = tmp_path / "data" / "alice" / "08_reporting"
    excl = pd.read_csv(report / "exclusions.csv")
    assert set(excl["subject"]) == {"s33"}
    assert "zero variance" in " ".join(excl["reason"].astype(str))
    summary = pd.read_csv(report / "roi_summary.csv")
    assert set(summary["roi"]) == ROIS
    # the env's three kinds side by side: the text model and its control at layer 2, the
    # authors' low-level predictors (one layer, 0)
    assert set(map(tuple, summary[["condition", "layer"]].drop_duplicates().to_numpy().tolist())) == {
        ("pretrained", 2), ("random_init", 2), ("lowlevel", 0), ("parser", 0), ("pretrained-minus-parser", 2),
        ("pretrained-removed-tense-residual", 2), ("pretrained-removed-tense-inlp", 2),
        ("pretrained-brain", 2), ("pretrained-minus-lowlevel", 2), ("pretrained-brain-minus-lowlevel", 2)}
    assert np.isfinite(summary["mean_r"]).all()
    assert (summary["n_subjects"] == 2).all()
    scores = pd.read_parquet(tmp_path / "data" / "alice" / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == {"s18", "s22"}
    assert not scores[["r", "r2", "alpha"]].isna().any().any()
    # the summary is the mean over subjects of the scores (recomputed here with pandas)
    lptl = scores[(scores.roi == "LPTL") & (scores.condition == "pretrained")]["r"].mean()
    got = summary[summary.condition == "pretrained"].set_index("roi").loc["LPTL", "mean_r"]
    assert got == pytest.approx(lptl, abs=1e-9)
    # the language network carries signal in this subset (LPTL: r = 0.2 across all 27 subjects)
    assert lptl > 0.05
    # the env's variance partition (authors' predictors vs MiniLM layer 2) ran for both subjects
    part = pd.read_parquet(tmp_path / "data" / "alice" / "07_model_output" / "partition_scores.parquet")
    assert set(part["subject"]) == {"s18", "s22"} and set(part["roi"]) == ROIS
    wide = part.pivot_table(index=["subject", "roi"], columns="quantity", values="value")
    total = wide["unique[lowlevel]"] + wide["unique[model]"] + wide["shared[lowlevel+model]"]
    assert (total - wide["r2[lowlevel+model]"]).abs().max() < 1e-9

    # property removal on the real words: tense from the tagger, the drop per ROI with its tests
    drop = pd.read_csv(report / "removal_drop.csv")
    assert set(drop["subject"]) == {"s18", "s22", "group"} and set(drop["roi"]) == ROIS
    assert set(drop["method"]) == {"residual", "inlp"}
    sub = drop[drop["test"] == "block_swap"]
    assert sub["p"].between(0, 1).all() and len(sub) == 2 * 2 * 6
    ann = pd.read_parquet(tmp_path / "data" / "alice" / "02_intermediate" / "annotations.parquet")
    assert set(ann["tense"].dropna()) == {"past", "present"}
    assert ann["tense"].isna().mean() < 0.05

    # brain-tuning on the real data: one model per contiguous-block fold, tuned on s18 and s22 only
    hist = pd.read_csv(report / "brain_tuning_history.csv")
    assert set(hist["condition"]) == {"pretrained-brain"}
    assert set(hist["fold"]) == set(range(3)) and (hist.groupby(["condition", "fold"])["epoch"].min() == 0).all()
    info = json.loads((tmp_path / "data" / "alice" / "06_models" / "pretrained-brain" / "brainalign.json").read_text())
    assert info["subjects"] == ["s18", "s22"]
    assert "pretrained-brain" in set(scores["condition"]) and "pretrained-brain-permuted" not in set(scores["condition"])
