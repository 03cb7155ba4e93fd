"""The Narratives reader on a tiny study written in the published layout (tests/bids_fixtures.py).

Expected values come from the planted fixture (word times, story onsets, TR, which voxels carry
the signal) and from nibabel reads of the written files; never from the reader itself.
"""
from __future__ import annotations

import json
import logging
import math
import re
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids_fixtures import (MEDIAL, N_VERTICES, NARRATIVES_UNALIGNED, SHAPE, hrf_regressor, surface_layout,
                           volume_layout, write_narratives)

from brainalign.io.readers import MissingDataError, get_reader
from brainalign.io.readers.narratives import NarrativesReader
from brainalign.pipelines.data_prep.nodes import prepare_responses, read_stimuli

TAIL = 8.0  # the reader's default crop_tail


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    return write_narratives(tmp_path_factory.mktemp("narratives") / "ds002345")


@pytest.fixture
def fresh(tmp_path):
    """A study the test may modify (volumes only, no repeated runs)."""
    return write_narratives(tmp_path / "ds002345", spaces=("volume",), extra_runs=False)


def _crop(st, tr, tail=TAIL):
    k0 = math.floor(st["onset"] / tr + 1e-9)
    k1 = min(st["n_vols"], math.ceil((st["onset"] + st["duration"] + tail) / tr - 1e-9))
    return k0, k1


def _vol(entry):
    return np.asarray(nib.load(entry["volume"]).dataobj, dtype=np.float32)


# --------------------------------------------------------------------------- layout
def test_subjects_stories_and_registry(plant):
    reader = get_reader("narratives")(plant.root)
    assert isinstance(reader, NarrativesReader)
    reader.check()
    assert reader.subjects() == ["sub-001", "sub-002", "sub-003"]
    assert reader.stories() == sorted(plant.stories)
    assert get_reader("narratives")(plant.root, tasks=["tunnel"]).stories() == ["tunnel"]
    assert reader.targets_shared_across_subjects  # MNI voxels / fsaverage vertices
    assert not NarrativesReader(plant.root, space="fsnative").targets_shared_across_subjects
    with pytest.raises(MissingDataError, match="study directory"):
        NarrativesReader(plant.root / "nope").subjects()
    with pytest.raises(MissingDataError, match="afni-smooth"):
        NarrativesReader(plant.root, derivative="afni-smooth").check()


def test_words_are_the_gentle_tokens_with_interpolated_gaps(plant, caplog):
    with caplog.at_level(logging.WARNING):
        words = NarrativesReader(plant.root).words()
    for story, st in plant.stories.items():
        w, truth = words[story], st["words"]
        assert w["word"].tolist() == truth["token"].tolist()  # transcript tokens, punctuation kept
        aligned = ~np.isin(np.arange(len(truth)), NARRATIVES_UNALIGNED[story])
        np.testing.assert_allclose(w["onset"][aligned], truth["onset"][aligned])
        np.testing.assert_allclose(w["offset"][aligned], truth["offset"][aligned])
    # pieman: word 5 alone between 4 and 6; words 40-41 share the gap between 39 and 42
    w, t = words["pieman"], plant.stories["pieman"]["words"]
    assert (w.loc[5, "onset"], w.loc[5, "offset"]) == pytest.approx((t.loc[4, "offset"], t.loc[6, "onset"]))
    gap = (t.loc[42, "onset"] - t.loc[39, "offset"]) / 2
    np.testing.assert_allclose(w.loc[40:41, "onset"], [t.loc[39, "offset"], t.loc[39, "offset"] + gap])
    np.testing.assert_allclose(w.loc[40:41, "offset"], [t.loc[39, "offset"] + gap, t.loc[42, "onset"]])
    # tunnel: the first word is unaligned; it ends where word 1 starts, one median duration long
    w, t = words["tunnel"], plant.stories["tunnel"]["words"]
    med = float(np.median((t["offset"] - t["onset"])[1:]))
    assert (w.loc[0, "onset"], w.loc[0, "offset"]) == pytest.approx((t.loc[1, "onset"] - med, t.loc[1, "onset"]))
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "3 of 110 words not aligned" in msg and "pieman" in msg and "interpolated" in msg
    assert "1 of 110 words not aligned" in msg

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dropped = NarrativesReader(plant.root, unaligned="drop").words()["pieman"]
    tokens = plant.stories["pieman"]["words"]["token"]
    assert dropped["word"].tolist() == [x for k, x in enumerate(tokens) if k not in (5, 40, 41)]
    assert "left out" in " ".join(r.getMessage() for r in caplog.records)


