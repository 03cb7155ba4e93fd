"""The tuning comparison study: do task-tuned representations align with the brain better or worse
than the pretrained model, and does the tuning method matter?

The method cards (DESIGN.md, studies 1 and 2) make three claims that this module puts numbers on:

1. prompt / prefix tuning (P-tuning v2) gives representations that encode (and decode) the brain
   better than full fine-tuning, on the same task;
2. the fewer parameters are tuned, the better the alignment (encoding r against the trainable
   fraction);
3. prefix-tuned representations stay closer (RSA / CKA) to the pretrained model, and the closeness
   goes with alignment.

Inputs (pandas tables)
----------------------
``encoding`` : the long score table, one row per subject x condition x layer x target, columns
    dataset, subject, condition, layer, target, roi, r (other columns are ignored).
``decoding`` : one row per subject x condition x layer x roi, columns dataset, subject, condition,
    layer, roi, pairwise_accuracy (mse, n_items, p, q are ignored); roi may be a network name. May be
    empty (or None).
``conditions`` : columns condition, kind, base_model, method, task, trainable_fraction (float, NaN
    when not applicable). A **task-tuned** condition has kind ``tuned`` and a non-empty task; its
    method is one of full, partial, prefix, prompt, lora (another name is kept and compared with
    the baseline only). Brain-tuned conditions (method brain / brain-permuted, no task) are left out.
``similarity`` : columns condition, base_condition, layer, rsa, cka, n_items: the similarity of a
    condition's representation to its base model's at one layer. May be empty.

Decisions
---------
* **The subject is the unit.** Each subject contributes one number per condition and ROI: the mean
  r over the ROI's targets (encoding) or its pairwise accuracy (decoding); tests are paired across
  subjects (:func:`brainalign.core.stats.group.paired_test`, two-sided sign-flip, exact for up to
  13 subjects at the default ``n_perm``), subjects matched by id (inner join; the subjects missing
  from either side are dropped, counted in ``n_subjects`` and named in ``note``).
* **Layer.** ``layer="best"`` takes, per condition, the layer with the highest mean score over
  subjects and ROIs (mean over subjects per ROI, then over ROIs, as
  :func:`brainalign.core.stats.summaries.best_layers`). The choice uses the same data that are then
  compared, as the rest of the project's reports do: it favours every condition alike, but the
  absolute scores are optimistic. An int fixes the layer for every condition. Encoding and decoding
  choose their layer separately (``layer`` and ``decoding_layer``), each on its own measure.
* **Variants.** Partial fine-tuning may come at several proportions of tuned parameters. When a
  method has more than one condition on any task, its conditions are labelled by their trainable
  fraction (``variant`` = "partial (12%)"); otherwise ``variant`` equals ``method``. Method-vs-full
  contrasts and the heat maps run over variants.
* **Contrasts** (:func:`comparison_tests`), per ROI and measure: (a) each task-tuned condition vs
  the baseline; (b) each non-full variant (partial, prefix, prompt, lora, ...) vs full on the same
  task; (c) the method-level contrast "prefix (mean over tasks) vs full": per subject, the mean over
  the tasks both variants share (in that ROI) of each side, then a paired test. A subject must be
  scored on every shared task to enter it.
* **Multiple comparisons.** q is Benjamini-Hochberg over every tested row of one
  :func:`comparison_tests` table (both measures, all contrasts and ROIs): that is the family the
  table makes claims in. Rows with fewer than :data:`~brainalign.core.stats.group.MIN_SUBJECTS`
  paired subjects are kept with p = q = NaN and a note; they are not in the family.
* Missing pieces (a contrast's condition absent from a table, a fixed layer a condition lacks) are
  skipped with a logged warning, never an error; malformed input (missing columns, NaN scores,
  duplicate decoding rows, several datasets mixed) raises ``ValueError`` naming what is wrong.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from .group import MIN_SUBJECTS, bh_fdr, bootstrap_ci, paired_test

log = logging.getLogger(__name__)

#: tuning methods in display order; other methods follow in order of appearance
METHOD_ORDER = ["full", "partial", "prefix", "prompt", "lora"]
#: methods of brain-tuned conditions, never part of the tuning comparison
BRAIN_METHODS = {"brain", "brain-permuted"}
#: the two measures compared, as named in the tables' ``measure`` column
MEASURES = ["encoding_r", "decoding_accuracy"]
#: columns of :func:`comparison_table`
TABLE_COLUMNS = ["condition", "method", "variant", "task", "roi", "layer", "layer_rule", "n_subjects",
                 "encoding_r", "encoding_sem", "decoding_layer", "decoding_n_subjects", "decoding_accuracy",
                 "decoding_sem", "trainable_fraction"]
#: columns of :func:`comparison_tests`
TEST_COLUMNS = ["measure", "contrast", "condition_a", "condition_b", "method_a", "method_b", "task", "roi",
                "n_subjects", "mean_diff", "p", "q", "ci_low", "ci_high", "test", "note"]
#: columns of :func:`trainable_vs_score`
TRAINABLE_COLUMNS = ["measure", "roi", "n", "rho", "p", "note"]
#: columns of :func:`similarity_vs_score`
SIMILARITY_SCORE_COLUMNS = ["measure", "roi", "index", "n", "rho", "p", "similarity_layer", "note"]
#: columns of :func:`similarity_by_method`
SIMILARITY_METHOD_COLUMNS = ["method", "layer", "mean_rsa", "mean_cka", "n_conditions"]

_ENCODING_COLUMNS = ["subject", "condition", "layer", "roi", "r"]
_DECODING_COLUMNS = ["subject", "condition", "layer", "roi", "pairwise_accuracy"]
_CONDITION_COLUMNS = ["condition", "kind", "method", "task", "trainable_fraction"]
_SIMILARITY_COLUMNS = ["condition", "base_condition", "layer", "rsa", "cka"]
_SCORE_OF = {"encoding_r": ("encoding", "r"), "decoding_accuracy": ("decoding", "pairwise_accuracy")}


# --------------------------------------------------------------------------------------------- input

def _require(df: pd.DataFrame, columns: list, name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; it has {list(df.columns)}")


def _is_empty(df) -> bool:
    return df is None or len(df) == 0


def _single_dataset(df: pd.DataFrame, name: str) -> None:
    if "dataset" in df.columns:
        ds = df["dataset"].dropna().unique()
        if len(ds) > 1:
            raise ValueError(f"{name} table mixes {len(ds)} datasets {sorted(map(str, ds))}; subject ids "
                             "are only comparable within one, so filter it to one dataset first")


def _text(x) -> str:
    """'' for NaN/None, else the stripped string."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return str(x).strip()


