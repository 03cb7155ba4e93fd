"""Thin adapters from catalog entries to brainalign.core.decoding."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core.decoding.cell import DECODING_COLUMNS, decode_cell, scored_rows
from ...core.decoding.decode import stimulus_from_delayed
from ...core.encoding.folds import folds_from_table
from ...core.representations.derived import is_per_fold
from ...core.stats.group import bh_fdr
from ...core.stats.nulls import check_reachable_p, null_draws
from ..encoding.nodes import _FoldMatrices, _subject_seed, check_tr_grid, ridge_settings

log = logging.getLogger(__name__)


def fit_decoding(responses: dict, targets: pd.DataFrame, features: dict, folds: pd.DataFrame, grids: pd.DataFrame,
                 params: dict, encoding: dict, embedding: dict, dataset: str, *, subject: str, condition: str,
                 layer: int, layout: dict | None = None) -> pd.DataFrame:
    """Cross-validated decoding of one subject x condition x layer cell from each ROI and network
    (core.decoding.cell.decode_cell), with the encoding's folds, alpha grid and inner splits.

    Returns
    -------
    One row per ROI / network (:data:`DECODING_COLUMNS`); empty for an excluded subject.
    """
    if len(targets) == 0:
        log.warning("subject %s has no usable targets (excluded in data_prep): no decoding of %s, layer %d",
                    subject, condition, layer)
        return pd.DataFrame(columns=DECODING_COLUMNS)
    lay = {"response_model": embedding.get("response_model", "fir"), "delays": embedding.get("delays", [1, 2, 3, 4]),
           **(layout or {})}
    stories = grids["story"].tolist()
    fold_list = folds_from_table(folds)
    per_fold = is_per_fold(features)
    by_fold = _FoldMatrices(features, stories, len(fold_list)) if per_fold else None
    X_by_fold = [by_fold[f] for f in range(len(fold_list))] if per_fold else None
    X = None if per_fold else np.concatenate([np.asarray(features[s]) for s in stories])
    Y = np.concatenate([np.asarray(responses[s]) for s in stories])
    check_tr_grid(features, responses, grids, subject)
    story_of_sample = np.repeat(np.arange(len(stories)), grids["n_trs"].to_numpy())
    named = np.asarray(stories, dtype=object)[story_of_sample]
    context = f"decoding {subject} {condition} layer {layer}: "
    null = params.get("null_model") or {}
    n_draws = int(null.get("n_draws") or 0)
    draws = None
    if n_draws > 0:
        mats = X_by_fold if per_fold else [X]
        Zs = [stimulus_from_delayed(m, list(lay["delays"]))[0] if lay["response_model"] == "fir" else m for m in mats]
        rows = scored_rows(Zs, context)
        draws = null_draws(str(null.get("method", "shift")), named[rows], n_draws,
                           min_shift=int(null.get("min_shift", 50)), block_len=int(null.get("block_len", 10)),
                           seed=_subject_seed(int(params.get("seed", 0)), subject) * 1000 + int(layer))
        check_reachable_p(n_draws, 0.05, context=context.rstrip(": "))
    rs = ridge_settings(encoding)
    table = decode_cell(Y, targets, X, fold_list, named, response_model=lay["response_model"],
                        delays=tuple(lay["delays"]), fold_features=X_by_fold,
                        units=tuple(params.get("units") or ("roi", "network")),
                        max_targets=params.get("max_targets"), alphas=rs["alphas"], n_inner=rs["n_inner"],
                        inner_gap=rs["inner_gap"], null_draws=draws, seed=int(params.get("seed", 0)),
                        context=context)
    table.insert(0, "layer", int(layer))
    table.insert(0, "condition", condition)
    table.insert(0, "subject", subject)
    table.insert(0, "dataset", dataset)
    log.info("%s %s layer %d: pairwise accuracy %s", subject, condition, layer,
             ", ".join(f"{r.roi} {r.pairwise_accuracy:.3f}" for r in table.itertuples()))
    return table[DECODING_COLUMNS]


def collect_decoding(*cells: pd.DataFrame) -> pd.DataFrame:
    """``decoding_scores``: the cells concatenated, with ``q``: BH over the ROIs and networks of each
    subject x condition x layer (the family one cell tests, as the encoding's q over a cell's targets)."""
    parts = [c for c in cells if len(c)]
    if not parts:
        raise ValueError("no decoding scores: every subject was excluded")
    table = pd.concat(parts, ignore_index=True)
    table["q"] = np.nan
    for _, idx in table.groupby(["subject", "condition", "layer"], sort=False).groups.items():
        p = table.loc[idx, "p"].to_numpy(float)
        if np.isfinite(p).all():
            table.loc[idx, "q"] = bh_fdr(p)
    for c in ("layer", "n_targets", "n_items", "n_pairs"):
        table[c] = table[c].astype(np.int64)
    return table
