"""Thin adapters from catalog entries to brainalign.core (analysis)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core import plots
from ...core.brain.preprocess import EXCLUSION_COLUMNS
from ...core.stats.summaries import (BOOTSTRAP_COLUMNS, NULL_COLUMNS, SCORE_COLUMNS, ground_truth_recovery,
                                     roi_summary, subject_intervals)

log = logging.getLogger(__name__)


def collect_scores(*cells: pd.DataFrame) -> pd.DataFrame:
    """Concatenate the cell score tables into the long score table (no NaN allowed)."""
    parts = [c for c in cells if len(c)]
    if not parts:
        raise ValueError("no scores: every subject was excluded or the grid is empty")
    extra = [c for c in NULL_COLUMNS + BOOTSTRAP_COLUMNS if all(c in p.columns for p in parts)]
    scores = pd.concat(parts, ignore_index=True)[SCORE_COLUMNS + extra]
    num = scores[["r", "r2", "alpha", "r_concat"] + extra].to_numpy(float)
    if not np.isfinite(num).all():
        raise FloatingPointError("NaN or inf in the score table")
    scores["layer"] = scores["layer"].astype(int)
    return scores


def subject_intervals_table(scores: pd.DataFrame) -> pd.DataFrame:
    """``subject_intervals.csv``: each subject's ROI mean r with its block-bootstrap interval over
    held-out TRs (encoding.bootstrap; empty when it is off)."""
    return subject_intervals(scores)


def conditions_table(conditions: dict, *model_dirs, tuned: list[str] = (), made: dict | None = None) -> pd.DataFrame:
    """``conditions.csv``: each condition's kind, base model, method, task, trainable fraction,
    source and transform (empty where they do not apply), for reports, MLflow and later pipelines.
    ``model_dirs`` are the model directories of the ``tuned`` conditions (in that order), whose
    ``brainalign.json`` fills what their parameters leave out. ``made``: conditions another
    pipeline made (task_tuning), with their parameters."""
    from ...core.representations import describe_conditions

    conditions = {**(conditions or {}), **(made or {})}
    return describe_conditions(conditions, {c: getattr(d, "info", {}) for c, d in zip(tuned, model_dirs)})


def group_tests_table(scores: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    """``group_tests.csv``: across-subject tests per ROI (core.stats.group.group_tests; sign-flip p,
    Wilcoxon beside it, bootstrap CI, BH q over the whole table). Contrasts: each condition at its
    best layer (mean r over ROIs) against its null (r - r_null; against 0 without a null model), and
    the first condition against each other one, at their best layers. Fewer than 3 subjects: an
    empty table and a warning."""
    from ...core.stats.group import GROUP_TEST_COLUMNS, MIN_SUBJECTS, group_tests

    params = params or {}
    n = scores["subject"].nunique()
    if n < MIN_SUBJECTS:
        log.warning("group tests need at least %d subjects; this run has %d: group_tests.csv is empty",
                    MIN_SUBJECTS, n)
        return pd.DataFrame(columns=GROUP_TEST_COLUMNS)
    best = {c: int(g.groupby("layer")["r"].mean().idxmax()) for c, g in scores.groupby("condition", sort=False)}
    conds = list(dict.fromkeys(scores["condition"]))
    contrasts = [("null", c, best[c]) for c in conds]
    contrasts += [("paired", (conds[0], best[conds[0]]), (c, best[c])) for c in conds[1:]]
    return group_tests(scores, contrasts, n_perm=int(params.get("n_perm", 10000)),
                       n_boot=int(params.get("n_boot", 10000)), seed=int(params.get("seed", 0)))


def collect_partition(*subjects: pd.DataFrame) -> pd.DataFrame:
    """``partition_scores``: the subjects' variance partition tables concatenated (no NaN)."""
    from ..encoding.partition import PARTITION_COLUMNS

    parts = [t for t in subjects if len(t)]
    if not parts:
        raise ValueError("no variance partition: every subject was excluded")
    out = pd.concat(parts, ignore_index=True)[PARTITION_COLUMNS]
    if not np.isfinite(out["value"].to_numpy(float)).all():
        raise FloatingPointError("NaN or inf in the variance partition table")
    return out


