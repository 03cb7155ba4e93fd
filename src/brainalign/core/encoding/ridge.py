"""Cross-validated ridge encoding models on himalaya.

For each outer fold: features are z-scored and responses centred with *training-fold*
statistics only (no intercept is fitted: the centring is the intercept); a per-target alpha is
chosen from a log grid by inner cross-validation on the training set (himalaya ``RidgeCV``, or
``KernelRidgeCV`` with a linear kernel when features outnumber training samples; both solve
the same problem); the held-out fold is predicted and scored. Reported per target:
``r`` (Pearson r per held-out fold, averaged over folds), ``r2`` (likewise), ``r_concat``
(r over all held-out predictions concatenated), ``alpha`` (median over folds of the chosen
alpha) and ``alpha_at_edge`` (share of folds where the chosen alpha is the grid's smallest or
largest value).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .folds import Fold, _Splits, inner_splits
from .metrics import _float64, _mean, pearson_r, r2_score
from .solvers import SOLVERS, SharedRidgeCV

log = logging.getLogger(__name__)

BACKENDS = ("numpy", "torch", "torch_cuda")


def alpha_grid(low: float = 1e-2, high: float = 1e8, n: int = 21) -> np.ndarray:
    """Log-spaced alpha grid from ``low`` to ``high`` with ``n`` values."""
    return np.logspace(np.log10(low), np.log10(high), int(n))


@contextlib.contextmanager
def himalaya_backend(name: str, numpy_lapack: bool = True):
    """Use a himalaya backend inside the block; ``torch_cuda`` falls back to ``torch`` (with a
    warning) when CUDA is not available. ``numpy_lapack``: on the numpy backend, decompose with
    NumPy's LAPACK (:func:`_numpy_lapack`); False leaves himalaya as a user sets it (SciPy's)."""
    from himalaya.backend import get_backend, set_backend

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name == "torch_cuda":
        import torch

        if not torch.cuda.is_available():
            log.warning("backend 'torch_cuda' asked for but CUDA is not available: using 'torch' (CPU)")
            name = "torch"
    previous = get_backend()
    backend = set_backend(name, on_error="raise")
    try:
        if name == "numpy" and numpy_lapack:
            with _numpy_lapack(backend):
                yield backend
        else:
            yield backend
    finally:
        set_backend(previous)


_LAPACK_LOCK = threading.Lock()
_LAPACK_DEPTH = 0


@contextlib.contextmanager
def _numpy_lapack(backend):
    """Route himalaya's numpy-backend ``eigh`` / ``svd`` / ``norm`` to NumPy's LAPACK (not SciPy's)
    inside the block.

    NumPy and SciPy wheels each bundle their own OpenBLAS, with their own thread pools. The ridge
    solvers interleave NumPy matrix products with SciPy decompositions, and each pool's threads
    keep spinning for a while after a call, so on a machine with few cores a SciPy ``eigh`` right
    after a NumPy product competes with NumPy's idle-spinning threads: measured on 2 cores, the
    18 eigendecompositions (276 x 276 and smaller) of one default encoding cell took 0.33 s
    against 0.11 s with one thread, and the cell's ridge fit 0.56 s against 0.13 s with NumPy's
    ``eigh`` (docs/performance.md). Same algorithms (LAPACK ``syevd`` instead of ``syevr``,
    ``gesdd`` in both), one thread pool. Reference-counted, so nested blocks restore once.
    """
    import numpy.linalg as nla

    global _LAPACK_DEPTH
    with _LAPACK_LOCK:
        if _LAPACK_DEPTH == 0:
            _numpy_lapack.saved = (backend.linalg, backend.eigh, backend.norm)
            backend.linalg, backend.eigh, backend.norm = nla, nla.eigh, nla.norm
        _LAPACK_DEPTH += 1
    try:
        yield
    finally:
        with _LAPACK_LOCK:
            _LAPACK_DEPTH -= 1
            if _LAPACK_DEPTH == 0:
                backend.linalg, backend.eigh, backend.norm = _numpy_lapack.saved


@dataclass
class EncodingResult:
    """Per-target scores of a cross-validated encoding model.

    Attributes
    ----------
    r, r2, r_concat, alpha, alpha_at_edge : arrays of shape (n_targets,)
    fold_r, fold_r2, fold_alpha : arrays of shape (n_folds, n_targets)
    predictions : array of shape (n_samples, n_targets) with held-out predictions in the units
        of ``Y`` (NaN where a sample was never tested), only when asked for.
    """

    r: np.ndarray
    r2: np.ndarray
    r_concat: np.ndarray
    alpha: np.ndarray
    alpha_at_edge: np.ndarray
    fold_r: np.ndarray
    fold_r2: np.ndarray
    fold_alpha: np.ndarray
    predictions: np.ndarray | None = field(default=None, repr=False)


class StackedRows:
    """Per-story arrays stacked along time, lazily: column batches are read story by story.

    ``np.concatenate`` of memory-mapped responses would load every voxel of every story at
    once; this view reads only the columns asked for (``stack[:, cols]``), so
    :func:`cross_validated_encoding` keeps its memory bound of ``target_batch`` columns.

    Parameters
    ----------
    parts : sequence of arrays of shape (n_trs_s, n_targets), e.g. memory maps, in story order.
    names : story names, for error messages.
    columns : optional int array of shape (n_selected,): the view shows only these columns of
        every part, in this order.

    Attributes
    ----------
    shape : (sum of n_trs_s, n_targets), or (sum of n_trs_s, n_selected) with ``columns``.
    """

    def __init__(self, parts, names=None, columns=None):
        self.parts = list(parts)
        names = list(names) if names is not None else [str(i) for i in range(len(self.parts))]
        if not self.parts:
            raise ValueError("no stories to stack")
        cols = {names[i]: np.shape(a)[1] if len(np.shape(a)) == 2 else None for i, a in enumerate(self.parts)}
        if len(set(cols.values())) != 1 or None in cols.values():
            raise ValueError(f"responses of the stories differ in their targets (columns per story: {cols})")
        n_cols = int(next(iter(cols.values())))
        self.columns = None if columns is None else np.asarray(columns, dtype=np.int64)
        if self.columns is not None and len(self.columns) and not (
                (self.columns >= 0) & (self.columns < n_cols)).all():
            raise IndexError(f"columns out of range for responses with {n_cols} targets")
        self.shape = (int(sum(np.shape(a)[0] for a in self.parts)),
                      n_cols if self.columns is None else len(self.columns))
        self.dtype = np.result_type(*[a.dtype for a in self.parts])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if self.columns is not None:
            cols = self.columns[cols]
        out = np.concatenate([np.asarray(a[:, cols]) for a in self.parts])
        return out if isinstance(rows, slice) and rows == slice(None) else out[rows]

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


def standardize(train: np.ndarray, test: np.ndarray, scale: bool = True):
    """Centre (and scale to unit variance) both arrays with the training statistics.
    Columns with zero training variance are only centred."""
    mean = train.mean(0)
    tr, te = train - mean, test - mean
    if scale:
        sd = train.std(0)
        sd[sd == 0] = 1.0
        tr /= sd   # in place: tr and te are new arrays here
        te /= sd
    return tr, te


def _fit_predict(Xtr, Ytr, Xte, alphas, splits, n_targets_batch, backend, keep_on_backend=False):
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    solver_params = {"n_targets_batch": n_targets_batch, "n_targets_batch_refit": n_targets_batch}
    if Xtr.shape[1] > Xtr.shape[0]:
        model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=_Splits(splits),
                              solver_params=solver_params)
    else:
        solver_params["warn"] = False
        model = RidgeCV(alphas=alphas, cv=_Splits(splits), solver_params=solver_params)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]olving.*")
        model.fit(Xtr, Ytr)
    pred = model.predict(Xte)
    return (pred if keep_on_backend else backend.to_numpy(pred)), backend.to_numpy(model.best_alphas_)


def _fold_batch(bk, Yb, train, test, Xtr, Xte, alphas, splits, batch, want_predictions, fit_predict=None):
    """One fold x target batch on any himalaya backend (numpy, or torch on the CPU or a GPU):
    responses centred with the training mean (the intercept), fit, and the scores of
    :mod:`~brainalign.core.encoding.metrics` (written once over the backend) with the float64
    sums for ``r_concat``, all on the backend's device, so only per-target results come back.

    Returns
    -------
    r, r2, best_alpha : numpy arrays of shape (n_batch,); sums : array (5, n_batch) of the
    concatenated-r sums; raw predictions (n_test, n_batch) in response units, or None.
    """
    Yd = bk.asarray(Yb)
    tr, te = bk.asarray(np.asarray(train)), bk.asarray(np.asarray(test))
    Ytr, Yte_raw = Yd[tr], Yd[te]      # copies (index arrays)
    mu = _mean(bk, Ytr)
    mu64 = _mean(bk, Ytr, dtype=bk.float64)
    Ytr -= mu                          # centred in place: one training copy, not two
    if fit_predict is None:   # solver "himalaya"
        pred, best = _fit_predict(Xtr, Ytr, Xte, alphas, splits, batch, bk, keep_on_backend=True)
    else:                     # a fold-level solver (core.encoding.solvers), decompositions shared
        pred, best = fit_predict(Ytr)
    del Ytr
    pred = bk.asarray(pred)  # himalaya may return predictions on the CPU
    held_out = Yte_raw - mu  # centred with the training mean
    r = pearson_r(held_out, pred, backend=bk)
    r2 = r2_score(held_out, pred, backend=bk)
    # r over the concatenated held-out predictions, in response units: the sums are float64 and
    # taken about the batch's overall mean (one shift for all folds, so r is unchanged) to avoid
    # cancellation when responses sit far from zero
    shift = _mean(bk, Yd, dtype=bk.float64)
    raw_true = _float64(bk, Yte_raw) - shift
    raw_pred = _float64(bk, pred) + (mu64 - shift)
    sums = bk.stack([bk.sum(raw_true, 0), bk.sum(raw_pred, 0), bk.sum(raw_true * raw_true, 0),
                     bk.sum(raw_pred * raw_pred, 0), bk.sum(raw_true * raw_pred, 0)])
    raw = bk.to_numpy(raw_pred + shift) if want_predictions else None
    return bk.to_numpy(r), bk.to_numpy(r2), best, bk.to_numpy(sums), raw


def check_finite_responses(Yb: np.ndarray, first_column: int = 0) -> None:
    """Raise if a batch of responses (n_samples, n_batch_targets), whose first column is target
    ``first_column``, holds NaN or inf, naming the first such targets."""
    bad = ~np.isfinite(Yb).all(0)
    if bad.any():
        raise ValueError(f"responses hold NaN or inf in {int(bad.sum())} targets (first columns: "
                         f"{(np.flatnonzero(bad)[:5] + first_column).tolist()}); exclude them first "
                         "(brainalign.core.brain.preprocess.clean_responses does)")


def null_shifts(story_of_sample: np.ndarray, min_shift: int = 50, seed: int = 0) -> dict:
    """Random circular shifts, one per story, for a null model (responses rolled in time against
    the features; their autocorrelation is kept, their alignment with the stimulus is broken).

    Parameters
    ----------
    story_of_sample : array of shape (n_samples,), story label of each sample.
    min_shift : smallest shift in samples (TRs); shifts are drawn uniformly in
        ``[min_shift, n - min_shift]`` for a story of ``n`` samples.

    Returns
    -------
    dict story label -> shift (int).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for story in dict.fromkeys(np.asarray(story_of_sample).tolist()):
        n = int((np.asarray(story_of_sample) == story).sum())
        if n < 2 * min_shift + 1:
            raise ValueError(f"story {story!r} has {n} samples: too short for a circular-shift null of at "
                             f"least {min_shift} samples (needs {2 * min_shift + 1}); lower encoding.null_model.min_shift")
        out[story] = int(rng.integers(min_shift, n - min_shift + 1))
    return out


def apply_shifts(Y: np.ndarray, story_of_sample: np.ndarray, shifts: dict) -> np.ndarray:
    """``Y`` with each story's rows rolled by its shift (:func:`null_shifts`); shape unchanged."""
    out = np.array(Y, copy=True)
    for story, k in shifts.items():
        idx = np.flatnonzero(np.asarray(story_of_sample) == story)
        out[idx] = np.roll(np.asarray(Y)[idx], k, axis=0)
    return out


def _pearson_from_sums(acc: np.ndarray, n: int) -> np.ndarray:
    st, sp, stt, spp, stp = acc
    cov = stp - st * sp / n
    var = (stt - st ** 2 / n) * (spp - sp ** 2 / n)
    out = np.zeros(acc.shape[1])
    ok = var > 0
    out[ok] = cov[ok] / np.sqrt(var[ok])
    return np.clip(out, -1, 1)


def _fold_matrix(fold_features: list, f: int, shape: tuple) -> np.ndarray:
    Xf = np.asarray(fold_features[f])
    if Xf.shape != shape:
        raise ValueError(f"features of fold {f} have shape {Xf.shape}, expected {shape}")
    if not np.isfinite(Xf).all():
        raise ValueError(f"features of fold {f} hold NaN or inf; check the feature extraction")
    return Xf


def cross_validated_encoding(X: np.ndarray, Y: np.ndarray, folds: list[Fold],
                             story_of_sample: np.ndarray | None = None,
                             alphas: np.ndarray | None = None, n_inner: int = 5,
                             inner_gap: int = 5, backend: str = "numpy",
                             target_batch: int | None = 20000, dtype: str = "float32",
                             return_predictions: bool = False,
                             progress: bool = False, shifts: dict | None = None,
                             fold_features: list | None = None, solver: str = "himalaya") -> EncodingResult:
    """Fit and score a ridge encoding model with nested cross-validation.

    Parameters
    ----------
    X : array of shape (n_samples, n_features), features (already delayed), all stories.
    Y : array of shape (n_samples, n_targets), responses. May be a memory map or a
        :class:`StackedRows` of per-story memory maps: targets are read
        in batches of ``target_batch`` columns.
    folds : outer (train, test) index pairs.
    story_of_sample : array of shape (n_samples,), story label of each sample, used for the
        inner leave-one-story-out split; ``None`` treats the data as one story.
    alphas : grid of ridge penalties (default :func:`alpha_grid`).
    n_inner, inner_gap : inner contiguous-block splits when the training set has < 3 stories.
    backend : himalaya backend, ``numpy``, ``torch`` or ``torch_cuda``.
    target_batch : targets per batch (bounds memory for 100k-voxel data).
    dtype : computation dtype (``float32`` or ``float64``).
    fold_features : optional list, one array of the shape of ``X`` per outer fold: fold ``f`` is
        fitted and scored on ``fold_features[f]`` (features fitted per fold, the fold rule);
        ``X`` is then only checked.
    shifts : story label -> circular shift of the responses (:func:`null_shifts`): fits a null
        model on responses rolled against the features, batch by batch.
    solver : ``himalaya`` (RidgeCV / KernelRidgeCV per target batch, the reference) or ``shared``
        (:class:`~brainalign.core.encoding.solvers.SharedRidgeCV`: decompositions made once per
        fold and reused across target batches and alphas; the same alphas and scores).

    Returns
    -------
    EncodingResult
    """
    X = np.asarray(X)
    n_samples, n_targets = Y.shape
    if X.shape[0] != n_samples:
        raise ValueError(f"features have {X.shape[0]} samples but responses have {n_samples}")
    bad_x = ~np.isfinite(X).all(0)
    if bad_x.any():
        raise ValueError(f"features hold NaN or inf in {int(bad_x.sum())} columns (first: "
                         f"{np.flatnonzero(bad_x)[:5].tolist()}); check the feature extraction")
    alphas = alpha_grid() if alphas is None else np.asarray(alphas, dtype=np.float64)
    if solver not in SOLVERS:
        raise ValueError(f"unknown encoding solver {solver!r}; choose one of {SOLVERS}")
    if story_of_sample is None:
        story_of_sample = np.zeros(n_samples, dtype=np.int64)
    story_of_sample = np.asarray(story_of_sample)
    n_folds = len(folds)
    if fold_features is not None and len(fold_features) != n_folds:
        raise ValueError(f"fold_features has {len(fold_features)} entries for {n_folds} folds")
    fold_r = np.zeros((n_folds, n_targets))
    fold_r2 = np.zeros((n_folds, n_targets))
    fold_alpha = np.zeros((n_folds, n_targets))
    preds = np.full((n_samples, n_targets), np.nan, dtype=np.float32) if return_predictions else None
    # running sums for r over the concatenated held-out predictions (original units)
    acc = np.zeros((5, n_targets))
    batch = n_targets if not target_batch else int(target_batch)
    starts = range(0, n_targets, batch)
    with himalaya_backend(backend) as bk:
        for f, (train, test) in enumerate(tqdm(folds, desc="folds", disable=not progress)):
            Xf = X if fold_features is None else _fold_matrix(fold_features, f, X.shape)
            Xtr, Xte = standardize(Xf[train].astype(dtype), Xf[test].astype(dtype))
            splits = inner_splits(train, story_of_sample, n_inner, inner_gap)
            fit_predict = (SharedRidgeCV(bk, bk.asarray(Xtr), bk.asarray(Xte), alphas, splits, dtype).fit_predict
                           if solver == "shared" else None)
            for s in starts:
                sl = slice(s, min(s + batch, n_targets))
                Yb = np.asarray(Y[:, sl], dtype=dtype)
                if shifts:
                    Yb = apply_shifts(Yb, story_of_sample, shifts)
                if f == 0:
                    check_finite_responses(Yb, sl.start)
                # centring, fit, scores and sums stay on the backend's device
                r_b, r2_b, best, sums, raw = _fold_batch(bk, Yb, train, test, Xtr, Xte, alphas, splits,
                                                         batch, preds is not None, fit_predict)
                fold_r[f, sl], fold_r2[f, sl], fold_alpha[f, sl] = r_b, r2_b, best
                acc[:, sl] += sums
                if preds is not None:
                    preds[test, sl] = raw
            # drop this fold's solver and matrices before the next fold builds its own
            fit_predict = Xtr = Xte = Xf = None
    r_concat = _pearson_from_sums(acc, sum(len(t) for _, t in folds))
    edge = np.isclose(fold_alpha, alphas.min()) | np.isclose(fold_alpha, alphas.max())
    return EncodingResult(
        r=fold_r.mean(0), r2=fold_r2.mean(0), r_concat=r_concat,
        alpha=np.median(fold_alpha, axis=0), alpha_at_edge=edge.mean(0),
        fold_r=fold_r, fold_r2=fold_r2, fold_alpha=fold_alpha, predictions=preds)
