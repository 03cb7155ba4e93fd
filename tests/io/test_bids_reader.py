"""The generic BIDS reader on a tiny study written in the BIDS layout (tests/bids_fixtures.py).

Expected values come from the planted fixture and from nibabel/pandas reads of the written
files; never from the reader itself.
"""
from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids_fixtures import AFFINE, SHAPE, hrf_regressor, save_nifti, volume_layout, volume_run, write_bids

from brainalign.core.timing.stimuli import StimulusError
from brainalign.io.readers import MissingDataError, get_reader
from brainalign.io.readers.bids import BidsReader
from brainalign.pipelines.data_prep.nodes import prepare_responses, read_stimuli


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    return write_bids(tmp_path_factory.mktemp("bids") / "study")


@pytest.fixture
def fresh(tmp_path):
    return write_bids(tmp_path / "study")


def test_subjects_stories_and_registry(plant):
    reader = get_reader("bids")(plant.root)
    assert isinstance(reader, BidsReader)
    reader.check()
    assert reader.subjects() == ["sub-01", "sub-02"]          # sub-02 lives in ses-1
    assert reader.stories() == sorted(plant.stories)
    with pytest.raises(MissingDataError, match="bold_dir"):
        BidsReader(plant.root, bold_dir="derivatives/fmriprep").check()
    with pytest.raises(MissingDataError, match="session '2'"):
        BidsReader(plant.root, session="2").check()
    assert BidsReader(plant.root, session="ses-1").subjects() == ["sub-02"]
    # raw BOLD is in each subject's own space: no inter-subject comparison of voxel ids
    assert reader.targets_shared_across_subjects is False


def test_template_space_files_share_targets(tmp_path):
    rng = np.random.default_rng(0)
    sig = hrf_regressor(np.arange(2.0, 20.0, 0.5), 30, 1.0)
    for sub in ("sub-01", "sub-02"):
        save_nifti(tmp_path / sub / "func" / f"{sub}_task-a_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
                   volume_run(sig, rng), 1.0)
        save_nifti(tmp_path / sub / "func" / f"{sub}_task-a_space-T1w_desc-preproc_bold.nii.gz",
                   volume_run(sig, rng), 1.0)
    with pytest.raises(ValueError, match="several BOLD files for one run.*space and/or desc"):
        BidsReader(tmp_path).subjects()
    assert BidsReader(tmp_path, space="MNI152NLin2009cAsym").targets_shared_across_subjects is True
    assert BidsReader(tmp_path, space="T1w").targets_shared_across_subjects is False


def test_words_from_events_and_tables_leave_non_words_out(plant, caplog):
    with caplog.at_level(logging.WARNING):
        words = BidsReader(plant.root).words()
    for story, st in plant.stories.items():
        truth = st["words"]
        assert words[story]["word"].tolist() == truth["token"].tolist(), story
        np.testing.assert_allclose(words[story]["onset"], truth["onset"], atol=1e-9)
        np.testing.assert_allclose(words[story]["offset"], truth["offset"], atol=2e-3)  # durations rounded
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "lighthouse: 2 non-word rows left out" in msg and "silence: 2" in msg
    assert "orchard: 3 non-word rows left out" in msg and "music: 1" in msg
    # words: stimuli requires the tables; events ignores them
    with pytest.raises(MissingDataError, match="lighthouse_words.tsv"):
        BidsReader(plant.root, words="stimuli").words()
    with pytest.raises(MissingDataError, match="no word timings for story market"):
        BidsReader(plant.root, words="events").words()


def test_word_column_option(fresh):
    for sub, ses in (("sub-01", ""), ("sub-02", "ses-1")):
        for story, col in (("lighthouse", "word"), ("orchard", "trial_type")):
            stem = f"{sub}_{ses + '_' if ses else ''}task-{story}"
            path = fresh.root / sub / ses / "func" / f"{stem}_events.tsv"
            ev = pd.read_csv(path, sep="\t").rename(columns={col: "stim_word"})
            ev.to_csv(path, sep="\t", index=False)
    # without the option: lighthouse would take trial_type ("word" on every row), which is refused
    # (a column holding one value is not the words); orchard has no word column at all. Both are
    # errors naming the file and the option
    with pytest.raises(StimulusError, match="(lighthouse_events.tsv: no 'word' column, and the fallback column "
                                            "'trial_type' holds one value \\('word'\\)|orchard_events.tsv: no "
                                            "word column).*option word_column"):
        BidsReader(fresh.root).words()
    from brainalign.core.timing.word_timings import read_event_table, words_from_events
    stem = "sub-01_task-lighthouse_events.tsv"
    with pytest.raises(StimulusError, match="holds one value \\('word'\\) in every word row"):
        words_from_events(read_event_table(fresh.root / "sub-01" / "func" / stem), source=stem)
    words = BidsReader(fresh.root, word_column="stim_word").words()
    for story in ("lighthouse", "orchard", "market"):  # the stimuli table keeps its `word` column
        assert words[story]["word"].tolist() == fresh.stories[story]["words"]["token"].tolist()


