"""Per-target scores drawn on the brain (nilearn): glass brain, inflated surface, interactive HTML.

Volumes: a score per voxel target (``i, j, k``) is put back on the grid of the data's reference
image (:func:`scores_to_volume`), drawn as a glass brain and projected to the fsaverage5 surface
that ships with nilearn (works offline). Surface data (``hemi, vertex`` targets) are drawn on a
mesh given by the user (fsaverage6 for Narratives is fetched by nilearn when online).
pycortex flatmaps (:func:`flatmap`) are an optional extra (``pip install 'brainalign[pycortex]'``)
for users with a pycortex subject: LeBel's subjects (``derivative/pycortex-db``), or any subject
imported with ``cortex.freesurfer.import_subj``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: header ``descrip`` prefix of the 1x1x1 stand-in reference image of data without voxels
NO_GRID = "brainalign:no-voxel-grid:"


def grid_image(reference):
    """The 3D grid of a reference image (nibabel) as a small uint8 image: its first volume,
    non-zero where the reference is, with its affine (a 4D reference keeps only its grid)."""
    import nibabel as nib

    data = np.asanyarray(reference.dataobj)
    data = data.reshape(data.shape[:3] + (-1,))[..., 0] if data.ndim > 3 else data
    return nib.Nifti1Image((np.nan_to_num(data) != 0).astype(np.uint8), reference.affine)


def no_grid_image(reader: str):
    """The stand-in reference image of data without voxels (ROI time courses, surfaces): 1x1x1
    zeros whose header ``descrip`` says so and names the ``reader`` (:func:`no_grid_reader`)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((1, 1, 1), np.uint8), np.eye(4))
    img.header["descrip"] = (NO_GRID + str(reader))[:79].encode()
    return img


def no_grid_reader(reference) -> str | None:
    """The reader named by a :func:`no_grid_image` (None for a real voxel grid or no image)."""
    if reference is None:
        return None
    header = getattr(reference, "header", None)
    try:
        descrip = header["descrip"].item() if header is not None else b""
    except (KeyError, ValueError):
        return None
    descrip = descrip.decode(errors="replace") if isinstance(descrip, bytes) else str(descrip)
    return descrip[len(NO_GRID):] if descrip.startswith(NO_GRID) else None


def scores_to_volume(values: np.ndarray, targets: pd.DataFrame, reference):
    """A 3D NIfTI image with ``values[t]`` at voxel ``(i, j, k)`` of target t (NaN elsewhere).

    Parameters
    ----------
    values : array of shape (n_targets,)
    targets : table with columns i, j, k (one row per value).
    reference : nibabel image giving the grid (shape[:3], affine).
    """
    import nibabel as nib

    if not {"i", "j", "k"} <= set(targets.columns):
        raise ValueError(f"targets have no voxel indices (i, j, k); columns: {list(targets.columns)}")
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (len(targets),):
        raise ValueError(f"{values.shape[0]} values for {len(targets)} targets")
    vol = np.full(reference.shape[:3], np.nan, dtype=np.float32)
    vol[targets["i"].to_numpy(int), targets["j"].to_numpy(int), targets["k"].to_numpy(int)] = values
    return nib.Nifti1Image(vol, reference.affine)


def _vmax(x) -> float:
    """99th percentile of the finite |values| of a nibabel image or an array (1.0 when none)."""
    data = np.asarray(getattr(x, "dataobj", x), dtype=np.float64)
    finite = np.abs(data[np.isfinite(data)])
    return float(np.percentile(finite, 99)) if finite.size else 1.0


def glass_brain(img, title: str = "", threshold: float | None = None):
    """Glass-brain figure (matplotlib) of a 3D score image; positive and negative values."""
    import matplotlib.pyplot as plt
    from nilearn import plotting

    fig = plt.figure(figsize=(10, 3.6))
    vmax = _vmax(img)
    plotting.plot_glass_brain(_nan_to_zero(img), figure=fig, title=title, colorbar=True, plot_abs=False,
                              cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                              threshold=threshold if threshold is not None else 1e-6)
    return fig


def _nan_to_zero(img):
    import nibabel as nib

    data = np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32))
    return nib.Nifti1Image(data, img.affine)


def surface_views(img, title: str = "", radius: float = 3.0):
    """Lateral and medial views of both hemispheres of fsaverage5 (bundled with nilearn) with the
    volume projected by :func:`nilearn.surface.vol_to_surf` (voxels outside the data: 0)."""
    import matplotlib.pyplot as plt
    from nilearn import datasets, plotting, surface

    fs = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data("fsaverage5", data_type="sulcal").data.parts
    vol = _nan_to_zero(img)
    vmax = _vmax(img)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), subplot_kw={"projection": "3d"})
    for col, (hemi, view) in enumerate([("left", "lateral"), ("left", "medial"),
                                        ("right", "lateral"), ("right", "medial")]):
        mesh = fs["pial"].parts[hemi]
        tex = surface.vol_to_surf(vol, mesh, radius=radius, interpolation="linear")
        plotting.plot_surf_stat_map(fs["inflated"].parts[hemi], tex, hemi=hemi, view=view, axes=axes[col],
                                    bg_map=sulc[hemi], colorbar=(col == 3), cmap="RdBu_r",
                                    vmin=-vmax, vmax=vmax, threshold=1e-6, figure=fig)
    fig.suptitle(title)
    return fig


