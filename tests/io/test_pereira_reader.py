"""The Pereira et al. 2018 reader on fixtures in the published structure (tests/pereira_fixture.py:
MATLAB v5 files written with scipy.io.savemat). Expected values come from scipy.io.loadmat run
directly on the files and from the labels the fixture planted."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pereira_fixture import (ATLASES, EXPECTED, FILES, N_VOXELS, SUBJECTS, VOXEL_LABELS, coords, make_sentences,
                             meta_struct, write_file, write_pereira_study)
from scipy.io import loadmat

from brainalign.core.timing.stimuli import build_words_table, check_words_fit_grid, make_tr_grid
from brainalign.io.readers import READERS, MissingDataError
from brainalign.io.readers.pereira import PereiraReader


@pytest.fixture
def study(tmp_path):
    return write_pereira_study(tmp_path / "pereira", partial={"M03": ["exp2"]})


def test_registered():
    assert READERS["pereira"] is PereiraReader


def test_subjects_stories_and_grids(study, caplog):
    r = PereiraReader(study)
    with caplog.at_level(logging.WARNING):
        assert r.subjects() == SUBJECTS                      # M03 lacks exp3: left out, logged
    assert "M03" in caplog.text and "only some of the experiments" in caplog.text
    assert r.stories() == ["exp2", "exp3"]
    assert PereiraReader(study, experiments={"exp2": FILES["exp2"]}).subjects() == ["M02", "M03", "P01"]
    g = r.tr_grids()
    raw = loadmat(study / "M02" / FILES["exp3"])
    assert g.set_index("story").loc["exp3", "n_trs_total"] == raw["keySentences"].shape[0] == 36
    assert (g["tr"] == 1.0).all() and (g["t0"] == 0.0).all()


def test_words_spread_sentences_over_their_tr(study):
    r = PereiraReader(study)
    words = r.words()
    sentences = [str(s[0][0]) for s in loadmat(study / "P01" / FILES["exp2"])["keySentences"]]
    w = words["exp2"]
    assert w["word"].tolist() == " ".join(sentences).split()
    for k in (0, 7, len(sentences) - 1):
        sk = w[w.sentence_id == k]
        assert sk["word"].tolist() == sentences[k].split()
        assert sk["onset"].min() == pytest.approx(k + 0.1) and sk["offset"].max() == pytest.approx(k + 0.9)
        np.testing.assert_allclose(np.diff(sk["onset"]), 0.8 / len(sk))      # evenly spread
    # the reader's sentence ids survive the words table, and the words fit the grid
    table = build_words_table(words)
    assert (table.groupby("story")["sentence_id"].nunique() == pd.Series({"exp2": 48, "exp3": 36})).all()
    assert (table[table.story == "exp2"]["sentence_id"].to_numpy() == w["sentence_id"].to_numpy()).all()
    grids = pd.DataFrame([make_tr_grid(x.story, x.n_trs_total, x.tr, x.t0) for x in r.tr_grids().itertuples()])
    check_words_fit_grid(table, grids, "pereira")


def test_responses_match_the_files_and_targets_the_atlases(study, caplog):
    r = PereiraReader(study)
    with caplog.at_level(logging.WARNING):
        data, targets, sources = r.responses("P01")
    assert "network visual: atlas 'visual' labels no voxel" in caplog.text   # a logged note
    for story in ("exp2", "exp3"):
        raw = loadmat(sources[story])["examples_passagesentences"]
        assert data[story].dtype == np.float32
        np.testing.assert_allclose(data[story], raw.astype(np.float32))
    assert targets["target"].tolist() == [f"v{c}" for c in range(N_VOXELS)]
    np.testing.assert_array_equal(targets[["i", "j", "k"]].to_numpy(), coords().astype(int) - 1)
    for v, (roi, net) in EXPECTED.items():
        assert (targets.loc[v, "roi"], targets.loc[v, "network"]) == (roi, net), v
    assert r.targets_shared_across_subjects is False


def test_voxels_networks_keeps_network_voxels(study, caplog):
    r = PereiraReader(study, voxels="networks")
    with caplog.at_level(logging.INFO):
        data, targets, _ = r.responses("M02", ["exp2"])
    keep = [v for v, (_, net) in EXPECTED.items() if net != "none"]
    assert targets["target"].tolist() == [f"v{v}" for v in keep]
    raw = loadmat(study / "M02" / FILES["exp2"])["examples_passagesentences"]
    np.testing.assert_allclose(data["exp2"], raw[:, keep].astype(np.float32))
    assert "16 of 20 voxels lie in the networks" in caplog.text


def test_no_network_voxel_is_a_clear_error(tmp_path):
    root = tmp_path / "p"
    meta = meta_struct(labels={})          # atlases present, none labels a voxel
    write_file(root / "P01" / FILES["exp2"], "exp2", "P01", meta=meta)
    r = PereiraReader(root, experiments={"exp2": FILES["exp2"]}, voxels="networks")
    with pytest.raises(ValueError, match="no voxel lies in the networks"):
        r.responses("P01")


def test_missing_subject_file_names_it(study):
    r = PereiraReader(study)
    with pytest.raises(MissingDataError) as info:
        r.responses("M03", ["exp2", "exp3"])
    msg = str(info.value)
    assert str(study / "M03" / FILES["exp3"]) in msg and "study.stories" in msg
    data, _, _ = r.responses("M03", ["exp2"])     # the experiment it has is fine
    assert data["exp2"].shape == (48, N_VOXELS)
    with pytest.raises(MissingDataError, match="study directory"):
        PereiraReader(study / "nowhere").subjects()


def test_sentence_order_mismatch_names_both_files(study):
    sentences = make_sentences("exp2")[0]
    swapped = [sentences[1], sentences[0]] + sentences[2:]
    write_file(study / "P01" / FILES["exp2"], "exp2", "P01", sentences=swapped)
    r = PereiraReader(study)
    with pytest.raises(ValueError, match="first difference at sentence 0") as info:
        r.responses("P01", ["exp2"])
    msg = str(info.value)
    assert str(study / "P01" / FILES["exp2"]) in msg and str(study / "M02" / FILES["exp2"]) in msg


def test_row_count_mismatch_is_an_error(study):
    write_file(study / "P01" / FILES["exp3"], "exp3", "P01", data=np.zeros((35, N_VOXELS)))
    with pytest.raises(ValueError, match=r"expected \(36 sentences"):
        PereiraReader(study).responses("P01", ["exp3"])


def test_examples_key_variant_and_missing_matrix(tmp_path):
    root = tmp_path / "p"
    write_file(root / "P01" / FILES["exp2"], "exp2", "P01", examples_key="examples")
    r = PereiraReader(root, experiments={"exp2": FILES["exp2"]})
    data, _, _ = r.responses("P01")
    np.testing.assert_allclose(data["exp2"], loadmat(root / "P01" / FILES["exp2"])["examples"].astype(np.float32))
    with pytest.raises(ValueError, match="no response matrix"):
        PereiraReader(root, experiments={"exp2": FILES["exp2"]}, examples_key="betas").responses("P01")


def test_voxel_sets_that_differ_between_experiments_are_intersected(study, caplog):
    # exp3 of P01: voxels 0 and 1 missing, the others in reverse column order
    order = np.arange(N_VOXELS)[2:][::-1]
    labels = {int(np.flatnonzero(order == v)[0]): lab for v, lab in VOXEL_LABELS.items() if v in order}
    meta = meta_struct(n_voxels=len(order), col_to_coord=coords()[order], labels=labels)
    full = np.random.default_rng(5).standard_normal((36, N_VOXELS))
    write_file(study / "P01" / FILES["exp3"], "exp3", "P01", meta=meta, data=full[:, order])
    with caplog.at_level(logging.WARNING):
        data, targets, _ = PereiraReader(study).responses("P01")
    assert "disagree on the voxels" in caplog.text
    assert targets["target"].tolist() == [f"v{c}" for c in range(2, N_VOXELS)]
    np.testing.assert_allclose(data["exp3"], full[:, 2:].astype(np.float32))
    raw2 = loadmat(study / "P01" / FILES["exp2"])["examples_passagesentences"]
    np.testing.assert_allclose(data["exp2"], raw2[:, 2:].astype(np.float32))
    # the two left-out voxels are exclusion rows, named
    reader = PereiraReader(study)
    reader.responses("P01")
    dropped = reader.dropped_targets("P01")
    assert sorted(t for _, t, _ in dropped) == ["v0", "v1"]
    assert all(st == "*" and FILES["exp3"].split("/")[-1] in why for st, _, why in dropped)
    assert reader.dropped_targets("P02") == []
    # and data_prep puts them in the exclusion table of the subject
    from brainalign.pipelines.data_prep.nodes import prepare_responses, read_stimuli

    params = {"stories": "all", "trim_start": 0, "trim_end": 0, "detrend": "none"}
    _, grids = read_stimuli(reader, params)
    _, kept_targets, excl = prepare_responses(reader, grids, params, subject="P01")
    assert {"v0", "v1"} <= set(excl["target"]) and not {"v0", "v1"} & set(kept_targets["target"])
    assert set(excl.loc[excl.target.isin(["v0", "v1"]), "subject"]) == {"P01"}


def test_roi_columns_and_named_multimask_variants(tmp_path):
    root = tmp_path / "p"
    meta = meta_struct()
    # roiColumns (1-based columns per ROI) instead of roiMultimask
    cols = np.empty((len(ATLASES), 1), dtype=object)
    for a_idx, a in enumerate(ATLASES):
        per_roi = np.empty((len(ATLASES[a]), 1), dtype=object)
        for r in range(len(ATLASES[a])):
            per_roi[r, 0] = np.array([v + 1 for v, lab in VOXEL_LABELS.items() if lab == (a, r + 1)],
                                     dtype=float).reshape(-1, 1)
        cols[a_idx, 0] = per_roi
    del meta["roiMultimask"]
    meta["roiColumns"] = cols
    # and one atlas as roiMultimask<Name>/rois<Name> (its own network via the option)
    meta["roiMultimaskGordon"] = np.r_[np.zeros(16), [1, 1, 2, 2]].reshape(-1, 1)
    meta["roisGordon"] = np.array(["ROI1_Auditory_L", "ROI2_Visual_R"], dtype=object).reshape(-1, 1)
    write_file(root / "P01" / FILES["exp2"], "exp2", "P01", meta=meta)
    nets = {"language": ["languageLH", "languageRH"], "multiple_demand": ["MD"], "default_mode": ["DMN"],
            "gordon": ["Gordon"]}
    _, targets, _ = PereiraReader(root, experiments={"exp2": FILES["exp2"]}, networks=nets).responses("P01")
    for v, (roi, net) in EXPECTED.items():
        if net != "none":
            assert (targets.loc[v, "roi"], targets.loc[v, "network"]) == (roi, net)
    assert targets.loc[16:19, "roi"].tolist() == ["ROI1_Auditory_L"] * 2 + ["ROI2_Visual_R"] * 2
    assert set(targets.loc[16:19, "network"]) == {"gordon"}


def test_missing_atlas_name_is_logged(study, caplog):
    with caplog.at_level(logging.WARNING):
        PereiraReader(study, networks={"language": ["languageLH"], "salience": ["SAL"]}).responses("M02", ["exp2"])
    assert "network salience: none of the atlases ['SAL'] is in meta.atlases" in caplog.text


def test_sentence_table_passages_and_topics(study):
    r = PereiraReader(study)
    t = r.sentence_table("exp2")
    raw = loadmat(study / "M02" / FILES["exp2"])
    np.testing.assert_array_equal(t["passage"], raw["labelsPassageForEachSentence"].ravel())
    assert t["category"].tolist()[:8] == ["animals"] * 4 + ["food"] * 4
    assert r.passages_contiguous("exp2") is True