def test_tr_grid_crops_each_story_to_its_onset(plant):
    grids = NarrativesReader(plant.root).tr_grids().set_index("story")
    for story, st in plant.stories.items():
        k0, k1 = _crop(st, plant.tr)
        assert grids.loc[story, "tr"] == plant.tr
        assert grids.loc[story, "n_trs_total"] == k1 - k0
        # volume k0 sits at k0 * tr on the scan clock = k0 * tr - onset on the audio (word) clock
        assert grids.loc[story, "t0"] == pytest.approx(k0 * plant.tr - st["onset"])
    assert grids.loc["pieman", "t0"] == pytest.approx(-0.5)  # onset 10.5 s, TR 1 s; events.tsv wins
    # lucy has no events.tsv: onset from code/event_meta.json (6 TRs)
    assert grids.loc["lucy", "t0"] == pytest.approx(0.0)
    no_crop = NarrativesReader(plant.root, crop=False).tr_grids().set_index("story")
    for story, st in plant.stories.items():
        assert no_crop.loc[story, "n_trs_total"] == st["n_vols"]
        assert no_crop.loc[story, "t0"] == pytest.approx(-st["onset"])
    over = NarrativesReader(plant.root, onsets={"pieman": 12.25}).tr_grids().set_index("story")
    assert over.loc["pieman", "t0"] == pytest.approx(12 - 12.25)


def test_volume_responses_are_the_cropped_bold_in_the_brain(plant, caplog):
    reader = NarrativesReader(plant.root)
    brain, _sig, _noise = volume_layout()
    with caplog.at_level(logging.INFO):
        data, targets, sources = reader.responses("sub-002")
    ijk = np.argwhere(brain)
    assert targets["target"].tolist() == [f"v{i}_{j}_{k}" for i, j, k in ijk]
    assert targets[["i", "j", "k"]].to_numpy().tolist() == ijk.tolist()
    assert set(targets["roi"]) == {"none"} and set(targets["network"]) == {"none"}
    for story, st in plant.stories.items():
        k0, k1 = _crop(st, plant.tr)
        runs = plant.runs[("sub-002", story)]
        expected = np.mean([_vol(e)[brain].T[k0:k1] for e in runs], axis=0)
        assert data[story].dtype == np.float32 and data[story].shape == (k1 - k0, brain.sum())
        np.testing.assert_allclose(data[story], expected, rtol=1e-6)
        assert sources[story] == " + ".join(str(e["volume"]) for e in runs)
    assert len(plant.runs[("sub-002", "tunnel")]) == 2  # averaged, and said so
    assert "mean of 2 runs" in " ".join(r.getMessage() for r in caplog.records)


def test_scan_exclude_leaves_runs_out(plant, caplog):
    with caplog.at_level(logging.WARNING):
        data, _t, sources = NarrativesReader(plant.root).responses("sub-003", ["pieman"])
    run1, run2 = plant.runs[("sub-003", "pieman")]
    assert run2["excluded"] and not run1["excluded"]
    brain = volume_layout()[0]
    k0, k1 = _crop(plant.stories["pieman"], plant.tr)
    np.testing.assert_allclose(data["pieman"], _vol(run1)[brain].T[k0:k1], rtol=1e-6)
    assert "sub-003_task-pieman_run-2" in " ".join(r.getMessage() for r in caplog.records)
    both, _t, _s = NarrativesReader(plant.root, scan_exclude=False).responses("sub-003", ["pieman"])
    np.testing.assert_allclose(both["pieman"], (_vol(run1)[brain].T[k0:k1] + _vol(run2)[brain].T[k0:k1]) / 2,
                               rtol=1e-5)
    first, _t, _s = NarrativesReader(plant.root, scan_exclude=False, runs="first").responses("sub-003", ["pieman"])
    np.testing.assert_allclose(first["pieman"], data["pieman"])
    # option exclude: prefixes of file names
    with pytest.raises(MissingDataError, match="every run of subject sub-001, story lucy is excluded"):
        NarrativesReader(plant.root, exclude=["sub-001_task-lucy"]).responses("sub-001")


