"""Scores: column-wise Pearson r and R^2, inter-subject correlation and repeat-based noise ceilings.

:func:`pearson_r`, :func:`r2_score` and :func:`is_constant` are written once over a himalaya
backend and take numpy arrays or torch tensors (CPU or CUDA); the encoding models score every
backend with them.
"""
from __future__ import annotations

import numpy as np

#: a column whose standard deviation is below this share of its mean magnitude is constant up to
#: rounding (a constant 0.1 has std ~1e-17 in float64 and ~5e-9 in float32, never exactly 0)
CONSTANT_RTOL = 1e-6


# ---------------------------------------------------------------------------- backend
# The metrics are written once over a himalaya backend module (``numpy``, ``torch``,
# ``torch_cuda``): ``bk.sum``, ``bk.sqrt``, ``bk.abs``, ``bk.clip``, ``bk.isnan``, ``bk.asarray``,
# ``bk.zeros_like`` and boolean indexing, which numpy arrays and torch tensors share. Arrays stay
# where they are (a CUDA tensor is scored on its GPU); the result is an array of the same backend.

def get_backend(backend=None, *arrays):
    """The himalaya backend module to compute with.

    Parameters
    ----------
    backend : a himalaya backend module, its name (``numpy``, ``torch``, ``torch_cuda``), or None:
        the backend matching ``arrays`` (``torch`` for torch tensors, ``torch_cuda`` for CUDA
        tensors, ``numpy`` for anything else). The global himalaya backend is not consulted, so
        numpy arrays always give numpy results.
    """
    import importlib

    if backend is None:
        backend = "numpy"
        for x in arrays:
            if type(x).__module__.startswith("torch"):
                backend = "torch_cuda" if getattr(x, "is_cuda", False) else "torch"
                break
    if isinstance(backend, str):
        return importlib.import_module(f"himalaya.backend.{backend}")
    return backend


def _float64(bk, x):
    """``x`` as a float64 array of backend ``bk``, on the device it is on (a copy only if needed)."""
    return bk.asarray(x, dtype=bk.float64, device=None)


def _mean(bk, x, axis: int = 0, dtype=None):
    """Mean along ``axis``, accumulated in ``dtype`` (default: the dtype of ``x``)."""
    return bk.sum(x, axis, dtype=dtype) / x.shape[axis]


def _columns(bk, y_true, y_pred):
    a, b = _float64(bk, y_true), _float64(bk, y_pred)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a, b


def is_constant(x, axis: int = 0, backend=None):
    """True for each column of ``x`` that is constant up to floating-point rounding:
    ``std <= CONSTANT_RTOL * |mean|`` (or exactly zero), in float64. NaN is ignored.

    Parameters
    ----------
    x : array of shape (n_samples, n_targets): numpy array or torch tensor (CPU or CUDA).
    backend : himalaya backend (module or name); default: the one matching ``x``
        (:func:`get_backend`).

    Returns
    -------
    bool array of shape (n_targets,), of the backend (a numpy array for numpy input).
    """
    bk = get_backend(backend, x)
    x = _float64(bk, x)
    nan = bk.isnan(x)
    has_nan = bool(bk.any(nan))
    if has_nan:
        x = bk.copy(x)
        x[nan] = 0.0
    n = bk.sum(~nan, axis)
    keep = list(x.shape)
    keep[axis] = 1
    with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN columns: NaN, not constant
        mean = bk.sum(x, axis) / n
        dev = x - mean.reshape(keep)
        if has_nan:
            dev[nan] = 0.0
        sd = bk.sqrt(bk.sum(dev * dev, axis) / n)
    return (sd == 0) | (sd <= CONSTANT_RTOL * bk.abs(mean))


