"""The BIDS-derivative volume reader on a tiny simulated study written to disk.

Expected values come from nibabel reads of the written images, pandas reads of the written TSVs,
and the in-memory arrays the study was written from (planted ground truth).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.core.timing.stimuli import StimulusError
from brainalign.io.readers import MissingDataError, get_reader
from brainalign.io.readers.bids_volume import BidsVolumeReader
from brainalign.pipelines.data_prep.nodes import prepare_responses, read_stimuli

STUDY_PARAMS = {"trim_start": 2, "trim_end": 2, "detrend": True}


def _func(root: Path, subject: str, story: str, suffix: str) -> Path:
    return root / subject / "func" / f"{subject}_task-{story}_{suffix}.nii.gz"


def _rewrite(path: Path, data: np.ndarray) -> None:
    img = nib.load(path)
    new = nib.Nifti1Image(np.asarray(data, dtype=img.get_data_dtype()), img.affine, img.header)
    nib.save(new, path)


def _bold(root: Path, subject: str, story: str) -> np.ndarray:
    return np.asarray(nib.load(_func(root, subject, story, "bold")).dataobj)


# --------------------------------------------------------------------------- happy path
def test_subjects_and_stories_are_listed_from_disk(tiny_study, tiny_study_config):
    reader = BidsVolumeReader(tiny_study)
    reader.check()
    assert reader.subjects() == sorted(p.name for p in tiny_study.glob("sub-*"))
    assert reader.subjects() == [f"sub-{i:02d}" for i in range(1, tiny_study_config["n_subjects"] + 1)]
    assert reader.stories() == sorted(tiny_study_config["stories"])
    assert get_reader("bids_volume") is BidsVolumeReader


def test_responses_are_the_masked_bold_data(tiny_study, tiny_simulated_study):
    reader = BidsVolumeReader(tiny_study)
    for subject in reader.subjects():
        data, targets, sources = reader.responses(subject)
        assert sorted(data) == reader.stories()
        for story, y in data.items():
            bold_path = _func(tiny_study, subject, story, "bold")
            bold = nib.load(bold_path).get_fdata()
            mask = np.asarray(nib.load(_func(tiny_study, subject, story, "desc-brain_mask")).dataobj) > 0
            expected = bold[mask].T  # (n_trs, n_vox), voxels in C order
            assert y.shape == (bold.shape[3], int(mask.sum()))
            assert y.dtype == np.float32
            np.testing.assert_array_equal(y, expected.astype(np.float32))
            # and the arrays the study was written from
            planted = tiny_simulated_study.bold[(subject, story)][tiny_simulated_study.mask > 0].T
            np.testing.assert_array_equal(y, planted)
            assert Path(sources[story]) == bold_path


def test_targets_and_roi_labels_match_the_dseg_image(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[0]
    _, targets, _ = reader.responses("sub-01")
    mask = np.asarray(nib.load(_func(tiny_study, "sub-01", story, "desc-brain_mask")).dataobj) > 0
    dseg = np.asarray(nib.load(_func(tiny_study, "sub-01", story, "desc-roi_dseg")).dataobj).astype(int)
    labels = pd.read_csv(tiny_study / "roi_labels.tsv", sep="\t")
    name_of = dict(zip(labels["index"].astype(int), labels["name"]))
    ii, jj, kk = np.nonzero(mask)
    assert len(targets) == mask.sum()
    assert targets["target"].tolist() == [f"v{i}_{j}_{k}" for i, j, k in zip(ii, jj, kk)]
    np.testing.assert_array_equal(targets["i"], ii)
    np.testing.assert_array_equal(targets["j"], jj)
    np.testing.assert_array_equal(targets["k"], kk)
    assert targets["roi"].tolist() == [name_of[v] for v in dseg[ii, jj, kk]]
    # without a network column the network is the ROI name
    assert targets["network"].tolist() == targets["roi"].tolist()
    assert set(targets["roi"]) == set(labels["name"])


def test_words_match_the_tsv(tiny_study, tiny_simulated_study):
    reader = BidsVolumeReader(tiny_study)
    words = reader.words()
    assert sorted(words) == reader.stories()
    for story, w in words.items():
        raw = pd.read_csv(tiny_study / "stimuli" / f"{story}_words.tsv", sep="\t",
                          keep_default_na=False)
        assert w["word"].tolist() == raw["word"].astype(str).tolist()
        np.testing.assert_allclose(w["onset"], raw["onset"])
        np.testing.assert_allclose(w["offset"], raw["onset"] + raw["duration"])
        planted = tiny_simulated_study.words[story]
        np.testing.assert_allclose(w["onset"], planted["onset"], atol=1e-4)
        np.testing.assert_allclose(w["offset"], planted["offset"], atol=2e-4)


def test_tr_grid_from_the_nifti_header(tiny_study, tiny_study_config):
    reader = BidsVolumeReader(tiny_study)
    grids = reader.tr_grids().set_index("story")
    for story in reader.stories():
        img = nib.load(_func(tiny_study, "sub-01", story, "bold"))
        assert grids.loc[story, "n_trs_total"] == img.shape[3]
        assert grids.loc[story, "tr"] == pytest.approx(float(img.header["pixdim"][4]))
        assert grids.loc[story, "tr"] == pytest.approx(tiny_study_config["tr"])
        assert grids.loc[story, "t0"] == 0.0


def test_clean_study_has_no_exclusions(tiny_study, caplog):
    reader = BidsVolumeReader(tiny_study)
    _, grids = read_stimuli(reader, STUDY_PARAMS)
    with caplog.at_level(logging.WARNING):
        kept, targets, excl = prepare_responses(reader, grids, STUDY_PARAMS, subject="sub-01")
    assert len(excl) == 0
    n_vox = int((np.asarray(nib.load(_func(tiny_study, "sub-01", reader.stories()[0],
                                                 "desc-brain_mask")).dataobj) > 0).sum())
    assert len(targets) == n_vox
    for story, y in kept.items():
        assert y.shape == (_bold(tiny_study, "sub-01", story).shape[3] - 4, n_vox)


# --------------------------------------------------------------------------- bad inputs
def test_mask_shape_differs_from_bold(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[1]
    mask_path = _func(tiny_study, "sub-02", story, "desc-brain_mask")
    img = nib.load(mask_path)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), img.affine), mask_path)
    with pytest.raises(ValueError, match="mask shape") as info:
        reader.responses("sub-02")
    msg = str(info.value)
    assert str(mask_path) in msg
    assert str(_func(tiny_study, "sub-02", story, "bold")) in msg
    assert "(4, 4, 4)" in msg


def test_nan_in_bold_is_excluded_with_subject_and_voxel_named(tiny_study, caplog):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[0]
    path = _func(tiny_study, "sub-02", story, "bold")
    data = _bold(tiny_study, "sub-02", story).copy()
    mask = np.asarray(nib.load(_func(tiny_study, "sub-02", story, "desc-brain_mask")).dataobj) > 0
    i, j, k = (int(a[3]) for a in np.nonzero(mask))  # the 4th in-mask voxel
    data[i, j, k, 10] = np.nan
    _rewrite(path, data)

    raw, _, _ = reader.responses("sub-02")
    assert np.isnan(raw[story]).sum() == 1  # the reader passes it on; cleaning deals with it

    _, grids = read_stimuli(reader, STUDY_PARAMS)
    with caplog.at_level(logging.WARNING):
        kept, targets, excl = prepare_responses(reader, grids, STUDY_PARAMS, subject="sub-02")
    voxel = f"v{i}_{j}_{k}"
    assert excl["target"].tolist() == [voxel]
    row = excl.iloc[0]
    assert row["subject"] == "sub-02" and row["story"] == story
    assert "non-finite" in row["reason"] and str(path) in row["reason"]
    assert voxel not in set(targets["target"])
    assert len(targets) == int(mask.sum()) - 1
    for y in kept.values():
        assert np.isfinite(y).all()
        assert y.shape[1] == int(mask.sum()) - 1
    assert any("sub-02" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_zero_variance_voxel_is_excluded(tiny_study, caplog):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[1]
    path = _func(tiny_study, "sub-01", story, "bold")
    data = _bold(tiny_study, "sub-01", story).copy()
    mask = np.asarray(nib.load(_func(tiny_study, "sub-01", story, "desc-brain_mask")).dataobj) > 0
    i, j, k = (int(a[0]) for a in np.nonzero(mask))
    data[i, j, k, :] = 123.0
    _rewrite(path, data)

    _, grids = read_stimuli(reader, STUDY_PARAMS)
    with caplog.at_level(logging.WARNING):
        kept, targets, excl = prepare_responses(reader, grids, STUDY_PARAMS, subject="sub-01")
    voxel = f"v{i}_{j}_{k}"
    assert excl[["subject", "story", "target"]].values.tolist() == [["sub-01", story, voxel]]
    assert "zero variance" in excl.iloc[0]["reason"]
    assert voxel not in set(targets["target"])
    # the voxel is dropped from every story, so all stories keep the same columns
    assert {y.shape[1] for y in kept.values()} == {int(mask.sum()) - 1}
    assert all(np.isfinite(y).all() for y in kept.values())
    assert any("sub-01" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_bold_shorter_than_the_words_names_the_story(tiny_study):
    """Every subject's BOLD of one story cut to 10 TRs: the words run past the end of the scan."""
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[0]
    for subject in reader.subjects():
        path = _func(tiny_study, subject, story, "bold")
        _rewrite(path, _bold(tiny_study, subject, story)[..., :10])
    words = pd.read_csv(tiny_study / "stimuli" / f"{story}_words.tsv", sep="\t")
    assert (words["onset"] + words["duration"]).max() > 10 * 2.0 + 2.0  # planted disagreement
    with pytest.raises(StimulusError, match=f"story '{story}'") as info:
        read_stimuli(reader, STUDY_PARAMS)
    assert "disagree on duration" in str(info.value)
    assert str(tiny_study) in str(info.value)


