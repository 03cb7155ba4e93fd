"""One decoding cell: a subject's brain targets, grouped into ROIs and networks, decode one
condition's stimulus features at one layer (cross-validated, with a permutation null).

The items are the TRs of the story data. The encoding features are FIR-delayed (block k at TR t
holds the stimulus of TR t - d_k); the decoder reads the stimulus of TR t - d_0 (block 0) from the
responses at TRs (t - d_0) + d_k for every delay d_k, i.e. the delays applied the other way
(:func:`~brainalign.core.decoding.decode.stimulus_from_delayed`,
:func:`~brainalign.core.decoding.decode.lagged_responses`). Features convolved with an HRF, or not
delayed at all (``response_model`` ``hrf`` / ``none``), are decoded from the responses of the same
TR. Items whose stimulus row is all zero (the padded first TRs of each story, TRs without words
under box resampling) are neither fitted nor scored.

The null (``null_draws``, K draws) breaks the link by permuting the rows of the lagged responses
within each story (circular shifts by default, as the encoding null permutes the responses), over
the scored rows only; each fold keeps the alpha the real decoder chose, and when a draw permutes a
fold's training rows among themselves (folds by story) the fold's decomposition is reused
(:func:`~brainalign.core.decoding.decode.decoding_null`). p = (1 + #{null >= accuracy}) / (K + 1).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .decode import cross_validated_decoding, decoding_null, decoding_p, lagged_responses, stimulus_from_delayed

log = logging.getLogger(__name__)

#: columns of a decoding cell and of ``decoding_scores.parquet``
DECODING_COLUMNS = ["dataset", "subject", "condition", "layer", "roi", "unit", "n_targets", "n_items", "n_pairs",
                    "pairwise_accuracy", "mse", "alpha", "accuracy_null", "p"]

#: values of a ``network`` column that name no network
NO_NETWORK = {"", "none", "nan", "None"}


def decoding_units(targets: pd.DataFrame, units=("roi", "network"), max_targets: int | None = None,
                   seed: int = 0, context: str = "") -> list[tuple[str, str, np.ndarray]]:
    """Groups of targets decoded together.

    Parameters
    ----------
    targets : the subject's targets table (target, roi, network, ...), in response-column order.
    units : columns that group targets: ``roi`` (one unit per ROI) and/or ``network`` (a network's
        targets together; targets whose network is empty or ``none`` belong to none; a network with
        exactly an ROI's targets is that ROI, decoded once).
    max_targets : above this many targets, a unit keeps a seeded random subset (the predictors are
        targets x delays); ``None``: all.

    Returns
    -------
    list of (unit kind, name, column indices) in table order.
    """
    out = []
    for kind in units:
        if kind not in ("roi", "network"):
            raise ValueError(f"decoding.units: unknown unit {kind!r}; choose roi and/or network")
        if kind not in targets:
            if kind == "network":
                log.info("%sthe targets table has no network column: decoding per ROI only", context)
                continue
            raise ValueError(f"{context}the targets table has no {kind!r} column")
        labels = targets[kind].astype(str).to_numpy()
        for name in dict.fromkeys(labels):
            if kind == "network" and name in NO_NETWORK:
                continue
            cols = np.flatnonzero(labels == name)
            same = [n for k, n, c in out if k == "roi" and np.array_equal(c, cols)]
            if kind == "network" and same:
                log.info("%snetwork %s has the same targets as ROI %s: decoded once, as the ROI", context, name,
                         same[0])
                continue
            if max_targets and len(cols) > max_targets:
                rng = np.random.default_rng([int(seed), len(cols), *map(ord, name[:16])])
                cols = np.sort(rng.choice(cols, int(max_targets), replace=False))
            out.append((kind, name, cols))
    if not out:
        raise ValueError(f"{context}no ROI or network to decode from (targets: {len(targets)})")
    return out


def decode_cell(Y: np.ndarray, targets: pd.DataFrame, X: np.ndarray, folds: list, story_of_sample: np.ndarray,
                *, response_model: str = "fir", delays=(1, 2, 3, 4), fold_features: list | None = None,
                units=("roi", "network"), max_targets: int | None = 2000, alphas=None, n_inner: int = 5,
                inner_gap: int = 5, null_draws: list | None = None, seed: int = 0,
                context: str = "") -> pd.DataFrame:
    """Cross-validated decoding of one condition x layer from every ROI / network of a subject.

    Parameters
    ----------
    Y : array (n_samples, n_targets), the responses of all stories (rows in story order).
    targets : table of the ``n_targets`` columns (target, roi[, network]).
    X : array (n_samples, n_features), the condition's TR features as the encoding reads them
        (FIR-delayed when ``response_model`` is ``fir``). With ``fold_features`` (features fitted
        per outer fold), ``X`` is unused and fold f decodes ``fold_features[f]``.
    folds : outer (train, test) index pairs, the encoding's.
    story_of_sample : array (n_samples,), story label of each row (delays never cross stories).
    null_draws : K draws of :func:`brainalign.core.stats.nulls.null_draws` over the *scored* rows
        (see :func:`scored_rows`); ``None`` or empty: no null (p NaN).

    Returns
    -------
    One row per unit: roi (the unit's name), unit (``roi`` / ``network``), n_targets, n_items (scored
    held-out items), n_pairs, pairwise_accuracy (pooled over within-fold pairs), mse (standardised
    stimulus units), alpha (median over folds), accuracy_null (mean over draws), p.
    """
    sos = np.asarray(story_of_sample)
    n_folds = len(folds)
    if fold_features is not None and len(fold_features) != n_folds:
        raise ValueError(f"{context}fold_features has {len(fold_features)} entries for {n_folds} folds")
    mats = list(fold_features) if fold_features is not None else [X]
    Zs, lags = [], [0]
    for M in mats:
        M = np.asarray(M)
        if M.shape[0] != len(sos):
            raise ValueError(f"{context}features have {M.shape[0]} rows, responses {len(sos)}")
        if response_model == "fir":
            Z, lags = stimulus_from_delayed(M, list(delays))
        else:
            Z = M
        Zs.append(np.asarray(Z, dtype=np.float64))
    rows = scored_rows(Zs, context)
    rows_of_fold = _folds_on(rows, folds)
    out = []
    for kind, name, cols in decoding_units(targets, units, max_targets, seed, context):
        B = lagged_responses(np.asarray(Y[:, cols], dtype=np.float64), sos, list(lags))[rows]
        acc_num = mse_num = 0.0
        n_pairs = n_items = 0
        f_alpha = []
        null_num = np.zeros(len(null_draws or []))
        for f, fold in enumerate(rows_of_fold):
            Z = Zs[f if fold_features is not None else 0][rows]
            where = f"{context}{kind} {name}, fold {f}: "
            if len(fold[1]) < 2:
                raise ValueError(f"{where}{len(fold[1])} held-out item(s); pairwise accuracy needs at least 2")
            res = cross_validated_decoding(B, Z, [fold], sos[rows], alphas=alphas, n_inner=n_inner,
                                           inner_gap=inner_gap, drop_zero_rows=False)
            acc_num += res.pairwise_accuracy * res.n_pairs
            mse_num += res.mse * res.n_items
            n_pairs += res.n_pairs
            n_items += res.n_items
            f_alpha.append(float(res.fold_alpha[0]))
            if null_draws:
                null_num += np.asarray(decoding_null(B, Z, [fold], sos[rows], res.fold_alpha, null_draws,
                                                     drop_zero_rows=False)) * res.n_pairs
        acc = acc_num / n_pairs
        null_acc = null_num / n_pairs if null_draws else None
        out.append({"roi": name, "unit": kind, "n_targets": len(cols), "n_items": n_items, "n_pairs": n_pairs,
                    "pairwise_accuracy": acc, "mse": mse_num / n_items, "alpha": float(np.median(f_alpha)),
                    "accuracy_null": float(null_acc.mean()) if null_acc is not None else np.nan,
                    "p": decoding_p(acc, null_acc) if null_acc is not None else np.nan})
    return pd.DataFrame(out)


def scored_rows(Zs: list, context: str = "") -> np.ndarray:
    """Rows whose stimulus is not all zero in every feature matrix (the padded first TRs of each
    story and TRs without words carry no stimulus to decode)."""
    keep = np.ones(len(Zs[0]), dtype=bool)
    for Z in Zs:
        keep &= np.any(Z != 0, axis=1)
    if not keep.any():
        raise ValueError(f"{context}every stimulus row is zero: nothing to decode")
    return np.flatnonzero(keep)


def _folds_on(rows: np.ndarray, folds: list) -> list:
    """The folds as positions within ``rows`` (the scored rows)."""
    pos = np.full(int(rows.max()) + 1, -1)
    pos[rows] = np.arange(len(rows))
    out = []
    for train, test in folds:
        tr = pos[np.asarray(train)[np.asarray(train) <= rows.max()]]
        te = pos[np.asarray(test)[np.asarray(test) <= rows.max()]]
        out.append((tr[tr >= 0], te[te >= 0]))
    return out
