"""``kedro run --env narratives`` (MNI volumes) on a tiny study written in the Narratives layout
(tests/bids_fixtures.py): 3 subjects x 3 stories, 5x5x4 voxels, a repeated run (averaged) and
a run listed in code/scan_exclude.json. The planted signal (HRF-convolved word rate in half of
the voxels) must be found: those voxels score far above the pure-noise ones. The same study on
fsaverage-style surfaces (30 + 26 vertices) runs too, with vertex targets."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from bids_fixtures import surface_layout, volume_layout, write_narratives

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _project(tmp_path: Path, env: str) -> Path:
    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(ROOT / "pyproject.toml", dest)
    shutil.copytree(ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir()
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params_file = dest / "conf" / env / "parameters.yml"
    params = yaml.safe_load(params_file.read_text())
    params.update(layers=[0, 2], conditions={"pretrained": {"model": "all-MiniLM-L6-v2", "context_words": 5}})
    params["encoding"] = {"alphas": {"low": 0.1, "high": 1.0e5, "n": 7},
                          "null_model": {"enabled": True, "min_shift": 15}}
    params_file.write_text(yaml.safe_dump(params))
    return dest


def _run(tmp_path: Path, spaces: tuple[str, ...], options: dict) -> tuple:
    plant = write_narratives(tmp_path / "ds002345", spaces=spaces)
    project = _project(tmp_path, "narratives")
    glob_file = project / "conf" / "narratives" / "globals.yml"
    globs = yaml.safe_load(glob_file.read_text())
    globs["study_options"].update(tasks=None, **options)  # tasks: every task with data and an align.json
    glob_file.write_text(yaml.safe_dump(globs))
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", BRAINALIGN_NARRATIVES_DIR=str(plant.root), COLUMNS="400",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db", PYTHONWARNINGS="ignore")
    env.pop("KEDRO_ENV", None)
    proc = subprocess.run([sys.executable, "-m", "kedro", "run", "--env", "narratives"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
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