def test_tr_from_header_or_sidecar(plant):
    grids = BidsReader(plant.root).tr_grids().set_index("story")
    for story, st in plant.stories.items():
        assert grids.loc[story, "tr"] == plant.tr
        assert grids.loc[story, "n_trs_total"] == st["n_vols"]
        assert grids.loc[story, "t0"] == 0.0
    # orchard's header has no TR: the sidecar gives it (the written header really says 0)
    assert nib.load(plant.runs[("sub-01", "orchard")][0]["volume"]).header.get_zooms()[3] == 0
    assert BidsReader(plant.root, onsets={"market": 2.5}).tr_grids().set_index("story").loc["market", "t0"] == -2.5


def test_tr_header_and_sidecar_disagreeing_names_both(fresh):
    (entry,) = fresh.runs[("sub-01", "lighthouse")]
    side = entry["volume"].parent / "sub-01_task-lighthouse_bold.json"
    side.write_text(json.dumps({"RepetitionTime": 2.0}))
    with pytest.raises(ValueError, match=r"header says TR = 1 s but .*sub-01_task-lighthouse_bold.json says "
                                         r"RepetitionTime = 2 s"):
        BidsReader(fresh.root).responses("sub-01")
    side.unlink()
    (fresh.root / "sub-01" / "func" / "sub-01_task-orchard_bold.json").unlink()
    with pytest.raises(ValueError, match="no repetition time found.*option tr"):
        BidsReader(fresh.root).responses("sub-01", ["orchard"])
    assert BidsReader(fresh.root, tr=1.0).responses("sub-01", ["orchard"])[0]["orchard"].shape[1] == 80


def test_a_run_with_another_tr_names_the_file_and_both_trs(tmp_path):
    fresh3 = write_bids(tmp_path / "three", subjects=("sub-01", "sub-03", "sub-04"))
    (odd,) = fresh3.runs[("sub-03", "market")]
    img = nib.load(odd["volume"])
    hdr = img.header.copy()
    hdr["pixdim"][4] = 2.5
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, hdr), odd["volume"])
    reader = BidsReader(fresh3.root)
    assert reader.tr_grids().set_index("story").loc["market", "tr"] == 1.0
    with pytest.raises(ValueError) as err:
        reader.responses("sub-03")
    assert str(odd["volume"]) in str(err.value) and "TR 2.5 s" in str(err.value) and "TR 1 s" in str(err.value)
    reader.responses("sub-04")


def test_responses_are_the_bold_data_in_the_brain(plant):
    brain = volume_layout()[0]
    data, targets, sources = BidsReader(plant.root).responses("sub-02")
    assert targets["target"].tolist() == [f"v{i}_{j}_{k}" for i, j, k in np.argwhere(brain)]
    assert set(targets["roi"]) == {"none"}
    for story in plant.stories:
        (entry,) = plant.runs[("sub-02", story)]
        vol = np.asarray(nib.load(entry["volume"]).dataobj, dtype=np.float32)
        np.testing.assert_allclose(data[story], vol[brain].T, rtol=1e-6)
        assert sources[story] == str(entry["volume"]) and "ses-1" in sources[story]


def test_planted_signal_lines_up_with_the_words(plant):
    reader = BidsReader(plant.root)
    words, grids = reader.words(), reader.tr_grids().set_index("story")
    brain, sig, noise = volume_layout()
    data, _t, _s = reader.responses("sub-01")
    for story in plant.stories:
        g = grids.loc[story]
        x = hrf_regressor(words[story]["onset"].to_numpy() - g["t0"], int(g["n_trs_total"]), g["tr"])
        assert np.corrcoef(x, data[story][:, sig[brain]].mean(1))[0, 1] > 0.9
        assert abs(np.corrcoef(x, data[story][:, noise[brain]].mean(1))[0, 1]) < 0.4


