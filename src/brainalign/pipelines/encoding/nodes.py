"""Thin adapters from catalog entries to brainalign.core (encoding)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core.encoding.folds import folds_from_table
from ...core.representations.derived import fold_features, is_per_fold
from ...core.encoding.ridge import StackedRows, alpha_grid, cross_validated_encoding, null_shifts
from ...core.stats.group import bh_fdr
from ...core.stats.nulls import METHODS as NULL_METHODS
from ...core.stats.nulls import PermutedRows, check_reachable_p, null_distribution, null_draws, permutation_p
from ...core.stats.summaries import BOOTSTRAP_COLUMNS, NULL_COLUMNS, SCORE_COLUMNS

log = logging.getLogger(__name__)


def ridge_settings(params: dict) -> dict:
    """The ``cross_validated_encoding`` settings of the ``encoding`` parameters (alpha grid, inner
    folds, backend, batch, dtype, solver), the same for every cell that fits."""
    a = params.get("alphas", {})
    return dict(alphas=alpha_grid(float(a.get("low", 1e-2)), float(a.get("high", 1e8)), int(a.get("n", 21))),
                n_inner=int(params.get("n_inner", 5)), inner_gap=int(params.get("inner_gap", 5)),
                backend=params.get("backend", "numpy"), target_batch=params.get("target_batch"),
                dtype=params.get("dtype", "float32"), solver=params.get("solver", "himalaya"))


def fit_encoding(responses: dict, targets: pd.DataFrame, features: dict, folds: pd.DataFrame,
                 grids: pd.DataFrame, params: dict, dataset: str, *, subject: str, condition: str,
                 layer: int) -> pd.DataFrame:
    """Cross-validated ridge encoding of one subject x condition x layer cell.

    Returns
    -------
    The score table of the cell (SCORE_COLUMNS), one row per target; empty for an excluded
    subject. Never holds NaN.
    """
    if len(targets) == 0:
        log.warning("subject %s has no usable targets (excluded in data_prep): no scores for %s, layer %d",
                    subject, condition, layer)
        return pd.DataFrame(columns=SCORE_COLUMNS)
    stories = grids["story"].tolist()
    fold_list = folds_from_table(folds)
    # features fitted per outer fold (derived conditions, the fold rule): fold f uses its own
    per_fold = is_per_fold(features)
    X_by_fold = _FoldMatrices(features, stories, len(fold_list)) if per_fold else None  # one fold at a time
    X = X_by_fold[0] if per_fold else np.concatenate([np.asarray(features[s]) for s in stories])
    Y = StackedRows([responses[s] for s in stories], stories)  # lazy: read by target batches
    check_tr_grid(features, responses, grids, subject)
    story_of_sample = np.repeat(np.arange(len(stories)), grids["n_trs"].to_numpy())
    kwargs = dict(ridge_settings(params), fold_features=X_by_fold)
    boot = params.get("bootstrap") or {}
    res = cross_validated_encoding(X, Y, fold_list, story_of_sample, return_predictions=bool(boot.get("enabled")),
                                   **kwargs)
    null = params.get("null_model") or {}
    null_res = null_dist = None
    n_draws = int(null.get("n_draws") or 0)
    method = str(null.get("method") or "shift")
    min_shift, block_len = int(null.get("min_shift", 50)), int(null.get("block_len", 10))
    # story names as labels, so that a story too short for the null is named in the error
    named = np.asarray(stories, dtype=object)[story_of_sample]
    if null.get("enabled") and method not in NULL_METHODS:
        raise ValueError(f"unknown encoding.null_model.method {method!r}; choose one of {NULL_METHODS}")
    what = (f"circular-shift draws (min shift {min_shift} TRs)" if method == "shift"
            else f"block-permutation draws (blocks of {block_len} TRs)")
    if null.get("enabled") and n_draws > 0:
        # K draws, the same for every condition and layer of a subject (paired nulls), another
        # per subject; each fold's fit is reused with the alphas the real model chose
        draws = null_draws(method, named, n_draws, min_shift=min_shift, block_len=block_len,
                           seed=_subject_seed(int(params.get("seed", 0)), subject))
        check_reachable_p(n_draws, float(null.get("alpha", 0.05)), context=f"{subject} {condition} layer {layer}")
        null_dist = null_distribution(X, Y, fold_list, named, res.fold_alpha, draws,
                                      dtype=params.get("dtype", "float32"), target_batch=params.get("target_batch"),
                                      fold_features=X_by_fold)
        log.debug("%s %s layer %d: null model of %d %s; smallest p %.4f",
                  subject, condition, layer, n_draws, what, 1 / (n_draws + 1))
    elif null.get("enabled") and method == "shift":
        # one draw per subject and layer (the same for every condition of the subject at that layer)
        shifts = null_shifts(story_of_sample, min_shift,
                             seed=_subject_seed(int(params.get("seed", 0)), subject) * 1000 + int(layer))
        log.debug("%s %s layer %d: null model with responses circularly shifted by %s TRs", subject,
                  condition, layer, {stories[k]: v for k, v in shifts.items()})
        null_res = cross_validated_encoding(X, Y, fold_list, story_of_sample, shifts=shifts,
                                            **kwargs)
    elif null.get("enabled"):
        # one block permutation, seeded per subject and layer, with a full refit
        (idx,) = null_draws(method, named, 1, min_shift=min_shift, block_len=block_len,
                            seed=_subject_seed(int(params.get("seed", 0)), subject) * 1000 + int(layer))
        log.debug("%s %s layer %d: null model with responses in permuted blocks of %d TRs", subject,
                  condition, layer, block_len)
        null_res = cross_validated_encoding(X, PermutedRows(Y, idx), fold_list, story_of_sample, **kwargs)
    out = pd.DataFrame({"dataset": dataset, "subject": subject, "condition": condition, "layer": int(layer),
                        "target": targets["target"].to_numpy(), "roi": targets["roi"].to_numpy(),
                        "r": res.r, "r2": res.r2, "alpha": res.alpha, "r_concat": res.r_concat,
                        "alpha_at_edge": res.alpha_at_edge})[SCORE_COLUMNS]
    if null_res is not None:
        out["r_null"] = null_res.r
        out["r2_null"] = null_res.r2
    if null_dist is not None:
        null_r, null_r2 = null_dist
        out["r_null"] = null_r.mean(0)
        out["r2_null"] = null_r2.mean(0)
        out["p"] = permutation_p(res.r, null_r)
        out["q"] = bh_fdr(out["p"].to_numpy())   # over the targets of this cell
    if boot.get("enabled"):
        _add_bootstrap(out, Y, res.predictions, fold_list, named, boot,
                       seed=_subject_seed(int(params.get("seed", 0)), subject))
    if not np.isfinite(out[["r", "r2", "alpha", "r_concat"] + [c for c in NULL_COLUMNS + BOOTSTRAP_COLUMNS
                                                              if c in out]]
                       .to_numpy(float)).all():
        raise FloatingPointError(f"non-finite scores for subject {subject}, {condition}, layer {layer}")
    log.info("%s %s layer %d: mean r %.3f over %d targets (alpha at grid edge for %.0f%%)", subject,
             condition, layer, out["r"].mean(), len(out), 100 * out["alpha_at_edge"].mean())
    return out


DROP_COLUMNS = ["subject", "condition", "base_condition", "property", "method", "layer", "target", "roi", "r_base",
                "r_removed", "drop", "p", "q", "roi_drop", "roi_p"]


def fit_removal_drop(responses: dict, targets: pd.DataFrame, base: dict, removed: dict, folds: pd.DataFrame,
                     grids: pd.DataFrame, params: dict, removal: dict, *, subject: str, condition: str, source: str,
                     prop: str, method: str, layer: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The drop in alignment when ``prop`` is removed: the source's features and the removed ones
    (fitted per fold) are encoded with the same folds and ridge settings, and the held-out
    predictions compared by the paired block-swap permutation test (core.stats.drop), per target
    and per ROI (mean over the ROI's targets, the same draws).

    Returns
    -------
    One row per target (:data:`DROP_COLUMNS`): r_base, r_removed (fold-mean r, as the score
    table), drop = r_base - r_removed, one-sided p (removal lowers alignment), q (BH over the
    cell's targets), roi_drop and roi_p (the target's ROI); and one row per ROI (subject,
    condition, layer, roi, drop, p, null: the n_perm draws of the ROI's drop, float32), which the
    analysis combines over subjects."""
    from ...core.stats.drop import paired_drop_test

    if len(targets) == 0:
        return pd.DataFrame(columns=DROP_COLUMNS), pd.DataFrame(columns=["subject", "condition", "layer", "roi",
                                                                         "drop", "p", "null"])
    stories = grids["story"].tolist()
    fold_list = folds_from_table(folds)
    story_of_sample = np.repeat(np.arange(len(stories)), grids["n_trs"].to_numpy())
    named = np.asarray(stories, dtype=object)[story_of_sample]
    Y = StackedRows([responses[s] for s in stories], stories)
    kwargs = dict(ridge_settings(params), return_predictions=True)
    X_base = np.concatenate([np.asarray(base[s]) for s in stories])
    res_base = cross_validated_encoding(X_base, Y, fold_list, story_of_sample, **kwargs)
    by_fold = _FoldMatrices(removed, stories, len(fold_list))
    res_rm = cross_validated_encoding(by_fold[0], Y, fold_list, story_of_sample, fold_features=by_fold, **kwargs)
    test = removal.get("drop_test") or {}
    out = paired_drop_test(Y, res_base.predictions, res_rm.predictions, fold_list, named,
                           block_len=int(test.get("block_len", 10)), n_perm=int(test.get("n_perm", 1000)),
                           seed=_subject_seed(int(test.get("seed", 0)), subject), groups=targets["roi"].to_numpy())
    roi = targets["roi"].to_numpy()
    table = pd.DataFrame({"subject": subject, "condition": condition, "base_condition": source, "property": prop,
                          "method": method, "layer": int(layer), "target": targets["target"].to_numpy(), "roi": roi,
                          "r_base": out["r_a"], "r_removed": out["r_b"], "drop": out["drop"], "p": out["p"],
                          "q": bh_fdr(out["p"]),
                          "roi_drop": [out["groups"][g]["drop"] for g in roi],
                          "roi_p": [out["groups"][g]["p"] for g in roi]})
    log.info("%s %s layer %d: removing %s (%s) changes mean r %.3f -> %.3f; %s", subject, source, layer, prop,
             method, table["r_base"].mean(), table["r_removed"].mean(),
             ", ".join(f"{g} drop {v['drop']:+.3f} (p {v['p']:.3g})" for g, v in out["groups"].items()))
    rois = pd.DataFrame([{"subject": subject, "condition": condition, "layer": int(layer), "roi": g,
                          "drop": v["drop"], "p": v["p"], "null": np.asarray(v["null"], np.float32)}
                         for g, v in out["groups"].items()])
    return table[DROP_COLUMNS], rois