def _layer_rule(layer) -> str:
    if isinstance(layer, str):
        if layer != "best":
            raise ValueError(f"layer must be 'best' or an int layer index; got {layer!r}")
        return "best layer per condition (highest mean score over subjects and ROIs, chosen on the same data)"
    try:
        return f"layer {int(layer)} for every condition"
    except (TypeError, ValueError):
        raise ValueError(f"layer must be 'best' or an int layer index; got {layer!r}") from None


def _subject_scores(df: pd.DataFrame, value: str, layer_choice, what: str) -> pd.DataFrame:
    """Per subject x condition x roi the ``value`` (already one row per subject x condition x layer
    x roi) at one layer per condition. Returns subject, condition, layer, roi, ``value``."""
    cols = ["subject", "condition", "layer", "roi", value]
    if df.empty:
        return pd.DataFrame(columns=cols)
    _layer_rule(layer_choice)
    if isinstance(layer_choice, str):
        per_roi = df.groupby(["condition", "layer", "roi"], sort=False)[value].mean()
        per_layer = per_roi.groupby(["condition", "layer"], sort=False).mean()
        chosen = {cond: key[1] for cond, key in per_layer.groupby("condition", sort=False).idxmax().items()}
    else:
        want = int(layer_choice)
        chosen = {}
        for cond, g in df.groupby("condition", sort=False):
            layers = set(pd.to_numeric(g["layer"], errors="coerce").dropna().astype(int))
            if want in layers:
                chosen[cond] = want
            else:
                log.warning("%s: condition %r has no layer %d (it has %s); it is left out", what, cond, want,
                            sorted(layers))
    keep = pd.Series([chosen.get(c) for c in df["condition"]], index=df.index)
    sel = df[keep.notna() & (pd.to_numeric(df["layer"], errors="coerce") == pd.to_numeric(keep, errors="coerce"))]
    return sel[cols].reset_index(drop=True)


def subject_roi_means(encoding: pd.DataFrame, layer_choice="best") -> pd.DataFrame:
    """Per subject x condition x ROI the mean encoding r over the ROI's targets at one layer per
    condition.

    Parameters
    ----------
    encoding : long score table, columns subject, condition, layer, target, roi, r (one row per
        subject x condition x layer x target; others ignored).
    layer_choice : "best" -- per condition, the layer whose mean r (subject ROI means averaged over
        subjects per ROI, then over ROIs) is highest. The layer is chosen on the same data that are
        then compared (as elsewhere in the project), so the absolute r is optimistic. Or an int:
        that layer for every condition (a condition without it is left out with a logged warning).

    Returns
    -------
    DataFrame with columns subject, condition, layer, roi, r (mean over the ROI's targets), one row
    per subject x condition x roi.

    Raises
    ------
    ValueError : missing columns, NaN r (the message names condition, subject and ROI), a bad
        ``layer_choice``.
    """
    _require(encoding, _ENCODING_COLUMNS, "encoding")
    _layer_rule(layer_choice)
    bad = encoding[encoding["r"].isna()]
    if len(bad):
        first = bad.iloc[0]
        raise ValueError(f"encoding: {len(bad)} row(s) have NaN r, e.g. condition {first['condition']!r}, "
                         f"subject {first['subject']!r}, layer {first['layer']!r}, ROI {first['roi']!r}; "
                         "resolve them before comparing conditions")
    means = encoding.groupby(["subject", "condition", "layer", "roi"], sort=False, observed=True)["r"].mean()
    return _subject_scores(means.reset_index(), "r", layer_choice, "encoding")


def _decoding_scores(decoding, layer_choice) -> pd.DataFrame:
    cols = ["subject", "condition", "layer", "roi", "pairwise_accuracy"]
    if _is_empty(decoding):
        return pd.DataFrame(columns=cols)
    _require(decoding, _DECODING_COLUMNS, "decoding")
    _single_dataset(decoding, "decoding")
    bad = decoding[decoding["pairwise_accuracy"].isna()]
    if len(bad):
        first = bad.iloc[0]
        raise ValueError(f"decoding: {len(bad)} row(s) have NaN pairwise_accuracy, e.g. condition "
                         f"{first['condition']!r}, subject {first['subject']!r}, ROI {first['roi']!r}")
    dup = decoding.duplicated(["subject", "condition", "layer", "roi"], keep=False)
    if dup.any():
        first = decoding[dup].iloc[0]
        raise ValueError(f"decoding: {int(dup.sum())} rows repeat a subject x condition x layer x roi cell, "
                         f"e.g. subject {first['subject']!r}, condition {first['condition']!r}, layer "
                         f"{first['layer']!r}, ROI {first['roi']!r}; expected one row per cell")
    return _subject_scores(decoding[cols], "pairwise_accuracy", layer_choice, "decoding")


