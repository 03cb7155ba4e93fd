"""``kedro run --env lebel`` on a tiny ds003020 fixture (tests/lebel_fixture.py: 2 subjects,
3 stories of 160 words, 12 voxels of which 5 follow the word rate and 7 are pure noise; UTS01 has
4 repeats of the test story). Checks: the score table is complete and finite, planted voxels
score above noise voxels (a planted truth), and the noise ceiling of UTS01 comes from its repeats."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, only_conditions, run_kedro
from lebel_fixture import N_VOXELS, NOISE, PLANTED, STORIES, SUBJECTS, write_lebel_study


try:
    import cortex  # noqa: F401  (optional extra brainalign[pycortex], in the test extra)

    HAS_CORTEX = True
except ImportError:  # pragma: no cover
    HAS_CORTEX = False


@pytest.mark.slow
def test_lebel_env_run(tmp_path):
    study = tmp_path / "ds003020"
    write_lebel_study(study)

    def small(params):
        params["study"]["stories"] = list(STORIES)
        params["layers"] = [0, 2]
        only_conditions(params, pretrained={"model": "all-MiniLM-L6-v2", "context_words": 5})
        params["encoding"]["alphas"] = {"low": 0.1, "high": 1.0e5, "n": 7}
        params["encoding"]["null_model"] = {"enabled": True, "min_shift": 15}
        if HAS_CORTEX:  # flatmap of UTS01's voxels on pycortex's demo subject (columns of its thick mask)
            params["brain_maps"]["pycortex"] = {"subject": "S1", "xfm": "fullhead", "mask": "thick",
                                                "data_subject": "UTS01"}

    proj = copy_project(tmp_path / "proj", "lebel", small)
    proc = run_kedro(proj, "run", "--env", "lebel", env_vars={"BRAINALIGN_LEBEL_DIR": str(study)})
    log = proc.stdout + proc.stderr

    out = proj / "data" / "lebel"
    scores = pd.read_parquet(out / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == set(SUBJECTS) and set(scores["layer"]) == {0, 2}
    assert set(scores["dataset"]) == {"lebel"} and set(scores["roi"]) == {"cortex"}
    for _, g in scores.groupby(["subject", "layer"]):
        assert sorted(g["target"]) == sorted(f"v{k}" for k in range(N_VOXELS))
    assert not scores[["r", "r2", "alpha", "r_null"]].isna().any().any()
    # the planted word-rate voxels are predicted, the pure-noise voxels are not
    planted = scores[scores.target.isin([f"v{k}" for k in PLANTED])]["r"]
    noise = scores[scores.target.isin([f"v{k}" for k in NOISE])]["r"]
    assert planted.mean() > 0.3 and planted.mean() > noise.mean() + 0.25, (planted.mean(), noise.mean())

    summary = pd.read_csv(out / "08_reporting" / "roi_summary.csv")
    assert set(summary["roi"]) == {"cortex"} and (summary["n_subjects"] == 2).all()
    assert np.isfinite(summary[["mean_r", "mean_noise_ceiling"]]).all().all()
    assert summary.set_index("layer").loc[2, "mean_r"] == pytest.approx(
        scores[scores.layer == 2].groupby("subject")["r"].mean().mean(), abs=1e-9)

    nc = pd.read_parquet(out / "03_primary" / "noise_ceiling.parquet")
    # the env tests the repeat-averaged test story (held_out_stories): the ceiling of the mean
    assert set(nc["subject"]) == {"UTS01"} and set(nc["method"]) == {"repeats_mean"}
    assert set(scores.groupby("subject")["target"].size()) == {2 * N_VOXELS}  # one fold, 2 layers
    ceil = nc.set_index("target")["noise_ceiling"]
    assert ceil[[f"v{k}" for k in PLANTED]].min() > ceil[[f"v{k}" for k in NOISE]].max()
    assert "noise ceiling of subject UTS01 from 4 repeats" in log
    if HAS_CORTEX:
        assert (out / "08_reporting" / "brain_map_flatmap.png").stat().st_size > 10_000
        assert "pycortex flatmap of r, subject UTS01" in log
