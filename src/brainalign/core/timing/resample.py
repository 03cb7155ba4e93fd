"""Resampling word-level features to the fMRI time grid: Lanczos, FIR delays, HRF.

Conventions (DESIGN.md, scoring conventions): Lanczos window 3 with the cutoff at the Nyquist
rate of the TR grid, i.e. the kernel is ``sinc(t / TR) * sinc(t / (3 TR))`` for ``|t| < 3 TR``
(``sinc(x) = sin(pi x) / (pi x)``); weights are not normalised, so a TR's value is the
kernel-weighted *sum* of the words around it (word rate is carried by the feature norm, as in
the Huth-lab reference implementation). FIR delays are zero-padded at the start of each story.

Box downsampling (:func:`box_downsample`): TR ``i`` gets the *mean* of the events (words or
sentences) whose time falls in ``[t0 + i tr, t0 + (i + 1) tr)``, 0 where there is none - the
natural choice for event-related designs with one stimulus per volume (Pereira et al. 2018) and
for sparse sentence events that an HRF then smooths.

Sentence units (:func:`word_features_to_trs` with ``unit="sentence"``): the word features of each
sentence are averaged (:func:`brainalign.core.representations.text.pool_by_group`) and the sentence becomes one
event at the offset of its last word (``sentence_time="offset"``), the midpoint of its span or its
onset.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy import signal, stats

log = logging.getLogger(__name__)

UNITS = ("word", "sentence")
DOWNSAMPLE_METHODS = ("lanczos", "box")
RESPONSE_MODELS = ("fir", "hrf", "none")
SENTENCE_TIMES = ("offset", "midpoint", "onset")
#: tolerance (in TRs) for an event lying on a box edge (t0 + i tr, up to rounding) to count in TR i
BOX_EDGE_ATOL = 1e-9


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


def box_bins(old_times: np.ndarray, t0: float, tr: float, n_trs: int) -> np.ndarray:
    """TR index of each event for :func:`box_downsample`: ``floor((t - t0) / tr)`` (an event
    within ``BOX_EDGE_ATOL`` TRs below an edge counts in the later TR), -1 outside the grid.

    Returns
    -------
    int array of shape (n_events,)
    """
    if tr <= 0:
        raise ValueError(f"tr must be positive, got {tr}")
    pos = (np.asarray(old_times, dtype=np.float64) - float(t0)) / float(tr)
    idx = np.floor(pos + BOX_EDGE_ATOL).astype(np.int64)
    idx[(idx < 0) | (idx >= int(n_trs)) | ~np.isfinite(pos)] = -1
    return idx


def box_downsample(values: np.ndarray, old_times: np.ndarray, t0: float, tr: float,
                   n_trs: int) -> np.ndarray:
    """Mean of the events in each TR: row ``i`` averages the rows of ``values`` whose time falls
    in ``[t0 + i tr, t0 + (i + 1) tr)``; 0 where no event falls.

    Parameters
    ----------
    values : array of shape (n_events, n_features) (or (n_events,))
    old_times : array of shape (n_events,), seconds on the TR-grid clock.
    t0 : time of volume 0 (s); tr : seconds between volumes; n_trs : volumes.

    Returns
    -------
    array of shape (n_trs, n_features), float32. Events before ``t0`` or after the last TR
    contribute nothing (:func:`box_bins` gives -1 for them).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if len(old_times) != len(values):
        raise ValueError(f"{len(values)} samples but {len(old_times)} time stamps")
    idx = box_bins(old_times, t0, tr, n_trs)
    inside = idx >= 0
    sums = np.zeros((int(n_trs), values.shape[1]))
    np.add.at(sums, idx[inside], values[inside])
    counts = np.bincount(idx[inside], minlength=int(n_trs)).astype(np.float64)
    out = np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)
    return out.astype(np.float32)