def _tuned_conditions(conditions: pd.DataFrame, baseline: str) -> tuple[pd.DataFrame, dict | None]:
    """The task-tuned conditions (condition, method, variant, task, trainable_fraction), in method
    order then order of appearance, and the baseline's description (None when not listed)."""
    _require(conditions, _CONDITION_COLUMNS, "conditions")
    c = conditions.copy()
    c["method"] = [_text(m) for m in c["method"]]
    c["task"] = [_text(t) for t in c["task"]]
    c["kind"] = [_text(k) for k in c["kind"]]
    c["trainable_fraction"] = pd.to_numeric(c["trainable_fraction"], errors="coerce")
    base = c[c["condition"] == baseline]
    base_row = base.iloc[0].to_dict() if len(base) else None
    brain = c[c["method"].isin(BRAIN_METHODS)]
    if len(brain):
        log.info("tuning comparison: %d brain-tuned condition(s) left out: %s", len(brain),
                 list(brain["condition"]))
    tuned = c[(c["kind"] == "tuned") & (c["task"] != "") & ~c["method"].isin(BRAIN_METHODS)
              & (c["condition"] != baseline)].copy()
    no_method = tuned[tuned["method"] == ""]
    if len(no_method):
        raise ValueError(f"conditions: task-tuned condition(s) {list(no_method['condition'])} have no method")
    dup = tuned["condition"].duplicated()
    if dup.any():
        raise ValueError(f"conditions: condition(s) {list(tuned.loc[dup, 'condition'])} are listed twice")
    if "base_model" in tuned.columns:
        bases = sorted({_text(b) for b in tuned["base_model"]} - {""})
        if len(bases) > 1:
            log.warning("tuning comparison: task-tuned conditions come from %d base models %s; they are all "
                        "compared with the one baseline %r", len(bases), bases, baseline)
    order = METHOD_ORDER + [m for m in dict.fromkeys(tuned["method"]) if m not in METHOD_ORDER]
    tuned["_m"] = [order.index(m) for m in tuned["method"]]
    tuned["_i"] = np.arange(len(tuned))
    tuned = tuned.sort_values(["_m", "_i"], kind="mergesort")
    # variants: a method with several conditions on one task is split by its trainable fraction
    variant = tuned["method"].copy()
    multi = tuned.groupby(["method", "task"])["condition"].transform("size") > 1
    for m in tuned.loc[multi, "method"].unique():
        sel = tuned["method"] == m
        variant[sel] = [f"{m} ({100 * f:.2g}%)" if np.isfinite(f) else f"{m} [{c}]"
                        for f, c in zip(tuned.loc[sel, "trainable_fraction"], tuned.loc[sel, "condition"])]
    clash = pd.Series(list(zip(variant, tuned["task"])), index=tuned.index).duplicated(keep=False)
    variant[clash] = [f"{m} [{c}]" for m, c in zip(tuned.loc[clash, "method"], tuned.loc[clash, "condition"])]
    tuned["variant"] = variant
    cols = ["condition", "method", "variant", "task", "trainable_fraction"]
    return tuned[cols].reset_index(drop=True), base_row


def _sem(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) >= 2 else np.nan


def _prepare(encoding, decoding, conditions, layer, baseline):
    """Subject-level scores of both measures and the list of compared conditions."""
    _require(encoding, _ENCODING_COLUMNS, "encoding")
    _single_dataset(encoding, "encoding")
    rule = _layer_rule(layer)
    tuned, base_row = _tuned_conditions(conditions, baseline)
    enc = subject_roi_means(encoding, layer)
    dec = _decoding_scores(decoding, layer)
    scored = set(enc["condition"]) | set(dec["condition"])
    absent = [c for c in tuned["condition"] if c not in scored]
    if absent:
        log.warning("tuning comparison: task-tuned condition(s) %s are listed in conditions but have no "
                    "encoding or decoding scores; left out", absent)
    tuned = tuned[tuned["condition"].isin(scored)].reset_index(drop=True)
    compared = tuned.copy()
    if baseline in scored:
        frac = np.nan if base_row is None else base_row.get("trainable_fraction", np.nan)
        compared = pd.concat([pd.DataFrame([{"condition": baseline, "method": "pretrained", "variant": "pretrained",
                                             "task": "", "trainable_fraction": frac}]), compared],
                             ignore_index=True)
    else:
        log.warning("tuning comparison: the baseline condition %r has no encoding or decoding scores; "
                    "no baseline row and no contrasts against it", baseline)
    return enc, dec, compared, rule


# --------------------------------------------------------------------------------------------- table

def comparison_table(encoding: pd.DataFrame, decoding: pd.DataFrame | None, conditions: pd.DataFrame, *,
                     layer="best", baseline: str = "pretrained") -> pd.DataFrame:
    """Mean encoding r and decoding accuracy over subjects of every task-tuned condition and the
    baseline, per ROI.

    Parameters
    ----------
    encoding, decoding, conditions : see the module docstring; ``decoding`` may be empty or None.
    layer : "best" (per condition and measure, chosen on the same data; see module docstring) or an
        int layer for every condition.
    baseline : the condition name of the pretrained model the tuned ones are compared with.

    Returns
    -------
    DataFrame, one row per task-tuned condition x ROI plus the baseline's rows (method and variant
    "pretrained", task ""), first the baseline, then the methods in :data:`METHOD_ORDER` (within a
    method, the order of ``conditions``); ROIs are those of either measure. Columns (:data:`TABLE_COLUMNS`):
        condition, method, variant (method, or "partial (12%)" when a method has several trainable
        fractions per task), task;
        roi; layer (the encoding layer compared; NaN if the condition has no encoding scores);
        layer_rule (text);
        n_subjects (subjects with encoding scores in the ROI), encoding_r (mean over subjects of the
        subject's mean r over the ROI's targets), encoding_sem (SEM over subjects, ddof=1);
        decoding_layer, decoding_n_subjects, decoding_accuracy (mean pairwise accuracy over
        subjects), decoding_sem -- NaN (n 0) where there are no decoding rows;
        trainable_fraction (from ``conditions``; NaN for the baseline unless listed).
    """
    enc, dec, compared, rule = _prepare(encoding, decoding, conditions, layer, baseline)
    rois = list(dict.fromkeys(list(enc["roi"]) + list(dec["roi"])))
    rows = []
    for c in compared.itertuples(index=False):
        e = enc[enc["condition"] == c.condition]
        d = dec[dec["condition"] == c.condition]
        for roi in rois:
            er = e.loc[e["roi"] == roi, "r"].astype(float)
            dr = d.loc[d["roi"] == roi, "pairwise_accuracy"].astype(float)
            rows.append({"condition": c.condition, "method": c.method, "variant": c.variant, "task": c.task,
                         "roi": roi, "layer": e["layer"].iloc[0] if len(e) else np.nan, "layer_rule": rule,
                         "n_subjects": int(er.size), "encoding_r": float(er.mean()) if er.size else np.nan,
                         "encoding_sem": _sem(er),
                         "decoding_layer": d["layer"].iloc[0] if len(d) else np.nan,
                         "decoding_n_subjects": int(dr.size),
                         "decoding_accuracy": float(dr.mean()) if dr.size else np.nan,
                         "decoding_sem": _sem(dr), "trainable_fraction": c.trainable_fraction})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


