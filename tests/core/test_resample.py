"""core/resample.py against direct evaluations of the formulas.

Convention (module docstring): the Lanczos kernel is ``sinc(t/TR) * sinc(t/(a TR))`` for
``|t| < a TR`` else 0, with ``sinc(x) = sin(pi x)/(pi x)``; ``cutoff`` is ``1/TR`` (in 1/s,
times ``cutoff_mult``) and weights are NOT normalised (a TR's value is a weighted sum).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainalign.core.timing.resample import (canonical_hrf, fir_delays, hrf_convolve, lanczos_downsample,
                                      lanczos_kernel, word_features_to_trs)


def _sinc(x: float) -> float:
    return 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)


def _lanczos_ref(t: float, tr: float, a: int) -> float:
    if abs(t) >= a * tr:
        return 0.0
    return _sinc(t / tr) * _sinc(t / (a * tr))


def _downsample_ref(values, old_times, new_times, tr, a):
    out = np.zeros((len(new_times), values.shape[1]))
    for i, tn in enumerate(new_times):
        for j, to in enumerate(old_times):
            w = _lanczos_ref(tn - to, tr, a)
            for k in range(values.shape[1]):
                out[i, k] += w * values[j, k]
    return out


# --------------------------------------------------------------------------- Lanczos
@pytest.mark.parametrize("tr", [2.0, 1.5, 0.72])
@pytest.mark.parametrize("window", [2, 3, 4])
def test_lanczos_kernel_matches_formula(tr, window):
    rng = np.random.default_rng(0)
    t = np.r_[rng.uniform(-6 * tr, 6 * tr, 200), 0.0, window * tr, -window * tr,
              np.arange(-5, 6) * tr]
    got = lanczos_kernel(t, cutoff=1.0 / tr, window=window)
    ref = np.array([_lanczos_ref(x, tr, window) for x in t])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_lanczos_kernel_planted_values():
    tr = 2.0
    k = lanczos_kernel(np.array([0.0, 2.0, -4.0, 1.0, 5.999, 6.0, 7.0]), cutoff=1 / tr, window=3)
    assert k[0] == pytest.approx(1.0)
    # zero at nonzero multiples of TR, and outside the window
    np.testing.assert_allclose(k[[1, 2, 5, 6]], 0.0, atol=1e-15)
    # half a TR: sinc(0.5) * sinc(1/6)
    assert k[3] == pytest.approx((2 / math.pi) * math.sin(math.pi / 6) / (math.pi / 6), rel=1e-12)
    assert abs(k[4]) < 1e-3  # continuous at the edge of the window
    # keeps the shape of the input
    assert lanczos_kernel(np.zeros((3, 4)), 0.5).shape == (3, 4)


@pytest.mark.parametrize("window", [3, 2])
def test_lanczos_downsample_matches_double_loop(window):
    rng = np.random.default_rng(1)
    tr = 2.0
    old = np.sort(rng.uniform(0, 60, 70))
    new = 1.0 + tr * np.arange(30)
    vals = rng.standard_normal((70, 3))
    got = lanczos_downsample(vals, old, new, window=window)
    assert got.dtype == np.float32 and got.shape == (30, 3)
    ref = _downsample_ref(vals, old, new, tr, window)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_lanczos_downsample_cutoff_mult_and_1d():
    rng = np.random.default_rng(2)
    tr = 1.5
    old = np.sort(rng.uniform(0, 30, 40))
    new = tr * np.arange(20)
    vals = rng.standard_normal(40)
    got = lanczos_downsample(vals, old, new, cutoff_mult=0.5)
    # cutoff 0.5/TR is the kernel of a grid with twice the TR
    ref = _downsample_ref(vals[:, None], old, new, 2 * tr, 3)
    assert got.shape == (20, 1)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_lanczos_downsample_is_an_unnormalised_sum():
    """Words exactly on TR times only feed their own TR (sinc zeros), with weight 1; two words
    on the same TR add up (no normalisation by word count)."""
    tr = 2.0
    new = tr * np.arange(10)
    old = np.array([4.0, 4.0, 12.0])
    vals = np.array([[1.0], [2.0], [5.0]])
    got = lanczos_downsample(vals, old, new)[:, 0]
    expected = np.zeros(10)
    expected[2] = 3.0
    expected[6] = 5.0
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_lanczos_downsample_input_errors():
    with pytest.raises(ValueError, match="time stamps"):
        lanczos_downsample(np.zeros((3, 2)), np.zeros(4), np.arange(5.0))
    with pytest.raises(ValueError, match="at least 2"):
        lanczos_downsample(np.zeros((3, 2)), np.zeros(3), np.array([1.0]))


# --------------------------------------------------------------------------- FIR
def test_fir_delays_matches_manual_shift():
    rng = np.random.default_rng(3)
    n, d = 12, 3
    x = rng.standard_normal((n, d)).astype(np.float32)
    delays = (1, 2, 3, 4)
    got = fir_delays(x, delays)
    assert got.shape == (n, d * len(delays))
    assert got.dtype == np.float32
    for k, lag in enumerate(delays):
        block = got[:, k * d:(k + 1) * d]
        manual = np.vstack([np.zeros((lag, d), np.float32), x[:-lag]])
        np.testing.assert_array_equal(block, manual)
        np.testing.assert_array_equal(block[:lag], 0)


def test_fir_delays_zero_lag_long_lag_and_order():
    x = np.arange(10, dtype=np.float64).reshape(5, 2) + 1
    got = fir_delays(x, (0, 7, 2))
    np.testing.assert_array_equal(got[:, :2], x)  # lag 0 = the signal itself
    np.testing.assert_array_equal(got[:, 2:4], 0)  # lag >= n: all zeros
    np.testing.assert_array_equal(got[:, 4:6], np.r_[np.zeros((2, 2)), x[:3]])
    with pytest.raises(ValueError, match=">= 0"):
        fir_delays(x, (1, -1))


# --------------------------------------------------------------------------- HRF
def _hrf_ref(tr, duration=32.0):
    t = np.arange(0, duration, tr)
    # SPM double gamma: gamma(6) peak minus gamma(16) undershoot / 6, unit scale, sum 1
    h = np.array([stats.gamma(6.0).pdf(x) - stats.gamma(16.0).pdf(x) / 6.0 for x in t])
    return h / h.sum()


@pytest.mark.parametrize("tr", [2.0, 1.5, 0.5])
def test_canonical_hrf_matches_double_gamma(tr):
    h = canonical_hrf(tr)
    assert h.shape == (math.ceil(32.0 / tr),)
    np.testing.assert_allclose(h, _hrf_ref(tr), rtol=1e-10, atol=1e-14)
    assert h.sum() == pytest.approx(1.0)


def test_canonical_hrf_peak_and_undershoot():
    tr = 0.05
    h = canonical_hrf(tr)
    t = np.arange(len(h)) * tr
    peak = t[np.argmax(h)]
    assert 4.5 <= peak <= 6.0
    # an undershoot after the peak, deepest around 10-20 s
    trough = t[np.argmin(h)]
    assert h.min() < 0 and 10 <= trough <= 20


def test_hrf_convolve_matches_np_convolve():
    rng = np.random.default_rng(4)
    tr = 2.0
    x = rng.standard_normal((40, 3)).astype(np.float32)
    h = _hrf_ref(tr)
    got = hrf_convolve(x, tr)
    assert got.shape == x.shape and got.dtype == np.float32
    ref = np.column_stack([np.convolve(x[:, j].astype(np.float64), h)[:len(x)] for j in range(3)])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # an impulse gives back the (truncated) HRF itself: causal, no shift
    imp = np.zeros((10, 1))
    imp[2] = 1.0
    out = hrf_convolve(imp, tr)[:, 0]
    np.testing.assert_allclose(out[:2], 0.0)
    np.testing.assert_allclose(out[2:], h[:8], rtol=1e-12)


# --------------------------------------------------------------------------- whole chain
def test_word_features_to_trs_fir_chain():
    rng = np.random.default_rng(5)
    tr, t0, n_total, trim_s, trim_e = 2.0, -1.0, 25, 3, 2
    onset = np.sort(rng.uniform(0, 44, 50))
    offset = onset + rng.uniform(0.1, 0.5, 50)
    words = pd.DataFrame({"story": "s1", "word_index": np.arange(50), "word": "w",
                          "onset": onset, "offset": offset, "sentence_id": 0})
    grids = pd.DataFrame([{"story": "s1", "n_trs_total": n_total, "tr": tr, "t0": t0,
                           "trim_start": trim_s, "trim_end": trim_e,
                           "n_trs": n_total - trim_s - trim_e}])
    feats = {"s1": rng.standard_normal((50, 2))}
    delays = (1, 2)
    out = word_features_to_trs(feats, words, grids, delays=delays)["s1"]
    # independent chain: midpoints, double-loop Lanczos over all volumes, manual shift, trim
    mid = (onset + offset) / 2
    z = _downsample_ref(feats["s1"], mid, t0 + tr * np.arange(n_total), tr, 3)
    full = np.hstack([np.vstack([np.zeros((lag, 2)), z[:-lag]]) for lag in delays])
    ref = full[trim_s:n_total - trim_e]
    assert out.shape == (n_total - trim_s - trim_e, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)

    # onset alignment and the HRF response model
    out_h = word_features_to_trs(feats, words, grids, align="onset", response_model="hrf")["s1"]
    z = _downsample_ref(feats["s1"], onset, t0 + tr * np.arange(n_total), tr, 3)
    h = _hrf_ref(tr)
    ref_h = np.column_stack([np.convolve(z[:, j], h)[:n_total] for j in range(2)])
    np.testing.assert_allclose(out_h, ref_h[trim_s:n_total - trim_e], rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match="response_model"):
        word_features_to_trs(feats, words, grids, response_model="boxcar")
    with pytest.raises(ValueError, match="s1"):
        word_features_to_trs({"s1": feats["s1"][:-1]}, words, grids)