def surface_texture_figure(values: np.ndarray, targets: pd.DataFrame, meshes: dict, title: str = ""):
    """Scores of surface targets (``hemi`` L/R, ``vertex``) on the user's meshes
    (``{"L": mesh, "R": mesh}``, any nilearn surface mesh), lateral view of each hemisphere."""
    import matplotlib.pyplot as plt
    from nilearn import plotting, surface

    values = np.asarray(values, dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), subplot_kw={"projection": "3d"})
    vmax = _vmax(values)
    for col, hemi in enumerate(("L", "R")):
        mesh = surface.load_surf_mesh(meshes[hemi])
        tex = np.zeros(mesh.coordinates.shape[0])
        sel = (targets["hemi"] == hemi).to_numpy()
        tex[targets.loc[sel, "vertex"].to_numpy(int)] = values[sel]
        plotting.plot_surf_stat_map(mesh, tex, hemi="left" if hemi == "L" else "right", axes=axes[col],
                                    cmap="RdBu_r", vmin=-vmax, vmax=vmax, colorbar=(col == 1), figure=fig)
    fig.suptitle(title)
    return fig


def interactive_html(img, title: str = "") -> str:
    """A standalone HTML page (nilearn ``view_img``) to browse the score image."""
    from nilearn import plotting

    vmax = _vmax(img)
    view = plotting.view_img(_nan_to_zero(img), threshold=1e-6, cmap="RdBu_r", symmetric_cmap=True,
                             vmax=vmax, title=title, black_bg=False)
    return view.get_standalone()


def _cortex():
    try:
        import cortex
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("pycortex flatmaps need the optional extra: pip install 'brainalign[pycortex]' "
                          "and a pycortex subject in pycortex's filestore") from exc
    return cortex


def pycortex_volume(values: np.ndarray, subject: str, xfm: str, mask: str | None = None,
                    targets: pd.DataFrame | None = None):
    """Scores as a pycortex volume of ``subject`` in the space of transform ``xfm``.

    Parameters
    ----------
    values : array of shape (n_targets,)
    subject, xfm : a pycortex subject in the filestore pycortex is configured with, and one of
        its transforms (LeBel: ``UTS01`` and ``UTS01_auto``).
    mask : None: ``targets`` give voxel indices ``i, j, k`` on the transform's reference image
        (nibabel order). A pycortex mask name (``thick``, as LeBel's files use): ``targets`` give
        ``column``, the position of each target among that mask's voxels in pycortex order
        (target ``v<k>`` of LeBel is column k).
    targets : table with i, j, k or column, one row per value.

    Returns
    -------
    float32 array of shape (z, y, x), pycortex's order, NaN where no target is.
    """
    cortex = _cortex()
    values = np.asarray(values, dtype=np.float32)
    if targets is None or values.shape != (len(targets),):
        raise ValueError(f"{values.shape} values for {0 if targets is None else len(targets)} targets")
    if subject not in cortex.db.subjects:
        raise ValueError(f"pycortex subject {subject!r} is not in the pycortex filestore "
                         f"{cortex.database.default_filestore} (subjects there: {sorted(cortex.db.subjects)}); "
                         "import it (cortex.freesurfer.import_subj) or set the filestore in pycortex's "
                         "options.cfg to the database that holds it (LeBel: derivative/pycortex-db)")
    try:
        reference = cortex.db.get_xfm(subject, xfm).reference
    except (OSError, IOError, KeyError, ValueError) as exc:
        raise ValueError(f"pycortex subject {subject!r} has no transform {xfm!r} "
                         f"({type(exc).__name__}: {exc})") from exc
    shape = tuple(reference.shape[:3])  # nibabel order (i, j, k)
    vol = np.full(shape[::-1], np.nan, dtype=np.float32)  # pycortex order (z, y, x) = (k, j, i)
    if mask is None:
        if not {"i", "j", "k"} <= set(targets.columns):
            raise ValueError("pycortex flatmap without a mask needs targets with voxel indices i, j, k on "
                             f"the reference image of transform {xfm!r}; name a mask (e.g. thick) for "
                             "targets that are the voxels of a pycortex mask")
        ijk = targets[["i", "j", "k"]].to_numpy(int)
        if (ijk < 0).any() or (ijk >= np.array(shape)).any():
            raise ValueError(f"voxel indices outside the reference grid {shape} of {subject}/{xfm}: the data "
                             "are not in this transform's space")
        vol[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = values
        return vol
    m = np.asarray(cortex.db.get_mask(subject, xfm, mask), dtype=bool)
    if "column" not in targets.columns:
        raise ValueError(f"pycortex mask {mask!r}: targets need a 'column' (the voxel's position in the mask)")
    cols = targets["column"].to_numpy(int)
    if len(cols) and (cols.min() < 0 or cols.max() >= m.sum()):
        raise ValueError(f"target columns up to {int(cols.max())} but mask {mask!r} of {subject}/{xfm} has "
                         f"{int(m.sum())} voxels: the data were not masked with it")
    flat = np.full(int(m.sum()), np.nan, dtype=np.float32)
    flat[cols] = values
    vol[m] = flat
    return vol


def flatmap(volume: np.ndarray, subject: str, xfm: str, title: str = ""):
    """pycortex flatmap figure of a volume from :func:`pycortex_volume` (curvature underlay,
    symmetric RdBu colour scale at the 99th percentile of |score|, no ROI labels: those need
    Inkscape)."""
    cortex = _cortex()
    vmax = _vmax(volume)
    vol = cortex.Volume(volume, subject, xfm, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    fig = cortex.quickflat.make_figure(vol, with_curvature=True, with_rois=False, with_labels=False,
                                       with_sulci=False, with_colorbar=True)
    if title:
        fig.suptitle(title)
    return fig
