"""The SMN4Lang (ds004078) reader on fixtures in the published layout (tests/smn4lang_fixture.py).
Expected values come from nibabel, scipy.io.loadmat and pandas run directly on the files, and from
the fixture's planted timing (audio onset 5 s in events.tsv)."""
from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat
from smn4lang_fixture import (AUDIO_ONSET, N_SENTENCES, N_VOXELS, STORIES, SUBJECTS, TR, VOLUME, bold, bold_path,
                              n_volumes, write_bold, write_smn4lang_study)

from brainalign.core.timing.stimuli import build_words_table, check_words_fit_grid, make_tr_grid
from brainalign.io.readers import READERS, MissingDataError
from brainalign.io.readers.smn4lang import Smn4langReader, attach_punctuation, is_punctuation


@pytest.fixture
def study(tmp_path):
    return write_smn4lang_study(tmp_path / "ds004078")


def test_registered():
    assert READERS["smn4lang"] is Smn4langReader


def test_layout_and_tr_grid(study):
    r = Smn4langReader(study)
    assert r.subjects() == SUBJECTS and r.stories() == STORIES
    g = r.tr_grids().set_index("story")
    for story in STORIES:
        img = nib.load(bold_path(study, "sub-01", story))
        assert g.loc[story, "n_trs_total"] == img.shape[3] == n_volumes(story)
        assert g.loc[story, "tr"] == pytest.approx(float(img.header.get_zooms()[3])) == pytest.approx(TR)
        # volume 0 sits AUDIO_ONSET s before the audio starts (events.tsv onset)
        ev = pd.read_csv(study / "sub-01" / "func" / f"sub-01_task-RDR_run-{story[6:]}_events.tsv", sep="\t")
        assert g.loc[story, "t0"] == pytest.approx(-ev.loc[ev.stim_file.str.endswith(f"{story}.wav"), "onset"].item())
    assert g["t0"].tolist() == [-AUDIO_ONSET] * 3


def test_words_from_mat_and_tsv(study):
    r = Smn4langReader(study)
    words = r.words()
    raw = loadmat(study / "derivatives" / "annotations" / "time_align" / "word-level" / "story_1_word_time.mat")
    tokens = [str(x[0]) for x in raw["word"][0]]
    starts = raw["start"][0]
    content = [k for k, t in enumerate(tokens) if t not in ("，", "。")]
    w1 = words["story_1"]
    assert len(w1) == len(content)
    np.testing.assert_allclose(w1["onset"], starts[content])
    # punctuation tokens are appended to the preceding word; the text is otherwise unchanged
    assert "".join(w1["word"]) == "".join(tokens)
    assert not w1["word"].isin(["，", "。"]).any()
    tsv = pd.read_csv(study / "annotations" / "story_3_words.tsv", sep="\t")
    assert "".join(words["story_3"]["word"]) == "".join(tsv["word"])
    table = build_words_table(dict(words.items()))
    assert (table.groupby("story")["sentence_id"].nunique() == N_SENTENCES).all()
    grids = pd.DataFrame([make_tr_grid(x.story, x.n_trs_total, x.tr, x.t0) for x in r.tr_grids().itertuples()])
    check_words_fit_grid(table, grids, "smn4lang")


def test_responses_match_nibabel(study):
    r = Smn4langReader(study)
    data, targets, sources = r.responses("sub-02")
    img = nib.load(sources["story_2"])
    ref = np.asarray(img.dataobj, dtype=np.float32).reshape(-1, img.shape[3]).T   # C order = np.nonzero order
    np.testing.assert_allclose(data["story_2"], ref)
    np.testing.assert_allclose(data["story_2"], bold("story_2", "sub-02").reshape(-1, img.shape[3]).T)
    assert len(targets) == N_VOXELS
    i, j, k = np.unravel_index(5, VOLUME)
    assert targets.loc[5, "target"] == f"v{i}_{j}_{k}" and targets.loc[5, ["i", "j", "k"]].tolist() == [i, j, k]
    ref_img = r.reference_image("sub-02")
    assert ref_img.shape == VOLUME and np.allclose(ref_img.affine, img.affine)


def test_constant_voxels_are_left_out_of_the_automatic_mask_and_a_mask_file_is_used(study):
    path = bold_path(study, "sub-01", "story_1")
    data = bold("story_1", "sub-01")
    data[0, 0, 0, :] = 0.0
    write_bold(path, data)
    _, targets, _ = Smn4langReader(study).responses("sub-01")
    assert "v0_0_0" not in set(targets["target"]) and len(targets) == N_VOXELS - 1
    mask = np.zeros(VOLUME, np.uint8)
    mask[1, 2, 1] = mask[3, 0, 0] = 1
    nib.save(nib.Nifti1Image(mask, nib.load(path).affine), study / "mask.nii.gz")
    got, targets, _ = Smn4langReader(study, mask="mask.nii.gz").responses("sub-01", ["story_1"])
    assert targets["target"].tolist() == ["v1_2_1", "v3_0_0"]
    np.testing.assert_allclose(got["story_1"], np.stack([data[1, 2, 1], data[3, 0, 0]], axis=1))


