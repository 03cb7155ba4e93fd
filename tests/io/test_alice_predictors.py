"""The Alice reader's predictor files (the lowlevel kind's ``predictors``), against an independent
reconstruction from the TextGrid: words counted on a 0.1 s grid, convolved with a double-gamma HRF
(scipy), sampled at the volume times 20 + 2 i s."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats

from brainalign.io.readers.alice import AliceReader


def test_rate_predictor_matches_word_counts_convolved_with_an_hrf(alice_dir):
    reader = AliceReader(alice_dir)
    pred = reader.predictors("alice", ["rate"])
    assert pred.shape == (362, 1)
    words = reader.words()["alice"]
    t = np.arange(0, 20 + 2 * 362 + 40, 0.1)
    counts = np.histogram((words["onset"] + words["offset"]) / 2, bins=np.r_[t, t[-1] + 0.1])[0].astype(float)
    k = np.arange(0, 32, 0.1)
    hrf = stats.gamma.pdf(k, 6) - stats.gamma.pdf(k, 16) / 6
    conv = np.convolve(counts, hrf)[: len(t)]
    sampled = np.interp(20 + 2 * np.arange(362), t, conv)
    assert np.corrcoef(sampled, pred["rate"])[0, 1] > 0.97


def test_a_disagreeing_copy_is_left_out_with_a_warning(alice_dir, caplog):
    with caplog.at_level(logging.WARNING):
        p = AliceReader(alice_dir).predictors("alice", ["sndpwr"])
    assert "s33-sndpwr.txt" in caplog.text and np.isfinite(p["sndpwr"]).all()
    raw = np.loadtxt(alice_dir / "predictors" / "s18-sndpwr.txt")
    assert np.corrcoef(raw, p["sndpwr"])[0, 1] > 0.9999


def test_unknown_predictor_is_named(alice_dir):
    with pytest.raises(FileNotFoundError, match="sNN-loudness.txt"):
        AliceReader(alice_dir).predictors("alice", ["loudness"])


def _convolved(words, values, n=362):
    """Word values summed on a 0.1 s grid at the word midpoints, convolved with a double-gamma HRF
    (scipy), sampled at the volume times 20 + 2 i s (as the test above)."""
    t = np.arange(0, 20 + 2 * n + 40, 0.1)
    idx = np.clip(np.searchsorted(t, (words["onset"] + words["offset"]).to_numpy() / 2) - 1, 0, len(t) - 1)
    fine = np.zeros(len(t))
    np.add.at(fine, idx, values)
    k = np.arange(0, 32, 0.1)
    hrf = stats.gamma.pdf(k, 6) - stats.gamma.pdf(k, 16) / 6
    return np.interp(20 + 2 * np.arange(n), t, np.convolve(fine, hrf)[: len(t)])


def test_the_authors_linguistic_predictors_align_with_the_words(alice_dir):
    """The generic predictor file has 372 rows (before the 10 discarded volumes): at that offset
    its rate column is the word rate rebuilt from the TextGrid; and its word frequency
    (orthogonalised to the rate by the authors) is what the ``log_frequency`` annotator (wordfreq)
    gives once summed per word, convolved and orthogonalised the same way: the word-level
    annotations' TR aggregate checked against the authors' own."""
    from brainalign.core.removal.annotators import AnnotationResources, annotate

    reader = AliceReader(alice_dir)
    pred = reader.predictors("alice", ["rate_conv", "frq_conv_orth", "bup_conv_orth"])
    assert pred.shape == (362, 3) and list(pred.columns) == ["rate_conv", "frq_conv_orth", "bup_conv_orth"]
    words = reader.words()["alice"].assign(story="alice", word_index=lambda d: np.arange(len(d)),
                                          sentence_id=0)
    rate = _convolved(words, np.ones(len(words)))
    assert np.corrcoef(rate, pred["rate_conv"])[0, 1] > 0.97
    freq = annotate(words, ["log_frequency"], AnnotationResources(dataset="alice"))["log_frequency"].to_numpy()
    ours = _convolved(words, freq)
    design = np.c_[np.ones(362), rate]
    ours_orth = ours - design @ np.linalg.lstsq(design, ours, rcond=None)[0]
    r = np.corrcoef(ours_orth, pred["frq_conv_orth"])[0, 1]
    assert r > 0.8, r
