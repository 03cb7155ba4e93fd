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


def colour_scale(x) -> tuple[float, float, "object"]:
    """A colour scale that fits the sign of the data: ``(vmin, vmax, cmap)``.

    Each side of 0 reaches the 99th percentile of the magnitudes of the values on that side (0
    when there are none), so all-positive data get ``vmin = 0`` and a sequential white-to-red map,
    all-negative data a blue-to-white one, and mixed data the part of ``RdBu_r`` between them
    with 0 still white (a truncated diverging map, not a symmetric one that wastes half its range).
    """
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib import colormaps

    data = np.asarray(getattr(x, "dataobj", x), dtype=np.float64)
    data = data[np.isfinite(data) & (data != 0)]
    pos, neg = data[data > 0], -data[data < 0]
    vmax = float(np.percentile(pos, 99)) if pos.size else 0.0
    vmin = -float(np.percentile(neg, 99)) if neg.size else 0.0
    if vmax == vmin == 0.0:
        vmax = 1.0
    m = max(vmax, -vmin)
    lo, hi = 0.5 + 0.5 * vmin / m, 0.5 + 0.5 * vmax / m
    base = colormaps["RdBu_r"]
    cmap = LinearSegmentedColormap.from_list(f"RdBu_r[{lo:.3f},{hi:.3f}]", base(np.linspace(lo, hi, 256)))
    return vmin, vmax, cmap


def _colorbar(fig, cax, vmin: float, vmax: float, cmap, label: str):
    """Our own labelled colorbar in ``cax`` (nilearn's own carries no label)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cb = fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=cax)
    cb.set_label(label)
    return cb


def glass_brain(img, title: str = "", threshold: float | None = None, label: str = "score"):
    """Glass-brain figure (matplotlib) of a 3D score image; positive and negative values, on a
    colour scale fitted to their sign (:func:`colour_scale`), with a colourbar labelled ``label``."""
    import matplotlib.pyplot as plt
    from nilearn import plotting

    fig = plt.figure(figsize=(10, 3.6))
    vmin, vmax, cmap = colour_scale(img)
    ax = fig.add_axes((0.0, 0.0, 0.86, 0.92))
    plotting.plot_glass_brain(_nan_to_zero(img), figure=fig, axes=ax, colorbar=False, plot_abs=False,
                              cmap=cmap, vmin=vmin, vmax=vmax, symmetric_cbar=False,
                              threshold=threshold if threshold is not None else 1e-6)
    _colorbar(fig, fig.add_axes((0.88, 0.1, 0.018, 0.72)), vmin, vmax, cmap, label)
    fig.suptitle(title, fontsize=11)
    return fig


def _nan_to_zero(img):
    import nibabel as nib

    data = np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32))
    return nib.Nifti1Image(data, img.affine)


def _facing(mesh, direction: float) -> np.ndarray:
    """Vertices of ``mesh`` whose normal points along +x (``direction`` 1) or -x (-1): those a
    lateral or medial view can show."""
    coords, faces = np.asarray(mesh.coordinates, float), np.asarray(mesh.faces, int)
    fn = np.cross(coords[faces[:, 1]] - coords[faces[:, 0]], coords[faces[:, 2]] - coords[faces[:, 0]])
    normals = np.zeros_like(coords)
    for k in range(3):
        np.add.at(normals, faces[:, k], fn)
    return normals[:, 0] * direction > 0


def _views_with_data(textures: dict, meshes: dict, views, vmin: float, vmax: float) -> list:
    """The (hemi, view) pairs that show at least one vertex whose value is visible on the colour
    scale (|value| >= 1 % of its largest end); lateral of the left hemisphere faces -x."""
    visible = 0.01 * max(vmax, -vmin)
    out = []
    for hemi, view in views:
        side = (-1.0 if hemi == "left" else 1.0) * (1.0 if view == "lateral" else -1.0)
        tex = np.asarray(textures[hemi])
        if np.any((np.abs(tex) >= visible) & _facing(meshes[hemi], side)):
            out.append((hemi, view))
    return out


def _no_data_figure(title: str, what: str):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7, 1.6))
    fig.text(0.5, 0.55, f"{title}\n{what}", ha="center", va="center", wrap=True)
    return fig


def _draw_views(title: str, label: str, drawn: list, skipped: list, textures: dict, inflated: dict,
                bg: dict | None, vmin: float, vmax: float, cmap, threshold: float | None):
    """One labelled 3D panel per drawn (hemi, view), a labelled colourbar, and a note naming the
    views left out because they show no data."""
    import matplotlib.pyplot as plt
    from nilearn import plotting

    n = len(drawn)
    width = 3.5 * n + 1.6
    fig = plt.figure(figsize=(max(width, 6.0), 4.0))
    width = max(width, 6.0)
    gs = fig.add_gridspec(1, n + 1, width_ratios=[1.0] * n + [0.07], left=0.02, right=1 - 1.1 / width,
                          top=0.8, bottom=0.06, wspace=0.05)
    for col, (hemi, view) in enumerate(drawn):
        ax = fig.add_subplot(gs[0, col], projection="3d")
        plotting.plot_surf_stat_map(inflated[hemi], textures[hemi], hemi=hemi, view=view, axes=ax,
                                    bg_map=None if bg is None else bg[hemi], colorbar=False, cmap=cmap,
                                    vmin=vmin, vmax=vmax, symmetric_cbar=False, threshold=threshold,
                                    figure=fig)
        ax.set_title(f"{hemi} hemisphere, {view}", fontsize=10)
    cax = fig.add_subplot(gs[0, n])
    pos = cax.get_position()
    cax.set_position((pos.x0, pos.y0 + 0.1 * pos.height, pos.width, 0.8 * pos.height))
    _colorbar(fig, cax, vmin, vmax, cmap, label)
    note = f"\n(not drawn, no data in view: {', '.join(f'{h} {v}' for h, v in skipped)})" if skipped else ""
    fig.suptitle(title + note, fontsize=10)
    return fig


_VIEWS = [("left", "lateral"), ("left", "medial"), ("right", "lateral"), ("right", "medial")]


def surface_views(img, title: str = "", radius: float = 3.0, label: str = "score"):
    """Views of fsaverage5 (bundled with nilearn) with the volume projected by
    :func:`nilearn.surface.vol_to_surf` (voxels outside the data: 0): of the lateral and medial
    views of both hemispheres only those that show data are drawn, each titled with its
    hemisphere and view; colour scale fitted to the data's sign, colourbar labelled ``label``."""
    from nilearn import datasets, surface

    fs = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data("fsaverage5", data_type="sulcal").data.parts
    vol = _nan_to_zero(img)
    vmin, vmax, cmap = colour_scale(img)
    inflated = {h: fs["inflated"].parts[h] for h in ("left", "right")}
    textures = {h: surface.vol_to_surf(vol, fs["pial"].parts[h], radius=radius, interpolation="linear")
                for h in ("left", "right")}
    drawn = _views_with_data(textures, inflated, _VIEWS, vmin, vmax)
    if not drawn:
        return _no_data_figure(title, "no data on the fsaverage5 surface (the scored voxels are not in cortex)")
    skipped = [v for v in _VIEWS if v not in drawn]
    return _draw_views(title, label, drawn, skipped, textures, inflated, sulc, vmin, vmax, cmap, 1e-6)