def test_run_with_a_different_tr_names_the_file(study):
    odd = bold_path(study, "sub-02", "story_2")
    write_bold(odd, bold("story_2", "sub-02"), tr=2.0)
    with pytest.raises(ValueError, match="TR 2 s but the study's TR is 0.71") as info:
        Smn4langReader(study).tr_grids()
    assert str(odd) in str(info.value)
    assert len(Smn4langReader(study, check_tr=False).tr_grids()) == 3


def test_sidecar_tr_is_used_when_the_header_has_none(study):
    path = bold_path(study, "sub-01", "story_3")
    img = nib.load(path)
    img.header.set_zooms((3.0, 3.0, 3.0, 0.0))
    nib.save(img, path)
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps({"RepetitionTime": 1.5}))
    with pytest.raises(ValueError, match="TR 1.5 s"):
        Smn4langReader(study).tr_grids()


def test_story_missing_for_one_subject(study):
    missing = bold_path(study, "sub-02", "story_3")
    missing.unlink()
    r = Smn4langReader(study)
    assert r.stories() == STORIES                        # sub-01 still has it
    with pytest.raises(MissingDataError) as info:
        r.responses("sub-02")
    assert str(missing) in str(info.value) and "study.stories" in str(info.value)
    data, _, _ = r.responses("sub-02", ["story_1", "story_2"])
    assert set(data) == {"story_1", "story_2"}


def test_runs_disagreeing_on_volumes_name_the_file(study):
    odd = bold_path(study, "sub-02", "story_1")
    write_bold(odd, bold("story_1", "sub-02")[..., :-3])
    with pytest.raises(ValueError, match="disagree on the number of volumes") as info:
        Smn4langReader(study, t0=0.0).tr_grids()
    assert str(odd) in str(info.value)


def test_t0_options_and_missing_events(study, caplog):
    assert Smn4langReader(study, t0=-2.5).tr_grids()["t0"].tolist() == [-2.5] * 3
    t0 = {"story_1": -1.0, "story_2": -2.0, "story_3": -3.0}
    assert Smn4langReader(study, t0=t0).tr_grids()["t0"].tolist() == [-1.0, -2.0, -3.0]
    for sub in SUBJECTS:
        (study / sub / "func" / f"{sub}_task-RDR_run-2_events.tsv").unlink()
    with caplog.at_level(logging.WARNING):
        g = Smn4langReader(study).tr_grids().set_index("story")
    assert g.loc["story_2", "t0"] == 0.0 and g.loc["story_1", "t0"] == -AUDIO_ONSET
    assert "no events.tsv for story_2" in caplog.text


def test_missing_word_timings_leave_the_story_out_with_a_warning(study, caplog):
    (study / "annotations" / "story_3_words.tsv").unlink()
    with caplog.at_level(logging.WARNING):
        assert Smn4langReader(study).stories() == ["story_1", "story_2"]
    assert "story_3" in caplog.text and "no word timings" in caplog.text


def test_bad_word_table_is_a_clear_error(study):
    pd.DataFrame({"token": ["我"], "begin": [0.1]}).to_csv(study / "annotations" / "story_3_words.tsv",
                                                          sep="\t", index=False)
    with pytest.raises(ValueError, match="story_3_words.tsv: a word table needs columns"):
        Smn4langReader(study).words()["story_3"]


def test_raw_layout(tmp_path):
    root = tmp_path / "ds"
    write_smn4lang_study(root, subjects=["sub-01"], stories=["story_1"])
    src = bold_path(root, "sub-01", "story_1")
    dst = root / "sub-01" / "func" / src.name
    src.rename(dst)
    r = Smn4langReader(root, data="raw")
    assert r.subjects() == ["sub-01"] and r.stories() == ["story_1"]
    data, _, sources = r.responses("sub-01")
    assert sources["story_1"] == str(dst) and data["story_1"].shape == (n_volumes("story_1"), N_VOXELS)


def test_punctuation_helpers():
    assert is_punctuation("，") and is_punctuation("。」") and is_punctuation("...")
    assert not is_punctuation("我") and not is_punctuation("") and not is_punctuation("a.")
    df = pd.DataFrame({"word": ["“", "我们", "去", "，", "北京", "。", "」"], "onset": np.arange(7.0),
                       "offset": np.arange(7.0) + 0.5})
    out = attach_punctuation(df)
    assert out["word"].tolist() == ["“我们", "去，", "北京。」"]
    assert out["onset"].tolist() == [1.0, 2.0, 4.0]
