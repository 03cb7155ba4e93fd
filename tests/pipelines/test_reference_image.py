"""data_prep's reference_image (the voxel grid saved beside the responses) and the analysis
stage's brain maps drawn from it, never from the raw study."""
from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign.core.brain import brainmaps  # noqa: E402
from brainalign.io import NiftiDataset  # noqa: E402
from brainalign.pipelines.analysis.nodes import brain_maps  # noqa: E402
from brainalign.pipelines.data_prep.nodes import reference_image  # noqa: E402


class _Study:
    def __init__(self, img, name="roi_reader"):
        self._img, self.name = img, name

    def reference_image(self, subject=None):
        return self._img


def _scores(targets: pd.DataFrame, values) -> pd.DataFrame:
    return pd.DataFrame({"subject": "s1", "condition": "c", "layer": 1, "target": targets["target"], "r": values})


def test_voxel_grid_round_trips_and_draws_the_scores(tmp_path):
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    aff[:3, 3] = [-60.0, -40.0, -10.0]
    mask = np.zeros((8, 9, 7), np.float32)
    mask[2:6, 3:7, 2:5] = 1
    bold = nib.Nifti1Image(np.repeat(mask[..., None], 4, axis=3) * 100.0, aff)  # a 4D reference
    ds = NiftiDataset(str(tmp_path / "reference_image.nii.gz"))
    ds.save(reference_image(_Study(bold), {"status": "present"}))
    ref = ds.load()
    assert ref.shape == mask.shape and ref.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(ref.dataobj), mask.astype(np.uint8))
    np.testing.assert_allclose(ref.affine, aff)
    assert brainmaps.no_grid_reader(ref) is None
    ijk = np.argwhere(mask > 0)
    targets = pd.DataFrame({"target": [f"v{i}_{j}_{k}" for i, j, k in ijk], "i": ijk[:, 0], "j": ijk[:, 1],
                            "k": ijk[:, 2]})
    values = np.linspace(-0.1, 0.5, len(targets))
    *_, img = brain_maps(_scores(targets, values), ref, {"surface": False}, "demo", targets)
    vol = np.asarray(img.dataobj)
    np.testing.assert_allclose(vol[ijk[:, 0], ijk[:, 1], ijk[:, 2]], values, rtol=1e-6)
    assert np.isnan(vol[mask == 0]).all()


def test_data_without_voxels_get_a_flagged_stand_in_and_a_note(tmp_path, caplog):
    ds = NiftiDataset(str(tmp_path / "reference_image.nii.gz"))
    ds.save(reference_image(_Study(None, "alice")))
    ref = ds.load()
    assert ref.shape == (1, 1, 1) and brainmaps.no_grid_reader(ref) == "alice"
    targets = pd.DataFrame({"target": ["LATL", "RATL"], "roi": ["LATL", "RATL"]})
    with caplog.at_level(logging.WARNING):
        glass, _surface, html, img = brain_maps(_scores(targets, [0.1, 0.2]), ref, {}, "alice", targets)
    assert "no voxel grid (the alice reader gives no reference image)" in html
    assert any("no voxel grid" in r.getMessage() for r in caplog.records)
    assert img.shape == (1, 1, 1)
