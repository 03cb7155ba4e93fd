"""Low-level acoustic features (core/representations/lowlevel_audio.py) and the sound power
planted in the simulated study.

References: a per-time numpy loop over the zero-padded waveform, the analytic power of a sine
(A**2 / 2), scipy.signal.periodogram of each frame, and the HRF-convolved sound power of the
simulated audio correlated with the simulated responses.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from brainalign.core.representations.lowlevel_audio import band_edges, sound_power, spectral_envelope

SR = 16000
AMP = 0.4
TONE = (1.0, 2.0)  # seconds


def _tone_in_silence(freq=440.0, seconds=3.0):
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    inside = (t >= TONE[0]) & (t < TONE[1])
    x[inside] = AMP * np.sin(2 * np.pi * freq * t[inside])
    return x


def _direct_mean_square(x, sr, t, window_s):
    n = max(1, int(round(window_s * sr)))
    start = int(np.round(t * sr)) - n // 2
    seg = np.array([x[i] if 0 <= i < len(x) else 0.0 for i in range(start, start + n)])
    return np.mean(seg ** 2)


def test_sound_power_matches_a_direct_computation():
    x = _tone_in_silence()
    times = np.r_[-0.5, 0.0, 0.99, 1.0, 1.01, np.linspace(1.1, 1.9, 9), 2.0, 2.02, 2.99, 3.0, 3.4]
    got = sound_power(x, SR, times, window_s=0.05)
    ref = [10 * np.log10(max(_direct_mean_square(x, SR, t, 0.05), 1e-10)) for t in times]
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_sound_power_of_a_tone_and_of_silence():
    x = _tone_in_silence()
    inside = np.linspace(1.1, 1.9, 17)
    # a sine of amplitude A has mean square A^2 / 2: 20 log10(A / sqrt 2) dB
    np.testing.assert_allclose(sound_power(x, SR, inside), 20 * np.log10(AMP / np.sqrt(2)), atol=0.05)
    silent = np.r_[0.2, 0.5, 2.5, 10.0, -3.0]
    np.testing.assert_array_equal(sound_power(x, SR, silent), -100.0)
    np.testing.assert_array_equal(sound_power(x, SR, silent, floor_db=-60.0), -60.0)


def test_sound_power_checks_its_input():
    with pytest.raises(ValueError, match="mono"):
        sound_power(np.zeros((10, 2)), SR, [0.0])
    with pytest.raises(ValueError, match="window_s"):
        sound_power(np.zeros(10), SR, [0.0], window_s=0)


def test_band_edges_are_equally_spaced_in_mel():
    edges = band_edges(8, 50.0, 8000.0)
    assert edges[0] == pytest.approx(50.0) and edges[-1] == pytest.approx(8000.0)
    m = 1127.0 * np.log(1.0 + edges / 700.0)  # the same mel scale written with the natural log
    np.testing.assert_allclose(np.diff(m), np.diff(m)[0], rtol=1e-9)


def test_spectral_envelope_matches_scipy_periodogram():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR) * 0.1
    times = np.array([0.2, 0.5, 0.77])
    window_s, n_bands = 0.05, 6
    got = spectral_envelope(x, SR, times, n_bands=n_bands, window_s=window_s, fmin=100.0, fmax=7000.0)
    assert got.shape == (3, n_bands)
    n = int(round(window_s * SR))
    edges = band_edges(n_bands, 100.0, 7000.0)
    for row, t in zip(got, times):
        start = int(round(t * SR)) - n // 2
        f, pxx = signal.periodogram(x[start:start + n], fs=SR, window="hann", detrend=False,
                                    scaling="density")
        df = f[1] - f[0]
        ref = [pxx[(f >= lo) & (f < hi)].sum() * df for lo, hi in zip(edges[:-1], edges[1:])]
        np.testing.assert_allclose(row, 10 * np.log10(ref), atol=1e-9)


def test_spectral_envelope_of_a_tone():
    x = _tone_in_silence(freq=1000.0)
    times = np.linspace(1.1, 1.9, 5)
    env = spectral_envelope(x, SR, times, n_bands=8)
    edges = band_edges(8, 50.0, 8000.0)
    k = int(np.searchsorted(edges, 1000.0) - 1)
    assert edges[k] + 100 < 1000.0 < edges[k + 1] - 100  # well inside its band
    np.testing.assert_allclose(env[:, k], 20 * np.log10(AMP / np.sqrt(2)), atol=0.05)
    others = np.delete(env, k, axis=1)
    assert (others < env[:, [k]] - 40).all()
    # silence (and times outside the waveform) read as the floor
    np.testing.assert_array_equal(spectral_envelope(x, SR, [0.3, 5.0]), -100.0)


def test_spectral_envelope_names_empty_bands():
    with pytest.raises(ValueError, match="hold no FFT bin"):
        spectral_envelope(np.zeros(SR), SR, [0.5], n_bands=40, window_s=0.005)


# --------------------------------------------------------------------------- the simulated study
def test_simulated_sound_power_drives_the_low_level_voxels():
    """Audio with loud and quiet stretches: the planted sound-power share is recorded, is
    highest where the semantic share is lowest (A1), and the responses of the voxels with a high
    share follow the HRF-convolved sound power."""
    from brainalign.core.synthetic import study as S
    from brainalign.core.timing.resample import canonical_hrf

    rng = np.random.default_rng(4)
    sr, tr = 8000, 2.0
    n_words, duration = 120, 200.0
    onsets = np.sort(rng.uniform(6.0, duration - 10, n_words))
    words = {"story": __import__("pandas").DataFrame(
        {"word": [f"w{i}" for i in range(n_words)], "onset": onsets, "offset": onsets + 0.3})}
    # loudness varies in 10-s blocks, independent of the word rate
    t = np.arange(int(duration * sr)) / sr
    level = np.repeat(rng.choice([0.02, 0.5], size=int(duration / 10)), 10 * sr)[: len(t)]
    wave = (level * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    feats = {"story": rng.standard_normal((n_words, 6))}
    st = S.simulate_study(feats, words, n_subjects=1, tr=tr, volume_shape=(8, 8, 6), seed=2,
                          audio={"story": (wave, sr)})
    gt = st.ground_truth
    assert "sound_power_share" in gt.columns
    share = gt["sound_power_share"].to_numpy()
    assert (share >= 0).all() and (share <= 1 - gt["semantic_share"] + 1e-12).all()
    assert (share[gt["is_noise"]] == 0).all()
    by_roi = gt.groupby("roi")["sound_power_share"].mean()
    assert by_roi["A1"] > 3 * by_roi[["pSTS", "aTL", "AG", "IFG"]].max()

    # regressor computed here: level in dB per TR (10 log10 of the mean square, floor -60 dB), HRF-convolved
    n_trs = st.bold[("sub-01", "story")].shape[-1]
    tr_times = tr * np.arange(n_trs)
    db = np.array([10 * np.log10(max(np.mean(wave[int(a * sr):int(a * sr + tr * sr)].astype(float) ** 2), 1e-6))
                   if a < duration else -60.0 for a in tr_times])
    reg = signal.lfilter(canonical_hrf(tr), [1.0], db)
    vox = np.nonzero(st.mask)
    y = st.bold[("sub-01", "story")][vox].T.astype(float)
    y = y - np.linspace(0, 1, n_trs)[:, None] * np.polyfit(np.linspace(0, 1, n_trs), y, 1)[0]
    r = np.array([np.corrcoef(reg[5:], y[5:, j])[0, 1] for j in range(y.shape[1])])
    strong = (share > 0.4) & (gt["snr"].to_numpy() > 0.5)
    weak = (share < 0.05) & (gt["snr"].to_numpy() > 0.5)
    assert strong.sum() >= 3 and weak.sum() >= 3
    assert r[strong].mean() > 0.3
    assert r[strong].mean() > r[weak].mean() + 0.2


def test_simulate_study_needs_audio_for_every_story_and_long_enough():
    from brainalign.core.synthetic import study as S
    import pandas as pd

    w = pd.DataFrame({"word": ["a", "b"], "onset": [6.0, 7.0], "offset": [6.5, 7.5]})
    words = {"one": w, "two": w}
    feats = {"one": np.ones((2, 3)), "two": np.ones((2, 3))}
    wave = np.zeros(8000 * 10, np.float32)
    with pytest.raises(ValueError, match=r"not for stories \['two'\]"):
        S.simulate_study(feats, words, audio={"one": (wave, 8000)})
    with pytest.raises(ValueError, match="story two"):
        S.simulate_study(feats, words, audio={"one": (wave, 8000), "two": (wave[:8000 * 5], 8000)})
