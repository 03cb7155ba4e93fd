"""Variance partitioning node (thin adapter to brainalign.core.encoding.partition): per subject,
banded ridge over the ``variance_partition`` bands and every subset of them, with the outer folds
of encoding."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core.encoding.folds import folds_from_table
from ...core.encoding.partition import banded_cv_encoding, partition_table
from ...core.encoding.ridge import StackedRows, alpha_grid
from ...core.representations.derived import fold_features, is_per_fold

log = logging.getLogger(__name__)

#: the long table of variance partitioning (``partition_scores``): one row per subject, target and
#: quantity (``r2[A]``, ``r2[A+B]``, ``unique[A]``, ``shared[A+B]``, ``log10_alpha[A]``, ...)
PARTITION_COLUMNS = ["dataset", "subject", "kind", "bands", "target", "roi", "quantity", "value"]


def fit_partition(responses: dict, targets: pd.DataFrame, folds: pd.DataFrame, grids: pd.DataFrame,
                  encoding: dict, params: dict, dataset: str, *band_features, subject: str,
                  bands: list[tuple[str, str, int]]) -> pd.DataFrame:
    """Unique and shared explained variance of each target for one subject.

    ``band_features`` are the TR-level features of the bands (``<condition>.layer_<k>.tr_features``),
    in the order of ``bands`` ((name, condition, layer) triples). Alphas, inner splits, backend
    and dtype come from ``encoding``; ``params`` is ``variance_partition`` (``n_iter``: band-weight
    draws of himalaya's random search, ``seed``).

    Returns
    -------
    The partition table of the subject (PARTITION_COLUMNS); empty for an excluded subject.
    """
    if len(targets) == 0:
        log.warning("subject %s has no usable targets (excluded in data_prep): no variance partition", subject)
        return pd.DataFrame(columns=PARTITION_COLUMNS)
    stories = grids["story"].tolist()
    fold_list = folds_from_table(folds)
    X = {}
    for (name, cond, layer), feats in zip(bands, band_features):
        for s, n in zip(stories, grids["n_trs"].to_numpy()):
            n_feat = len(fold_features(feats, 0, [s])[0])
            if n_feat != n:
                raise ValueError(f"variance partition of subject {subject}, band {name!r} ({cond}, layer {layer}), "
                                 f"story {s!r}: the TR grid has {n} rows but the features have {n_feat}")
        if is_per_fold(feats):
            X[name] = [np.concatenate(fold_features(feats, f, stories)) for f in range(len(fold_list))]
        else:
            X[name] = np.concatenate([np.asarray(feats[s]) for s in stories])
    Y = StackedRows([responses[s] for s in stories], stories)
    story_of_sample = np.repeat(np.arange(len(stories)), grids["n_trs"].to_numpy())
    a = encoding.get("alphas", {})
    res = banded_cv_encoding(
        X, Y, fold_list, story_of_sample,
        alphas=alpha_grid(float(a.get("low", 1e-2)), float(a.get("high", 1e8)), int(a.get("n", 21))),
        n_iter=int(params.get("n_iter", 100)), n_inner=int(encoding.get("n_inner", 5)),
        inner_gap=int(encoding.get("inner_gap", 5)), backend=encoding.get("backend", "numpy"),
        seed=int(params.get("seed", encoding.get("seed", 0))), target_batch=encoding.get("target_batch"),
        dtype=encoding.get("dtype", "float32"), progress=True)
    wide = partition_table(res)
    wide["target"] = targets["target"].to_numpy()[wide["target"].to_numpy()]
    long = wide.drop(columns=["alpha_at_edge"], errors="ignore").melt(id_vars="target", var_name="quantity",
                                                                       value_name="value")
    long = long.merge(targets[["target", "roi"]], on="target")
    long.insert(0, "dataset", dataset)
    long.insert(1, "subject", subject)
    long.insert(2, "kind", "partition")
    long.insert(3, "bands", "+".join(f"{n}={c}:{k}" for n, c, k in bands))
    out = long[PARTITION_COLUMNS]
    if not np.isfinite(out["value"].to_numpy(float)).all():
        raise FloatingPointError(f"non-finite variance partition for subject {subject}")
    uniq = wide[[f"unique[{n}]" for n, _, _ in bands]].mean()
    log.info("%s variance partition over %s: mean unique R2 %s, shared %.4f", subject, [n for n, _, _ in bands],
             uniq.round(4).to_dict(), float(wide[[c for c in wide if c.startswith("shared[")]].sum(1).mean()))
    return out
