"""Per-target null distributions of cross-validated encoding scores, and their p-values.

The null breaks the link between stimulus and response and keeps the responses' autocorrelation.
Two kinds of draw (``encoding.null_model.method``):

- ``shift`` (default, :func:`shift_draws`): every story's responses are circularly shifted by at
  least ``min_shift`` TRs (:func:`~brainalign.core.encoding.ridge.null_shifts`); the whole
  autocorrelation is kept, up to the one seam where the story's end meets its start.
- ``block_permutation`` (:func:`block_permutation_draws`): every story's responses are cut into
  consecutive blocks of ``block_len`` TRs (the last one may be shorter) and the blocks are
  shuffled; the autocorrelation within a block is kept, that across block edges is broken.

Either way a draw is, or becomes (:func:`draw_index`), one index array ``idx`` of shape
(n_samples,) that permutes rows within stories: the null responses are ``Y[idx]``. Each draw is
scored with the same folds and features as the real model.

Fast path (:func:`null_distribution`): the ridge fit is linear in the responses once the penalty is
fixed, so each fold's decomposition of its standardised training features ``X_tr = U S V^T`` is
computed once, and each draw costs only ``U^T Y_tr`` and one product per alpha value:
``pred = X_te V diag(s / (s^2 + alpha)) U^T (Y_tr - mean)``. Each target keeps, in each fold, the
alpha that the real model chose by inner cross-validation (``EncodingResult.fold_alpha``); not
re-choosing it per draw is the usual shortcut of permutation tests for ridge encoding models (the
inner cross-validation would cost K times the real fit). Its calibration is measured, not assumed:
tests/core/test_nulls.py checks the false-positive rate on autocorrelated null targets.

p-value (DESIGN.md, scoring conventions): ``p = (1 + #{null >= r}) / (K + 1)``, one-sided (a model
predicts better than chance). With K draws the smallest reachable p is ``1 / (K + 1)``
(:func:`check_reachable_p` warns when that is above the asked-for alpha).
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ..encoding.metrics import pearson_r, r2_score
from ..encoding.ridge import null_shifts, standardize
from .group import bh_fdr  # noqa: F401  (q values of the per-target p)

log = logging.getLogger(__name__)

#: the kinds of null draw (``encoding.null_model.method``)
METHODS = ("shift", "block_permutation")


def shift_draws(story_of_sample: np.ndarray, n_draws: int, min_shift: int = 50, seed: int = 0) -> list[dict]:
    """``n_draws`` independent sets of per-story circular shifts (story label -> shift in TRs)."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    rng = np.random.default_rng(seed)
    return [null_shifts(story_of_sample, min_shift, seed=int(rng.integers(2 ** 31))) for _ in range(int(n_draws))]


def _story_rows(story_of_sample: np.ndarray) -> list[tuple[object, np.ndarray]]:
    """(label, row indices) per story, in order of first appearance."""
    sos = np.asarray(story_of_sample)
    return [(story, np.flatnonzero(sos == story)) for story in dict.fromkeys(sos.tolist())]