def pearson_r(y_true, y_pred, backend=None):
    """Pearson correlation of each column of ``y_true`` with the same column of ``y_pred``.

    Parameters
    ----------
    y_true, y_pred : arrays of shape (n_samples, n_targets) (or (n_samples,)): numpy arrays or
        torch tensors (CPU or CUDA; both on one device).
    backend : himalaya backend (module or name); default: the one matching the inputs
        (:func:`get_backend`).

    Returns
    -------
    r : array of shape (n_targets,), float64, of the backend (numpy for numpy input). A column
        constant in either input (:func:`is_constant`) has no defined correlation; it gets r = 0
        (never NaN), and callers that care check variance first (data_prep excludes zero-variance
        targets with a logged reason).
    """
    bk = get_backend(backend, y_true, y_pred)
    a, b = _columns(bk, y_true, y_pred)
    ok = ~(is_constant(a, backend=bk) | is_constant(b, backend=bk))
    a = a - _mean(bk, a)
    b = b - _mean(bk, b)
    den = bk.sqrt(bk.sum(a * a, 0) * bk.sum(b * b, 0))
    num = bk.sum(a * b, 0)
    out = bk.zeros_like(num)
    ok = ok & (den > 0)
    out[ok] = num[ok] / den[ok]
    return bk.clip(out, -1.0, 1.0)


def r2_score(y_true, y_pred, backend=None):
    """Coefficient of determination per column, ``1 - SSE / SST`` with SST about the column mean
    of ``y_true`` (as ``sklearn.metrics.r2_score(..., multioutput='raw_values')``), in float64.

    Parameters
    ----------
    y_true, y_pred, backend : as :func:`pearson_r`.

    Returns
    -------
    r2 : array of shape (n_targets,) of the backend; 0 where ``y_true`` is constant
        (:func:`is_constant`).
    """
    bk = get_backend(backend, y_true, y_pred)
    a, b = _columns(bk, y_true, y_pred)
    d = a - b
    sse = bk.sum(d * d, 0)
    c = a - _mean(bk, a)
    sst = bk.sum(c * c, 0)
    out = bk.zeros_like(sse)
    ok = (sst > 0) & ~is_constant(a, backend=bk)
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


def _signal_power_ratio(x: np.ndarray, scope: str) -> np.ndarray:
    """``sqrt(SP / Var)`` per target for ``x`` of shape (n, n_samples, n_targets), float64 (the
    formulas of :func:`repeat_noise_ceiling`)."""
    n = x.shape[0]
    var_of_sum = x.sum(0).var(axis=0, ddof=1)
    each_var = x.var(axis=1, ddof=1)                      # (n, n_targets)
    sp = (var_of_sum - each_var.sum(0)) / (n * (n - 1))   # mean covariance of distinct pairs
    mean = x.mean(0)
    if scope == "mean":
        den = mean.var(axis=0, ddof=1)[None, :]
        ok = (den > 0) & ~is_constant(mean)[None, :]
    elif scope == "single":
        den = each_var.mean(0)[None, :]
        ok = (den > 0) & ~is_constant(mean)[None, :]
    elif scope == "each":
        den = each_var
        ok = (den > 0) & ~np.stack([is_constant(x[k]) for k in range(n)])
    else:
        raise ValueError(f"scope must be 'mean', 'single' or 'each', got {scope!r}")
    out = np.zeros(ok.shape)
    ratio = np.divide(np.broadcast_to(sp, ok.shape), den, out=np.zeros(ok.shape), where=ok)
    out[ok] = np.sqrt(np.clip(ratio[ok], 0.0, 1.0))
    return out


