"""Group level decoding: per condition x layer x ROI/network, the subjects' pairwise accuracy
against their own permutation null (sign-flip test across subjects, BH q over the table)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..stats.group import MIN_SUBJECTS, bh_fdr, bootstrap_ci, one_sample_vs_null

log = logging.getLogger(__name__)

#: columns of :func:`decoding_summary`
SUMMARY_COLUMNS = ["condition", "layer", "roi", "unit", "n_subjects", "mean_accuracy", "sem_accuracy",
                   "mean_null", "ci_low", "ci_high", "p", "q", "test"]


def decoding_summary(scores: pd.DataFrame, n_perm: int = 10000, n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Mean pairwise accuracy over subjects per condition x layer x ROI/network.

    Parameters
    ----------
    scores : the decoding score table (``decoding_scores``: subject, condition, layer, roi, unit,
        pairwise_accuracy, accuracy_null, ...).

    Returns
    -------
    One row per condition x layer x roi (:data:`SUMMARY_COLUMNS`): mean and SEM (ddof 1) of the
    accuracy over subjects, the mean null accuracy, the 95 % bootstrap CI of the mean accuracy, and
    the two-sided sign-flip p of accuracy - null across subjects (against 0.5, chance, when the
    cells have no null), BH q over the table. With fewer than 3 subjects p and q are NaN and
    ``test`` says why.
    """
    rows = []
    for (cond, layer, roi, unit), g in scores.groupby(["condition", "layer", "roi", "unit"], sort=False):
        acc = g["pairwise_accuracy"].to_numpy(float)
        null = g["accuracy_null"].to_numpy(float) if "accuracy_null" in g else np.full(len(g), np.nan)
        has_null = np.isfinite(null).all()
        row = {"condition": cond, "layer": int(layer), "roi": roi, "unit": unit, "n_subjects": len(g),
               "mean_accuracy": float(acc.mean()), "sem_accuracy": float(acc.std(ddof=1) / np.sqrt(len(acc)))
               if len(acc) > 1 else np.nan, "mean_null": float(null.mean()) if has_null else 0.5,
               "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
        if len(g) >= MIN_SUBJECTS:
            res = one_sample_vs_null(acc, null if has_null else np.full(len(acc), 0.5), n_perm=n_perm, seed=seed)
            row["p"] = res["p_signflip"]
            row["ci_low"], row["ci_high"] = bootstrap_ci(acc, n_boot=n_boot, seed=seed)
            row["test"] = f"sign flip of accuracy - {'null' if has_null else 'chance (0.5)'}, {res['signflip_method']}"
        else:
            row["test"] = f"not tested: {len(g)} subject(s), a group test needs {MIN_SUBJECTS}"
        rows.append(row)
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    ok = np.isfinite(out["p"].to_numpy(float))
    out.loc[ok, "q"] = bh_fdr(out.loc[ok, "p"].to_numpy(float)) if ok.any() else []
    return out