def test_planted_signal_lines_up_with_the_words_on_the_grid(plant):
    """Signal voxels follow the HRF-convolved word rate computed from the reader's own words and
    grid; the same words 8 s off (a wrong clock) fit much worse."""
    reader = NarrativesReader(plant.root)
    words, grids = reader.words(), reader.tr_grids().set_index("story")
    _brain, sig, noise = volume_layout()
    brain = volume_layout()[0]
    data, _t, _s = reader.responses("sub-001")
    for story in plant.stories:
        g = grids.loc[story]
        y = data[story]
        is_sig, is_noise = sig[brain], noise[brain]
        x = hrf_regressor(words[story]["onset"].to_numpy() - g["t0"], int(g["n_trs_total"]), g["tr"])
        wrong = hrf_regressor(words[story]["onset"].to_numpy() - g["t0"] + 8.0, int(g["n_trs_total"]), g["tr"])
        r_sig = np.corrcoef(x, y[:, is_sig].mean(1))[0, 1]
        assert r_sig > 0.9, story
        assert abs(np.corrcoef(x, y[:, is_noise].mean(1))[0, 1]) < 0.4
        assert np.corrcoef(wrong, y[:, is_sig].mean(1))[0, 1] < r_sig - 0.3


# --------------------------------------------------------------------------- surfaces
def test_surface_space_gives_vertex_targets(plant):
    reader = NarrativesReader(plant.root, space="fsaverage6")
    assert reader.reference_image() is None
    data, targets, sources = reader.responses("sub-001")
    lay = surface_layout()
    expected = [f"{h}{v}" for h in ("L", "R") for v in np.flatnonzero(lay[h]["cortex"])]
    assert targets["target"].tolist() == expected  # medial-wall (NaN) vertices left out
    assert targets["hemi"].tolist() == [t[0] for t in expected]
    assert targets["vertex"].tolist() == [int(t[1:]) for t in expected]
    assert not set(targets["vertex"][targets["hemi"] == "L"]) & set(MEDIAL["L"])
    assert len(targets) == N_VERTICES["L"] + N_VERTICES["R"] - len(MEDIAL["L"]) - len(MEDIAL["R"])
    for story, st in plant.stories.items():
        k0, k1 = _crop(st, plant.tr)
        (entry,) = plant.runs[("sub-001", story)]
        parts = []
        for h in ("L", "R"):
            g = nib.load(entry[f"surface_{h}"])
            arr = np.stack([d.data for d in g.darrays])  # (n_trs, n_vertices)
            assert arr.shape[1] == N_VERTICES[h]
            parts.append(arr[:, lay[h]["cortex"]])
        np.testing.assert_allclose(data[story], np.concatenate(parts, 1)[k0:k1], rtol=1e-6)
        assert "hemi-L" in sources[story] and "hemi-R" in sources[story]


def test_surface_cortex_mask_files_are_used(tmp_path):
    from bids_fixtures import save_gifti

    plant = write_narratives(tmp_path / "ds", spaces=("surface",), extra_runs=False)
    tpl = plant.root / "derivatives" / "afni-nosmooth" / "tpl-fsaverage6"
    keep = {"L": [3, 4, 10, 29], "R": [0, 7]}
    for h, n in N_VERTICES.items():
        m = np.zeros((1, n), np.float32)
        m[0, keep[h]] = 1
        save_gifti(tpl / f"tpl-fsaverage6_hemi-{h}_desc-cortex_mask.gii", m)
    data, targets, _s = NarrativesReader(plant.root, space="fsaverage6").responses("sub-001", ["tunnel"])
    assert targets["target"].tolist() == ["L3", "L4", "L10", "L29", "R0", "R7"]
    (entry,) = plant.runs[("sub-001", "tunnel")]
    k0, k1 = _crop(plant.stories["tunnel"], plant.tr)
    left = np.stack([d.data for d in nib.load(entry["surface_L"]).darrays])[:, keep["L"]]
    np.testing.assert_allclose(data["tunnel"][:, :4], left[k0:k1], rtol=1e-6)


def test_surface_study_through_the_data_prep_nodes(plant):
    reader = NarrativesReader(plant.root, space="fsaverage6")
    params = {"trim_start": 1, "trim_end": 1, "detrend": True}
    words, grids = read_stimuli(reader, params)
    assert sorted(words["story"].unique()) == sorted(plant.stories)
    kept, targets, excl = prepare_responses(reader, grids, params, subject="sub-002")
    assert {"hemi", "vertex"} <= set(targets.columns) and len(excl) == 0
    for story in grids["story"]:
        n = int(grids.set_index("story").loc[story, "n_trs"])
        assert np.asarray(kept[story]).shape == (n, len(targets))
        assert np.isfinite(np.asarray(kept[story])).all()