# --------------------------------------------------------------------------------------------- tests

def _wide(scores: pd.DataFrame, value: str) -> pd.DataFrame:
    """subject x (condition, roi) table of a measure."""
    if scores.empty:
        return pd.DataFrame(index=pd.Index([], name="subject"),
                            columns=pd.MultiIndex.from_tuples([], names=["condition", "roi"]))
    return scores.pivot_table(index="subject", columns=["condition", "roi"], values=value, aggfunc="mean",
                              observed=True)


def _column(wide: pd.DataFrame, cond, roi) -> pd.Series | None:
    if (cond, roi) not in wide.columns:
        return None
    return wide[(cond, roi)].dropna()


def _pair_row(a: pd.Series, b: pd.Series, base: dict, n_perm: int, rng) -> dict:
    """One test row: pair subjects by id, run the paired test on a - b."""
    common = sorted(a.index.intersection(b.index), key=str)
    dropped = sorted(set(a.index).symmetric_difference(b.index), key=str)
    notes = []
    if dropped:
        notes.append(f"{len(dropped)} subject(s) without both sides dropped: {', '.join(map(str, dropped))}")
    x = a.loc[common].to_numpy(np.float64)
    y = b.loc[common].to_numpy(np.float64)
    row = dict(base, n_subjects=len(common), mean_diff=float(np.mean(x - y)) if common else np.nan,
               p=np.nan, q=np.nan, ci_low=np.nan, ci_high=np.nan, test="")
    if len(common) < MIN_SUBJECTS:
        notes.append(f"only {len(common)} paired subject(s) (< {MIN_SUBJECTS}): not tested")
    else:
        res = paired_test(x, y, n_perm=n_perm, seed=rng)
        row["p"] = res["p_signflip"]
        row["ci_low"], row["ci_high"] = bootstrap_ci(x - y, n_boot=n_perm, seed=rng)
        row["test"] = f"paired sign-flip {res['signflip_method']}, two-sided; CI: percentile bootstrap 95%"
    row["note"] = "; ".join(notes)
    return row


