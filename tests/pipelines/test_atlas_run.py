"""``kedro run --env test`` with the Fedorenko language parcels applied to the simulated NIfTI
study (placed in MNI space over the left perisylvian cortex): ROI summaries per parcel, and the
glass-brain and surface PNGs."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro

ROOT = Path(__file__).resolve().parents[2]
PARCELS = ROOT.parent / "shared" / "data" / "language_parcels"


@pytest.mark.slow
@pytest.mark.skipif(not PARCELS.is_dir(), reason=f"language parcels not found at {PARCELS}")
def test_language_parcels_on_the_simulated_mni_study(tmp_path):
    def parcels(params):
        params["study"] = {"atlases": [{"kind": "language_parcels", "path": str(PARCELS)}]}
        params["layers"] = [4]

    copy_project(tmp_path, "test", parcels)
    run_kedro(tmp_path, "run", "--env", "test")
    data = tmp_path / "data"
    targets = pd.read_parquet(data / "03_primary" / "targets" / "sub-01.parquet")
    # independent: each voxel centre in MNI mm, looked up in the 2 mm parcel image by hand
    mask_img = nib.load(next((data / "01_raw" / "synthetic" / "sub-01" / "func").glob("*desc-brain_mask.nii.gz")))
    pimg = nib.load(PARCELS / "langParcels_symmetrical.nii.gz")
    pdata = np.round(np.asarray(pimg.dataobj)).astype(int)
    xyz = mask_img.affine @ np.c_[targets[["i", "j", "k"]].to_numpy(), np.ones(len(targets))].T
    pijk = np.round(np.linalg.inv(pimg.affine) @ xyz)[:3].astype(int).T
    direct = pdata[tuple(pijk.T)]
    labelled = targets["network"].to_numpy() == "language"
    assert (labelled == (direct > 0)).mean() > 0.95
    assert targets.loc[labelled, "roi"].str.startswith("L ").all()
    summary = pd.read_csv(data / "08_reporting" / "roi_summary.csv")
    assert summary["roi"].str.contains("temporal").any()
    assert np.isfinite(summary["mean_r"]).all()
    for name in ["brain_map_glass.png", "brain_map_surface.png"]:
        assert (data / "08_reporting" / name).read_bytes()[:4] == b"\x89PNG"
    assert "<html" in (data / "08_reporting" / "brain_map.html").read_text()[:2000].lower()
    img = nib.load(data / "08_reporting" / "brain_map_r.nii.gz")
    scores = pd.read_parquet(data / "07_model_output" / "encoding_scores.parquet")
    mean_r = scores.groupby("target")["r"].mean()
    t0 = mean_r.index[0]
    i, j, k = targets.set_index("target").loc[t0, ["i", "j", "k"]]
    assert float(np.asarray(img.dataobj)[i, j, k]) == pytest.approx(mean_r.iloc[0], abs=1e-6)