def test_gifti_helpers_agree_with_nibabel(plant, tmp_path):
    from brainalign.io.readers._bids import load_gifti, n_volumes_gifti, split_name

    (entry,) = plant.runs[("sub-001", "lucy")]
    path = entry["surface_L"]
    n = len(nib.load(path).darrays)
    assert n == plant.stories["lucy"]["n_vols"]
    for chunk in (7, 10, 64, 1 << 22):  # chunk borders inside the "<DataArray" tags
        assert n_volumes_gifti(path, chunk_size=chunk) == n
    # one 2D array (n_vertices, n_trs) reads the same as one array per TR
    data = np.stack([d.data for d in nib.load(path).darrays])
    two_d = tmp_path / "two_d.func.gii"
    nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.ascontiguousarray(data.T))]), two_d)
    assert n_volumes_gifti(two_d) == n
    np.testing.assert_array_equal(load_gifti(two_d), load_gifti(path))
    assert split_name(path.name) == ({"sub": "001", "task": "lucy", "space": "fsaverage6", "hemi": "L",
                                      "desc": "clean"}, "", ".func.gii")
    assert split_name("sub-1_task-a_run-2_bold.nii.gz") == ({"sub": "1", "task": "a", "run": "2"}, "bold",
                                                             ".nii.gz")


def test_a_missing_hemisphere_is_named(tmp_path):
    plant = write_narratives(tmp_path / "ds", spaces=("surface",), extra_runs=False)
    gone = plant.runs[("sub-002", "pieman")][0]["surface_R"]
    gone.unlink()
    with pytest.raises(MissingDataError, match=re.escape(gone.name) + r".*exclude: \[sub-002_task-pieman\]"):
        NarrativesReader(plant.root, space="fsaverage6").subjects()
    reader = NarrativesReader(plant.root, space="fsaverage6", exclude=["sub-002_task-pieman"])
    assert reader.subjects() == ["sub-001", "sub-002", "sub-003"]
    with pytest.raises(MissingDataError, match="every run of subject sub-002, story pieman is excluded"):
        reader.responses("sub-002")


def test_download_source_names_the_accession_and_the_files(tmp_path):
    src = NarrativesReader(tmp_path).source
    assert src.openneuro == "ds002345"
    assert any("afni-nosmooth" in p and "MNI152NLin2009cAsym" in p and p.endswith("_bold.nii.gz")
               for p in src.include)
    assert "stimuli/gentle/*/align.json" in src.include
    surf = NarrativesReader(tmp_path, space="fsaverage6", derivative="afni-smooth").source
    assert any("afni-smooth" in p and "fsaverage6" in p and p.endswith(".func.gii") for p in surf.include)


# --------------------------------------------------------------------------- bad inputs
def test_a_story_missing_for_one_subject_names_the_file_and_the_remedy(fresh):
    for f in (fresh.root / "derivatives" / "afni-nosmooth" / "sub-002" / "func").glob("*task-lucy*"):
        f.unlink()
    reader = NarrativesReader(fresh.root)
    assert reader.subjects() == ["sub-001", "sub-002", "sub-003"]
    with pytest.raises(MissingDataError) as err:
        reader.responses("sub-002")
    msg = str(err.value)
    assert "sub-002" in msg and "lucy" in msg and "sub-002_task-lucy" in msg
    assert "study.stories" in msg and "study.subjects" in msg
    data, _t, _s = reader.responses("sub-002", ["pieman", "tunnel"])  # the stories it has
    assert sorted(data) == ["pieman", "tunnel"]
    # through data_prep, the node fails with the same message
    _words, grids = read_stimuli(reader, {})
    with pytest.raises(MissingDataError, match="study.stories"):
        prepare_responses(reader, grids, {}, subject="sub-002")


def _set_tr(path, tr):
    img = nib.load(path)
    hdr = img.header.copy()
    hdr["pixdim"][4] = tr
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, hdr), path)


def test_a_run_with_another_tr_names_the_file_and_both_trs(fresh):
    (entry,) = fresh.runs[("sub-001", "tunnel")]
    _set_tr(entry["volume"], 2.0)
    sidecar = fresh.root / "sub-001" / "func" / "sub-001_task-tunnel_bold.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0}))
    reader = NarrativesReader(fresh.root)
    assert reader.tr_grids().set_index("story").loc["tunnel", "tr"] == fresh.tr  # the other runs' TR
    with pytest.raises(ValueError) as err:
        reader.responses("sub-001")
    msg = str(err.value)
    assert str(entry["volume"]) in msg and "TR 2 s" in msg and "TR 1 s" in msg
    reader.responses("sub-002")  # the other subjects are fine
    # header and sidecar disagreeing is an error naming both
    sidecar.write_text(json.dumps({"RepetitionTime": 1.0}))
    with pytest.raises(ValueError, match=r"header says TR = 2 s but .*sub-001_task-tunnel_bold.json says "
                                         r"RepetitionTime = 1 s"):
        NarrativesReader(fresh.root).responses("sub-001")


