"""Summaries of score tables: ROI means across subjects, ground-truth recovery."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

SCORE_COLUMNS = ["dataset", "subject", "condition", "layer", "target", "roi", "r", "r2", "alpha",
                 "r_concat", "alpha_at_edge"]
#: optional columns, present when the null model was asked for (encoding.null_model.enabled); p and
#: q (per-target permutation p and its Benjamini-Hochberg q over the cell's targets) with n_draws > 0
NULL_COLUMNS = ["r_null", "r2_null", "p", "q"]
#: optional columns, present when encoding.bootstrap.enabled: the block-bootstrap interval over
#: held-out TRs (core.stats.bootstrap) of the target's r, and of its ROI's mean r (repeated on
#: every target of the ROI)
BOOTSTRAP_COLUMNS = ["r_ci_low", "r_ci_high", "roi_ci_low", "roi_ci_high"]


def roi_summary(scores: pd.DataFrame, noise_ceiling: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per condition, layer and ROI: mean r over targets within each subject, then the mean and
    SEM of those subject means across subjects.

    Parameters
    ----------
    scores : the long score table (see SCORE_COLUMNS).
    noise_ceiling : optional table (subject, target, noise_ceiling[, method]); its ROI means are
        added, with the method(s) that produced them (``+``-joined when subjects differ).

    Returns
    -------
    DataFrame with condition, layer, roi, mean_r, sem_r, mean_r2, n_subjects, n_targets,
    n_targets_max, share_alpha_at_edge [, mean_r_null, sem_r_null] [, share_q05] [, mean_noise_ceiling,
    mean_isc_loso, noise_ceiling_method, r_norm]. ``r_norm = mean_r / mean_noise_ceiling`` (NaN
    without a valid ceiling); ``mean_isc_loso`` is the leave-one-subject-out ISC, a lower bound
    reported beside the ceiling, never used to normalise. Counts are integers: ``n_subjects``;
    ``n_targets`` and ``n_targets_max`` the fewest and most targets one subject has in the ROI
    (equal when the subjects have the same targets).
    """
    has_null = "r_null" in scores.columns
    agg = dict(r=("r", "mean"), r2=("r2", "mean"), n_targets=("target", "size"), edge=("alpha_at_edge", "mean"))
    if has_null:
        agg["r_null"] = ("r_null", "mean")
    per_subject = (scores.groupby(["condition", "layer", "roi", "subject"], observed=True)
                   .agg(**agg).reset_index())
    g = per_subject.groupby(["condition", "layer", "roi"], observed=True)
    out = g.agg(mean_r=("r", "mean"), mean_r2=("r2", "mean"), n_subjects=("subject", "nunique"),
                n_targets=("n_targets", "min"), n_targets_max=("n_targets", "max"),
                share_alpha_at_edge=("edge", "mean")).reset_index()
    # counts are integers: targets per subject in the ROI, fewest and most (equal when every
    # subject has the same targets)
    out[["n_subjects", "n_targets", "n_targets_max"]] = out[["n_subjects", "n_targets", "n_targets_max"]].astype(int)
    sem = g["r"].agg(lambda x: stats.sem(x) if len(x) > 1 else 0.0).reset_index(drop=True)
    out.insert(out.columns.get_loc("mean_r") + 1, "sem_r", sem.to_numpy())
    if has_null:
        out["mean_r_null"] = g["r_null"].mean().to_numpy()
        out["sem_r_null"] = g["r_null"].agg(lambda x: stats.sem(x) if len(x) > 1 else 0.0).to_numpy()
    if "q" in scores.columns:   # share of the ROI's targets significant at q < 0.05, over all subjects
        sig = scores.assign(sig=scores["q"] < 0.05).groupby(["condition", "layer", "roi"], observed=True)["sig"]
        out = out.merge(sig.mean().rename("share_q05").reset_index(), on=["condition", "layer", "roi"])
    if noise_ceiling is not None and len(noise_ceiling):
        cols = ["subject", "target", "noise_ceiling"] + (["isc_loso"] if "isc_loso" in noise_ceiling else [])
        nc = (scores[["subject", "target", "roi"]].drop_duplicates()
              .merge(noise_ceiling[cols], on=["subject", "target"]).groupby("roi"))
        per_roi = nc["noise_ceiling"].mean().rename("mean_noise_ceiling").to_frame()   # NaN skipped
        if "isc_loso" in noise_ceiling:
            per_roi["mean_isc_loso"] = nc["isc_loso"].mean()
        out = out.merge(per_roi.reset_index(), on="roi", how="left")
        methods = (sorted(set(noise_ceiling["method"].astype(str))) if "method" in noise_ceiling
                   else ["unknown"])
        out["noise_ceiling_method"] = "+".join(methods)
        # r relative to the ceiling of the scored data (a ratio of ROI means), only where a valid
        # ceiling exists (never the ISC, a lower bound)
        ok = out["mean_noise_ceiling"] > 0
        out["r_norm"] = np.where(ok, out["mean_r"] / out["mean_noise_ceiling"].where(ok), np.nan)
    return out


def best_layers(summary: pd.DataFrame) -> dict:
    """Each condition's best layer in a ROI summary: the layer with the highest mean over ROIs of
    ``mean_r`` (the report's, the ROI bar plot's and MLflow's choice).

    Returns
    -------
    dict condition -> (layer, mean r over ROIs at that layer), in order of first appearance;
    conditions whose every layer mean is NaN are left out.
    """
    out = {}
    for cond, s in summary.groupby("condition", sort=False):
        by_layer = s.groupby("layer")["mean_r"].mean()
        if not by_layer.isna().all():
            out[cond] = (int(by_layer.idxmax()), float(by_layer.max()))
    return out


