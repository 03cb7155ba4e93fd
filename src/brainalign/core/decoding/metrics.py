"""Scores of decoded stimulus embeddings: pairwise matching accuracy and MSE.

Pairwise matching accuracy (2 vs 2 test): for every unordered pair of items (i, j), the decoded
embeddings are matched to the true ones correctly when

    corr(ẑ_i, z_i) + corr(ẑ_j, z_j) > corr(ẑ_i, z_j) + corr(ẑ_j, z_i),

with ``corr`` the Pearson correlation across embedding dimensions. A tie (the two sides equal up to
:data:`TIE_ATOL`) counts 1/2. Chance is 0.5. The correlations come from the matrix
``C[i, j] = corr(ẑ_i, z_j)``, computed block by block (``chunk`` x ``chunk`` blocks of the upper
triangle), so memory stays bounded for tens of thousands of items.
"""
from __future__ import annotations

import numpy as np

#: two sides of a pair whose difference is at most this (correlations lie in [-1, 1]) are a tie
TIE_ATOL = 1e-10


def _check_pair(Z_true, Z_pred, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(Z_true, dtype=np.float64)
    b = np.asarray(Z_pred, dtype=np.float64)
    where = f" ({what})" if what else ""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"Z_true and Z_pred must be 2-D (n_items, n_dims){where}; got shapes "
                         f"{a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"Z_true has shape {a.shape} but Z_pred has shape {b.shape}{where}")
    for name, x in (("Z_true", a), ("Z_pred", b)):
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.any(1).sum())} rows with NaN or inf values{where}")
    return a, b


def _row_standardize(x: np.ndarray, name: str, what: str = "") -> np.ndarray:
    """Rows centred and scaled to unit (population) standard deviation; error on constant rows,
    whose correlation with anything is undefined."""
    constant = np.ptp(x, axis=1) == 0
    if constant.any():
        where = f" ({what})" if what else ""
        first = np.flatnonzero(constant)[:5].tolist()
        raise ValueError(f"{name}: {int(constant.sum())} of {len(x)} rows are constant{where} (first: {first}); "
                         "their correlation across dimensions is undefined" +
                         ("; with one dimension every row is constant" if x.shape[1] == 1 else ""))
    x = x - x.mean(1, keepdims=True)
    return x / x.std(1, keepdims=True)


def _pairwise_counts(Z_true, Z_pred, chunk: int = 2048, what: str = "") -> tuple[float, int]:
    """(number of correctly matched pairs, ties counting 1/2; number of pairs)."""
    a, b = _check_pair(Z_true, Z_pred, what)
    n, d = a.shape
    if n < 2:
        where = f" ({what})" if what else ""
        raise ValueError(f"pairwise accuracy needs at least 2 items, got {n}{where}")
    chunk = int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    zt = _row_standardize(a, "Z_true", what)
    zp = _row_standardize(b, "Z_pred", what)
    diag = np.einsum("ij,ij->i", zp, zt) / d          # C[i, i]
    # S[i, j] = C[i, i] + C[j, j] - C[i, j] - C[j, i] is symmetric with a zero diagonal: the pairs
    # i < j are counted from the blocks on and above the diagonal (a diagonal block: its upper triangle)
    score = 0.0
    for i0 in range(0, n, chunk):
        i1 = min(i0 + chunk, n)
        for j0 in range(i0, n, chunk):
            j1 = min(j0 + chunk, n)
            c_ij = zp[i0:i1] @ zt[j0:j1].T
            c_ji = c_ij.T if i0 == j0 else (zp[j0:j1] @ zt[i0:i1].T).T   # a diagonal block holds both
            s = (diag[i0:i1, None] + diag[None, j0:j1]) - (c_ij + c_ji) / d
            val = (s > TIE_ATOL).astype(np.float64) + 0.5 * (np.abs(s) <= TIE_ATOL)
            if i0 == j0:
                val = np.triu(val, k=1)
            score += float(val.sum())
    return score, n * (n - 1) // 2


def pairwise_accuracy(Z_true, Z_pred, *, chunk: int = 2048) -> tuple[float, int]:
    """Pairwise matching accuracy over all unordered pairs of items.

    Parameters
    ----------
    Z_true : array (n_items, n_dims), the true stimulus embeddings.
    Z_pred : array (n_items, n_dims), the decoded embeddings, row i decoding item i.
    chunk : block size (items) of the correlation matrix held in memory at once; memory is
        about ``4 * chunk**2`` float64 values whatever ``n_items``.

    Returns
    -------
    accuracy : float in [0, 1], the share of pairs matched correctly (ties count 1/2).
    n_pairs : int, ``n_items * (n_items - 1) / 2``.

    Raises
    ------
    ValueError : fewer than 2 items, shapes that differ, non-finite values, or constant rows
        (their correlation is undefined; the message says how many).
    """
    score, n_pairs = _pairwise_counts(Z_true, Z_pred, chunk)
    return score / n_pairs, n_pairs


def pairwise_accuracy_by_fold(Z_true, Z_pred, folds, *, chunk: int = 2048
                              ) -> tuple[float, int, np.ndarray]:
    """Pairwise accuracy over the pairs *within* each fold's test set.

    Parameters
    ----------
    Z_true, Z_pred : arrays (n_samples, n_dims).
    folds : list of (train, test) index arrays (:data:`~brainalign.core.encoding.folds.Fold`);
        only ``test`` is used.

    Returns
    -------
    accuracy : float, pooled over all within-fold pairs (each pair weighs the same, so larger
        folds weigh more than in the mean of ``fold_accuracy``).
    n_pairs : int, the total number of within-fold pairs.
    fold_accuracy : array (n_folds,), the accuracy of each fold.

    Raises
    ------
    ValueError : a fold with fewer than 2 test items (named), or any error of
        :func:`pairwise_accuracy` on a fold's items.
    """
    a, b = _check_pair(Z_true, Z_pred)
    if not len(folds):
        raise ValueError("no folds given")
    total, n_total = 0.0, 0
    fold_acc = np.empty(len(folds))
    for f, fold in enumerate(folds):
        test = np.asarray(fold[1])
        if len(test) < 2:
            raise ValueError(f"fold {f} has {len(test)} test items; pairwise accuracy needs at least 2")
        score, n_pairs = _pairwise_counts(a[test], b[test], chunk, what=f"fold {f}")
        fold_acc[f] = score / n_pairs
        total += score
        n_total += n_pairs
    return total / n_total, n_total, fold_acc


def decoding_mse(Z_true, Z_pred) -> float:
    """Mean squared error over items and dimensions of arrays (n_items, n_dims)."""
    a, b = _check_pair(Z_true, Z_pred)
    if a.size == 0:
        raise ValueError(f"decoding_mse of empty arrays (shape {a.shape})")
    return float(np.mean((a - b) ** 2))