def test_mask_option_and_a_mask_on_another_grid(fresh):
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:3, 2:5, 1:3] = 1
    (fresh.root / "masks").mkdir()
    nib.save(nib.Nifti1Image(mask, AFFINE), fresh.root / "masks" / "brain.nii.gz")
    reader = BidsReader(fresh.root, mask="masks/brain.nii.gz")
    _d, targets, _s = reader.responses("sub-01")
    assert targets[["i", "j", "k"]].to_numpy().tolist() == np.argwhere(mask).tolist()
    np.testing.assert_array_equal(np.asarray(reader.reference_image("sub-01").dataobj), mask)
    other = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.ones((10, 10, 8), np.uint8), other), fresh.root / "masks" / "coarse.nii.gz")
    with pytest.raises(ValueError) as err:
        BidsReader(fresh.root, mask="masks/coarse.nii.gz").responses("sub-01")
    msg = str(err.value)
    assert "coarse.nii.gz" in msg and "(10, 10, 8)" in msg and "(5, 5, 4)" in msg and "resample" in msg
    with pytest.raises(MissingDataError, match="option mask"):
        BidsReader(fresh.root, mask="masks/none.nii.gz").responses("sub-01")


def test_a_missing_story_names_the_file_and_the_remedy(fresh):
    fresh.runs[("sub-02", "orchard")][0]["volume"].unlink()
    reader = BidsReader(fresh.root)
    with pytest.raises(MissingDataError) as err:
        reader.responses("sub-02")
    msg = str(err.value)
    assert "sub-02_task-orchard_bold.nii.gz" in msg and "study.stories" in msg and "study.subjects" in msg
    _words, grids = read_stimuli(reader, {"stories": ["lighthouse", "market"]})
    kept, targets, excl = prepare_responses(reader, grids, {}, subject="sub-02")
    assert sorted(kept) == ["lighthouse", "market"] and len(targets) == 80 and excl.empty


def test_runs_become_stories_or_are_averaged(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "runs"
    n = 40
    sig = hrf_regressor(np.arange(2.0, 30.0, 0.7), n, 1.0)
    vols = {}
    for sub in ("sub-01", "sub-02"):
        for run in ("1", "2"):
            stem = f"{sub}_task-book_run-{run}"
            vols[(sub, run)] = volume_run(sig, rng)
            save_nifti(root / sub / "func" / f"{stem}_bold.nii.gz", vols[(sub, run)], 1.0)
            ev = pd.DataFrame({"onset": np.arange(2.0, 30.0, 0.7), "duration": 0.3, "word": "la"})
            ev.to_csv(root / sub / "func" / f"{stem}_events.tsv", sep="\t", index=False)
    sep = BidsReader(root)
    assert sep.stories() == ["book_run-1", "book_run-2"]
    assert set(sep.words()) == {"book_run-1", "book_run-2"}
    mean = BidsReader(root, runs="mean")
    assert mean.stories() == ["book"]
    data, _t, sources = mean.responses("sub-02")
    brain = volume_layout()[0]
    np.testing.assert_allclose(data["book"], (vols[("sub-02", "1")][brain].T + vols[("sub-02", "2")][brain].T) / 2,
                               rtol=1e-5)
    assert "run-1" in sources["book"] and "run-2" in sources["book"]
    # words that differ between runs of one story are an error naming both files
    ev = pd.read_csv(root / "sub-02" / "func" / "sub-02_task-book_run-2_events.tsv", sep="\t")
    ev.loc[3, "onset"] += 0.2
    ev.to_csv(root / "sub-02" / "func" / "sub-02_task-book_run-2_events.tsv", sep="\t", index=False)
    with pytest.raises(StimulusError, match=r"run-1_events.tsv and .*run-2_events.tsv differ \(word 3"):
        BidsReader(root, runs="mean").words()


def test_events_that_differ_between_subjects_are_an_error(fresh):
    path = fresh.root / "sub-02" / "ses-1" / "func" / "sub-02_ses-1_task-orchard_events.tsv"
    ev = pd.read_csv(path, sep="\t")
    ev.loc[ev["trial_type"] == "The", "trial_type"] = "A"
    ev.to_csv(path, sep="\t", index=False)
    with pytest.raises(StimulusError, match="sub-01_task-orchard_events.tsv and .*sub-02_ses-1_task-orchard_events"):
        BidsReader(fresh.root).words()
