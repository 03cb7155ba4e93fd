"""``kedro run --env bids`` on a tiny generic BIDS study (tests/bids_fixtures.py): 2 subjects (one
stored in a session folder) x 3 stories whose words come from an events.tsv ``word`` column,
from ``trial_type`` with non-word rows mixed in, and from a stimuli CSV; one story's TR only in
the sidecar JSON. The planted signal must be found."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bids_fixtures import volume_layout, write_bids
from kedro_project import copy_project, only_conditions, run_kedro

pytestmark = pytest.mark.slow


def test_bids_env_run(tmp_path):
    plant = write_bids(tmp_path / "study")

    def small(params):
        params.update(layers=[0, 2])
        only_conditions(params, pretrained={"model": "all-MiniLM-L6-v2", "context_words": 5})
        params["encoding"] = {"alphas": {"low": 0.1, "high": 1.0e5, "n": 7},
                              "null_model": {"enabled": True, "min_shift": 15}}

    project = copy_project(tmp_path / "project", "bids", small)
    proc = run_kedro(project, "run", "--env", "bids", env_vars={"BRAINALIGN_BIDS_DIR": str(plant.root)})
    log = proc.stdout + proc.stderr
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