#: what each noise-ceiling method is, for reports (data_prep ``noise_ceiling``)
CEILING_METHODS = {
    "repeats_mean": "CC_max of the mean over repeated presentations (the scored test story is that mean)",
    "repeats_single": "ceiling of a single presentation, from repeated presentations",
    "intersubject": "single-subject ceiling from the signal shared across subjects",
    "none": "none valid",
}


def subject_intervals(scores: pd.DataFrame) -> pd.DataFrame:
    """Per subject, condition, layer and ROI: the ROI's mean r and its block-bootstrap interval over
    held-out TRs (``roi_ci_low``, ``roi_ci_high`` of the score table).

    Returns
    -------
    DataFrame with subject, condition, layer, roi, mean_r, ci_low, ci_high, n_targets; empty (those
    columns) when the score table has no bootstrap columns.
    """
    cols = ["subject", "condition", "layer", "roi", "mean_r", "ci_low", "ci_high", "n_targets"]
    if "roi_ci_low" not in scores.columns:
        return pd.DataFrame(columns=cols)
    g = scores.groupby(["subject", "condition", "layer", "roi"], observed=True, sort=False)
    out = g.agg(mean_r=("r", "mean"), ci_low=("roi_ci_low", "first"), ci_high=("roi_ci_high", "first"),
                n_targets=("target", "size")).reset_index()
    out["n_targets"] = out["n_targets"].astype(int)
    return out[cols]


def ground_truth_recovery(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Compare recovered r with the planted ``expected_r`` for each condition and layer.

    Returns
    -------
    DataFrame with condition, layer, n_targets, pearson_r_vs_expected, spearman_r_vs_expected,
    pearson_r_signal (over the signal targets only: the pure-noise targets, all at planted r 0,
    inflate the pooled r), noise_mean_r, noise_sem_r, noise_n (targets with expected_r == 0 /
    is_noise). Targets are pooled over subjects. Targets of the simulated NONLIN region
    (``nonlinear_share > 0``: a quadratic function of a layer's features, planted for brain-tuning
    to find) are left out: their ``expected_r`` is what a perfect model scores, which no linear
    readout of the untuned features approaches by design, so they would measure the planted
    nonlinearity rather than recovery.
    """
    if "nonlinear_share" in truth:
        truth = truth[~(truth["nonlinear_share"].fillna(0) > 0)]
    m = scores.merge(truth, on=["subject", "target"], suffixes=("", "_truth"))
    rows = []
    for (cond, layer), g in m.groupby(["condition", "layer"]):
        noise = g["is_noise"] if "is_noise" in g else g["expected_r"] == 0
        rows.append({"condition": cond, "layer": layer, "n_targets": len(g),
                     "pearson_r_vs_expected": stats.pearsonr(g["r"], g["expected_r"])[0],
                     "spearman_r_vs_expected": stats.spearmanr(g["r"], g["expected_r"])[0],
                     "pearson_r_signal": (stats.pearsonr(g.loc[~noise, "r"], g.loc[~noise, "expected_r"])[0]
                                          if (~noise).sum() > 2 else np.nan),
                     "noise_mean_r": float(g.loc[noise, "r"].mean()) if noise.any() else np.nan,
                     "noise_sem_r": float(stats.sem(g.loc[noise, "r"])) if noise.sum() > 1 else np.nan,
                     "noise_n": int(noise.sum())})
    return pd.DataFrame(rows)


def paired_condition_test(scores: pd.DataFrame, a: tuple[str, int], b: tuple[str, int], roi: str) -> dict:
    """Across-subject paired comparison of two (condition, layer) cells in one ROI.

    Each subject's mean r over the ROI's targets is taken in both cells (only subjects scored in
    both); the difference a - b is tested with a two-sided paired t-test and a Wilcoxon signed-rank
    test (scipy).

    Returns
    -------
    dict with n_subjects, mean_a, mean_b, mean_diff, sem_diff, t, p_t, p_wilcoxon.
    """
    def subject_means(cond, layer):
        s = scores[(scores["condition"] == cond) & (scores["layer"] == int(layer)) & (scores["roi"] == roi)]
        return s.groupby("subject")["r"].mean()

    ma, mb = subject_means(*a), subject_means(*b)
    both = ma.index.intersection(mb.index)
    if len(both) < 3:
        raise ValueError(f"paired test in {roi}: {len(both)} subjects scored in both {a} and {b}; need 3")
    x, y = ma.loc[both].to_numpy(float), mb.loc[both].to_numpy(float)
    d = x - y
    t, p = stats.ttest_rel(x, y)
    w = stats.wilcoxon(x, y).pvalue if np.any(d != 0) else 1.0
    return {"roi": roi, "a": f"{a[0]} layer {a[1]}", "b": f"{b[0]} layer {b[1]}", "n_subjects": len(both),
            "mean_a": float(x.mean()), "mean_b": float(y.mean()), "mean_diff": float(d.mean()),
            "sem_diff": float(d.std(ddof=1) / np.sqrt(len(d))), "t": float(t), "p_t": float(p),
            "p_wilcoxon": float(w)}