def group_event_times(words, groups, how: str = "offset") -> tuple[np.ndarray, np.ndarray]:
    """One time per group of words (a sentence event).

    Parameters
    ----------
    words : DataFrame with onset and offset (s), one story, in order.
    groups : array of shape (n_words,) (sentence ids).
    how : ``offset`` (the latest offset of the group's words: the end of the sentence),
        ``midpoint`` (halfway between the earliest onset and the latest offset) or ``onset``.

    Returns
    -------
    ids : array (n_groups,) in order of first appearance (as :func:`~brainalign.core.representations.text.pool_by_group`);
    times : float array (n_groups,).
    """
    if how not in SENTENCE_TIMES:
        raise ValueError(f"sentence_time must be one of {SENTENCE_TIMES}, got {how!r}")
    import pandas as pd

    df = pd.DataFrame({"g": np.asarray(groups), "on": words["onset"].to_numpy(float),
                       "off": words["offset"].to_numpy(float)})
    agg = df.groupby("g", sort=False).agg(on=("on", "min"), off=("off", "max"))
    times = {"offset": agg["off"], "onset": agg["on"], "midpoint": (agg["on"] + agg["off"]) / 2}[how]
    return agg.index.to_numpy(), times.to_numpy(float)


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
                         response_model: str = "fir", delays=(1, 2, 3, 4), unit: str = "word",
                         sentence_time: str = "offset", downsample: str = "lanczos") -> dict:
    """Word-level features of every story to the kept TRs of its grid.

    Optionally pool words into sentence events (``unit="sentence"``), downsample the events to
    all volumes of the story (Lanczos or box), apply FIR delays (zero-padded at the start),
    canonical-HRF convolution or nothing, then trim as the TR grid says.

    Parameters
    ----------
    features : story -> array of shape (n_words, dim)
    words : the words table (story, onset, offset, sentence_id, ...).
    grids : the TR-grid table.
    align : time of a word event, ``midpoint`` or ``onset`` (``unit="word"``).
    window : Lanczos window (lobes).
    response_model : ``fir`` (delays in TRs), ``hrf`` or ``none`` (no delays: the event-related
        case where each volume already is one stimulus' response pattern).
    delays : FIR delays in TRs.
    unit : ``word`` (one event per word) or ``sentence`` (the mean word feature of each
        ``sentence_id`` as one event at :func:`group_event_times` ``(sentence_time)``).
    sentence_time : ``offset``, ``midpoint`` or ``onset`` of the sentence (``unit="sentence"``).
    downsample : ``lanczos`` (:func:`lanczos_downsample`) or ``box`` (:func:`box_downsample`).

    Returns
    -------
    story -> float32 array of shape (n_trs, dim * len(delays)) for ``fir``, (n_trs, dim) for
    ``hrf`` and ``none``
    """
    from ..representations.text import pool_by_group
    from .stimuli import tr_times, word_times

    for name, value, allowed in (("response_model", response_model, RESPONSE_MODELS),
                                 ("unit", unit, UNITS), ("downsample", downsample, DOWNSAMPLE_METHODS)):
        if value not in allowed:
            raise ValueError(f"embedding {name} must be one of {allowed}, got {value!r}")
    out = {}
    for row in grids.itertuples():
        w = words[words["story"] == row.story]
        if "word_index" in w.columns:
            w = w.sort_values("word_index", kind="stable")
        x = np.asarray(features[row.story])
        if len(w) != len(x):
            raise ValueError(f"story {row.story}: {len(x)} feature rows but {len(w)} words")
        if unit == "sentence":
            if "sentence_id" not in w.columns:
                raise ValueError(f"story {row.story}: unit 'sentence' needs a sentence_id column in the words table")
            ids, x = pool_by_group(x, w["sentence_id"].to_numpy())
            ids_t, times = group_event_times(w, w["sentence_id"].to_numpy(), sentence_time)
            assert np.array_equal(ids, ids_t)
        else:
            times = word_times(w, align)
        grid = {"t0": row.t0, "tr": row.tr, "n_trs_total": row.n_trs_total}
        if downsample == "box":
            outside = int((box_bins(times, row.t0, row.tr, row.n_trs_total) < 0).sum())
            if outside:
                log.warning("story %s: %d of %d %s events fall outside the %d volumes of the scan "
                            "(t0=%s s, TR %s s) and are in no TR", row.story, outside, len(times), unit,
                            int(row.n_trs_total), row.t0, row.tr)
            z = box_downsample(x, times, row.t0, row.tr, int(row.n_trs_total))
        else:
            z = lanczos_downsample(x, times, tr_times(grid), window=window)
        out[row.story] = respond_and_trim(z, row, response_model, delays)
    return out


def respond_and_trim(z: np.ndarray, row, response_model: str = "fir", delays=(1, 2, 3, 4)) -> np.ndarray:
    """FIR delays, canonical-HRF convolution or nothing (``response_model``) on the full TR grid of
    one story, then the grid's trimming.

    Parameters
    ----------
    z : array of shape (n_trs_total, dim); row : the story's TR-grid row (tr, trim_start, trim_end,
    n_trs_total).

    Returns
    -------
    float32 array (n_trs, dim * len(delays)) for ``fir``, (n_trs, dim) otherwise.
    """
    if response_model not in RESPONSE_MODELS:
        raise ValueError(f"embedding response_model must be one of {RESPONSE_MODELS}, got {response_model!r}")
    if response_model == "fir":
        z = fir_delays(z, delays)
    elif response_model == "hrf":
        z = hrf_convolve(z, row.tr)
    return z[row.trim_start: row.n_trs_total - row.trim_end].astype(np.float32)


def story_features_to_trs(features: dict, grids, response_model: str = "fir", delays=(1, 2, 3, 4)) -> dict:
    """Features already on each story's full TR grid (low-level features, speech features after
    Lanczos resampling, dataset predictors) to the kept TRs: response model, then trimming.

    Parameters
    ----------
    features : story -> array of shape (n_trs_total, dim).
    grids : the TR-grid table.

    Returns
    -------
    story -> float32 array (n_trs, dim * len(delays)) for ``fir``, (n_trs, dim) otherwise.
    """
    out = {}
    for row in grids.itertuples():
        z = np.asarray(features[row.story], dtype=np.float64)
        if z.ndim != 2 or len(z) != int(row.n_trs_total):
            raise ValueError(f"story {row.story}: features of shape {z.shape}, expected ({int(row.n_trs_total)}, "
                             f"dim) on the story's full TR grid")
        out[row.story] = respond_and_trim(z, row, response_model, delays)
    return out
