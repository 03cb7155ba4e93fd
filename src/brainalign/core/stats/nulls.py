"""Per-target null distributions of cross-validated encoding scores, and their p-values.

The null breaks the link between stimulus and response and keeps the responses' autocorrelation:
each draw circularly shifts every story's responses by at least ``min_shift`` TRs
(:func:`~brainalign.core.encoding.ridge.null_shifts`), then scores the shifted responses with the
same folds and features as the real model.

Fast path (:func:`null_distribution`): the ridge fit is linear in the responses once the penalty is
fixed, so each fold's decomposition of its standardised training features ``X_tr = U S V^T`` is
computed once, and each draw costs only ``U^T Y_tr`` and one product per alpha value:
``pred = X_te V diag(s / (s^2 + alpha)) U^T (Y_tr - mean)``. Each target keeps, in each fold, the
alpha that the real model chose by inner cross-validation (``EncodingResult.fold_alpha``); not
re-choosing it per draw is the usual shortcut of permutation tests for ridge encoding models (the
inner cross-validation would cost K times the real fit). Its calibration is measured, not assumed:
tests/core/test_nulls.py checks the false-positive rate on autocorrelated null targets.

p-value (DESIGN.md, scoring conventions): ``p = (1 + #{null >= r}) / (K + 1)``, one-sided (a model
predicts better than chance). With K draws the smallest reachable p is ``1 / (K + 1)``.
"""
from __future__ import annotations

import numpy as np

from ..encoding.metrics import pearson_r, r2_score
from ..encoding.ridge import apply_shifts, null_shifts, standardize
from .group import bh_fdr  # noqa: F401  (q values of the per-target p)


def shift_draws(story_of_sample: np.ndarray, n_draws: int, min_shift: int = 50, seed: int = 0) -> list[dict]:
    """``n_draws`` independent sets of per-story circular shifts (story label -> shift in TRs)."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    rng = np.random.default_rng(seed)
    return [null_shifts(story_of_sample, min_shift, seed=int(rng.integers(2 ** 31))) for _ in range(int(n_draws))]


def null_distribution(X: np.ndarray, Y, folds: list, story_of_sample: np.ndarray, fold_alpha: np.ndarray,
                      draws: list[dict], dtype: str = "float64", target_batch: int | None = 20000,
                      fold_features=None) -> tuple[np.ndarray, np.ndarray]:
    """r and R^2 of the encoding model on circularly shifted responses, one row per draw.

    Parameters
    ----------
    X : array (n_samples, n_features), the features (fold-independent), or the shape of each
        entry of ``fold_features``.
    Y : array (n_samples, n_targets) or a lazy column view (``StackedRows``): the real responses.
    folds : the outer (train, test) index pairs used for the real scores.
    story_of_sample : array (n_samples,), story label of each sample (shifts are per story).
    fold_alpha : array (n_folds, n_targets), the alpha each target had in each fold.
    draws : list of K shift dicts (:func:`shift_draws`).
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
    K = len(draws)
    null_r = np.zeros((K, n_targets))
    null_r2 = np.zeros((K, n_targets))
    batch = n_targets if not target_batch else int(target_batch)
    for f, (train, test) in enumerate(folds):
        Xf = np.asarray(X if fold_features is None else fold_features[f])
        Xtr, Xte = standardize(Xf[train].astype(dtype), Xf[test].astype(dtype))
        U, s, Vt = np.linalg.svd(Xtr, full_matrices=False)
        XteV = Xte @ Vt.T
        for start in range(0, n_targets, batch):
            sl = slice(start, min(start + batch, n_targets))
            Yb = np.asarray(Y[:, sl], dtype=dtype)
            alphas = fold_alpha[f, sl]
            groups = {a: np.flatnonzero(alphas == a) for a in np.unique(alphas)}
            for k, shifts in enumerate(draws):
                Ys = apply_shifts(Yb, story_of_sample, shifts)
                mu = Ys[train].mean(0)
                UtY = U.T @ (Ys[train] - mu)
                pred = np.empty((len(test), Yb.shape[1]), dtype=dtype)
                for a, idx in groups.items():
                    pred[:, idx] = (XteV * (s / (s * s + a))) @ UtY[:, idx]
                held_out = Ys[test] - mu
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