def comparison_tests(encoding: pd.DataFrame, decoding: pd.DataFrame | None, conditions: pd.DataFrame, *,
                     layer="best", baseline: str = "pretrained", n_perm: int = 10000,
                     seed: int = 0) -> pd.DataFrame:
    """Paired across-subject tests of the tuning comparison, per ROI and measure.

    Contrasts (a - b), for each measure (encoding r; decoding accuracy when there are decoding rows)
    and ROI:
        "<variant> vs pretrained" : each task-tuned condition vs the baseline;
        "<variant> vs full" : every non-full variant (partial, prefix, prompt, lora, ...) vs full
            fine-tuning on the same task;
        "<variant> (mean over tasks) vs full" : per subject the mean over the tasks both share in
            the ROI, of each side; ``task`` lists the tasks.

    Parameters
    ----------
    encoding, decoding, conditions, layer, baseline : as :func:`comparison_table` (the same layers).
    n_perm : sign flips per test (exact enumeration when ``2**n_subjects <= n_perm``), also the
        number of bootstrap resamples of the CI.
    seed : seeds one Generator used, in order, by every test and bootstrap of the call.

    Returns
    -------
    DataFrame (:data:`TEST_COLUMNS`): measure ("encoding_r" | "decoding_accuracy"), contrast (text),
    condition_a, condition_b (names; "; "-joined for the mean over tasks), method_a, method_b
    (variants), task, roi, n_subjects (subjects paired by id), mean_diff (mean over them of a - b),
    p (two-sided sign-flip), q (BH over all tested rows of this table), ci_low / ci_high (95 %
    percentile bootstrap of the mean difference), test (text), note ("" or why subjects were
    dropped / the row is untested). Contrasts whose conditions are absent are skipped with a
    logged warning.
    """
    enc, dec, compared, _ = _prepare(encoding, decoding, conditions, layer, baseline)
    rng = np.random.default_rng(seed)
    tuned = compared[compared["method"] != "pretrained"]
    has_base = (compared["method"] == "pretrained").any()
    tasks = list(dict.fromkeys(tuned["task"]))
    rows = []
    for measure, scores, value in (("encoding_r", enc, "r"), ("decoding_accuracy", dec, "pairwise_accuracy")):
        if scores.empty:
            if measure == "decoding_accuracy":
                log.info("tuning comparison: no decoding rows, no decoding tests")
            continue
        wide = _wide(scores, value)
        rois = list(dict.fromkeys(scores["roi"]))
        present = set(scores["condition"])

        def add(ca, cb, va, vb, task, label):
            if ca not in present or cb not in present:
                missing = [c for c in (ca, cb) if c not in present]
                log.warning("tuning comparison (%s): contrast %r on task %r skipped: no scores for %s",
                            measure, label, task, missing)
                return
            for roi in rois:
                a, b = _column(wide, ca, roi), _column(wide, cb, roi)
                if a is None or b is None:
                    log.warning("tuning comparison (%s): contrast %r on task %r skipped in ROI %r: %s has no "
                                "scores there", measure, label, task, roi, ca if a is None else cb)
                    continue
                base = {"measure": measure, "contrast": label, "condition_a": ca, "condition_b": cb,
                        "method_a": va, "method_b": vb, "task": task, "roi": roi}
                rows.append(_pair_row(a, b, base, n_perm, rng))

        # (a) each task-tuned condition vs the baseline
        if has_base:
            for c in tuned.itertuples(index=False):
                add(c.condition, baseline, c.variant, "pretrained", c.task, f"{c.variant} vs pretrained")
        # (b-d) each non-full variant vs full on the same task
        full = tuned[tuned["method"] == "full"]
        full_of = dict(zip(full["task"], full["condition"])) if full["task"].is_unique else None
        if full_of is None:
            log.warning("tuning comparison: several full fine-tuning conditions on one task (%s); method vs "
                        "full contrasts skipped", list(full["condition"]))
            continue
        others = tuned[tuned["method"] != "full"]
        for c in others.itertuples(index=False):
            if c.task not in full_of:
                log.warning("tuning comparison (%s): %r vs full skipped on task %r: no full fine-tuning "
                            "condition on that task", measure, c.variant, c.task)
                continue
            add(c.condition, full_of[c.task], c.variant, "full", c.task, f"{c.variant} vs full")
        # method level: mean over the tasks both share
        for variant in dict.fromkeys(others["variant"]):
            mine = others[others["variant"] == variant]
            cond_of = dict(zip(mine["task"], mine["condition"]))
            label = f"{variant} (mean over tasks) vs full"
            for roi in rois:
                shared = [t for t in tasks if t in cond_of and t in full_of
                          and _column(wide, cond_of[t], roi) is not None
                          and _column(wide, full_of[t], roi) is not None]
                if not shared:
                    log.warning("tuning comparison (%s): %r skipped in ROI %r: no task scored for both %r "
                                "and full", measure, label, roi, variant)
                    continue
                a = wide[[(cond_of[t], roi) for t in shared]]
                b = wide[[(full_of[t], roi) for t in shared]]
                a_mean = a.dropna().mean(axis=1)
                b_mean = b.dropna().mean(axis=1)
                base = {"measure": measure, "contrast": label,
                        "condition_a": "; ".join(cond_of[t] for t in shared),
                        "condition_b": "; ".join(full_of[t] for t in shared), "method_a": variant,
                        "method_b": "full", "task": f"mean over {len(shared)} task(s): {', '.join(shared)}",
                        "roi": roi}
                row = _pair_row(a_mean, b_mean, base, n_perm, rng)
                incomplete = sorted((set(a.index) - set(a_mean.index)) | (set(b.index) - set(b_mean.index)), key=str)
                if incomplete:
                    extra = (f"subject(s) not scored on every shared task: {', '.join(map(str, incomplete))}")
                    row["note"] = "; ".join(x for x in (row["note"], extra) if x)
                rows.append(row)
    out = pd.DataFrame(rows, columns=TEST_COLUMNS)
    if len(out):
        tested = out["p"].notna().to_numpy()
        q = np.full(len(out), np.nan)
        q[tested] = bh_fdr(out.loc[tested, "p"].to_numpy(np.float64))
        out["q"] = q
    return out


# --------------------------------------------------------------------------------------- correlations

def _spearman(x, y) -> tuple[int, float, float, str]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 3:
        return n, np.nan, np.nan, f"only {n} condition(s) with both values (< 3): no correlation"
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        which = "x" if np.ptp(x) == 0 else "score"
        return n, np.nan, np.nan, f"constant {which} over the {n} conditions: correlation undefined"
    res = stats.spearmanr(x, y)
    return n, float(res.statistic), float(res.pvalue), ""


def _task_tuned(table: pd.DataFrame) -> pd.DataFrame:
    _require(table, ["condition", "method", "task", "roi"] + MEASURES + ["trainable_fraction"], "comparison")
    return table[(table["method"] != "pretrained") & (table["task"].map(_text) != "")]


def trainable_vs_score(table: pd.DataFrame) -> pd.DataFrame:
    """Does alignment fall as more parameters are tuned? Spearman correlation, across the task-tuned
    conditions (all tasks and methods pooled), between trainable fraction and score.

    Parameters
    ----------
    table : output of :func:`comparison_table`.

    Returns
    -------
    DataFrame (:data:`TRAINABLE_COLUMNS`), one row per measure x ROI: measure, roi, n (conditions
    with both a trainable fraction and a score), rho (``scipy.stats.spearmanr``), p (its two-sided
    p), note. rho = p = NaN, with a note, for fewer than 3 conditions or a constant input; a
    measure with no score at all (decoding absent) has no rows.
    """
    tuned = _task_tuned(table)
    rows = []
    for measure in MEASURES:
        if tuned[measure].notna().sum() == 0:
            continue
        for roi in dict.fromkeys(tuned["roi"]):
            g = tuned[tuned["roi"] == roi]
            n, rho, p, note = _spearman(g["trainable_fraction"], g[measure])
            rows.append({"measure": measure, "roi": roi, "n": n, "rho": rho, "p": p, "note": note})
    return pd.DataFrame(rows, columns=TRAINABLE_COLUMNS)