def repeat_noise_ceiling(repeats: np.ndarray, scope: str = "mean", target_batch: int = 10000) -> np.ndarray:
    """Noise ceiling from repeated presentations of one stimulus (Hsu, Borst & Theunissen 2004;
    Schoppe, Harper, Willmore, King & Schnupp 2016, "Measuring the performance of neural
    models", Front. Comput. Neurosci. 10:10): the expected correlation of a perfect model with
    the data it is scored on.

    With ``N`` repeats ``r_n`` of one target, the signal power (the variance of the
    stimulus-driven part: the mean covariance between distinct repeats, unbiased) is

        SP = (Var(sum_n r_n) - sum_n Var(r_n)) / (N (N - 1))

    and the ceiling is ``sqrt(SP / Var(scored data))``, clipped to [0, 1]:

    * ``scope="mean"``: scored against the mean over the N repeats, ``CC_max = sqrt(SP / Var(mean_n r_n))``
      (Schoppe's CC_max). For ``r_n = s + e_n`` with independent noise of variance ``v`` and
      ``Var(s) = 1``: ``-> sqrt(1 / (1 + v / N))``.
    * ``scope="single"``: scored against one presentation (a story heard once),
      ``sqrt(SP / mean_n Var(r_n))`` ``-> sqrt(1 / (1 + v))``. This is the ceiling of every
      single-presentation story of the subject, assuming they share the repeated story's noise level.

    Both are ratios of unbiased variance estimates; the square root of a ratio is slightly biased
    (measured in docs/methods.md, "Noise ceiling").

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_samples, n_targets), finite; n_repeats >= 2.
    scope : "mean" or "single" (above).
    target_batch : targets processed at a time (bounds the float64 temporaries).

    Returns
    -------
    ceiling : array of shape (n_targets,), float64 in [0, 1]; 0 where the mean response is
        constant (:func:`is_constant`) or the signal power estimate is negative.
    """
    if scope not in ("mean", "single"):
        raise ValueError(f"scope must be 'mean' (scored on the N-repeat mean) or 'single' (one "
                         f"presentation), got {scope!r}")
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
        out[lo:lo + x.shape[2]] = _signal_power_ratio(x, scope)[0]
    return out


def intersubject_ceiling(responses: list, target_batch: int = 10000) -> np.ndarray:
    """Single-subject noise ceiling from several subjects who heard the same stimulus, treating
    the subjects as repeats of a shared signal: ``sqrt(SP / Var(r_s))`` per subject ``s``, with
    ``SP`` the mean covariance between distinct subjects (the formula of
    :func:`repeat_noise_ceiling`).

    Under ``r_s = s + e_s`` (one stimulus-driven signal shared by all subjects, independent
    noise) this is the correlation of a perfect model with subject ``s``: the ceiling of a
    single-subject encoding score. The leave-one-subject-out ISC (:func:`loso_isc`) is lower:
    it correlates with a noisy mean of the others (``SP / sqrt(Var(r_s) Var(mean of others))``).
    Stimulus-driven variance that is the subject's own counts as noise here, so the value is still
    a lower bound where subjects differ; a model can exceed it only by predicting such
    idiosyncratic signal.

    Parameters
    ----------
    responses : list over subjects (>= 3, so that ``SP`` is not one subject pair) of arrays of shape
        (n_samples, n_targets), same targets; read ``target_batch`` columns at a time.

    Returns
    -------
    ceiling : array of shape (n_subjects, n_targets), float64 in [0, 1].
    """
    if len(responses) < 3:
        raise ValueError(f"an inter-subject ceiling needs at least 3 subjects (got {len(responses)}): with 2 "
                         "the signal power is one covariance")
    shapes = {tuple(np.shape(r)) for r in responses}
    if len(shapes) != 1:
        raise ValueError(f"an inter-subject ceiling needs responses of one shape; got {sorted(shapes)}")
    n_samples, n_targets = next(iter(shapes))
    if n_samples < 3:
        raise ValueError(f"an inter-subject ceiling needs at least 3 samples, got {n_samples}")
    out = np.zeros((len(responses), n_targets))
    for lo in range(0, n_targets, max(1, int(target_batch))):
        sl = slice(lo, min(lo + int(target_batch), n_targets))
        x = np.stack([np.asarray(r[:, sl], np.float64) for r in responses])
        out[:, sl] = _signal_power_ratio(x, "each")
    return out
