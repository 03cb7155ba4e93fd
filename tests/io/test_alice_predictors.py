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
