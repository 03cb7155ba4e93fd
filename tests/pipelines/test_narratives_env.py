"""``kedro run --env narratives`` (MNI volumes) on a tiny study written in the Narratives layout
(tests/bids_fixtures.py): 3 subjects x 3 stories, 5x5x4 voxels, a repeated run (averaged) and
a run listed in code/scan_exclude.json. The planted signal (HRF-convolved word rate in half of
the voxels) must be found: those voxels score far above the pure-noise ones. The same study on
fsaverage-style surfaces (30 + 26 vertices) runs too, with vertex targets."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids_fixtures import surface_layout, volume_layout, write_narratives
from kedro_project import copy_project, edit_yaml, only_conditions, run_kedro

pytestmark = pytest.mark.slow


def _small(params: dict) -> None:
    params.update(layers=[0, 2])
    only_conditions(params, pretrained={"model": "all-MiniLM-L6-v2", "context_words": 5})
    params["encoding"] = {"alphas": {"low": 0.1, "high": 1.0e5, "n": 7},
                          "null_model": {"enabled": True, "min_shift": 15}}


def _run(tmp_path: Path, spaces: tuple[str, ...], options: dict) -> tuple:
    plant = write_narratives(tmp_path / "ds002345", spaces=spaces)
    project = copy_project(tmp_path / "project", "narratives", _small)
    # tasks: every task with data and an align.json
    edit_yaml(project / "conf" / "narratives" / "globals.yml",
              lambda globs: globs["study_options"].update(tasks=None, **options))
    proc = run_kedro(project, "run", "--env", "narratives",
                     env_vars={"BRAINALIGN_NARRATIVES_DIR": str(plant.root)})
    log = proc.stdout + proc.stderr
    return plant, project, log


def test_narratives_env_run(tmp_path):
    plant, project, log = _run(tmp_path, ("volume",), {})
    assert "sub-003_task-pieman_run-2" in log and "not aligned by Gentle" in log

    out = project / "data" / "narratives"
    words = pd.read_parquet(out / "02_intermediate" / "words.parquet")
    assert sorted(words["story"].unique()) == sorted(plant.stories)
    for story, st in plant.stories.items():
        assert words[words.story == story]["word"].tolist() == st["words"]["token"].tolist()

    scores = pd.read_parquet(out / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == {"sub-001", "sub-002", "sub-003"} and set(scores["layer"]) == {0, 2}
    assert not scores[["r", "r2", "alpha", "r_null"]].isna().any().any()
    brain, sig, _noise = volume_layout()
    ids = [f"v{i}_{j}_{k}" for i, j, k in np.argwhere(brain)]
    signal_ids = {f"v{i}_{j}_{k}" for i, j, k in np.argwhere(sig)}
    for (_subject, _layer), cell in scores.groupby(["subject", "layer"]):
        assert sorted(cell["target"]) == sorted(ids)
        planted = cell["target"].isin(signal_ids)
        assert cell.loc[planted, "r"].mean() > 0.3
        assert cell.loc[planted, "r"].mean() > cell.loc[~planted, "r"].mean() + 0.3
        assert abs(cell.loc[~planted, "r"].mean()) < 0.1

    summary = pd.read_csv(out / "08_reporting" / "roi_summary.csv")
    assert set(summary["layer"]) == {0, 2} and set(summary["roi"]) == {"none"}
    assert np.isfinite(summary["mean_r"]).all() and (summary["n_subjects"] == 3).all()
    for layer, row in summary.set_index("layer").iterrows():
        per_subject = scores[scores.layer == layer].groupby("subject")["r"].mean()
        assert row["mean_r"] == pytest.approx(per_subject.mean(), abs=1e-6)
    brain_map = nib.load(out / "08_reporting" / "brain_map_r.nii.gz")
    assert brain_map.shape == brain.shape


def test_narratives_env_run_on_surfaces(tmp_path):
    plant, project, log = _run(tmp_path, ("surface",), {"space": "fsaverage6"})
    out = project / "data" / "narratives"
    scores = pd.read_parquet(out / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == {"sub-001", "sub-002", "sub-003"}
    assert not scores[["r", "r2", "alpha"]].isna().any().any()
    lay = surface_layout()
    expected = {f"{h}{v}" for h in ("L", "R") for v in np.flatnonzero(lay[h]["cortex"])}
    signal_ids = {f"{h}{v}" for h in ("L", "R") for v in np.flatnonzero(lay[h]["signal"])}
    targets = pd.read_parquet(out / "03_primary" / "targets" / "sub-001.parquet")
    assert set(targets["target"]) == expected and {"hemi", "vertex"} <= set(targets.columns)
    assert (targets["target"] == targets["hemi"] + targets["vertex"].astype(str)).all()
    for (_subject, _layer), cell in scores.groupby(["subject", "layer"]):
        assert set(cell["target"]) == expected
        planted = cell["target"].isin(signal_ids)
        assert cell.loc[planted, "r"].mean() > cell.loc[~planted, "r"].mean() + 0.3
    assert "no voxel grid" in log  # brain maps need volumes: a note, not a failure
