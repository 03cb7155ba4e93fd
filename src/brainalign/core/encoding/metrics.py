"""Scores: column-wise Pearson r and R^2, inter-subject correlation and repeat-based noise ceilings."""
from __future__ import annotations

import warnings

import numpy as np

#: a column whose standard deviation is below this share of its mean magnitude is constant up to
#: rounding (a constant 0.1 has std ~1e-17 in float64 and ~5e-9 in float32, never exactly 0)
CONSTANT_RTOL = 1e-6


def is_constant(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """True for each column of ``x`` that is constant up to floating-point rounding:
    ``std <= CONSTANT_RTOL * |mean|`` (or exactly zero). NaN is ignored.

    Parameters
    ----------
    x : array of shape (n_samples, n_targets)

    Returns
    -------
    bool array of shape (n_targets,)
    """
    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        sd = np.nanstd(x, axis=axis)
        mean = np.abs(np.nanmean(x, axis=axis))
    return (sd == 0) | (sd <= CONSTANT_RTOL * mean)


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``y_true`` with the same column of ``y_pred``.

    Parameters
    ----------
    y_true, y_pred : arrays of shape (n_samples, n_targets) (or (n_samples,)).

    Returns
    -------
    r : array of shape (n_targets,), float64. A column with zero variance in either input has
        no defined correlation; it gets r = 0 (never NaN), and callers that care check variance
        first (data_prep excludes zero-variance targets with a logged reason).
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    ok = ~(is_constant(a) | is_constant(b))
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    num = (a * b).sum(0)
    out = np.zeros(a.shape[1])
    ok &= den > 0
    out[ok] = num[ok] / den[ok]
    return np.clip(out, -1.0, 1.0)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, ``1 - SSE / SST`` with SST about the column mean
    of ``y_true`` (as ``sklearn.metrics.r2_score(..., multioutput='raw_values')``).

    Returns
    -------
    r2 : array of shape (n_targets,); 0 where ``y_true`` is constant (:func:`is_constant`).
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    sse = ((a - b) ** 2).sum(0)
    sst = ((a - a.mean(0)) ** 2).sum(0)
    out = np.zeros(a.shape[1])
    ok = (sst > 0) & ~is_constant(a)
    out[ok] = 1.0 - sse[ok] / sst[ok]
    return out


def loso_isc(responses: list, target_batch: int = 10000) -> np.ndarray:
    """Leave-one-subject-out inter-subject correlation.

    Parameters
    ----------
    responses : list over subjects of arrays of shape (n_samples, n_targets), same targets; any
        object with ``.shape`` and ``[:, columns]`` (a memory map, a
        :class:`~brainalign.core.encoding.ridge.StackedRows`) is read ``target_batch`` columns at a time.
    target_batch : targets processed at a time (bounds memory to
        n_subjects x n_samples x target_batch float64 values).

    Returns
    -------
    isc : array of shape (n_subjects, n_targets): r between each subject and the mean of the
        others. Needs at least 2 subjects.
    """
    if len(responses) < 2:
        raise ValueError("inter-subject correlation needs at least 2 subjects")
    shapes = {tuple(np.shape(r)) for r in responses}
    if len(shapes) != 1:
        raise ValueError(f"inter-subject correlation needs responses of one shape; got {sorted(shapes)}")
    n = len(responses)
    n_targets = next(iter(shapes))[1]
    out = np.zeros((n, n_targets))
    for start in range(0, n_targets, max(1, int(target_batch))):
        sl = slice(start, min(start + int(target_batch), n_targets))
        stack = np.stack([np.asarray(r[:, sl], np.float64) for r in responses])
        total = stack.sum(0)
        for s in range(n):
            out[s, sl] = pearson_r(stack[s], (total - stack[s]) / (n - 1))
    return out


def repeat_noise_ceiling(repeats: np.ndarray, target_batch: int = 10000) -> np.ndarray:
    """Noise ceiling from repeated presentations of one stimulus: the expected correlation
    ``CC_max`` of a perfect model with the mean response over repeats (Hsu, Borst & Theunissen
    2004; Schoppe, Harper, Willmore, King & Schnupp 2016, "Measuring the performance of neural
    models", Front. Comput. Neurosci. 10:10).

    With ``N`` repeats ``r_n`` of one target and ``y = mean_n r_n``, the signal power (the variance
    of the stimulus-driven part, unbiased) is

        SP = (Var(sum_n r_n) - sum_n Var(r_n)) / (N (N - 1))

    and ``CC_max = sqrt(SP / Var(y))``, clipped to [0, 1]. For ``r_n = s + e_n`` with independent
    noise of variance ``v`` and ``Var(s) = 1``: ``SP -> 1`` and ``CC_max -> sqrt(1 / (1 + v / N))``,
    the correlation of the mean response with the signal. This is the ceiling of r against the
    N-repeat mean; a single presentation has the lower ceiling ``sqrt(SP / mean_n Var(r_n))``.

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_samples, n_targets), finite; n_repeats >= 2.
    target_batch : targets processed at a time (bounds the float64 temporaries).

    Returns
    -------
    cc_max : array of shape (n_targets,), float64 in [0, 1]; 0 where the mean response is
        constant (:func:`is_constant`) or the signal power estimate is negative.
    """
    reps = np.asarray(repeats)
    if reps.ndim != 3:
        raise ValueError(f"repeats must have shape (n_repeats, n_samples, n_targets), got {reps.shape}")
    n, t, m = reps.shape
    if n < 2:
        raise ValueError(f"a repeat-based noise ceiling needs at least 2 repeats, got {n}")
    if t < 3:
        raise ValueError(f"a repeat-based noise ceiling needs at least 3 samples, got {t}")
    out = np.zeros(m)
    for lo in range(0, m, max(1, int(target_batch))):
        x = np.asarray(reps[:, :, lo:lo + target_batch], dtype=np.float64)
        bad = ~np.isfinite(x).all(axis=(0, 1))
        if bad.any():
            raise ValueError(f"repeats: {int(bad.sum())} targets have non-finite values (first: "
                             f"column {lo + int(np.flatnonzero(bad)[0])}); drop them first")
        var_of_sum = x.sum(0).var(axis=0, ddof=1)
        sum_of_var = x.var(axis=1, ddof=1).sum(0)
        sp = (var_of_sum - sum_of_var) / (n * (n - 1))
        mean = x.mean(0)
        var_mean = mean.var(axis=0, ddof=1)
        ok = (var_mean > 0) & ~is_constant(mean)
        cc = np.zeros(x.shape[2])
        cc[ok] = np.sqrt(np.clip(sp[ok] / var_mean[ok], 0.0, 1.0))
        out[lo:lo + x.shape[2]] = cc
    return out
