"""Brain maps: values land on the right voxels; figures and the HTML page are produced."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brainalign.core.brain import brainmaps  # noqa: E402


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


def _colorbars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_colour_scale_fits_the_sign_of_the_data():
    vmin, vmax, cmap = brainmaps.colour_scale(np.array([0.0, 0.1, 0.3, 0.5, np.nan]))
    assert vmin == 0.0 and 0.45 < vmax <= 0.5
    # all >= 0: a sequential map that starts at white and ends in red
    assert min(cmap(0.0)[:3]) > 0.9 and cmap(1.0)[0] > cmap(1.0)[2] + 0.2
    vmin, vmax, cmap = brainmaps.colour_scale(np.array([-0.05, 0.2, 0.4, 0.6]))
    assert -0.06 < vmin < 0 and 0.55 < vmax <= 0.6
    zero = cmap((0 - vmin) / (vmax - vmin))[:3]          # 0 is (near) white, not the middle of the range
    assert min(zero) > 0.9
    vmin, vmax, _ = brainmaps.colour_scale(np.array([-0.3, -0.1]))
    assert vmax == 0.0 and vmin < -0.25


def test_glass_brain_colourbar_labelled_and_scale_from_zero_for_positive_scores(mni_scores):
    values, targets, ref = mni_scores
    img = brainmaps.scores_to_volume(np.abs(values), targets, ref)
    fig = brainmaps.glass_brain(img, "toyset: r, pretrained layer 4", label="r (mean over subjects)")
    (cax,) = _colorbars(fig)
    assert cax.get_ylabel() == "r (mean over subjects)"
    lo, hi = cax.get_ylim()
    assert lo == 0.0 and hi > 0.5
    assert "toyset" in fig._suptitle.get_text()
    # mixed signs: the negative side reaches the negative values only
    fig = brainmaps.glass_brain(brainmaps.scores_to_volume(values, targets, ref), "t", label="r")
    lo, hi = _colorbars(fig)[0].get_ylim()
    assert -0.25 < lo < 0 and hi > 0.5 and abs(lo) < hi


def test_surface_views_draw_only_views_with_data_and_label_them(mni_scores):
    """Data only in the left hemisphere (x < 0 in MNI): no right-hemisphere view is drawn; each
    drawn view says which it is; the colourbar is labelled."""
    values, targets, ref = mni_scores
    img = brainmaps.scores_to_volume(np.abs(values) + 0.1, targets, ref)
    fig = brainmaps.surface_views(img, "t", label="r (mean over subjects)")
    views = [ax for ax in fig.axes if ax.name == "3d"]
    titles = [ax.get_title() for ax in views]
    assert 1 <= len(views) <= 2 and all(t.startswith("left hemisphere, ") for t in titles), titles
    assert all(t.split(", ")[1] in ("lateral", "medial") for t in titles)
    assert "right lateral" in fig._suptitle.get_text() and "not drawn" in fig._suptitle.get_text()
    (cax,) = _colorbars(fig)
    assert cax.get_ylabel() == "r (mean over subjects)"


# --------------------------------------------------------------------------- pycortex (optional extra)
@pytest.fixture(scope="module")
def cortex_s1():
    """pycortex and its demo subject S1 (shipped with pycortex), transform fullhead, mask thick."""
    cortex = pytest.importorskip("cortex")
    if "S1" not in cortex.db.subjects:
        pytest.skip("pycortex's demo subject S1 is not in its filestore")
    mask = np.asarray(cortex.db.get_mask("S1", "fullhead", "thick"), dtype=bool)
    return cortex, mask


def test_pycortex_volume_matches_pycortex_unmasking(cortex_s1):
    cortex, mask = cortex_s1
    n = int(mask.sum())
    rng = np.random.default_rng(3)
    vector = rng.standard_normal(n).astype(np.float32)
    # reference: pycortex's own unmasking of a vector over the mask's voxels
    ref = np.asarray(cortex.Volume(vector, "S1", "fullhead", mask=mask).volume).reshape(mask.shape)
    # ours, from targets whose column is the voxel's position in the mask (a random half, shuffled)
    cols = rng.permutation(n)[: n // 2]
    got = brainmaps.pycortex_volume(vector[cols], "S1", "fullhead", "thick", pd.DataFrame({"column": cols}))
    assert got.shape == mask.shape
    sel = np.zeros(n, bool)
    sel[cols] = True
    np.testing.assert_array_equal(got[mask][sel], ref[mask][sel])
    assert np.isnan(got[mask][~sel]).all() and np.isnan(got[~mask]).all()
    # the same values given by voxel indices (i, j, k) on the transform's reference image (nibabel
    # order) land on the same voxels
    zyx = np.argwhere(mask)[cols]
    by_ijk = brainmaps.pycortex_volume(vector[cols], "S1", "fullhead", None,
                                       pd.DataFrame({"i": zyx[:, 2], "j": zyx[:, 1], "k": zyx[:, 0]}))
    np.testing.assert_array_equal(by_ijk, got)
    assert cortex.db.get_xfm("S1", "fullhead").reference.shape[:3] == mask.shape[::-1]


def test_pycortex_errors_name_the_problem(cortex_s1):
    t = pd.DataFrame({"column": [0, 1]})
    with pytest.raises(ValueError, match="'nobody' is not in the pycortex filestore"):
        brainmaps.pycortex_volume(np.zeros(2), "nobody", "fullhead", "thick", t)
    with pytest.raises(ValueError, match="no transform 'nope'"):
        brainmaps.pycortex_volume(np.zeros(2), "S1", "nope", "thick", t)
    with pytest.raises(ValueError, match="the data were not masked with it"):
        brainmaps.pycortex_volume(np.zeros(1), "S1", "fullhead", "thick", pd.DataFrame({"column": [10**7]}))
    with pytest.raises(ValueError, match="needs targets with voxel indices"):
        brainmaps.pycortex_volume(np.zeros(2), "S1", "fullhead", None, t)
    with pytest.raises(ValueError, match="outside the reference grid"):
        brainmaps.pycortex_volume(np.zeros(1), "S1", "fullhead", None, pd.DataFrame({"i": [500], "j": [0], "k": [0]}))


def test_flatmap_draws_a_planted_hemisphere(cortex_s1):
    """Positive scores in the left hemisphere's voxels only: the left half of the flatmap is red."""
    import matplotlib.pyplot as plt

    cortex, mask = cortex_s1
    # which voxels are left: pycortex's own vertex-to-voxel mapping of the left hemisphere surface
    left = np.zeros(mask.shape, bool)
    for hemi, side in (("lh", left),):
        pts, _ = cortex.db.get_surf("S1", "fiducial", hemi)
        xfm = cortex.db.get_xfm("S1", "fullhead")
        ijk = np.round(xfm(pts)).astype(int)  # (x, y, z) voxel coordinates
        side[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = True
    vol = np.where(mask & left, 1.0, np.where(mask, -1.0, np.nan)).astype(np.float32)
    fig = brainmaps.flatmap(vol, "S1", "fullhead", title="planted")
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    plt.close(fig)
    red = img[..., 0] - img[..., 2]  # > 0 red, < 0 blue
    h, w = red.shape
    assert red[: int(0.8 * h), : w // 2].mean() > 5 and red[: int(0.8 * h), w // 2:].mean() < -5
