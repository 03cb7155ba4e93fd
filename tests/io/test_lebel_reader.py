"""The LeBel et al. 2023 (ds003020) reader on fixtures written in the published layout with h5py.

Expected values come from the fixture's planted words and responses, from h5py reads of the
written files, from ``json`` on respdict.json, and from the reference code's arithmetic written
out in tests/lebel_fixture.py (never from the reader's own output).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from lebel_fixture import (N_REPEATS, N_VOXELS, NOISE, PLANTED, RATE0, STORIES, SUBJECTS,
                           textgrid_text, write_hf5, write_lebel_study, write_textgrid)

from brainalign.core.brain.preprocess import LazyStories
from brainalign.core.timing.resample import lanczos_downsample
from brainalign.io.readers import READERS, MissingDataError, get_reader
from brainalign.io.readers.lebel import LebelReader
from brainalign.pipelines.data_prep.nodes import make_folds, noise_ceiling, prepare_responses, read_stimuli

PARAMS = {"stories": "all", "trim_start": 0, "trim_end": 0, "detrend": False, "word_end_tolerance": 20.0}
#: the env's default split: train on the other stories, test on the repeat-averaged test story
HELD_OUT = {"method": "held_out_stories", "test_stories": ["wheretheressmoke"]}


@pytest.fixture(scope="module")
def planted_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("lebel_ro") / "ds003020"
    return root, write_lebel_study(root)


@pytest.fixture
def study(tmp_path):
    """A fresh copy that a test may damage."""
    root = tmp_path / "ds003020"
    return root, write_lebel_study(root)


def _deriv(root: Path) -> Path:
    return root / "derivative"


def _hf5(root, subject, story) -> Path:
    return _deriv(root) / "preprocessed_data" / subject / f"{story}.hf5"


def _h5_read(path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["data"][()]


# --------------------------------------------------------------------------- layout and grids
def test_registered_subjects_and_grid_from_respdict(planted_study):
    root, planted = planted_study
    assert READERS["lebel"] is LebelReader and get_reader("lebel") is LebelReader
    reader = LebelReader(root)
    reader.check()
    listed = sorted(e.name for e in os.scandir(_deriv(root) / "preprocessed_data") if e.is_dir())
    assert reader.subjects() == listed == SUBJECTS
    rd = json.loads((_deriv(root) / "respdict.json").read_text())
    grids = reader.tr_grids().set_index("story")
    assert sorted(grids.index) == sorted(STORIES)
    for story, n in rd.items():
        assert grids.loc[story, "n_trs_total"] == n - 20
        assert grids.loc[story, "tr"] == 2.0 and grids.loc[story, "t0"] == 11.0
    # the root may also be the derivative folder itself
    assert LebelReader(_deriv(root)).tr_grids().equals(reader.tr_grids())


def test_missing_study_is_missing_data_error(tmp_path):
    with pytest.raises(MissingDataError, match="respdict.json"):
        LebelReader(tmp_path / "nowhere").check()
    (tmp_path / "x" / "derivative").mkdir(parents=True)
    with pytest.raises(MissingDataError, match=r"respdict\.json not found .*BRAINALIGN_LEBEL_DIR"):
        LebelReader(tmp_path / "x").tr_grids()


def test_start_time_and_tr_options_move_t0(planted_study):
    root, _ = planted_study
    # feature row k of the reference grid sits at k tr - start + tr / 2; stored row j is k = j + 10
    assert LebelReader(root, tr=2.0045).t0 == pytest.approx(10 * 2.0045 - 10 + 2.0045 / 2)
    assert LebelReader(root, start_time=12.0).t0 == pytest.approx(9.0)


# --------------------------------------------------------------------------- words
def test_words_come_from_the_word_tier_only(planted_study):
    root, planted = planted_study
    words = LebelReader(root).words()
    assert isinstance(words, LazyStories) and sorted(words) == sorted(STORIES)
    for story in STORIES:
        got, want = words[story], planted["words"][story]
        # every planted word, in order, with its times; no phone label, no "sp", no "{LG}"
        assert got["word"].tolist() == want["word"].tolist(), story
        np.testing.assert_allclose(got["onset"], want["onset"], atol=1e-9)
        np.testing.assert_allclose(got["offset"], want["offset"], atol=1e-9)
    # the short-format TextGrid (the last story) was read like the long ones
    text = (_deriv(root) / "TextGrids" / "wheretheressmoke.TextGrid").read_text()
    assert "ooTextFile short" in text and len(words["wheretheressmoke"]) == len(planted["words"]["wheretheressmoke"])


def test_second_tier_is_the_word_tier_when_names_differ(study, caplog):
    root, planted = study
    w = planted["words"]["souls"]
    path = _deriv(root) / "TextGrids" / "souls.TextGrid"
    write_textgrid(path, w, float(w["offset"].iloc[-1]) + 1, tier_names=("PHONES", "transcript"))
    with caplog.at_level(logging.WARNING):
        got = LebelReader(root).words()["souls"]
    assert got["word"].tolist() == w["word"].tolist()
    assert "using the second tier 'transcript'" in caplog.text
    # an explicit tier name is used without the fallback
    got = LebelReader(root, word_tier="transcript").words()["souls"]
    assert got["word"].tolist() == w["word"].tolist()


def test_textgrid_needed_only_for_the_stories_used(study):
    root, _ = study
    missing = _deriv(root) / "TextGrids" / "avatar.TextGrid"
    missing.unlink()
    reader = LebelReader(root)
    words, grids = read_stimuli(reader, dict(PARAMS, stories=["souls", "wheretheressmoke"]))
    assert grids["story"].tolist() == ["souls", "wheretheressmoke"]
    assert set(words["story"]) == {"souls", "wheretheressmoke"}
    with pytest.raises(MissingDataError) as err:
        read_stimuli(reader, PARAMS)
    assert str(missing) in str(err.value) and "study.stories" in str(err.value)


def test_default_word_tolerance_refuses_the_audio_tail(planted_study):
    # as in the real data, the story's last words end after the last kept volume
    root, planted = planted_study
    reader = LebelReader(root)
    end = {s: 11.0 + 2.0 * (n - 20) for s, n in planted["respdict"].items()}
    assert any(planted["words"][s]["offset"].max() > end[s] + 2.0 for s in STORIES)
    with pytest.raises(ValueError, match="disagree on duration"):
        read_stimuli(reader, dict(PARAMS, word_end_tolerance=None))
    read_stimuli(reader, PARAMS)


# --------------------------------------------------------------------------- responses
def test_responses_round_trip_lazily(planted_study):
    root, _ = planted_study
    reader = LebelReader(root)
    data, targets, sources = reader.responses("UTS02", stories=["souls", "avatar"])
    assert isinstance(data, LazyStories) and list(data) == ["souls", "avatar"]
    assert targets["target"].tolist() == [f"v{k}" for k in range(N_VOXELS)]
    assert set(targets["roi"]) == {"cortex"} and set(targets["network"]) == {"cortex"}
    assert not {"i", "j", "k"} & set(targets.columns)
    for story in ["souls", "avatar"]:
        path = _hf5(root, "UTS02", story)
        assert sources[story] == str(path)
        got = data[story]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, _h5_read(path))
    # default: the subject's stories
    all_data, _, _ = reader.responses("UTS01")
    assert sorted(all_data) == sorted(STORIES)


def test_story_missing_for_one_subject(study):
    root, _ = study
    gone = _hf5(root, "UTS02", "avatar")
    gone.unlink()
    reader = LebelReader(root)
    assert "avatar" in reader.tr_grids()["story"].tolist()  # UTS01 still has it
    with pytest.raises(MissingDataError) as err:
        reader.responses("UTS02", stories=list(STORIES))
    msg = str(err.value)
    assert str(gone) in msg and "study.stories" in msg and "UTS02" in msg
    # through data_prep: the grid of all stories fails for UTS02, a restricted one works
    _, grids = read_stimuli(reader, PARAMS)
    with pytest.raises(MissingDataError, match="study.stories"):
        prepare_responses(reader, grids, PARAMS, subject="UTS02")
    _, grids = read_stimuli(reader, dict(PARAMS, stories=["souls", "wheretheressmoke"]))
    resp, targets, excl = prepare_responses(reader, grids, PARAMS, subject="UTS02")
    assert sorted(resp) == ["souls", "wheretheressmoke"] and len(targets) == N_VOXELS and excl.empty
    np.testing.assert_allclose(resp["souls"], _h5_read(_hf5(root, "UTS02", "souls")), atol=1e-6)


def test_hdf5_without_data_key(study):
    root, planted = study
    path = _hf5(root, "UTS01", "souls")
    arr = _h5_read(path)
    path.unlink()
    write_hf5(path, arr, key="resp")
    with pytest.raises(ValueError) as err:
        LebelReader(root).responses("UTS01", stories=["souls"])
    assert str(path) in str(err.value) and "'resp'" in str(err.value) and "'data'" in str(err.value)


@pytest.mark.parametrize("extra, cause", [(10, "different versions"), (20, "untrimmed")])
def test_wrong_row_count(study, extra, cause):
    root, planted = study
    n = planted["respdict"]["avatar"]
    path = _hf5(root, "UTS01", "avatar")
    write_hf5(path, np.zeros((n - 20 + extra, N_VOXELS)))
    with pytest.raises(ValueError) as err:
        LebelReader(root).responses("UTS01", stories=["avatar", "souls"])
    msg = str(err.value)
    assert str(path) in msg and f"{n - 20 + extra} rows" in msg and f"{n - 20} rows" in msg
    assert str(n) in msg and cause in msg


def test_voxel_count_must_agree_across_a_subjects_stories(study):
    root, planted = study
    path = _hf5(root, "UTS02", "wheretheressmoke")
    write_hf5(path, np.zeros((planted["respdict"]["wheretheressmoke"] - 20, N_VOXELS + 1)))
    with pytest.raises(ValueError) as err:
        LebelReader(root).responses("UTS02", stories=list(STORIES))
    msg = str(err.value)
    assert str(path) in msg and str(N_VOXELS + 1) in msg
    assert str(_hf5(root, "UTS02", "souls")) in msg and f"have {N_VOXELS}," in msg


# --------------------------------------------------------------------------- timing
def test_row_j_sits_at_2j_plus_11_seconds(planted_study):
    """Voxel RATE0 carries the word count per TR of the reference grid (made in the fixture
    with the reference arithmetic, not with t0); words Lanczos-downsampled on the reader's grid
    match it best at the documented offset, not on grids shifted by plausible mistakes."""
    root, _ = planted_study
    reader = LebelReader(root)
    grids, words = reader.tr_grids(), reader.words()
    resp, _, _ = reader.responses("UTS02")

    def corr(shift):
        x, y = [], []
        for row in grids.itertuples():
            t = row.t0 + shift + row.tr * np.arange(row.n_trs_total)
            w = words[row.story]
            mid = ((w["onset"] + w["offset"]) / 2).to_numpy()
            x.append(lanczos_downsample(np.ones(len(w)), mid, t)[:, 0])
            y.append(resp[row.story][:, RATE0])
        return np.corrcoef(np.concatenate(x), np.concatenate(y))[0, 1]

    at = corr(0.0)
    # -10: forgot the audio start; -1: no mid-TR; +9: counted 10 trimmed TRs from the audio start
    shifted = {s: corr(s) for s in (-10.0, -4.0, -2.0, -1.0, 1.0, 2.0, 4.0, 9.0)}
    assert at > 0.9, at
    assert all(at > r + 0.2 for r in shifted.values()), (at, shifted)


# --------------------------------------------------------------------------- the 84 real stories
def test_all_84_real_story_names_and_counts(shared_data, tmp_path):
    meta = shared_data / "lebel2023_meta" / "respdict.json"
    if not meta.exists():
        pytest.skip(f"{meta} not found")
    rd = json.loads(meta.read_text())
    assert len(rd) == 84
    deriv = tmp_path / "ds003020" / "derivative"
    (deriv / "TextGrids").mkdir(parents=True)
    shutil.copy(meta, deriv / "respdict.json")
    for story, n in rd.items():
        write_hf5(deriv / "preprocessed_data" / "UTS01" / f"{story}.hf5",
                  np.arange((n - 20) * 3, dtype=np.float32).reshape(n - 20, 3))
        xmax = 2.0 * n - 20
        tiers = {"phone": [(0.0, 1.0, "sp"), (1.0, 1.5, "AH"), (1.5, xmax, "sp")],
                 "word": [(0.0, 1.0, "sp"), (1.0, 1.5, "a"), (1.5, xmax, "sp")]}
        (deriv / "TextGrids" / f"{story}.TextGrid").write_text(textgrid_text(tiers, xmax))
    reader = LebelReader(tmp_path / "ds003020")
    grids = reader.tr_grids().set_index("story")
    assert sorted(grids.index) == sorted(rd)
    for story, n in rd.items():
        assert grids.loc[story, "n_trs_total"] == n - 20, story
    assert (grids["t0"] == 11.0).all() and (grids["tr"] == 2.0).all()
    assert int(grids["n_trs_total"].sum()) == sum(rd.values()) - 20 * 84
    words, full = read_stimuli(reader, {**PARAMS, "min_word_coverage": 0})  # one word per story here
    assert len(full) == 84 and len(words) == 84 and set(words["word"]) == {"a"}
    data, targets, _ = reader.responses("UTS01")
    assert len(data) == 84 and len(targets) == 3
    assert data["wheretheressmoke"].shape == (rd["wheretheressmoke"] - 20, 3)


# --------------------------------------------------------------------------- repeats and the noise ceiling
def test_repeats(study):
    root, planted = study
    reader = LebelReader(root)
    reps = reader.repeats("UTS01")
    path = _deriv(root) / "preprocessed_data" / "UTS01" / "wheretheressmoke_repeats.hf5"
    np.testing.assert_array_equal(reps, _h5_read(path))
    assert reps.shape == (N_REPEATS, planted["respdict"]["wheretheressmoke"] - 20, N_VOXELS)
    assert reader.repeats("UTS02") is None
    # the repeats file is not a story
    assert "wheretheressmoke_repeats" not in reader.tr_grids()["story"].tolist()
    write_hf5(path, reps[:, :-1])
    with pytest.raises(ValueError, match="repeats of shape"):
        reader.repeats("UTS01")


def test_noise_ceiling_node_uses_repeats_where_present(planted_study, caplog):
    root, _ = planted_study
    reader = LebelReader(root)
    _, grids = read_stimuli(reader, PARAMS)
    subject_data = []
    for s in SUBJECTS:
        resp, targets, _ = prepare_responses(reader, grids, PARAMS, subject=s)
        subject_data += [resp, targets]
    with caplog.at_level(logging.WARNING):
        nc = noise_ceiling(reader, grids, make_folds(grids, HELD_OUT, reader), PARAMS, *subject_data,
                           subjects=SUBJECTS)
    assert list(nc.columns) == ["subject", "target", "noise_ceiling", "method", "isc_loso"]
    # UTS01 has repeats; UTS02 has none, and subject-space voxels give no inter-subject ceiling;
    # the test story is scored as the mean over the repeats, so the ceiling is that of the mean
    assert set(nc["subject"]) == {"UTS01"} and set(nc["method"]) == {"repeats_mean"}
    assert "UTS02" in caplog.text and "own" in caplog.text
    got = nc.set_index("target")["noise_ceiling"]
    # independent: Schoppe et al.'s closed form on the h5py-read repeats
    reps = _h5_read(_deriv(root) / "preprocessed_data" / "UTS01" / "wheretheressmoke_repeats.hf5").astype(float)
    n = reps.shape[0]
    var_mean = reps.mean(0).var(0, ddof=1)
    expected = np.sqrt(np.clip((n * var_mean - reps.var(1, ddof=1).mean(0)) / ((n - 1) * var_mean), 0, 1))
    np.testing.assert_allclose(got[[f"v{k}" for k in range(N_VOXELS)]], expected, atol=1e-6)
    assert got[[f"v{k}" for k in PLANTED + [RATE0]]].min() > got[[f"v{k}" for k in NOISE]].max()

    # scoring single presentations (leave-stories-out with the averaged story in training only)
    # gets the ceiling of one presentation: sqrt(SP / mean_n Var(r_n)), SP the mean covariance of
    # distinct repeats (computed here pair by pair with numpy)
    lso = make_folds(grids, {"method": "leave_stories_out", "train_only_stories": ["wheretheressmoke"]}, reader)
    single = noise_ceiling(reader, grids, lso, PARAMS, *subject_data, subjects=SUBJECTS)
    assert set(single["method"]) == {"repeats_single"}
    pairs = [np.cov(reps[i, :, v], reps[j, :, v])[0, 1] for v in range(N_VOXELS)
             for i in range(n) for j in range(n) if i != j]
    sp = np.asarray(pairs).reshape(N_VOXELS, -1).mean(1)
    want = np.sqrt(np.clip(sp / reps.var(1, ddof=1).mean(0), 0, 1))
    np.testing.assert_allclose(single.set_index("target")["noise_ceiling"][[f"v{k}" for k in range(N_VOXELS)]],
                               want, atol=1e-6)
    assert (single["noise_ceiling"].to_numpy() <= nc["noise_ceiling"].to_numpy() + 1e-12).all()


def test_folds_never_mix_the_averaged_story_with_single_presentations(planted_study):
    root, _ = planted_study
    reader = LebelReader(root)
    _, grids = read_stimuli(reader, PARAMS)
    with pytest.raises(ValueError, match="wheretheressmoke.*mean over repeated presentations.*held_out_stories"):
        make_folds(grids, {"method": "leave_stories_out"}, reader)
    table = make_folds(grids, HELD_OUT, reader)
    test_rows = table[table.role == "test"]["sample"]
    off = np.r_[0, np.cumsum(grids["n_trs"])]
    k = grids["story"].tolist().index("wheretheressmoke")
    assert table["fold"].nunique() == 1 and sorted(test_rows) == list(range(off[k], off[k + 1]))
    with pytest.raises(ValueError, match="cv.test_stories.*nosuchstory"):
        make_folds(grids, {"method": "held_out_stories", "test_stories": ["nosuchstory"]}, reader)


def test_noise_ceiling_repeats_are_trimmed_and_detrended_like_the_responses(planted_study):
    from scipy import signal

    root, _ = planted_study
    reader = LebelReader(root)
    params = dict(PARAMS, trim_start=3, trim_end=2, detrend="linear")
    _, grids = read_stimuli(reader, params)
    subject_data = []
    for s in SUBJECTS:
        resp, targets, _ = prepare_responses(reader, grids, params, subject=s)
        subject_data += [resp, targets]
    folds = make_folds(grids, HELD_OUT, reader)
    nc = noise_ceiling(reader, grids, folds, params, *subject_data, subjects=SUBJECTS)
    got = nc.set_index("target")["noise_ceiling"][[f"v{k}" for k in range(N_VOXELS)]].to_numpy()
    raw = _h5_read(_deriv(root) / "preprocessed_data" / "UTS01" / "wheretheressmoke_repeats.hf5")
    reps = signal.detrend(raw[:, 3:-2].astype(float), axis=1, type="linear")
    n = reps.shape[0]
    var_mean = reps.mean(0).var(0, ddof=1)
    expected = np.sqrt(np.clip((n * var_mean - reps.var(1, ddof=1).mean(0)) / ((n - 1) * var_mean), 0, 1))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # without the detrending the ceiling differs: the step is not a no-op on this data
    untouched = noise_ceiling(reader, grids, folds, dict(params, detrend="none"), *subject_data, subjects=SUBJECTS)
    assert np.abs(untouched["noise_ceiling"].to_numpy() - got).max() > 1e-3


def test_noise_ceiling_two_shared_subjects_report_only_the_isc(planted_study, caplog):
    """A reader whose targets are shared across subjects and which has no repeats: with two
    subjects there is no inter-subject ceiling (it needs 3); the leave-one-subject-out ISC is
    reported under its own name (checked with numpy corrcoef over the tested stories)."""
    root, _ = planted_study

    class Shared(LebelReader):
        targets_shared_across_subjects = True

        def repeats(self, subject):
            return None

    reader = Shared(root)
    _, grids = read_stimuli(reader, PARAMS)
    subject_data, mats = [], []
    for s in SUBJECTS:
        resp, targets, _ = prepare_responses(reader, grids, PARAMS, subject=s)
        subject_data += [resp, targets]
        mats.append(np.concatenate([_h5_read(_hf5(root, s, st)) for st in grids["story"]]))
    folds = make_folds(grids, {"method": "leave_stories_out"}, None)  # every story tested
    with caplog.at_level(logging.WARNING):
        nc = noise_ceiling(reader, grids, folds, PARAMS, *subject_data, subjects=SUBJECTS)
    assert "needs 3" in caplog.text
    assert set(nc["method"]) == {"none"} and len(nc) == 2 * N_VOXELS and nc["noise_ceiling"].isna().all()
    row = nc[(nc.subject == "UTS01") & (nc.target == "v2")]["isc_loso"].iloc[0]
    assert row == pytest.approx(np.corrcoef(mats[0][:, 2], mats[1][:, 2])[0, 1], abs=1e-5)


def test_env_conf_names_the_reader(repo_root):
    import yaml

    glob = yaml.safe_load((repo_root / "conf" / "lebel" / "globals.yml").read_text())
    params = yaml.safe_load((repo_root / "conf" / "lebel" / "parameters.yml").read_text())
    assert glob["study_reader"] == "lebel" and "BRAINALIGN_LEBEL_DIR" in glob["study_root"]
    LebelReader("x", **glob["study_options"])  # the options are the reader's
    assert params["study"]["trim_start"] == 0 and params["study"]["trim_end"] == 0
    assert params["cv"] == {"method": "held_out_stories", "test_stories": ["wheretheressmoke"]}
    assert "wheretheressmoke" in params["study"]["stories"]
