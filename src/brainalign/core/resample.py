"""Resampling word-level features to the fMRI time grid: Lanczos, FIR delays, HRF.

Conventions (DESIGN.md, scoring conventions): Lanczos window 3 with the cutoff at the Nyquist
rate of the TR grid, i.e. the kernel is ``sinc(t / TR) * sinc(t / (3 TR))`` for ``|t| < 3 TR``
(``sinc(x) = sin(pi x) / (pi x)``); weights are not normalised, so a TR's value is the
kernel-weighted *sum* of the words around it (word rate is carried by the feature norm, as in
the Huth-lab reference implementation). FIR delays are zero-padded at the start of each story.
"""
from __future__ import annotations

import numpy as np
from scipy import signal, stats


def lanczos_kernel(t: np.ndarray, cutoff: float, window: int = 3) -> np.ndarray:
    """Lanczos kernel ``sinc(c t) sinc(c t / window)`` for ``|c t| < window``, else 0.

    Parameters
    ----------
    t : array of time differences (s), any shape.
    cutoff : c, in 1/s; ``1 / TR`` puts the low-pass cutoff at the Nyquist rate ``1 / (2 TR)``.
    window : number of lobes.
    """
    x = cutoff * np.asarray(t, dtype=np.float64)
    val = np.sinc(x) * np.sinc(x / window)
    val[np.abs(x) >= window] = 0.0
    return val


def lanczos_downsample(values: np.ndarray, old_times: np.ndarray, new_times: np.ndarray,
                       window: int = 3, cutoff_mult: float = 1.0) -> np.ndarray:
    """Resample irregularly timed samples (words) to a regular grid (TRs).

    Parameters
    ----------
    values : array of shape (n_words, n_features)
    old_times : array of shape (n_words,), seconds.
    new_times : array of shape (n_trs,), regular, seconds.
    window : Lanczos window (lobes).
    cutoff_mult : multiplies the Nyquist cutoff ``1 / TR``.

    Returns
    -------
    array of shape (n_trs, n_features), float32.
    """
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if len(old_times) != len(values):
        raise ValueError(f"{len(values)} samples but {len(old_times)} time stamps")
    new_times = np.asarray(new_times, dtype=np.float64)
    if len(new_times) < 2:
        raise ValueError("the new grid needs at least 2 samples")
    cutoff = cutoff_mult / float(np.mean(np.diff(new_times)))
    weights = lanczos_kernel(new_times[:, None] - np.asarray(old_times, np.float64)[None, :],
                             cutoff, window)
    return (weights @ values.astype(np.float64)).astype(np.float32)


def fir_delays(x: np.ndarray, delays=(1, 2, 3, 4)) -> np.ndarray:
    """Stack delayed copies of ``x`` (one story), zero-padded at the start.

    Parameters
    ----------
    x : array of shape (n_trs, n_features)
    delays : non-negative integer delays in TRs.

    Returns
    -------
    array of shape (n_trs, n_features * len(delays)), blocks in the order of ``delays``.
    """
    n, d = x.shape
    out = np.zeros((n, d * len(delays)), dtype=x.dtype)
    for k, lag in enumerate(delays):
        lag = int(lag)
        if lag < 0:
            raise ValueError(f"FIR delays must be >= 0, got {lag}")
        if lag < n:
            out[lag:, k * d:(k + 1) * d] = x[: n - lag]
    return out


def canonical_hrf(tr: float, duration: float = 32.0, peak: float = 6.0, undershoot: float = 16.0,
                  ratio: float = 1 / 6) -> np.ndarray:
    """SPM-style double-gamma HRF sampled every ``tr`` seconds from 0, normalised to sum 1.

    Returns
    -------
    array of shape (ceil(duration / tr),)
    """
    t = np.arange(0, duration, tr)
    h = stats.gamma.pdf(t, peak) - ratio * stats.gamma.pdf(t, undershoot)
    return h / h.sum()


def hrf_convolve(x: np.ndarray, tr: float, **hrf_kwargs) -> np.ndarray:
    """Causal convolution of each column of ``x`` (one story, TR grid) with the canonical HRF.

    Returns an array of the same shape and dtype as ``x``.
    """
    h = canonical_hrf(tr, **hrf_kwargs)
    return signal.lfilter(h, [1.0], x, axis=0).astype(x.dtype, copy=False)


def word_features_to_trs(features: dict, words, grids, align: str = "midpoint", window: int = 3,
                         response_model: str = "fir", delays=(1, 2, 3, 4)) -> dict:
    """Word-level features of every story to the kept TRs of its grid.

    Lanczos-downsample to all volumes of the story, apply FIR delays (zero-padded at the start)
    or canonical-HRF convolution, then trim as the TR grid says.

    Parameters
    ----------
    features : story -> array of shape (n_words, dim)
    words : the words table (story, onset, offset, ...).
    grids : the TR-grid table.
    response_model : ``fir`` (delays in TRs) or ``hrf``.

    Returns
    -------
    story -> float32 array of shape (n_trs, dim * len(delays)) for ``fir``, (n_trs, dim) for ``hrf``
    """
    from .stimuli import tr_times, word_times

    out = {}
    for row in grids.itertuples():
        w = words[words["story"] == row.story]
        x = np.asarray(features[row.story])
        if len(w) != len(x):
            raise ValueError(f"story {row.story}: {len(x)} feature rows but {len(w)} words")
        grid = {"t0": row.t0, "tr": row.tr, "n_trs_total": row.n_trs_total}
        z = lanczos_downsample(x, word_times(w, align), tr_times(grid), window=window)
        if response_model == "fir":
            z = fir_delays(z, delays)
        elif response_model == "hrf":
            z = hrf_convolve(z, row.tr)
        else:
            raise ValueError(f"response_model must be 'fir' or 'hrf', got {response_model!r}")
        out[row.story] = z[row.trim_start: row.n_trs_total - row.trim_end].astype(np.float32)
    return out
