"""The noise model of the simulated study (core/synthetic/study.py): AR(1) noise with unit
marginal variance and slow drift below the 128 s high-pass.

References are independent of the simulation code: the exact expectations of the lag-1
autocovariance and of the variance of a detrended stationary AR(1) series (from its covariance
matrix ``phi**|i-j|``), a Hann-windowed numpy periodogram, and a plain-loop AR(1) recursion over
the recorded random draws. Tolerances are a few standard errors of the estimates at the sample
sizes used.

How the noise is isolated from the written BOLD: subjects share the voxel baseline and the
noise-free signal and have independent noise and drift, so ``(bold_1 - bold_2) / (5 sqrt 2)`` is
the noise difference scaled back to a single subject's noise (an AR(1) series with the same
coefficient and variance) plus a linear trend (with ``drift_sd = 0``), which a least-squares line
removes exactly.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import yaml

from brainalign.core.brain.preprocess import detrend, highpass
from brainalign.core.synthetic import study as S

TR = 2.0
SHAPE = (8, 8, 6)
TRIM = 2


@functools.lru_cache(maxsize=None)
def _inputs():
    rng = np.random.default_rng(7)
    words = {s: S.time_words(t, rng, max_words=300) for s, t in S.story_texts(["lighthouse", "orchard"]).items()}
    feats = {s: rng.standard_normal((len(w), 8)) for s, w in words.items()}
    return feats, words


@functools.lru_cache(maxsize=None)
def _study(noise_ar: float, drift_sd: float):
    feats, words = _inputs()
    return S.simulate_study(feats, words, n_subjects=2, tr=TR, volume_shape=SHAPE, trim_start=TRIM,
                            trim_end=TRIM, seed=3, noise_ar=noise_ar, drift_sd=drift_sd)


def _voxels(study, subject, story):
    return study.bold[(subject, story)][np.nonzero(study.mask)].T.astype(np.float64)  # (n_trs, n_vox)


def _residual_maker(n):
    """I - P, P the projection on a constant and a line over n samples."""
    X = np.c_[np.ones(n), np.arange(n, dtype=float)]
    return np.eye(n) - X @ np.linalg.pinv(X)


def _ar_cov(n, phi):
    i = np.arange(n)
    return float(phi) ** np.abs(i[:, None] - i[None, :])


# --------------------------------------------------------------------------- AR(1) noise
@pytest.mark.parametrize("phi", [0.0, 0.5, 0.8])
def test_noise_is_ar1_with_unit_marginal_variance(phi):
    """Pooled lag-1 autocorrelation and variance of the detrended noise match their exact
    expectations for an AR(1) series with coefficient phi and unit variance."""
    st = _study(phi, 0.0)
    num = den = exp_num = exp_den = 0.0
    n_total, n_min = 0, np.inf
    for story in st.words:
        x = (_voxels(st, "sub-01", story) - _voxels(st, "sub-02", story)) / (5.0 * np.sqrt(2.0))
        n, m = x.shape
        R = _residual_maker(n)
        r = R @ x
        num += (r[1:] * r[:-1]).sum()
        den += (r ** 2).sum()
        RSR = R @ _ar_cov(n, phi) @ R
        exp_num += m * np.trace(RSR, offset=1)  # E sum_t r_t r_{t+1}
        exp_den += m * np.trace(RSR)            # E sum_t r_t^2
        n_total += n * m
        n_min = min(n_min, n)
    rho, rho_exp = num / den, exp_num / exp_den
    # sd of a lag-1 autocorrelation estimate of an AR(1) series: sqrt((1 - phi^2) / n)
    se_rho = np.sqrt((1 - phi ** 2) / n_total)
    assert abs(rho - rho_exp) < 5 * se_rho, (rho, rho_exp, se_rho)
    # the detrending bias of the target is of order (1 + 4 phi) / n
    assert -2 * (1 + 4 * phi) / n_min < rho_exp - phi <= 0
    # marginal variance 1: sum of squares vs its expectation; Var(sum x^2) ~ 2 N (1 + phi^2) / (1 - phi^2)
    se_var = np.sqrt(2 * (1 + phi ** 2) / ((1 - phi ** 2) * n_total))
    assert abs(den / exp_den - 1) < 5 * se_var, (den / exp_den, se_var)
    if phi == 0.0:
        assert abs(rho) < 0.05


def test_ar1_noise_helper_is_stationary_from_the_first_sample():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((400, 5000))
    np.testing.assert_array_equal(S.ar1_noise(u, 0.0), u)
    phi = 0.5
    e = S.ar1_noise(u, phi)
    ref = np.empty_like(u)  # plain recursion
    ref[0] = u[0]
    for t in range(1, len(u)):
        ref[t] = phi * ref[t - 1] + np.sqrt(1 - phi ** 2) * u[t]
    np.testing.assert_allclose(e, ref, atol=1e-12)
    for t in (0, 1, 5):  # variance 1 at every time point, including the first: se sqrt(2 / m)
        assert abs(e[t].var() - 1) < 5 * np.sqrt(2 / u.shape[1])
    # lag-k autocovariance phi^k; mean of e_t e_{t+k} over N samples has variance below 3 / N here
    # ((1 + phi^2)^2 / (1 - phi^2) ~ 2.1 for phi = 0.5)
    for lag in (1, 2):
        assert abs(np.mean(e[lag:] * e[:-lag]) - phi ** lag) < 5 * np.sqrt(3 / u.size)


def test_expected_r_keeps_its_definition_under_ar_noise_and_drift(monkeypatch):
    """expected_r = corr(signal, signal + noise) on kept TRs, drift excluded: rebuilt from the
    recorded innovations (AR(1) by a plain loop), the linear-drift draws and the slow drift
    (difference with a drift-free study of the same seed)."""
    feats, words = _inputs()
    phi = 0.5
    draws = {"standard_normal": [], "normal": []}
    real_default_rng = np.random.default_rng

    class Recording:
        def __init__(self, rng):
            self._rng = rng

        def standard_normal(self, *a, **k):
            out = self._rng.standard_normal(*a, **k)
            draws["standard_normal"].append(np.array(out, copy=True))
            return out

        def normal(self, *a, **k):
            out = self._rng.normal(*a, **k)
            draws["normal"].append(np.array(out, copy=True))
            return out

        def __getattr__(self, name):
            return getattr(self._rng, name)

    monkeypatch.setattr(np.random, "default_rng", lambda *a, **k: Recording(real_default_rng(*a, **k)))
    st = S.simulate_study(feats, words, n_subjects=2, tr=TR, volume_shape=SHAPE, trim_start=TRIM,
                          trim_end=TRIM, seed=3, noise_ar=phi, drift_sd=0.5)
    monkeypatch.undo()
    no_slow = _study(phi, 0.0)
    stories = list(st.words)
    n_trs = {s: st.bold[("sub-01", s)].shape[-1] for s in stories}
    n_vox = int(st.mask.sum())
    innov = [d for d in draws["standard_normal"] if d.ndim == 2 and d.shape[1] == n_vox
             and d.shape[0] in set(n_trs.values())]
    lin = [d for d in draws["normal"] if d.shape == (n_vox,)]
    assert len(innov) == len(lin) == 2 * len(stories)
    gt = st.ground_truth
    k = 0
    for subject in ("sub-01", "sub-02"):
        sig, resp = [], []
        for s in stories:
            n = n_trs[s]
            u = innov[k]
            noise = np.empty_like(u)
            noise[0] = u[0]
            for t in range(1, n):
                noise[t] = phi * noise[t - 1] + np.sqrt(1 - phi ** 2) * u[t]
            y = _voxels(st, subject, s) / 5.0
            slow = y - _voxels(no_slow, subject, s) / 5.0
            drift = np.linspace(-1, 1, n)[:, None] * lin[k] + slow
            keep = slice(TRIM, n - TRIM)
            sig.append((y - drift - noise)[keep])  # signal + baseline / 5
            resp.append((y - drift)[keep])
            k += 1
        a, b = np.concatenate(sig), np.concatenate(resp)
        g = gt[gt["subject"] == subject].set_index("target").loc[S.target_ids(st.mask)]
        ok = ~g["is_noise"].to_numpy()
        a, b = a[:, ok] - a[:, ok].mean(0), b[:, ok] - b[:, ok].mean(0)
        r = (a * b).sum(0) / np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))
        np.testing.assert_allclose(g["expected_r"].to_numpy()[ok], r, atol=2e-4)
        assert (g["expected_r"].to_numpy()[~ok] == 0).all()


def test_other_draws_do_not_depend_on_the_noise_model():
    white = _study(0.0, 0.0)
    cols = ["subject", "target", "roi", "snr", "semantic_share", "sound_power_share", "is_noise"]
    for other in (_study(0.5, 0.0), _study(0.5, 0.5), _study(0.0, 0.5)):
        assert white.ground_truth[cols].equals(other.ground_truth[cols])
    # the slow drift only adds to the white study: same innovations, linear trends and baseline
    for s in white.words:
        d = (_voxels(_study(0.0, 0.5), "sub-01", s) - _voxels(white, "sub-01", s)) / 5.0
        assert d.std(0).mean() > 0.1
        assert np.abs(np.diff(d, axis=0)).max() < 0.2  # smooth: no white-noise jumps
    assert _study(0.0, 0.5).meta["drift_sd"] == 0.5 and white.meta["noise_ar"] == 0.0


# --------------------------------------------------------------------------- slow drift
def test_slow_drift_has_power_only_below_the_highpass():
    white, drifting = _study(0.0, 0.0), _study(0.0, 0.5)
    for s in white.words:
        d = (_voxels(drifting, "sub-01", s) - _voxels(white, "sub-01", s)) / 5.0
        n = len(d)
        w = np.hanning(n)[:, None]
        power = np.abs(np.fft.rfft((d - d.mean(0)) * w, axis=0)) ** 2
        f = np.fft.rfftfreq(n, TR)
        # Hann main lobe: +-2 frequency bins around each cosine at <= 1/128 Hz
        above = f > 1 / 128 + 2 / (n * TR)
        assert power[above].sum() / power.sum() < 1e-3
        # the AR(1) noise, for contrast, is mostly above it
        e = (_voxels(_study(0.5, 0.0), "sub-01", s) - _voxels(_study(0.5, 0.0), "sub-02", s))
        pe = np.abs(np.fft.rfft(detrend(e) * w, axis=0)) ** 2
        assert pe[above].sum() / pe.sum() > 0.5


def test_slow_drift_marginal_sd_and_what_detrending_removes():
    rng = np.random.default_rng(2)
    m, sd = 20000, 0.5
    d = S.slow_drift(rng, 60, TR, m, sd)
    # E d_t^2 = sd^2 at every time point (relative se of the mean ~ 1.1 / sqrt(m))
    assert abs(np.mean(d ** 2) / sd ** 2 - 1) < 5 * 1.1 / np.sqrt(m)
    assert abs(np.mean(d[0] ** 2) / sd ** 2 - 1) < 5 * 1.1 / np.sqrt(m)

    def removed(x, fn):
        x = x[TRIM:len(x) - TRIM]
        return 1 - fn(x).var(0).mean() / x.var(0).mean()

    long_run = S.slow_drift(rng, 160, TR, 5000, sd)   # ~320 s, as the default study's stories
    short_run = S.slow_drift(rng, 46, TR, 5000, sd)   # ~90 s, as conf/test's
    hp = functools.partial(highpass, tr=TR, cutoff=128.0)
    # highpass (128 s DCT) removes nearly all of it on long runs; a linear detrend only a part
    assert removed(long_run, hp) > 0.9
    assert 0.2 < removed(long_run, detrend) < 0.55
    # on short runs the drift is nearly a line
    assert removed(short_run, detrend) > 0.8


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "x"])
def test_bad_noise_ar_is_named(bad):
    feats, words = _inputs()
    with pytest.raises(ValueError, match="noise_ar"):
        S.simulate_study(feats, words, noise_ar=bad)


@pytest.mark.parametrize("kw, name", [({"drift_sd": -1.0}, "drift_sd"), ({"drift_sd": float("inf")}, "drift_sd"),
                                      ({"drift_periods": (0.0, 100.0)}, "drift_periods"),
                                      ({"drift_periods": (300.0, 100.0)}, "drift_periods"),
                                      ({"drift_periods": 128.0}, "drift_periods")])
def test_bad_drift_parameters_are_named(kw, name):
    feats, words = _inputs()
    with pytest.raises(ValueError, match=name):
        S.simulate_study(feats, words, **kw)


def test_simulate_node_passes_the_noise_parameters(monkeypatch):
    """conf/base sets noise_ar 0.5 and a slow drift, and the simulate node hands them over."""
    from brainalign.pipelines.data_prep import nodes

    root = Path(__file__).resolve().parents[2]
    synthetic = yaml.safe_load((root / "conf" / "base" / "parameters.yml").read_text())["synthetic"]
    assert synthetic["noise_ar"] == 0.5 and synthetic["drift_sd"] > 0
    assert min(synthetic["drift_periods"]) >= 128
    seen = {}
    monkeypatch.setattr(nodes, "load_model", lambda *a, **k: (None, None))
    monkeypatch.setattr(nodes, "extract_word_features",
                        lambda words, tok, model, layers, **k: {l: np.ones((len(words), 4)) for l in layers})

    def fake_simulate(feats, words, **kw):
        seen.update(kw)
        return type("St", (), {"mask": np.ones(1)})()

    monkeypatch.setattr(nodes, "simulate_study", fake_simulate)
    nodes.simulate({**synthetic, "audio": False, "stories": ["orchard"], "max_words_per_story": 20},
                   {"trim_start": 2, "trim_end": 2})
    assert seen["noise_ar"] == 0.5 and seen["drift_sd"] == synthetic["drift_sd"]
    assert list(seen["drift_periods"]) == list(synthetic["drift_periods"])
