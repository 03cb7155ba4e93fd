"""``kedro run --env bids`` on a tiny generic BIDS study (tests/bids_fixtures.py): 2 subjects (one
stored in a session folder) x 3 stories whose words come from an events.tsv ``word`` column,
from ``trial_type`` with non-word rows mixed in, and from a stimuli CSV; one story's TR only in
the sidecar JSON. The planted signal must be found."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from bids_fixtures import volume_layout, write_bids

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_bids_env_run(tmp_path):
    plant = write_bids(tmp_path / "study")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params_file = project / "conf" / "bids" / "parameters.yml"
    params = yaml.safe_load(params_file.read_text())
    params.update(layers=[0, 2], conditions={"pretrained": {"model": "all-MiniLM-L6-v2", "context_words": 5}})
    params["encoding"] = {"alphas": {"low": 0.1, "high": 1.0e5, "n": 7},
                          "null_model": {"enabled": True, "min_shift": 15}}
    params_file.write_text(yaml.safe_dump(params))
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", BRAINALIGN_BIDS_DIR=str(plant.root), COLUMNS="400",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db", PYTHONWARNINGS="ignore")
    env.pop("KEDRO_ENV", None)
    proc = subprocess.run([sys.executable, "-m", "kedro", "run", "--env", "bids"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "non-word rows left out" in log

    out = project / "data" / "bids"
    grids = pd.read_parquet(out / "02_intermediate" / "tr_grids.parquet").set_index("story")
    for story, st in plant.stories.items():
        assert grids.loc[story, "n_trs_total"] == st["n_vols"] and grids.loc[story, "tr"] == plant.tr
    scores = pd.read_parquet(out / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == {"sub-01", "sub-02"} and set(scores["layer"]) == {0, 2}
    assert not scores[["r", "r2", "alpha", "r_null"]].isna().any().any()
    brain, sig, _noise = volume_layout()
    signal_ids = {f"v{i}_{j}_{k}" for i, j, k in np.argwhere(sig)}
    for (_subject, _layer), cell in scores.groupby(["subject", "layer"]):
        assert len(cell) == brain.sum()
        planted = cell["target"].isin(signal_ids)
        assert cell.loc[planted, "r"].mean() > 0.3
        assert cell.loc[planted, "r"].mean() > cell.loc[~planted, "r"].mean() + 0.3
    summary = pd.read_csv(out / "08_reporting" / "roi_summary.csv")
    assert set(summary["layer"]) == {0, 2} and np.isfinite(summary["mean_r"]).all()
    assert (summary["n_subjects"] == 2).all()