def test_brain_mask_file_is_used_and_checked(fresh):
    tpl = fresh.root / "derivatives" / "afni-nosmooth" / "tpl-MNI152NLin2009cAsym"
    tpl.mkdir()
    (entry,) = fresh.runs[("sub-001", "lucy")]
    affine = nib.load(entry["volume"]).affine
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:4, 1:3, 0:2] = 1
    nib.save(nib.Nifti1Image(mask, affine), tpl / "tpl-MNI152NLin2009cAsym_res-lucy_desc-brain_mask.nii.gz")
    reader = NarrativesReader(fresh.root)
    _d, targets, _s = reader.responses("sub-001")  # first story: lucy -> its mask
    assert targets[["i", "j", "k"]].to_numpy().tolist() == np.argwhere(mask).tolist()
    ref = reader.reference_image("sub-001")
    np.testing.assert_array_equal(np.asarray(ref.dataobj), mask)
    np.testing.assert_allclose(ref.affine, affine)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), affine),
             tpl / "tpl-MNI152NLin2009cAsym_res-lucy_desc-brain_mask.nii.gz")
    with pytest.raises(ValueError, match=r"shape \(4, 4, 4\).*shape \(5, 5, 4\).*resample"):
        NarrativesReader(fresh.root).responses("sub-001")


def test_stories_on_different_grids_are_an_error(fresh):
    (entry,) = fresh.runs[("sub-002", "tunnel")]
    img = nib.load(entry["volume"])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine * np.diag([2, 2, 2, 1]), img.header),
             entry["volume"])
    with pytest.raises(ValueError, match="same grid with study.stories"):
        NarrativesReader(fresh.root).responses("sub-002")


def test_tasks_without_alignment_and_onsets(fresh, caplog):
    shutil.rmtree(fresh.root / "stimuli" / "gentle" / "lucy")
    with caplog.at_level(logging.WARNING):
        assert NarrativesReader(fresh.root).stories() == ["pieman", "tunnel"]
    assert "lucy" in " ".join(r.getMessage() for r in caplog.records)
    with pytest.raises(MissingDataError, match="Gentle alignment of task lucy"):
        NarrativesReader(fresh.root, tasks=["lucy"]).stories()
    with pytest.raises(MissingDataError, match="task merlin"):
        NarrativesReader(fresh.root, tasks=["merlin"]).stories()
    # mapping a task to another Gentle folder
    shutil.copytree(fresh.root / "stimuli" / "gentle" / "pieman", fresh.root / "stimuli" / "gentle" / "lucyalt")
    assert "lucy" in NarrativesReader(fresh.root, gentle={"lucy": "lucyalt"}).stories()
    # no onset anywhere for lucy (no events.tsv, no event_meta entry)
    meta = json.loads((fresh.root / "code" / "event_meta.json").read_text())
    del meta["lucy"]
    (fresh.root / "code" / "event_meta.json").write_text(json.dumps(meta))
    reader = NarrativesReader(fresh.root, gentle={"lucy": "lucyalt"})
    with pytest.raises(MissingDataError, match=r"no stimulus onset for task lucy.*onsets"):
        reader.tr_grids()
    grids = NarrativesReader(fresh.root, gentle={"lucy": "lucyalt"}, onsets={"lucy": 6.0}).tr_grids()
    assert grids.set_index("story").loc["lucy", "t0"] == 0.0


def test_events_that_disagree_or_hold_several_stories_are_errors(fresh):
    ev_path = fresh.root / "sub-002" / "func" / "sub-002_task-pieman_events.tsv"
    ev = pd.read_csv(ev_path, sep="\t")
    ev.loc[ev["trial_type"] == "story", "onset"] = 12.0
    ev.to_csv(ev_path, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"starts at 10.5 s in .*sub-001_task-pieman_events.tsv but at 12 s"):
        NarrativesReader(fresh.root).tr_grids()
    grids = NarrativesReader(fresh.root, onsets={"pieman": 10.5}).tr_grids()  # the user decides
    assert grids.set_index("story").loc["pieman", "t0"] == pytest.approx(-0.5)
    two = pd.concat([ev, ev.assign(onset=ev["onset"] + 100)], ignore_index=True)
    for sub in ("sub-001", "sub-002", "sub-003"):
        two.to_csv(fresh.root / sub / "func" / f"{sub}_task-pieman_events.tsv", sep="\t", index=False)
    meta = json.loads((fresh.root / "code" / "event_meta.json").read_text())
    meta["pieman"] = {"slum": {"onset": 1, "duration": 2}, "reach": {"onset": 9, "duration": 2}}
    (fresh.root / "code" / "event_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="several parts in code/event_meta.json"):
        NarrativesReader(fresh.root).tr_grids()