def test_words_past_the_end_of_the_scan_names_the_story(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[1]
    tsv = tiny_study / "stimuli" / f"{story}_words.tsv"
    words = pd.read_csv(tsv, sep="\t", keep_default_na=False)
    n_trs = _bold(tiny_study, "sub-01", story).shape[3]
    extra = pd.DataFrame({"onset": [n_trs * 2.0 + 30.0], "duration": [0.3], "word": ["late"]})
    pd.concat([words, extra], ignore_index=True).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(StimulusError, match=f"story '{story}'"):
        read_stimuli(reader, STUDY_PARAMS)


def test_subjects_disagreeing_on_run_length(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[0]
    path = _func(tiny_study, "sub-02", story, "bold")
    _rewrite(path, _bold(tiny_study, "sub-02", story)[..., :-3])
    with pytest.raises(ValueError, match=f"story {story}") as info:
        reader.tr_grids()
    assert "sub-02" in str(info.value)


def test_response_length_differs_from_grid_names_subject_and_file(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    _, grids = read_stimuli(reader, STUDY_PARAMS)  # grid from the intact files
    story = reader.stories()[1]
    path = _func(tiny_study, "sub-01", story, "bold")
    _rewrite(path, _bold(tiny_study, "sub-01", story)[..., :-1])
    with pytest.raises(ValueError, match="sub-01") as info:
        prepare_responses(reader, grids, STUDY_PARAMS, subject="sub-01")
    assert str(path) in str(info.value)
    assert story in str(info.value)


def test_missing_bold_file_is_named(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[1]
    path = _func(tiny_study, "sub-02", story, "bold")
    path.unlink()
    with pytest.raises(MissingDataError, match=re.escape(str(path))) as info:
        reader.responses("sub-02")
    assert "sub-02" in str(info.value) and story in str(info.value)
    with pytest.raises(MissingDataError, match=re.escape(str(path))):
        reader.tr_grids()
    # the other subject is still readable
    data, _, _ = reader.responses("sub-01")
    assert sorted(data) == reader.stories()


def test_missing_study_directory_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(MissingDataError, match=re.escape(str(missing))):
        BidsVolumeReader(missing).subjects()
    with pytest.raises(MissingDataError, match=re.escape(str(missing / "stimuli"))):
        BidsVolumeReader(missing).check()


def test_mask_differing_between_stories_is_named(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[1]
    mask_path = _func(tiny_study, "sub-01", story, "desc-brain_mask")
    mask = np.asarray(nib.load(mask_path).dataobj).copy()
    i, j, k = (int(a[0]) for a in np.nonzero(mask))
    mask[i, j, k] = 0
    _rewrite(mask_path, mask)
    with pytest.raises(ValueError, match=re.escape(str(mask_path))):
        reader.responses("sub-01")


def test_word_tsv_without_times_names_the_file(tiny_study):
    reader = BidsVolumeReader(tiny_study)
    story = reader.stories()[0]
    tsv = tiny_study / "stimuli" / f"{story}_words.tsv"
    pd.DataFrame({"word": ["a", "b"], "onset": [1.0, 2.0]}).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(StimulusError, match=re.escape(str(tsv))):
        reader.words()
