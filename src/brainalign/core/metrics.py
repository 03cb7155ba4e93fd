"""Scores: column-wise Pearson r and R^2, inter-subject correlation noise ceilings."""
from __future__ import annotations

import numpy as np


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
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    num = (a * b).sum(0)
    out = np.zeros(a.shape[1])
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return np.clip(out, -1.0, 1.0)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, ``1 - SSE / SST`` with SST about the column mean
    of ``y_true`` (as ``sklearn.metrics.r2_score(..., multioutput='raw_values')``).

    Returns
    -------
    r2 : array of shape (n_targets,); 0 where ``y_true`` has zero variance.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    sse = ((a - b) ** 2).sum(0)
    sst = ((a - a.mean(0)) ** 2).sum(0)
    out = np.zeros(a.shape[1])
    ok = sst > 0
    out[ok] = 1.0 - sse[ok] / sst[ok]
    return out


def loso_isc(responses: list[np.ndarray]) -> np.ndarray:
    """Leave-one-subject-out inter-subject correlation.

    Parameters
    ----------
    responses : list over subjects of arrays of shape (n_samples, n_targets), same targets.

    Returns
    -------
    isc : array of shape (n_subjects, n_targets): r between each subject and the mean of the
        others. Needs at least 2 subjects.
    """
    if len(responses) < 2:
        raise ValueError("inter-subject correlation needs at least 2 subjects")
    stack = np.stack([np.asarray(r, np.float64) for r in responses])
    total = stack.sum(0)
    n = len(responses)
    return np.stack([pearson_r(stack[s], (total - stack[s]) / (n - 1)) for s in range(n)])

