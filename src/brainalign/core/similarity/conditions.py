"""Similarity of a condition's representation to its base model's, per layer (RSA and linear CKA),
on the items both are scored on: the TRs of the held-out stories.

A condition's TR features are FIR-delayed copies of one stimulus matrix; only the first delay block
(the stimulus itself) is compared. Features fitted per outer fold (derived and brain-tuned
conditions) are taken, for each TR, from the fold in which that TR is held out: the representation
the encoding and decoding scores were computed on. Rows that are all zero in either condition (the
padded first TRs of each story) are left out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..decoding.decode import stimulus_from_delayed
from .rsa import similarity_table as _pair_similarity

#: columns of :func:`similarity_rows`
SIMILARITY_COLUMNS = ["condition", "base_condition", "layer", "rsa", "cka", "n_items", "n_items_rsa", "note"]


def held_out_features(by_fold: list, folds: list, response_model: str = "fir", delays=(1, 2, 3, 4)) -> np.ndarray:
    """The stimulus features of every held-out row, from the fold that holds it out.

    Parameters
    ----------
    by_fold : one array (n_samples, n_features) per outer fold, or a single array for features that
        do not depend on the fold.
    folds : outer (train, test) index pairs.

    Returns
    -------
    array (n_samples, n_dims): block 0 of the delayed features (all of them when not ``fir``);
    NaN rows where no fold holds the row out.
    """
    mats = list(by_fold)
    out = None
    for f, (_, test) in enumerate(folds):
        M = np.asarray(mats[f if len(mats) > 1 else 0])
        Z = stimulus_from_delayed(M, list(delays))[0] if response_model == "fir" else M
        if out is None:
            out = np.full(Z.shape, np.nan)
        out[np.asarray(test)] = Z[np.asarray(test)]
    return out


def similarity_rows(A: np.ndarray, B: np.ndarray, *, max_items_rsa: int = 2000, seed: int = 0) -> dict:
    """RSA (Spearman correlation of correlation-distance RDMs) and linear CKA of two item x feature
    matrices on their common valid rows (finite and not all zero in both). RSA uses at most
    ``max_items_rsa`` items (a seeded random subset: the RDM has n^2 / 2 entries); CKA uses all."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"the two representations have {A.shape[0]} and {B.shape[0]} items")
    ok = np.isfinite(A).all(1) & np.isfinite(B).all(1) & np.any(A != 0, 1) & np.any(B != 0, 1)
    if ok.sum() < 3:
        raise ValueError(f"only {int(ok.sum())} items with features in both representations; RSA and CKA need 3")
    return _pair_similarity(A[ok], B[ok], max_items=max_items_rsa or None, seed=seed)


def similarity_table(pairs: list, features: dict, folds: list, layouts: dict, skipped: list = (), *,
                     max_items_rsa: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``similarity.csv``: one row per (condition, base condition, layer) of ``pairs`` and one row
    (NaN scores, ``note`` the reason) per skipped condition.

    features : (condition, layer) -> list of per-fold arrays (or a one-element list).
    layouts : condition -> {"response_model", "delays"}.
    """
    rows = []
    for cond, base, layer in pairs:
        a = held_out_features(features[(cond, layer)], folds, **layouts[cond])
        b = held_out_features(features[(base, layer)], folds, **layouts[base])
        rows.append({"condition": cond, "base_condition": base, "layer": int(layer),
                     **similarity_rows(a, b, max_items_rsa=max_items_rsa, seed=seed), "note": ""})
    for cond, why in skipped:
        rows.append({"condition": cond, "base_condition": "", "layer": -1, "rsa": np.nan, "cka": np.nan,
                     "n_items": 0, "n_items_rsa": 0, "note": f"skipped: {why}"})
    return pd.DataFrame(rows, columns=SIMILARITY_COLUMNS)
