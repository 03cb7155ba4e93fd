"""Kedro datasets: NpyStoriesDataset (float32 NPY folder, mmap) and StudyDataset (reader by name)."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError

from brainalign.io import NpyStoriesDataset, StudyDataset
from brainalign.io.readers.alice import AliceReader
from brainalign.io.readers.bids_volume import BidsVolumeReader


# --------------------------------------------------------------------------- NpyStoriesDataset
def test_npy_round_trip_is_memory_mapped(tmp_path):
    rng = np.random.default_rng(3)
    data = {"lighthouse": rng.standard_normal((17, 5)), "orchard": rng.standard_normal((9, 5))}
    ds = NpyStoriesDataset(str(tmp_path / "feats"))
    assert not ds.exists()
    ds.save(data)
    assert ds.exists()
    loaded = ds.load()
    assert list(loaded) == ["lighthouse", "orchard"]
    for story, arr in data.items():
        assert isinstance(loaded[story], np.memmap)
        assert loaded[story].dtype == np.float32
        assert loaded[story].shape == arr.shape
        np.testing.assert_array_equal(loaded[story], arr.astype(np.float32))
        # the files are plain NPY: read them without the dataset
        np.testing.assert_array_equal(np.load(tmp_path / "feats" / f"{story}.npy"), arr.astype(np.float32))
    index = json.loads((tmp_path / "feats" / "_index.json").read_text())
    assert index["stories"] == ["lighthouse", "orchard"]
    assert index["shapes"] == {"lighthouse": [17, 5], "orchard": [9, 5]}
    with pytest.raises(ValueError):  # read-only memory map
        loaded["lighthouse"][0, 0] = 1.0


def test_npy_save_replaces_previous_content(tmp_path):
    ds = NpyStoriesDataset(str(tmp_path / "r"))
    ds.save({"a": np.ones((2, 2)), "b": np.zeros((3, 1))})
    ds.save({"c": np.full((4, 2), 2.5)})
    assert sorted(p.name for p in (tmp_path / "r").glob("*.npy")) == ["c.npy"]
    loaded = ds.load()
    assert list(loaded) == ["c"]
    np.testing.assert_array_equal(loaded["c"], np.full((4, 2), 2.5, np.float32))


def test_npy_without_mmap_loads_into_memory(tmp_path):
    arr = np.arange(12, dtype=np.float64).reshape(4, 3)
    NpyStoriesDataset(str(tmp_path / "x")).save({"s": arr})
    loaded = NpyStoriesDataset(str(tmp_path / "x"), mmap_mode=None).load()
    assert not isinstance(loaded["s"], np.memmap)
    np.testing.assert_array_equal(loaded["s"], arr.astype(np.float32))


def test_npy_incomplete_folder_is_an_error(tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    np.save(folder / "s.npy", np.ones((2, 2), np.float32))  # no _index.json: written incompletely
    ds = NpyStoriesDataset(str(folder))
    assert not ds.exists()
    with pytest.raises(DatasetError, match="_index.json"):
        ds.load()


def test_npy_dataset_from_catalog_config(tmp_path):
    catalog = DataCatalog.from_config(
        {"feats": {"type": "brainalign.io.NpyStoriesDataset", "path": str(tmp_path / "f")}})
    catalog.save("feats", {"s": np.eye(3)})
    out = catalog.load("feats")
    assert isinstance(out["s"], np.memmap)
    np.testing.assert_array_equal(out["s"], np.eye(3, dtype=np.float32))


# --------------------------------------------------------------------------- StudyDataset
def test_study_dataset_gives_the_named_reader(tiny_study):
    ds = StudyDataset(str(tiny_study), reader="bids_volume")
    assert ds.exists()
    reader = ds.load()
    assert isinstance(reader, BidsVolumeReader)
    assert reader.root == tiny_study
    assert reader.subjects() == sorted(p.name for p in tiny_study.glob("sub-*"))


def test_study_dataset_passes_reader_options(alice_dir):
    ds = StudyDataset(str(alice_dir), reader="alice", options={"t0": 10.0, "tr": 2.0})
    reader = ds.load()
    assert isinstance(reader, AliceReader)
    assert reader.t0 == 10.0
    assert reader.tr_grids().iloc[0]["t0"] == 10.0
    assert ds.exists()


def test_study_dataset_unknown_reader_lists_the_registered_ones(tmp_path):
    with pytest.raises(ValueError, match="not_a_layout") as info:
        StudyDataset(str(tmp_path), reader="not_a_layout")
    assert "alice" in str(info.value) and "bids_volume" in str(info.value)


def test_study_dataset_missing_root_does_not_exist(tmp_path):
    assert not StudyDataset(str(tmp_path / "none"), reader="bids_volume").exists()
    assert not StudyDataset(str(tmp_path / "none"), reader="alice").exists()


def test_study_dataset_saves_a_simulated_study(tiny_simulated_study, tmp_path):
    root = tmp_path / "raw"
    ds = StudyDataset(str(root), reader="bids_volume")
    assert not ds.exists()
    ds.save(tiny_simulated_study)
    assert ds.exists()
    for (subject, story), vol in tiny_simulated_study.bold.items():
        img = nib.load(root / subject / "func" / f"{subject}_task-{story}_bold.nii.gz")
        np.testing.assert_array_equal(np.asarray(img.dataobj), vol)
    gt = pd.read_parquet(root / "ground_truth.parquet")
    pd.testing.assert_frame_equal(gt, tiny_simulated_study.ground_truth.reset_index(drop=True))
    pd.testing.assert_frame_equal(ds.load().ground_truth(), gt)


def test_study_dataset_refuses_to_save_anything_else(tmp_path):
    with pytest.raises(DatasetError, match="simulated study"):
        StudyDataset(str(tmp_path / "raw"), reader="bids_volume").save({"not": "a study"})
    assert not (tmp_path / "raw").exists()
