"""``kedro run --env smn4lang_tuning`` offline: the Chinese encoding study end to end on the tiny
SMN4Lang fixture (tests/smn4lang_fixture.py: 2 subjects x 3 stories) with the project's own random
Chinese BERT (``tiny-chinese-bert``, 4 blocks) tuned on small subsets of the eight real CLUE task
sets by full tuning, partial tuning (a variant: the top half of the layers) and P-tuning v2.

A smoke run, not a result: every task type trains a step and becomes a condition, and the report
lists the eight tasks. Checks: the results table (one row per task x method, the trainable
fractions ordered as the methods are), the conditions scored for every subject, the tuning
comparison table and tests naming the eight tasks with their methods, and the comparison table's
encoding r equal to the mean over subjects of the score table (pandas, an independent path)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro
from smn4lang_fixture import SUBJECTS, write_smn4lang_study

from brainalign.core.tasks.readers_zh import ZH_STUDY_TASKS

METHODS = ["full", "partial-50", "prefix"]


@pytest.mark.slow
def test_smn4lang_tuning_env_offline(tmp_path, shared_data):
    nlu_zh = shared_data / "nlu_zh"
    if not nlu_zh.is_dir():
        pytest.skip(f"{nlu_zh} not found")
    study = write_smn4lang_study(tmp_path / "ds004078")

    def small(params):
        params["conditions"]["pretrained"] = {"model": "tiny-chinese-bert", "context_words": 20}
        params["layers"] = [4]
        params["encoding"]["alphas"] = {"low": 0.1, "high": 1.0e5, "n": 7}
        params["encoding"]["null_model"] = {"enabled": True, "min_shift": 15}
        params["brain_maps"] = {"enabled": False}
        tt = params["task_tuning"]
        tt.update(base_model="tiny-chinese-bert", methods=METHODS, max_examples={"train": 24, "dev": 16},
                  epochs=1, batch_size=8, max_length=128, condition={"layers": [4], "context_words": 20})
        tt["method_params"] = {"prefix": {"prefix_length": 4}}
        params["decoding"].update(layers=[4], null_model={"method": "shift", "min_shift": 15, "n_draws": 9})

    proj = copy_project(tmp_path / "proj", "smn4lang_tuning", small)
    run_kedro(proj, "run", "--env", "smn4lang_tuning", timeout=900,
              env_vars={"BRAINALIGN_SMN4LANG_DIR": str(study), "BRAINALIGN_NLU_ZH_DIR": str(nlu_zh),
                        "BRAINALIGN_MODEL_DIR": str(tmp_path / "models")})
    out = proj / "data" / "smn4lang_tuning"

    results = pd.read_csv(out / "08_reporting" / "task_tuning_results.csv")
    assert sorted(zip(results["task"], results["condition"])) == sorted(
        (t, f"tiny-chinese-bert-{m}-{t}") for t in ZH_STUDY_TASKS for m in METHODS)
    assert set(results["method"]) == {"full", "partial", "prefix"}   # the variant's method is partial
    assert np.isfinite(results["score"]).all() and (results["n_train"] > 0).all()
    for _, g in results.groupby("task"):
        f = g.set_index("method")["trainable_fraction"]
        assert f["full"] == 1.0 and f["full"] > f["partial"] > f["prefix"] > 0

    scores = pd.read_parquet(out / "07_model_output" / "encoding_scores.parquet")
    tuned = set(results["condition"])
    assert set(scores["condition"]) == tuned | {"pretrained"}
    assert scores.groupby("condition")["subject"].nunique().eq(len(SUBJECTS)).all()
    assert not scores["r"].isna().any()

    table = pd.read_csv(out / "08_reporting" / "tuning_comparison.csv")
    assert set(table.loc[table["method"] != "pretrained", "task"]) == set(ZH_STUDY_TASKS)
    assert {"full", "partial", "prefix", "pretrained"} == set(table["method"])
    row = table[(table["method"] == "prefix") & (table["task"] == "cluener")].iloc[0]
    sub = scores[(scores["condition"] == row["condition"]) & (scores["roi"] == row["roi"])
                 & (scores["layer"] == row["layer"])]
    assert row["encoding_r"] == pytest.approx(sub.groupby("subject")["r"].mean().mean(), abs=1e-9)
    tests = pd.read_csv(out / "08_reporting" / "tuning_tests.csv")
    assert {"prefix vs full", "partial vs full"} <= set(tests["contrast"].str.replace(r" \(.*\)", "", regex=True))
    decoding = pd.read_parquet(out / "07_model_output" / "decoding_scores.parquet")
    assert set(decoding["condition"]) == tuned | {"pretrained"}