def partition_summary(partition: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    """``partition_summary.csv``: per ROI and quantity the mean over targets within each subject,
    then mean, SEM and a bootstrap 95 % CI across subjects; for the unique and shared terms a
    two-sided sign-flip p against 0 (Wilcoxon beside it) and BH q over those rows (3 subjects or
    more; NaN otherwise). Columns: bands, roi, quantity, n_subjects, mean, sem, ci_low, ci_high,
    p, p_wilcoxon, q."""
    from ...core.stats.group import MIN_SUBJECTS, bh_fdr, bootstrap_ci, one_sample_vs_null

    params = params or {}
    per_subject = (partition.groupby(["bands", "roi", "quantity", "subject"], sort=False)["value"].mean()
                   .reset_index())
    rows = []
    for (bands, roi, q), g in per_subject.groupby(["bands", "roi", "quantity"], sort=False):
        v = g["value"].to_numpy(float)
        row = {"bands": bands, "roi": roi, "quantity": q, "n_subjects": len(v), "mean": float(v.mean()),
               "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
               "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "p_wilcoxon": np.nan}
        if len(v) >= MIN_SUBJECTS:
            row["ci_low"], row["ci_high"] = bootstrap_ci(v, n_boot=int(params.get("n_boot", 10000)),
                                                         seed=int(params.get("seed", 0)))
            if q.startswith(("unique[", "shared[")):
                t = one_sample_vs_null(v, n_perm=int(params.get("n_perm", 10000)), seed=int(params.get("seed", 0)))
                row["p"], row["p_wilcoxon"] = t["p_signflip"], t["p_wilcoxon"]
        rows.append(row)
    out = pd.DataFrame(rows)
    tested = out["p"].notna()
    out["q"] = np.nan
    if tested.any():
        out.loc[tested, "q"] = bh_fdr(out.loc[tested, "p"].to_numpy())
    return out


def partition_plot(summary: pd.DataFrame, dataset: str):
    """Bar plot of the partition; the title names the dataset and each band's condition and layer
    (``bands`` ``name=condition:layer+...``, shown as is when it does not parse)."""
    bands = str(summary["bands"].iloc[0])
    try:
        named = [b.split("=", 1) for b in bands.split("+")]
        shown = ", ".join(f"{name} = {cond.rsplit(':', 1)[0]} layer {int(cond.rsplit(':', 1)[1])}"
                          for name, cond in named)
    except (ValueError, IndexError):
        shown = bands
    return plots.partition_bars(summary, title=f"{dataset}: variance partitioning (banded ridge)\nbands: {shown}")


def collect_exclusions(*tables: pd.DataFrame) -> pd.DataFrame:
    parts = [t for t in tables if len(t)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXCLUSION_COLUMNS)


def summarise(scores: pd.DataFrame, noise_ceiling: pd.DataFrame) -> pd.DataFrame:
    """ROI summary across subjects (mean, SEM; counts as integers); mean noise ceiling per ROI
    beside it."""
    return roi_summary(scores, noise_ceiling)


def recovery(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Recovered vs planted r for simulated studies (empty table for real data)."""
    if truth is None or not len(truth):
        return pd.DataFrame(columns=["condition", "layer", "n_targets", "pearson_r_vs_expected"])
    return ground_truth_recovery(scores, truth)


def layer_profile_plot(summary: pd.DataFrame, dataset: str):
    return plots.layer_profile(summary, f"{dataset}: mean cross-validated r per layer (one panel per condition, "
                                        "one line per ROI)")


def roi_bar_plot(summary: pd.DataFrame, dataset: str):
    return plots.roi_bars(summary, f"{dataset}: mean cross-validated r per ROI, each condition at its best layer")


def recovery_plot(scores: pd.DataFrame, truth: pd.DataFrame, rec: pd.DataFrame):
    """Recovered vs planted r, one panel per subject, for the condition and layer whose recovery
    (r over all targets, ``ground_truth_recovery``) is highest.

    Real data (empty ground-truth table): the catalog names ``ground_truth_recovery.png``, so a
    file is still written, but it is a small text-only figure with no axes that says the dataset
    has no planted truth, so it cannot be mistaken for a result (a missing file would fail the
    catalog save; a skipped node would change the pipeline's outputs per dataset).
    """
    dataset = str(scores["dataset"].iloc[0]) if "dataset" in scores and len(scores) else ""
    if not len(rec) or truth is None or not len(truth):
        return plots.no_ground_truth(dataset)
    best = rec.sort_values("pearson_r_vs_expected").iloc[-1]
    cond, layer = best["condition"], int(best["layer"])
    return plots.recovery_scatter(scores[scores["condition"] == cond], truth, layer,
                                  title=f"{dataset}: planted vs recovered r, condition {cond}, layer {layer} "
                                        "(best-recovered cell)")


def report(summary: pd.DataFrame, rec: pd.DataFrame, exclusions: pd.DataFrame, scores: pd.DataFrame,
           dataset: str) -> tuple[str, dict]:
    """Markdown summary and the flat metrics dict that the MLflow hook logs."""
    lines = [f"# brainalign summary: {dataset}", "",
             f"{scores['subject'].nunique()} subjects, {scores['condition'].nunique()} condition(s), "
             f"{scores['layer'].nunique()} distinct layer indices, {scores['target'].nunique()} distinct "
             "target ids. r is Pearson r on each held-out fold, averaged over folds. Per ROI, r is averaged "
             "over the ROI's targets within each subject; the tables give the mean ± SEM of those "
             "subject means across subjects.", ""]
    metrics: dict[str, float] = {}
    for cond, s in summary.groupby("condition"):
        piv = s.pivot(index="roi", columns="layer", values="mean_r")
        n_sub = sorted({int(v) for v in s["n_subjects"]}) if "n_subjects" in s else []
        n_txt = "" if not n_sub else (f" (n = {n_sub[0]} subjects)" if len(n_sub) == 1 else
                                      f" (n = {n_sub[0]}-{n_sub[-1]} subjects)")
        lines += [f"## {cond}: mean r ± SEM across subjects per ROI and layer{n_txt}",
                  "", _md_table(piv, s.pivot(index="roi", columns="layer", values="sem_r")), ""]
        for row in s.itertuples():
            metrics[f"r.{cond}.layer_{row.layer}.{row.roi}"] = float(row.mean_r)
        by_layer = s.groupby("layer")["mean_r"].mean()
        for layer, v in by_layer.items():
            metrics[f"r.{cond}.layer_{layer}.mean"] = float(v)
        lines += [f"Best layer (mean over ROIs): {int(by_layer.idxmax())} (r = {by_layer.max():.3f}).", ""]
        if "mean_r_null" in s:
            null_by_layer = s.groupby("layer")["mean_r_null"].mean()
            for layer, v in null_by_layer.items():
                metrics[f"r_null.{cond}.layer_{layer}.mean"] = float(v)
            sem_null = (s.pivot(index="roi", columns="layer", values="sem_r_null") if "sem_r_null" in s else None)
            lines += ["Null model (responses circularly shifted against the features): mean r"
                      + (" ± SEM across subjects" if sem_null is not None else "") + " per ROI and layer",
                      "", _md_table(s.pivot(index="roi", columns="layer", values="mean_r_null"), sem_null), ""]
        if "share_q05" in s:
            for row in s.itertuples():
                metrics[f"share_q05.{cond}.layer_{row.layer}.{row.roi}"] = float(row.share_q05)
            lines += ["Share of targets with q < 0.05, over all subjects' targets (per-target permutation p "
                      "over the null draws, Benjamini-Hochberg within each subject x condition x layer cell)", "",
                      _md_table(s.pivot(index="roi", columns="layer", values="share_q05")), ""]
    edge = float(scores["alpha_at_edge"].mean())
    metrics["share_alpha_at_edge"] = edge
    lines += [f"Share of (target, fold) fits whose alpha sits at an edge of the grid: {100 * edge:.1f}%.", ""]
    if "mean_noise_ceiling" in summary:
        from ...core.stats.summaries import CEILING_METHODS

        per_roi = summary.groupby("roi")[["mean_noise_ceiling"] + (
            ["mean_isc_loso"] if "mean_isc_loso" in summary else [])].first()
        method = str(summary["noise_ceiling_method"].iloc[0]) if "noise_ceiling_method" in summary else "unknown"
        label = "; ".join(CEILING_METHODS.get(m, m) for m in method.split("+"))
        lines += [f"## Noise ceiling ({label})", "",
                  f"Mean over the ROI's targets and the subjects, column `{method}` (n/a: no valid ceiling)."
                  + (" `mean_isc_loso`: leave-one-subject-out inter-subject correlation, a lower bound of the "
                     "single-subject ceiling, not a ceiling." if "mean_isc_loso" in per_roi else ""),
                  "", _md_table(per_roi.rename(columns={"mean_noise_ceiling": method})), ""]
        if "r_norm" in summary and summary["r_norm"].notna().any():
            for cond, s in summary.groupby("condition"):
                lines += [f"{cond}: mean r / mean noise ceiling (ratio of ROI means, no SEM) per ROI and layer",
                          "", _md_table(s.pivot(index="roi", columns="layer", values="r_norm")), ""]
    if len(rec):
        lines += ["## Planted ground truth", "",
                  "Recovered r against the planted expected r, per condition and layer, over all (subject, "
                  "target) pairs pooled across subjects (`n_targets`), the `noise_n` pure-noise targets "
                  "(planted r = 0) included: they stack at 0 and can inflate `pearson_r_vs_expected`. "
                  "`noise_mean_r` ± `noise_sem_r` (SEM over those targets) is their mean recovered r. "
                  "The figure ground_truth_recovery.png shows one panel per subject and gives r over the "
                  "signal targets only beside r over all targets.", "",
                  _md_table(rec.set_index(["condition", "layer"])), ""]
        for row in rec.itertuples():
            metrics[f"recovery.{row.condition}.layer_{row.layer}"] = float(row.pearson_r_vs_expected)
            metrics[f"noise_mean_r.{row.condition}.layer_{row.layer}"] = float(row.noise_mean_r)
    subj_excl = exclusions[exclusions["target"] == "*"]["subject"].tolist() if len(exclusions) else []
    lines += ["## Exclusions", ""]
    if len(exclusions):
        lines.append(f"Subjects excluded: {', '.join(subj_excl) or 'none'}. "
                     f"{exclusions['target'].nunique()} target ids excluded in "
                     f"{exclusions['subject'].nunique()} subjects; reasons:")
        for (sub, reason), _g in exclusions.groupby(["subject", "reason"]):
            lines.append(f"- {sub}: {reason} ({len(_g)} rows)")
    else:
        lines.append("None.")
    metrics["n_subjects_excluded"] = float(len(subj_excl))
    return "\n".join(lines) + "\n", metrics


def _md_table(df: pd.DataFrame, sem: pd.DataFrame | None = None) -> str:
    """Markdown table of ``df`` (index as the first columns): floats with 3 decimals, ``n/a`` for
    NaN, integers (and integer-valued count columns, ``n_*``) as integers; with ``sem`` (same
    shape) each cell is ``mean ± sem``."""
    def cell(v, col="", err=None):
        if isinstance(v, (bool, np.bool_)):
            return str(v)
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                return "n/a"
            if str(col).startswith("n_") and float(v).is_integer():
                return str(int(v))
            return f"{v:.3f}" + (f" ± {err:.3f}" if err is not None and np.isfinite(err) else "")
        return str(v)

    cols = list(df.columns)
    if sem is not None:
        sem = sem.reindex(index=df.index, columns=cols)
    n_index = df.index.nlevels
    flat = df.reset_index()
    head = "| " + " | ".join(map(str, flat.columns)) + " |"
    sep = "|" + "---|" * len(flat.columns)
    rows = []
    for k, r in enumerate(flat.itertuples(index=False)):
        vals = list(r)
        out = [cell(v) for v in vals[:n_index]]
        out += [cell(v, c, None if sem is None else sem.iat[k, j])
                for j, (c, v) in enumerate(zip(cols, vals[n_index:]))]
        rows.append("| " + " | ".join(out) + " |")
    return "\n".join([head, sep, *rows])


def _map_values(scores: pd.DataFrame, params: dict, subject: str | None = None) -> tuple[pd.Series, str]:
    """Score per target to draw: ``params['score']`` (r) at ``params['condition']`` (first) and
    ``params['layer']`` (None: best mean), averaged over subjects or of one ``subject``."""
    column = params.get("score", "r")
    condition = params.get("condition") or scores["condition"].iloc[0]
    sub = scores[scores["condition"] == condition]
    if subject is not None:
        if subject not in set(sub["subject"]):
            raise ValueError(f"brain_maps: subject {subject!r} has no scores (subjects: "
                             f"{sorted(set(sub['subject']))})")
        sub = sub[sub["subject"] == subject]
    layer = params.get("layer")
    if layer is None:
        layer = int(sub.groupby("layer")[column].mean().idxmax())
    cell = sub[sub["layer"] == int(layer)]
    who = f"subject {subject}" if subject is not None else f"mean over {cell['subject'].nunique()} subjects"
    values = cell.groupby("target")[column].mean()
    max_q = params.get("max_q")
    if max_q is not None:   # only targets significant per target (q: BH over the cell's targets)
        if "q" not in cell:
            raise ValueError("brain_maps.max_q is set but the scores have no q column: turn on "
                             "encoding.null_model with n_draws > 0")
        share = params.get("min_share_significant", 0.5)
        sig = (cell["q"] < float(max_q)).groupby(cell["target"]).mean().reindex(values.index)
        values = values.where(sig >= (1.0 if subject is not None else float(share)))
        who += (f", targets with q < {max_q}" if subject is not None else
                f", targets with q < {max_q} in >= {100 * float(share):.0f}% of subjects")
        log.info("brain map: %d of %d targets pass q < %s", int(values.notna().sum()), len(values), max_q)
    return values, f"{column}, {who}, {condition} layer {layer}"


def brain_maps(scores: pd.DataFrame, reference, params: dict, dataset: str, *targets_tables: pd.DataFrame):
    """Mean r across subjects per voxel at each condition's best layer, on the brain.

    ``reference`` is data_prep's ``reference_image`` (the voxel grid of the targets' ``i, j, k``;
    a flagged 1x1x1 stand-in for data without voxels), so this stage never reads the raw study.

    Returns
    -------
    glass : matplotlib figure (glass brain); surface : figure (fsaverage5 views);
    html : standalone HTML page (nilearn view_img); nifti : the score image (3D, NaN outside the data).
    For data without voxels (ROI time courses) the figures say so and the image is empty.
    """
    from ...core.brain import brainmaps

    targets = pd.concat([t for t in targets_tables if len(t)], ignore_index=True) if any(
        len(t) for t in targets_tables) else pd.DataFrame()
    no_grid = brainmaps.no_grid_reader(reference)
    if reference is None or no_grid is not None or not {"i", "j", "k"} <= set(targets.columns):
        msg = (f"{dataset}: no voxel grid (the {no_grid} reader gives no reference image), no brain map"
               if no_grid is not None or reference is None else
               f"{dataset}: no voxel grid (the targets have no i, j, k voxel indices), no brain map")
        log.warning(msg)
        import matplotlib.pyplot as plt
        import nibabel as nib

        fig = plt.figure(figsize=(6, 1.5))
        fig.text(0.5, 0.5, msg, ha="center", va="center", wrap=True)
        return fig, fig, f"<html><body><p>{msg}</p></body></html>", nib.Nifti1Image(
            np.zeros((1, 1, 1), np.float32), np.eye(4))
    per_target, what = _map_values(scores, params)
    coords = targets.drop_duplicates("target").set_index("target").loc[per_target.index, ["i", "j", "k"]]
    img = brainmaps.scores_to_volume(per_target.to_numpy(), coords.reset_index(), reference)
    title = f"{dataset}: {what}"
    log.info("brain map: %s (%d voxels)", title, len(per_target))
    column = params.get("score", "r")
    n_sub = scores.loc[scores["condition"] == (params.get("condition") or scores["condition"].iloc[0]),
                       "subject"].nunique()
    label = f"{column} (mean over {n_sub} subjects)" if n_sub > 1 else f"{column} (one subject)"
    glass = brainmaps.glass_brain(img, title, label=label)
    surface = brainmaps.surface_views(img, title, label=label) if params.get("surface", True) else glass
    return glass, surface, brainmaps.interactive_html(img, title), img


def pycortex_flatmap(scores: pd.DataFrame, params: dict, dataset: str, *targets_tables: pd.DataFrame,
                     subjects: list[str]):
    """Flatmap (pycortex) of the score per target, for a pycortex subject (``brain_maps.pycortex``:
    subject, xfm, mask, data_subject). Needs the optional extra ``brainalign[pycortex]``.
    ``targets_tables`` are the kept targets of each of ``subjects``, in that order.

    Returns
    -------
    matplotlib figure
    """
    from ...core.brain import brainmaps

    cfg = params.get("pycortex") or {}
    data_subject = cfg.get("data_subject")
    per_target, what = _map_values(scores, params, data_subject)
    by_subject = dict(zip(subjects, targets_tables))
    tables = [by_subject[data_subject]] if data_subject is not None else [t for t in targets_tables if len(t)]
    targets = pd.concat(tables, ignore_index=True).drop_duplicates("target").set_index("target")
    missing = per_target.index.difference(targets.index)
    if len(missing):
        raise ValueError(f"pycortex flatmap: targets {list(missing[:5])} have scores but no row in the targets tables")
    vol = brainmaps.pycortex_volume(per_target.to_numpy(), cfg["subject"], cfg["xfm"], cfg.get("mask"),
                                    targets.loc[per_target.index].reset_index())
    log.info("pycortex flatmap of %s on %s/%s (%d targets)", what, cfg["subject"], cfg["xfm"], len(per_target))
    return brainmaps.flatmap(vol, cfg["subject"], cfg["xfm"], f"{dataset}: {what}")


def removal_drop_table(*data, n_drops: int) -> pd.DataFrame:
    """``removal_drop.csv`` (core.stats.drop.drop_summary): ``data`` are the ``n_drops`` per-cell
    drop tables, the ``n_drops`` per-cell ROI tables, then the group-test parameters."""
    from ...core.stats.drop import drop_summary

    params = (data[2 * n_drops] if len(data) > 2 * n_drops else None) or {}
    return drop_summary(list(data[:n_drops]), list(data[n_drops:2 * n_drops]), n_perm=int(params.get("n_perm", 10000)),
                        seed=int(params.get("seed", 0)))


PROBE_COLUMNS = ["condition", "layer", "property", "features", "accuracy", "baseline", "above_baseline", "n_folds",
                 "accuracy_before"]


def probe_table(*data, n_probes: int) -> pd.DataFrame:
    """``probe_accuracy.csv``: per source layer and property, the cross-validated probe accuracy
    of the original word features (``features = original``) and, per removal method, of a fresh
    probe on the removed features of the held-out words (``features = removed-<method>``;
    ``accuracy_before``: the same probe on the original features of the same words), each beside
    its majority baseline, averaged over the outer folds."""
    probes, summaries = data[:n_probes], data[n_probes:]
    rows = []
    for t in probes:
        if t is None or not len(t):
            continue
        for (c, k, prop, feat), g in t.groupby(["condition", "layer", "property", "features"], sort=False):
            rows.append({"condition": c, "layer": int(k), "property": prop, "features": feat,
                         "accuracy": g["accuracy"].mean(), "baseline": g["baseline"].mean(), "n_folds": len(g),
                         "accuracy_before": np.nan})
    for s in summaries:
        folds = [f for f in (s or {}).get("folds", []) if "heldout_accuracy" in f]
        if not folds:
            continue
        rows.append({"condition": s["source"], "layer": int(s["layer"]), "property": s["property"],
                     "features": f"removed-{s['method']}",
                     "accuracy": float(np.mean([f["heldout_accuracy"] for f in folds])),
                     "baseline": float(np.mean([f["heldout_baseline"] for f in folds])), "n_folds": len(folds),
                     "accuracy_before": float(np.mean([f["heldout_accuracy_before"] for f in folds]))})
    out = pd.DataFrame(rows, columns=[c for c in PROBE_COLUMNS if c != "above_baseline"])
    out["above_baseline"] = out["accuracy"] - out["baseline"]
    return out[PROBE_COLUMNS]


def removal_plot(drops: pd.DataFrame, probes: pd.DataFrame, dataset: str):
    return plots.removal_heatmap(drops, probes, f"{dataset}: drop in mean r when a property is removed "
                                                "(r_base - r_removed; * q < 0.05 pooled block-swap test, "
                                                "\u2020 q < 0.05 sign flip across subjects)")


def decoding_summary_table(scores: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    """``decoding_summary.csv``: mean pairwise accuracy per condition x layer x ROI/network over
    subjects against the subjects' null (core.decoding.summary)."""
    from ...core.decoding.summary import decoding_summary

    params = params or {}
    return decoding_summary(scores, n_perm=int(params.get("n_perm", 10000)), n_boot=int(params.get("n_boot", 10000)),
                            seed=int(params.get("seed", 0)))


def decoding_plot(summary: pd.DataFrame, dataset: str):
    n = _n_subjects_label(summary)
    return plots.decoding_bars(summary, title=f"{dataset}: decoding stimulus features from brain targets ({n})")


def _n_subjects_label(summary: pd.DataFrame) -> str:
    return plots._n_label(summary["n_subjects"]) + " subjects"


def similarity_node(folds: pd.DataFrame, grids: pd.DataFrame, embedding: dict, params: dict, *features: dict,
                    keys: list, pairs: list, layouts: dict, skipped: list) -> pd.DataFrame:
    """``similarity.csv``: RSA and linear CKA of each condition to its base condition per layer
    (core.similarity.conditions), on the held-out TRs. ``features`` are the TR features of
    ``keys`` ((condition, layer) pairs), in that order."""
    from ...core.encoding.folds import folds_from_table
    from ...core.representations.derived import fold_features, is_per_fold
    from ...core.similarity.conditions import similarity_table

    stories = grids["story"].tolist()
    fold_list = folds_from_table(folds)
    by_key = {}
    for key, feats in zip(keys, features):
        n = len(fold_list) if is_per_fold(feats) else 1
        by_key[tuple(key)] = [np.concatenate(fold_features(feats, f, stories)) for f in range(n)]
    lay = {c: {"response_model": embedding.get("response_model", "fir"),
               "delays": tuple(embedding.get("delays", [1, 2, 3, 4])), **v} for c, v in layouts.items()}
    for c in lay:
        lay[c]["delays"] = tuple(lay[c]["delays"])
    params = params or {}
    table = similarity_table([tuple(p) for p in pairs], by_key, fold_list, lay, [tuple(s) for s in skipped],
                             max_items_rsa=int(params.get("max_items_rsa", 2000)), seed=int(params.get("seed", 0)))
    for r in table.itertuples():
        if r.note:
            log.info("similarity: %s %s", r.condition, r.note)
    return table


def tuning_comparison(encoding: pd.DataFrame, conditions: pd.DataFrame, params: dict, dataset: str,
                      decoding: pd.DataFrame | None = None, similarity: pd.DataFrame | None = None, *,
                      baseline: str = "pretrained"):
    """The tuning comparison report (core.stats.comparison): method x task x ROI table of encoding r
    and decoding accuracy, paired across-subject tests with BH q, trainable fraction and similarity
    to the base model against the scores (Spearman), mean similarity per method, the claims of the
    published studies as numbers, and the figure."""
    from ...core.stats import comparison as cmp

    params = params or {}
    n_perm, seed = int(params.get("n_perm", 10000)), int(params.get("seed", 0))
    sim = None
    if similarity is not None and len(similarity):
        sim = similarity[similarity["note"].fillna("").astype(str) == ""] if "note" in similarity else similarity
    table = cmp.comparison_table(encoding, decoding, conditions, baseline=baseline)
    tests = cmp.comparison_tests(encoding, decoding, conditions, baseline=baseline, n_perm=n_perm, seed=seed)
    trainable = cmp.trainable_vs_score(table)
    sim_score = cmp.similarity_vs_score(table, sim, baseline=baseline)
    by_method = cmp.similarity_by_method(sim, conditions, baseline=baseline)
    correlations = pd.concat([trainable.assign(against="trainable_fraction"),
                              sim_score.assign(against=lambda d: "similarity_" + d["index"].astype(str))],
                             ignore_index=True)
    claims = cmp.summary_claims(table, tests, trainable, by_method)
    fig = cmp.comparison_figure(table, tests, sim, dataset=dataset)
    return table, tests, correlations, by_method, _jsonable(claims), fig


def _jsonable(x):
    """Numbers, strings, lists and dicts only (NaN -> None), for a JSON dataset."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, pd.DataFrame):
        return _jsonable(x.to_dict(orient="records"))
    if isinstance(x, pd.Series):
        return _jsonable(x.to_dict())
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def report_index(dataset: str, *outputs, names: list[str]) -> str:
    """``index.md``: every output of the analysis that no other node reads (``names``, in the order of
    ``outputs``), figures embedded and the head of each table (core.reporting)."""
    from ...core.reporting import index_markdown

    if len(names) != len(outputs):
        raise ValueError(f"report_index: {len(outputs)} outputs for {len(names)} names")
    return index_markdown(dict(zip(names, outputs)), f"brainalign report index: {dataset}")
