"""Brain maps: values land on the right voxels; figures and the HTML page are produced."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brainalign.core import brainmaps  # noqa: E402


@pytest.fixture
def mni_scores():
    shape = (10, 12, 10)
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = [-70.0, -50.0, -20.0]  # left temporal / frontal MNI
    ref = nib.Nifti1Image(np.ones(shape, np.int8), aff)
    rng = np.random.default_rng(0)
    ijk = np.argwhere(rng.random(shape) < 0.5)
    targets = pd.DataFrame({"target": [f"v{i}_{j}_{k}" for i, j, k in ijk], "i": ijk[:, 0], "j": ijk[:, 1],
                            "k": ijk[:, 2]})
    values = rng.uniform(-0.2, 0.6, len(targets))
    return values, targets, ref


def test_scores_to_volume_places_values(mni_scores):
    values, targets, ref = mni_scores
    img = brainmaps.scores_to_volume(values, targets, ref)
    data = np.asarray(img.dataobj)
    np.testing.assert_allclose(img.affine, ref.affine)
    for t in range(0, len(targets), 37):
        i, j, k = targets.iloc[t][["i", "j", "k"]]
        assert data[i, j, k] == pytest.approx(values[t], abs=1e-6)
    assert np.isnan(data).sum() == data.size - len(targets)


def test_scores_to_volume_rejects_targets_without_voxels(mni_scores):
    values, targets, ref = mni_scores
    with pytest.raises(ValueError, match="voxel indices"):
        brainmaps.scores_to_volume(values, targets.drop(columns="k"), ref)
    with pytest.raises(ValueError, match="values for"):
        brainmaps.scores_to_volume(values[:-1], targets, ref)


def test_figures_and_html(mni_scores, tmp_path):
    values, targets, ref = mni_scores
    img = brainmaps.scores_to_volume(values, targets, ref)
    for name, fig in [("glass", brainmaps.glass_brain(img, "t")), ("surface", brainmaps.surface_views(img, "t"))]:
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=50)
        assert path.read_bytes()[:4] == b"\x89PNG"
    html = brainmaps.interactive_html(img, "t")
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()
