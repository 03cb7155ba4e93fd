"""``kedro run --env smn4lang`` on a tiny SMN4Lang fixture (tests/smn4lang_fixture.py: 2 subjects
x 3 Chinese stories of 28 sentences, 24 voxels of which 8 follow an HRF-convolved sentence-end
regressor and 16 are noise; word timings as published .mat files and as a TSV).

The condition model is a tiny randomly initialised BERT with a hand-made character vocabulary
(tests/tiny_bert.py) saved to a local folder: no Chinese model can be loaded offline, and this one
exercises the CJK path (characters as tokens, words joined without spaces, sentence-scoped
context, sentence pooling, box downsampling and the HRF). Checks: the score table is complete and
finite, planted voxels score above noise voxels, the sentence features are HRF-convolved sentence
events, and the brain maps are written on the data's grid."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, only_conditions, run_kedro
from smn4lang_fixture import CHARS, NOISE, PLANTED, STORIES, SUBJECTS, VOLUME, write_smn4lang_study
from tiny_bert import make_tiny_bert


def _target(flat: int) -> str:
    i, j, k = np.unravel_index(flat, VOLUME)
    return f"v{i}_{j}_{k}"


@pytest.mark.slow
def test_smn4lang_env_run(tmp_path):
    study = write_smn4lang_study(tmp_path / "ds004078")
    model_dir = make_tiny_bert(tmp_path / "tiny-chinese-bert", CHARS + "，。")

    def small(params):
        params["layers"] = [0, 2]
        only_conditions(params, pretrained={"model": str(model_dir), "context_words": 20})
        params["encoding"]["alphas"] = {"low": 0.1, "high": 1.0e5, "n": 7}
        params["encoding"]["null_model"] = {"enabled": True, "min_shift": 15}

    proj = copy_project(tmp_path / "proj", "smn4lang", small)
    run_kedro(proj, "run", "--env", "smn4lang", env_vars={"BRAINALIGN_SMN4LANG_DIR": str(study)})

    out = proj / "data" / "smn4lang"
    words = pd.read_parquet(out / "02_intermediate" / "words.parquet")
    assert set(words["story"]) == set(STORIES)
    assert words.groupby("story")["sentence_id"].nunique().eq(28).all()   # 。 ends each sentence
    assert not words["word"].isin(["，", "。"]).any()                     # punctuation attached
    grids = pd.read_parquet(out / "02_intermediate" / "tr_grids.parquet")
    assert np.allclose(grids["tr"], 0.71) and np.allclose(grids["t0"], -5.0)
    feats = np.load(out / "04_feature" / "pretrained" / "tr" / "layer_2" / "story_1.npy")
    g = grids.set_index("story").loc["story_1"]
    assert feats.shape == (g["n_trs"], 32)                                  # HRF: no delays

    scores = pd.read_parquet(out / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == set(SUBJECTS) and set(scores["layer"]) == {0, 2}
    for _, grp in scores.groupby(["subject", "layer"]):
        assert len(grp) == len(PLANTED) + len(NOISE)
    assert not scores[["r", "r2", "alpha", "r_null"]].isna().any().any()
    planted = scores[scores.target.isin([_target(v) for v in PLANTED])]["r"]
    noise = scores[scores.target.isin([_target(v) for v in NOISE])]["r"]
    assert planted.mean() > 0.3 and planted.mean() > noise.mean() + 0.25, (planted.mean(), noise.mean())

    summary = pd.read_csv(out / "08_reporting" / "roi_summary.csv")
    assert (summary["n_subjects"] == 2).all() and np.isfinite(summary["mean_r"]).all()
    assert (out / "08_reporting" / "brain_map_r.nii.gz").exists()