def block_permutation_draws(story_of_sample: np.ndarray, n_draws: int, block_len: int = 10,
                            seed: int = 0) -> list[np.ndarray]:
    """``n_draws`` independent block permutations of every story's rows.

    Each story's rows are cut into consecutive blocks of ``block_len`` (the last one shorter when
    ``block_len`` does not divide the story's length); a draw puts the blocks in a random order,
    each block's rows staying contiguous and in their order. Stories are permuted independently and
    rows never leave their story.

    Parameters
    ----------
    story_of_sample : array (n_samples,), story label of each sample (a story's rows need not be
        contiguous; "consecutive" is in the order of its rows). Labels name the story in errors.
    n_draws : K >= 1.
    block_len : block length in samples (TRs), >= 1.

    Returns
    -------
    list of K int64 arrays (n_samples,): draw ``k``'s null responses are ``Y[draws[k]]``.

    Raises
    ------
    ValueError : a story shorter than two blocks (``2 * block_len`` samples).
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    block_len = int(block_len)
    if block_len < 1:
        raise ValueError(f"block_len must be >= 1, got {block_len}")
    stories = _story_rows(story_of_sample)
    for story, rows in stories:
        if len(rows) < 2 * block_len:
            raise ValueError(f"story {story!r} has {len(rows)} samples: too short for a block-permutation null "
                             f"with block_len {block_len} (needs at least 2 blocks, {2 * block_len} samples); "
                             "lower encoding.null_model.block_len")
    # per story, the block boundaries once; a draw concatenates the blocks in a random order
    cuts = [np.split(rows, np.arange(block_len, len(rows), block_len)) for _, rows in stories]
    rng = np.random.default_rng(seed)
    n = len(np.asarray(story_of_sample))
    out = []
    for _ in range(int(n_draws)):
        idx = np.empty(n, dtype=np.int64)
        for (_, rows), blocks in zip(stories, cuts):
            idx[rows] = np.concatenate([blocks[b] for b in rng.permutation(len(blocks))])
        out.append(idx)
    return out


def null_draws(method: str, story_of_sample: np.ndarray, n_draws: int, *, min_shift: int = 50,
               block_len: int = 10, seed: int = 0) -> list:
    """K draws of ``method`` (:data:`METHODS`): shift dicts or block-permutation index arrays."""
    if method == "shift":
        return shift_draws(story_of_sample, n_draws, min_shift, seed=seed)
    if method == "block_permutation":
        return block_permutation_draws(story_of_sample, n_draws, block_len, seed=seed)
    raise ValueError(f"unknown null method {method!r}; choose one of {METHODS} (encoding.null_model.method)")


def draw_index(draw, story_of_sample: np.ndarray) -> np.ndarray:
    """One draw as the index array ``idx`` with null responses ``Y[idx]``.

    ``draw`` is a shift dict (story label -> circular shift, :func:`shift_draws`; the same rows as
    :func:`~brainalign.core.encoding.ridge.apply_shifts`) or already an index array (n_samples,),
    e.g. from :func:`block_permutation_draws`.
    """
    sos = np.asarray(story_of_sample)
    if isinstance(draw, dict):
        idx = np.arange(len(sos), dtype=np.int64)
        for story, k in draw.items():
            rows = np.flatnonzero(sos == story)
            if not len(rows):
                raise ValueError(f"shift draw for story {story!r}, which is not in story_of_sample")
            idx[rows] = np.roll(rows, int(k))
        return idx
    idx = np.asarray(draw)
    if idx.shape != sos.shape or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"a draw must be a shift dict or an integer index array of shape {sos.shape}, "
                         f"got {idx.dtype} {idx.shape}")
    return idx


def apply_draw(Y: np.ndarray, draw, story_of_sample: np.ndarray) -> np.ndarray:
    """The null responses of one draw (shift dict or index array): ``Y[draw_index(draw)]``."""
    return np.asarray(Y)[draw_index(draw, story_of_sample)]


class PermutedRows:
    """A lazy view of responses with their rows reordered by one draw: ``view[:, cols]`` reads the
    columns of ``Y`` (an array or a ``StackedRows``) and returns ``Y[:, cols][idx]``; used for a
    single full refit of the null (``cross_validated_encoding`` on ``PermutedRows(Y, idx)``)."""

    def __init__(self, Y, idx: np.ndarray):
        self.Y, self.idx = Y, np.asarray(idx)
        if self.idx.shape != (Y.shape[0],):
            raise ValueError(f"index of shape {self.idx.shape} for responses with {Y.shape[0]} rows")
        self.shape = tuple(Y.shape)
        self.dtype = getattr(Y, "dtype", None)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        out = np.asarray(self.Y[:, cols])[self.idx]
        return out if isinstance(rows, slice) and rows == slice(None) else out[rows]

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


def smallest_reachable_p(n_draws: int) -> float:
    """``1 / (K + 1)``: the smallest p of :func:`permutation_p` with K draws."""
    return 1.0 / (int(n_draws) + 1.0)


def check_reachable_p(n_draws: int, alpha: float = 0.05, context: str = "") -> bool:
    """Warn (logging) when K draws cannot give any target ``p <= alpha``, i.e. ``1 / (K + 1) > alpha``.

    Returns
    -------
    True when alpha is reachable, False (after the warning) when it is not.
    """
    K, alpha = int(n_draws), float(alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha} (encoding.null_model.alpha)")
    p_min = smallest_reachable_p(K)
    if p_min <= alpha:
        return True
    need = max(1, math.ceil(1.0 / alpha) - 1)
    while smallest_reachable_p(need) > alpha:   # guard against rounding of 1 / alpha
        need += 1
    log.warning("%sK = %d null draws: the smallest reachable p is 1 / (K + 1) = %.4g > alpha = %g, so no "
                "target can reach p <= %g; raise encoding.null_model.n_draws to at least %d",
                f"{context}: " if context else "", K, p_min, alpha, alpha, need)
    return False


def null_distribution(X: np.ndarray, Y, folds: list, story_of_sample: np.ndarray, fold_alpha: np.ndarray,
                      draws: list, dtype: str = "float64", target_batch: int | None = 20000,
                      fold_features=None) -> tuple[np.ndarray, np.ndarray]:
    """r and R^2 of the encoding model on null responses (shifted or block-permuted), one row per draw.

    Parameters
    ----------
    X : array (n_samples, n_features), the features (fold-independent), or the shape of each
        entry of ``fold_features``.
    Y : array (n_samples, n_targets) or a lazy column view (``StackedRows``): the real responses.
    folds : the outer (train, test) index pairs used for the real scores.
    story_of_sample : array (n_samples,), story label of each sample (draws are per story).
    fold_alpha : array (n_folds, n_targets), the alpha each target had in each fold.
    draws : list of K draws, each a shift dict (:func:`shift_draws`) or an index array
        (n_samples,) (:func:`block_permutation_draws`); see :func:`draw_index`.
    fold_features : optional per-fold features, as in ``cross_validated_encoding``.

    Returns
    -------
    null_r, null_r2 : float arrays (K, n_targets): the mean over folds of each draw's per-fold
    scores (as the real ``r`` and ``r2``).
    """
    n_samples, n_targets = Y.shape
    fold_alpha = np.asarray(fold_alpha, dtype=np.float64)
    if fold_alpha.shape != (len(folds), n_targets):
        raise ValueError(f"fold_alpha has shape {fold_alpha.shape}, expected ({len(folds)}, {n_targets})")
    if len(np.asarray(story_of_sample)) != n_samples:
        raise ValueError(f"story_of_sample has {len(np.asarray(story_of_sample))} entries for {n_samples} samples")
    index = [draw_index(d, story_of_sample) for d in draws]   # every draw is one fancy index
    K = len(index)
    null_r = np.zeros((K, n_targets))
    null_r2 = np.zeros((K, n_targets))
    batch = n_targets if not target_batch else int(target_batch)
    for f, (train, test) in enumerate(folds):
        Xf = np.asarray(X if fold_features is None else fold_features[f])
        Xtr, Xte = standardize(Xf[train].astype(dtype), Xf[test].astype(dtype))
        U, s, Vt = np.linalg.svd(Xtr, full_matrices=False)
        XteV = Xte @ Vt.T
        rows = [(idx[train], idx[test]) for idx in index]   # the draw's rows of this fold
        for start in range(0, n_targets, batch):
            sl = slice(start, min(start + batch, n_targets))
            Yb = np.asarray(Y[:, sl], dtype=dtype)
            alphas = fold_alpha[f, sl]
            groups = {a: np.flatnonzero(alphas == a) for a in np.unique(alphas)}
            for k, (tr_rows, te_rows) in enumerate(rows):
                Ytr = Yb[tr_rows]
                mu = Ytr.mean(0)
                UtY = U.T @ (Ytr - mu)
                pred = np.empty((len(test), Yb.shape[1]), dtype=dtype)
                for a, idx in groups.items():
                    pred[:, idx] = (XteV * (s / (s * s + a))) @ UtY[:, idx]
                held_out = Yb[te_rows] - mu
                null_r[k, sl] += pearson_r(held_out, pred)
                null_r2[k, sl] += r2_score(held_out, pred)
    return null_r / len(folds), null_r2 / len(folds)


def permutation_p(r: np.ndarray, null_r: np.ndarray) -> np.ndarray:
    """One-sided p per target: ``(1 + #{null >= r}) / (K + 1)``.

    Parameters
    ----------
    r : array (n_targets,); null_r : array (K, n_targets).
    """
    null_r = np.asarray(null_r)
    return (1.0 + (null_r >= np.asarray(r)[None, :]).sum(0)) / (null_r.shape[0] + 1.0)