def surface_texture_figure(values: np.ndarray, targets: pd.DataFrame, meshes: dict, title: str = "",
                           label: str = "score"):
    """Scores of surface targets (``hemi`` L/R, ``vertex``) on the user's meshes
    (``{"L": mesh, "R": mesh}``, any nilearn surface mesh): the lateral and medial views of each
    hemisphere that show data, labelled; colour scale fitted to the data's sign."""
    from nilearn import surface

    values = np.asarray(values, dtype=float)
    vmin, vmax, cmap = colour_scale(values)
    meshes = {("left" if h == "L" else "right"): surface.load_surf_mesh(m) for h, m in meshes.items()}
    textures = {}
    for hemi, mesh in meshes.items():
        tex = np.zeros(mesh.coordinates.shape[0])
        sel = (targets["hemi"] == ("L" if hemi == "left" else "R")).to_numpy()
        tex[targets.loc[sel, "vertex"].to_numpy(int)] = values[sel]
        textures[hemi] = tex
    views = [v for v in _VIEWS if v[0] in meshes]
    drawn = _views_with_data(textures, meshes, views, vmin, vmax)
    if not drawn:
        return _no_data_figure(title, "no non-zero score on the surface")
    skipped = [v for v in views if v not in drawn]
    return _draw_views(title, label, drawn, skipped, textures, meshes, None, vmin, vmax, cmap, None)


def interactive_html(img, title: str = "") -> str:
    """A standalone HTML page (nilearn ``view_img``) to browse the score image."""
    from nilearn import plotting

    vmin, vmax, cmap = colour_scale(img)
    view = plotting.view_img(_nan_to_zero(img), threshold=1e-6, cmap=cmap, symmetric_cmap=False,
                             vmin=vmin, vmax=vmax, title=title, black_bg=False)
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
    """pycortex flatmap figure of a volume from :func:`pycortex_volume` (curvature underlay, no
    ROI labels: those need Inkscape). Colour scale fitted to the data's sign: ``Reds`` from 0
    for scores that are all >= 0, ``Blues_r`` up to 0 for all <= 0, otherwise a symmetric RdBu
    at the 99th percentile of |score| (pycortex takes colormaps by name only, so the truncated
    map of :func:`colour_scale` is not available here)."""
    cortex = _cortex()
    vmin, vmax, _ = colour_scale(volume)
    if vmin == 0.0:
        cmap = "Reds"
    elif vmax == 0.0:
        cmap = "Blues_r"
    else:
        cmap, vmax = "RdBu_r", _vmax(volume)
        vmin = -vmax
    vol = cortex.Volume(volume, subject, xfm, cmap=cmap, vmin=vmin, vmax=vmax)
    fig = cortex.quickflat.make_figure(vol, with_curvature=True, with_rois=False, with_labels=False,
                                       with_sulci=False, with_colorbar=True)
    if title:
        fig.suptitle(title)
    return fig