def _add_bootstrap(out: pd.DataFrame, Y, predictions: np.ndarray, folds: list, story_of_sample: np.ndarray,
                   boot: dict, seed: int) -> None:
    """Add the block-bootstrap intervals over held-out TRs (core.stats.bootstrap) to a cell's
    score table: ``r_ci_low``/``r_ci_high`` per target, ``roi_ci_low``/``roi_ci_high`` of the ROI's
    mean r (the same value on every target of the ROI). The draws depend on the subject only, so
    a subject's cells share them."""
    from ...core.stats.bootstrap import block_bootstrap_r

    ci = block_bootstrap_r(Y, predictions, folds, story_of_sample, block_len=int(boot.get("block_len", 10)),
                           n_boot=int(boot.get("n_boot", 1000)), level=float(boot.get("level", 0.95)),
                           seed=seed, groups=out["roi"].to_numpy())
    out["r_ci_low"], out["r_ci_high"] = ci["low"], ci["high"]
    out["roi_ci_low"] = out["roi"].map({g: v[0] for g, v in ci["groups"].items()}).astype(float)
    out["roi_ci_high"] = out["roi"].map({g: v[1] for g, v in ci["groups"].items()}).astype(float)


def check_tr_grid(features: dict, responses: dict, grids: pd.DataFrame, subject: str) -> None:
    """Every story's features and responses have the TR grid's number of rows (error naming the
    subject and story otherwise)."""
    for s, n in zip(grids["story"], grids["n_trs"].to_numpy()):
        n_feat = len(fold_features(features, 0, [s])[0])
        if n_feat != n or len(responses[s]) != n:
            raise ValueError(f"subject {subject}, story {s!r}: the TR grid has {n} rows but the features "
                             f"have {n_feat} and the responses {len(responses[s])}")


class _FoldMatrices:
    """Fold ``f`` -> the stories' features of fold ``f`` concatenated, built when asked for."""

    def __init__(self, features: dict, stories: list[str], n_folds: int):
        self.features, self.stories, self.n_folds = features, stories, n_folds

    def __len__(self) -> int:
        return self.n_folds

    def __getitem__(self, f: int) -> np.ndarray:
        return np.concatenate(fold_features(self.features, f, self.stories))


def _subject_seed(seed: int, subject: str) -> int:
    """A seed per (encoding seed, subject), stable across runs and processes."""
    import zlib

    return int(seed) * 1_000_003 + zlib.crc32(str(subject).encode())
