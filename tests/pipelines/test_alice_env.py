"""``kedro run --env alice`` on the real Alice files (a subset of subjects and one layer, to
keep the suite short): every ROI gets a finite mean r, and s33 is excluded with a log line."""
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

ROOT = Path(__file__).resolve().parents[2]
ALICE = ROOT.parent / "shared" / "data" / "alice2016"
ROIS = {"LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"}


@pytest.mark.slow
@pytest.mark.skipif(not ALICE.is_dir(), reason=f"real data not found at {ALICE}")
def test_alice_env_run(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params_file = tmp_path / "conf" / "alice" / "parameters.yml"
    params = yaml.safe_load(params_file.read_text())
    params["study"]["subjects"] = ["s18", "s22", "s33"]
    params["layers"] = [2]
    params_file.write_text(yaml.safe_dump(params))
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", BRAINALIGN_ALICE_DIR=str(ALICE), COLUMNS="400",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "kedro", "run", "--env", "alice"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "subject s33 excluded" in log
    report = tmp_path / "data" / "alice" / "08_reporting"
    excl = pd.read_csv(report / "exclusions.csv")
    assert set(excl["subject"]) == {"s33"}
    assert "zero variance" in " ".join(excl["reason"].astype(str))
    summary = pd.read_csv(report / "roi_summary.csv")
    assert set(summary["roi"]) == ROIS and set(summary["layer"]) == {2}
    assert np.isfinite(summary["mean_r"]).all()
    assert (summary["n_subjects"] == 2).all()
    scores = pd.read_parquet(tmp_path / "data" / "alice" / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == {"s18", "s22"}
    assert not scores[["r", "r2", "alpha"]].isna().any().any()
    # the summary is the mean over subjects of the scores (recomputed here with pandas)
    lptl = scores[scores.roi == "LPTL"]["r"].mean()
    assert summary.set_index("roi").loc["LPTL", "mean_r"] == pytest.approx(lptl, abs=1e-9)
    # the language network carries signal in this subset (LPTL: r = 0.2 across all 27 subjects)
    assert lptl > 0.05