def _similarity_rows(similarity: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    _require(similarity, _SIMILARITY_COLUMNS, "similarity")
    s = similarity
    if baseline is not None:
        s = s[s["base_condition"] == baseline]
        if s.empty:
            log.warning("similarity: no rows with base_condition %r", baseline)
    dup = s.duplicated(["condition", "layer"], keep=False)
    if dup.any():
        first = s[dup].iloc[0]
        raise ValueError(f"similarity: {int(dup.sum())} rows repeat a condition x layer (e.g. condition "
                         f"{first['condition']!r}, layer {first['layer']!r}, base conditions "
                         f"{sorted(map(str, s.loc[dup, 'base_condition'].unique()))}); pass baseline= to pick one")
    return s


def similarity_vs_score(table: pd.DataFrame, similarity: pd.DataFrame | None, *,
                        baseline: str | None = None) -> pd.DataFrame:
    """Do representations closer to the base model align better? Spearman correlation, across the
    task-tuned conditions, between similarity to the base model and score.

    The similarity of a condition is taken at the layer its score was compared at (``layer`` for
    encoding r, ``decoding_layer`` for decoding accuracy); when the similarity table lacks that
    layer for a condition, the condition's mean over its similarity layers is used instead and
    ``similarity_layer`` says so.

    Parameters
    ----------
    table : output of :func:`comparison_table`.
    similarity : columns condition, base_condition, layer, rsa, cka (may be empty or None).
    baseline : keep only rows with this base_condition; None keeps all (then each condition x layer
        must appear once).

    Returns
    -------
    DataFrame (:data:`SIMILARITY_SCORE_COLUMNS`), one row per measure x ROI x index (rsa, cka):
    measure, roi, index, n, rho, p (``scipy.stats.spearmanr``), similarity_layer ("compared layer",
    or "mean over layers for k of n conditions: ..."), note. Empty when there is no similarity.
    """
    if _is_empty(similarity):
        return pd.DataFrame(columns=SIMILARITY_SCORE_COLUMNS)
    s = _similarity_rows(similarity, baseline)
    tuned = _task_tuned(table)
    rows = []
    for measure, layer_col in (("encoding_r", "layer"), ("decoding_accuracy", "decoding_layer")):
        if tuned[measure].notna().sum() == 0:
            continue
        for roi in dict.fromkeys(tuned["roi"]):
            g = tuned[(tuned["roi"] == roi) & tuned[measure].notna()]
            for index in ("rsa", "cka"):
                sim, fallback = [], []
                for cond, lay in zip(g["condition"], g[layer_col]):
                    sc = s[s["condition"] == cond]
                    at = sc[pd.to_numeric(sc["layer"], errors="coerce") == lay] if pd.notna(lay) else sc.iloc[0:0]
                    if len(at):
                        sim.append(float(at[index].iloc[0]))
                    elif len(sc):
                        sim.append(float(sc[index].mean()))
                        fallback.append(cond)
                    else:
                        sim.append(np.nan)
                n, rho, p, note = _spearman(sim, g[measure])
                used = int(np.isfinite(np.asarray(sim, dtype=float)).sum())
                lay_note = "compared layer" if not fallback else (
                    f"mean over layers for {len(fallback)} of {used} conditions: {', '.join(fallback)}")
                rows.append({"measure": measure, "roi": roi, "index": index, "n": n, "rho": rho, "p": p,
                             "similarity_layer": lay_note, "note": note})
    return pd.DataFrame(rows, columns=SIMILARITY_SCORE_COLUMNS)


def similarity_by_method(similarity: pd.DataFrame | None, conditions: pd.DataFrame, *,
                         baseline: str | None = None) -> pd.DataFrame:
    """Mean similarity to the base model per tuning method and layer (are prefix-tuned
    representations closer to the base model than fully fine-tuned ones?).

    Parameters
    ----------
    similarity : columns condition, base_condition, layer, rsa, cka (may be empty or None).
    conditions : the conditions table; only task-tuned conditions count.
    baseline : as :func:`similarity_vs_score`.

    Returns
    -------
    DataFrame (:data:`SIMILARITY_METHOD_COLUMNS`): method, layer, mean_rsa, mean_cka (means over
    the method's task-tuned conditions at that layer, NaN ignored), n_conditions; methods in
    :data:`METHOD_ORDER`, layers ascending.
    """
    if _is_empty(similarity):
        return pd.DataFrame(columns=SIMILARITY_METHOD_COLUMNS)
    s = _similarity_rows(similarity, baseline)
    tuned, _ = _tuned_conditions(conditions, baseline="")
    m = s.merge(tuned[["condition", "method"]], on="condition", how="inner")
    if m.empty:
        return pd.DataFrame(columns=SIMILARITY_METHOD_COLUMNS)
    out = m.groupby(["method", "layer"], sort=False).agg(mean_rsa=("rsa", "mean"), mean_cka=("cka", "mean"),
                                                         n_conditions=("condition", "nunique")).reset_index()
    order = list(dict.fromkeys(tuned["method"]))
    out["_m"] = [order.index(x) for x in out["method"]]
    out = out.sort_values(["_m", "layer"], kind="mergesort").drop(columns="_m")
    return out[SIMILARITY_METHOD_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- claims

def summary_claims(table: pd.DataFrame, tests: pd.DataFrame, trainable: pd.DataFrame,
                   similarity_by_method: pd.DataFrame) -> dict:
    """What the data say about the three published claims, as numbers.

    Parameters
    ----------
    table, tests, trainable, similarity_by_method : outputs of :func:`comparison_table`,
        :func:`comparison_tests`, :func:`trainable_vs_score`, :func:`similarity_by_method`.

    Returns
    -------
    dict with
        ``encoding_r_by_method`` : {variant: mean encoding r over its tasks and ROIs} (and
            "pretrained": the baseline's mean over ROIs);
        ``decoding_accuracy_by_method`` : the same for decoding accuracy (empty without decoding);
        ``encoding_r_minus_full`` : {variant: mean over the (task, ROI) cells both it and full have
            of its encoding r minus full's} for every non-full variant;
        ``method_contrast_p`` : {"<variant> vs full": {roi: p}} of the method-level encoding contrast
            ("mean over tasks"), with ``method_contrast_q`` and ``method_contrast_mean_diff`` alike;
        ``trainable_rho_median`` : median over ROIs of the Spearman rho of trainable fraction vs
            encoding r (NaN when none is defined), with ``trainable_rho_by_roi``;
        ``similarity_by_method`` : {method: {"mean_cka": ..., "mean_rsa": ...}}, each the mean over
            layers of the per-layer means;
        ``prefix_minus_full_cka`` / ``prefix_minus_full_rsa`` and ``partial_minus_full_cka`` /
            ``partial_minus_full_rsa`` : those differences (NaN when a method is absent).
    """
    out: dict = {}
    for measure in MEASURES:
        by = table[table[measure].notna()].groupby("variant", sort=False)[measure].mean()
        out[f"{measure}_by_method"] = {k: float(v) for k, v in by.items()}
    tuned = _task_tuned(table)
    full = tuned[tuned["method"] == "full"].set_index(["task", "roi"])["encoding_r"]
    minus = {}
    for v in dict.fromkeys(tuned.loc[tuned["method"] != "full", "variant"]):
        mine = tuned[tuned["variant"] == v].set_index(["task", "roi"])["encoding_r"]
        d = (mine - full.reindex(mine.index)).dropna()
        minus[v] = float(d.mean()) if len(d) else np.nan
    out["encoding_r_minus_full"] = minus
    level = tests[(tests["measure"] == "encoding_r") & tests["contrast"].str.endswith("(mean over tasks) vs full")] \
        if len(tests) else tests
    for key, col in (("method_contrast_p", "p"), ("method_contrast_q", "q"), ("method_contrast_mean_diff", "mean_diff")):
        out[key] = {f"{v} vs full": {r: float(x) for r, x in zip(g["roi"], g[col])}
                    for v, g in level.groupby("method_a", sort=False)}
    enc_rho = trainable[trainable["measure"] == "encoding_r"] if len(trainable) else trainable
    rho = {r: float(x) for r, x in zip(enc_rho["roi"], enc_rho["rho"])} if len(enc_rho) else {}
    finite = [x for x in rho.values() if np.isfinite(x)]
    out["trainable_rho_by_roi"] = rho
    out["trainable_rho_median"] = float(np.median(finite)) if finite else np.nan
    sim = {}
    if len(similarity_by_method):
        per = similarity_by_method.groupby("method", sort=False)[["mean_cka", "mean_rsa"]].mean()
        sim = {m: {"mean_cka": float(r.mean_cka), "mean_rsa": float(r.mean_rsa)} for m, r in per.iterrows()}
    out["similarity_by_method"] = sim
    for m in ("prefix", "partial", "prompt", "lora"):
        for idx in ("cka", "rsa"):
            a = sim.get(m, {}).get(f"mean_{idx}", np.nan)
            b = sim.get("full", {}).get(f"mean_{idx}", np.nan)
            out[f"{m}_minus_full_{idx}"] = float(a - b)
    return out


# ---------------------------------------------------------------------------------------------- figure

_DEFAULT_NAMES = {"encoding_r": "encoding r (mean over subjects)",
                  "decoding_accuracy": "decoding pairwise accuracy (mean over subjects)"}


def _variant_order(table: pd.DataFrame) -> list:
    """Variants in method order, several variants of one method by their median trainable fraction."""
    v = table.drop_duplicates("condition")
    first = {m: k for k, m in enumerate(dict.fromkeys(v["method"]))}
    med = v.groupby("variant", sort=False).agg(method=("method", "first"), frac=("trainable_fraction", "median"))
    med["_m"] = [first[m] for m in med["method"]]
    return list(med.sort_values(["_m", "frac"], na_position="last", kind="mergesort").index)


def comparison_figure(table: pd.DataFrame, tests: pd.DataFrame, similarity: pd.DataFrame | None, *,
                      dataset: str, measure_names: dict | None = None):
    """The tuning comparison at a glance.

    Layout (top to bottom): per measure with scores (encoding r; decoding accuracy when present) a
    row of heat maps, one panel per ROI (up to 3 per line), rows = tasks, columns = tuning method
    variants plus the pretrained baseline (the same value on every task line), each cell the mean
    over subjects with ``*`` where the contrast with the pretrained model has q < 0.05, one labelled
    colourbar per measure; then a scatter of trainable fraction (log x) against encoding r, one
    colour per ROI with its Spearman rho in the legend (error bars: SEM across subjects), and, when
    a similarity table is given, a scatter of CKA to the base model against encoding r likewise.
    The title names the dataset and the layer rule.

    Parameters
    ----------
    table, tests : outputs of :func:`comparison_table` and :func:`comparison_tests`.
    similarity : the similarity table (condition, base_condition, layer, rsa, cka) or None / empty.
    dataset : name for the title.
    measure_names : optional {measure: axis/colourbar label} overriding the defaults for
        "encoding_r" and "decoding_accuracy".

    Returns
    -------
    matplotlib Figure. Axes: for each measure shown, one per ROI with a value for it plus one
    colourbar; then one scatter, or two with a similarity table.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = dict(_DEFAULT_NAMES, **(measure_names or {}))
    measures = [m for m in MEASURES if table[m].notna().any()]
    rois = list(dict.fromkeys(table["roi"]))
    tuned = _task_tuned(table)
    tasks = list(dict.fromkeys(tuned["task"]))
    variants = [v for v in _variant_order(table) if v != "pretrained"]
    cols = (["pretrained"] if (table["method"] == "pretrained").any() else []) + variants
    # per measure, the ROIs that have a value for it (a network decoded but not encoded gets no
    # empty encoding panel)
    rois_of = {m: list(dict.fromkeys(table.loc[table[m].notna(), "roi"])) for m in measures}
    ncol = max(1, min(3, max([len(r) for r in rois_of.values()] + [1])))
    panel_w = max(2.6, 0.55 * len(cols) + 1.0)
    panel_h = max(1.8, 0.32 * len(tasks) + 1.0)
    have_sim = not _is_empty(similarity)
    heights = [-(-len(rois_of[m]) // ncol) * panel_h + 0.6 for m in measures] + [4.0]
    # wide enough for the two scatters and their legends below the heat maps
    width = max(ncol * panel_w + 1.8, 12.0 if have_sim else 7.0)
    fig = Figure(figsize=(width, sum(heights) + 0.8), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(len(heights), 1, height_ratios=heights))
    rule = str(table["layer_rule"].iloc[0]) if len(table) else ""
    sig = {}
    if tests is not None and len(tests):
        vb = tests[tests["method_b"] == "pretrained"]
        sig = {(r.measure, r.condition_a, r.roi): r.q for r in vb.itertuples()}
    for sub, measure in zip(subs, measures):
        m_rois = rois_of[measure]
        nline = -(-len(m_rois) // ncol)
        axes = np.atleast_2d(sub.subplots(nline, ncol, squeeze=False))
        vals = table[measure].to_numpy(float)
        vmin, vmax = float(np.nanmin(vals)), float(np.nanmax(vals))
        if vmax <= vmin:
            vmax = vmin + 1e-6
        im, live = None, []
        for k, ax in enumerate(axes.flat):
            if k >= len(m_rois):
                ax.remove()
                continue
            live.append(ax)
            roi = m_rois[k]
            g = table[table["roi"] == roi]
            M = np.full((max(1, len(tasks)), len(cols)), np.nan)
            S = np.zeros_like(M, dtype=bool)
            for r in g.itertuples():
                j = cols.index(r.variant)
                rows_i = range(len(tasks)) if r.variant == "pretrained" else [tasks.index(r.task)]
                for i in rows_i:
                    M[i, j] = getattr(r, measure)
                    q = sig.get((measure, r.condition, roi), np.nan)
                    S[i, j] = bool(np.isfinite(q) and q < 0.05)
            im = ax.imshow(M, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
            for i in range(M.shape[0]):
                for j in range(M.shape[1]):
                    if np.isfinite(M[i, j]):
                        light = (M[i, j] - vmin) / (vmax - vmin) > 0.6
                        ax.text(j, i, f"{M[i, j]:.3f}{'*' if S[i, j] else ''}", ha="center", va="center",
                                fontsize=6, color="k" if light else "w")
            ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", fontsize=7)
            ax.set_yticks(range(len(tasks)), tasks if k % ncol == 0 else [], fontsize=7)
            ax.set_title(f"ROI {roi}", fontsize=9)
        sub.colorbar(im, ax=live, shrink=0.9,
                     label=f"{names[measure]}\n* q < 0.05 vs pretrained (paired, BH)")
        sub.suptitle(f"{names[measure]}: task x method", fontsize=10)
    scat = subs[-1].subplots(1, 2 if have_sim else 1, squeeze=False)[0]
    colours = {roi: f"C{k % 10}" for k, roi in enumerate(rois)}
    markers = {m: mk for m, mk in zip(dict.fromkeys(tuned["method"]), "osD^vP*Xh")}
    enc = tuned[tuned["encoding_r"].notna()]

    def scatter(ax, x_of, rho_tab, xlabel, title, logx):
        for roi in rois:
            g = enc[enc["roi"] == roi]
            x = x_of(g)
            ok = np.isfinite(x) & ((x > 0) if logx else True)
            rr = rho_tab[rho_tab["roi"] == roi] if len(rho_tab) else rho_tab
            rho = float(rr["rho"].iloc[0]) if len(rr) else np.nan
            label = f"{roi} (rho = {rho:+.2f})" if np.isfinite(rho) else f"{roi} (rho undefined)"
            ax.errorbar(x[ok], g["encoding_r"].to_numpy(float)[ok], yerr=g["encoding_sem"].to_numpy(float)[ok],
                        fmt="none", ecolor=colours[roi], alpha=0.5, lw=0.8)
            for m in markers:
                sel = ok & (g["method"] == m).to_numpy()
                ax.scatter(x[sel], g["encoding_r"].to_numpy(float)[sel], color=colours[roi], marker=markers[m],
                           s=22)
            ax.plot([], [], color=colours[roi], marker="o", ls="", label=label)
        if logx:
            ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel=f"{names['encoding_r']}\n(error bars: SEM across subjects)")
        ax.set_title(title, fontsize=9)
        h1, l1 = ax.get_legend_handles_labels()
        h2 = [Line2D([], [], color="grey", marker=mk, ls="", label=m) for m, mk in markers.items()]
        ax.legend(h1 + h2, l1 + list(markers), fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  title="ROI (Spearman) / method", title_fontsize=6)

    trainable = trainable_vs_score(table)
    tr = trainable[trainable["measure"] == "encoding_r"] if len(trainable) else trainable
    med = np.nanmedian(tr["rho"].to_numpy(float)) if len(tr) and np.isfinite(tr["rho"].to_numpy(float)).any() else np.nan
    scatter(scat[0], lambda g: g["trainable_fraction"].to_numpy(float), tr, "trainable fraction (log scale)",
            f"encoding r vs trainable fraction (median rho over ROIs {med:+.2f})", True)
    if have_sim:
        s = _similarity_rows(similarity, None)
        svs = similarity_vs_score(table, s)
        sc = svs[(svs["measure"] == "encoding_r") & (svs["index"] == "cka")] if len(svs) else svs

        def cka_of(g):
            out = []
            for cond, lay in zip(g["condition"], g["layer"]):
                rows = s[s["condition"] == cond]
                at = rows[pd.to_numeric(rows["layer"], errors="coerce") == lay]
                out.append(float(at["cka"].iloc[0]) if len(at) else (float(rows["cka"].mean()) if len(rows) else np.nan))
            return np.asarray(out, dtype=float)

        layer_note = "" if not len(sc) or (sc["similarity_layer"] == "compared layer").all() else \
            " (mean over layers where the compared layer is missing)"
        scatter(scat[1], cka_of, sc, f"linear CKA to the base model at the compared layer{layer_note}",
                "encoding r vs similarity to the base model", False)
    import textwrap

    fig.suptitle(textwrap.fill(f"{dataset}: task-tuned conditions vs pretrained; {rule}", int(width * 11)),
                 fontsize=11)
    return fig


__all__ = ["subject_roi_means", "comparison_table", "comparison_tests", "trainable_vs_score",
           "similarity_vs_score", "similarity_by_method", "summary_claims", "comparison_figure",
           "METHOD_ORDER", "MEASURES", "TABLE_COLUMNS", "TEST_COLUMNS"]
