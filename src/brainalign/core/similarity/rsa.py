"""Similarity of two representations of the same items: RSA and linear CKA.

- Representational similarity analysis (RSA): each representation gives a representational
  dissimilarity matrix (RDM) over the items (:func:`rdm`, condensed upper triangle, as
  :func:`scipy.spatial.distance.pdist`); RSA is the Spearman correlation of the two RDMs
  (:func:`rsa_from_rdms`), so it depends only on the rank order of the dissimilarities.
- Linear centred kernel alignment (CKA, Kornblith et al. 2019): with column-centred X and Y,
  ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``; invariant to orthogonal transforms and
  isotropic scaling of either representation, not to anisotropic scaling.

Items are rows; the two representations may have different numbers of features.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import rankdata

METRICS = ("correlation", "euclidean")


def _items(X, name: str, min_items: int = 2) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_items, n_features), got shape {X.shape}")
    if X.shape[0] < min_items:
        raise ValueError(f"{name} has {X.shape[0]} items; at least {min_items} are needed")
    if X.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {X.shape})")
    bad = ~np.isfinite(X)
    if bad.any():
        raise ValueError(f"{name} has NaN or inf values in {int(bad.any(1).sum())} rows")
    return X


def _same_items(X, Y, min_items: int) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim == 2 and Y.ndim == 2 and X.shape[0] != Y.shape[0]:
        raise ValueError(f"the representations have different item counts: X has {X.shape[0]} rows, "
                         f"Y has {Y.shape[0]}")
    return _items(X, "X", min_items), _items(Y, "Y", min_items)


def rdm(X, metric: str = "correlation") -> np.ndarray:
    """Representational dissimilarity matrix, condensed.

    Parameters
    ----------
    X : array (n_items, n_features).
    metric : ``"correlation"`` (1 - Pearson r between the items' feature vectors) or
        ``"euclidean"``.

    Returns
    -------
    array (n_items * (n_items - 1) / 2,): the dissimilarities of the pairs (i, j), i < j, in the
    order of :func:`scipy.spatial.distance.pdist` (``squareform`` makes the square matrix).

    Raises
    ------
    ValueError : fewer than 2 items, an unknown metric, or (``correlation``) constant rows.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown RDM metric {metric!r}; choose one of {METRICS}")
    X = _items(X, "X")
    if metric == "correlation":
        constant = np.ptp(X, axis=1) == 0
        if constant.any():
            raise ValueError(f"{int(constant.sum())} of {len(X)} items have constant feature vectors; their "
                             "correlation distance is undefined (use metric='euclidean' or drop them)")
    return pdist(X, metric=metric)


def rsa_from_rdms(d1, d2) -> float:
    """Spearman correlation of two condensed RDMs (ranks with ties averaged, then Pearson r).

    Parameters
    ----------
    d1, d2 : arrays (n_pairs,), e.g. from :func:`rdm` on the same items.

    Raises
    ------
    ValueError : lengths that differ, fewer than 3 pairs, non-finite values, or a constant RDM.
    """
    a = np.asarray(d1, dtype=np.float64).ravel()
    b = np.asarray(d2, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"the RDMs have different lengths ({a.size} and {b.size}): not the same items")
    if a.size < 3:
        raise ValueError(f"RSA needs at least 3 pairs (3 items), got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("an RDM has NaN or inf values")
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    na, nb = np.sqrt(ra @ ra), np.sqrt(rb @ rb)
    if na == 0 or nb == 0:
        raise ValueError("an RDM is constant (all dissimilarities equal); its rank correlation is undefined")
    return float(ra @ rb / (na * nb))


def rsa(X, Y, metric: str = "correlation") -> float:
    """RSA of two representations of the same items: Spearman r of their RDMs.

    Parameters
    ----------
    X : array (n_items, p_x); Y : array (n_items, p_y), rows are the same items in the same order.
    metric : the RDM dissimilarity (:func:`rdm`).

    Raises
    ------
    ValueError : different item counts, fewer than 3 items, or any error of :func:`rdm`.
    """
    X, Y = _same_items(X, Y, 3)
    return rsa_from_rdms(rdm(X, metric), rdm(Y, metric))


def linear_cka(X, Y) -> float:
    """Linear CKA of two representations of the same items.

    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` with column-centred X and Y, computed in the
    feature space when items outnumber the features (no n x n matrix; memory is
    ``p_x^2 + p_y^2 + p_x p_y``), and with the n x n Gram matrices otherwise (the same value:
    ``||Y^T X||_F^2 = tr(X X^T Y Y^T)``).

    Parameters
    ----------
    X : array (n_items, p_x); Y : array (n_items, p_y).

    Returns
    -------
    float in [0, 1].

    Raises
    ------
    ValueError : different item counts, fewer than 2 items, or a representation that is constant
        across items (zero after centring).
    """
    X, Y = _same_items(X, Y, 2)
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    for name, x in (("X", X), ("Y", Y)):
        if not np.any(x):
            raise ValueError(f"{name} is constant across items (zero after centring); CKA is undefined")
    n, px, py = X.shape[0], X.shape[1], Y.shape[1]
    if n > px + py:
        cross = np.sum((Y.T @ X) ** 2)
        nx = np.linalg.norm(X.T @ X)
        ny = np.linalg.norm(Y.T @ Y)
    else:
        K, L = X @ X.T, Y @ Y.T
        cross = np.sum(K * L)
        nx, ny = np.linalg.norm(K), np.linalg.norm(L)
    return float(cross / (nx * ny))


def similarity_table(features_a, features_b, *, max_items: int | None = None, seed: int = 0,
                     metric: str = "correlation") -> dict:
    """RSA and linear CKA of two representations of the same items.

    CKA uses every item (its cost is linear in the items). RSA builds RDMs of
    ``n (n - 1) / 2`` pairs, so with ``max_items`` it uses a random subset of that many items
    (drawn without replacement with ``seed``, the same items in both representations, in their
    original order).

    Parameters
    ----------
    features_a : array (n_items, p_a); features_b : array (n_items, p_b).
    max_items : the most items RSA uses (>= 3), or None for all.
    seed : seed of the item subset.
    metric : RDM dissimilarity for RSA.

    Returns
    -------
    dict with ``rsa``, ``cka`` (floats), ``n_items`` (items used by CKA) and ``n_items_rsa``.
    """
    A, B = _same_items(features_a, features_b, 3)
    n = A.shape[0]
    items = np.arange(n)
    if max_items is not None:
        if int(max_items) < 3:
            raise ValueError(f"max_items must be >= 3 for RSA, got {max_items}")
        if int(max_items) < n:
            items = np.sort(np.random.default_rng(seed).choice(n, int(max_items), replace=False))
    return {"rsa": rsa(A[items], B[items], metric), "cka": linear_cka(A, B),
            "n_items": int(n), "n_items_rsa": int(len(items))}
