"""Tuning comparison study (core/stats/comparison.py), checked against independent references.

References: subject and condition means recomputed with plain pandas / numpy from the long tables
built here; the two-sided sign-flip p by enumerating all 2**6 sign vectors with ``itertools``;
BH q with ``scipy.stats.false_discovery_control``; Spearman rho with ``scipy.stats.spearmanr``;
SEM with ``scipy.stats.sem``; and planted effects (best layer, prefix > full, excluded conditions).
"""
from __future__ import annotations

import io
import itertools
import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainalign.core.stats import comparison as C

SUBJECTS = [f"s{k}" for k in range(1, 7)]
TASKS = ["sst2", "cola"]
ROIS = ["lang", "aud"]
#: planted encoding effect of each method over pretrained (prefix > full > partial)
EFFECT = {"pretrained": 0.0, "full": 0.02, "partial": 0.0, "prefix": 0.07}
FRACTION = {"full": 1.0, "partial": 0.1, "prefix": 0.01}
N_PERM = 2000  # > 2**6: the sign flips are enumerated exactly


def _conditions(extra=()):
    rows = [{"condition": "pretrained", "kind": "text", "base_model": "bert", "method": np.nan, "task": np.nan,
             "trainable_fraction": np.nan, "source": ""}]
    for task in TASKS:
        for method in ("full", "partial", "prefix"):
            rows.append({"condition": f"{method}-{task}", "kind": "tuned", "base_model": "bert", "method": method,
                         "task": task, "trainable_fraction": FRACTION[method] * (1.1 if task == "cola" else 1.0),
                         "source": "task_tuning"})
    rows.append({"condition": "brain-tuned", "kind": "tuned", "base_model": "bert", "method": "brain", "task": "",
                 "trainable_fraction": 1.0, "source": "brain_tuning"})
    rows.extend(extra)
    return pd.DataFrame(rows)


def _method(cond):
    return "brain" if cond == "brain-tuned" else cond.split("-")[0]


def _encoding(seed=0, n_targets=3):
    """Long score table. Per subject a random level; every condition's layer 1 is better by 0.05,
    except partial whose layer 0 is better by 0.05; the method effects of EFFECT on top (plus a
    small per-task shift); brain-tuned is far above everything (it must be excluded)."""
    rng = np.random.default_rng(seed)
    subj = {s: rng.normal(0.2, 0.03) for s in SUBJECTS}
    rows = []
    for cond in _conditions()["condition"]:
        m = _method(cond)
        task_shift = 0.01 if cond.endswith("cola") else 0.0
        for layer in (0, 1):
            best = (layer == 0) if m == "partial" else (layer == 1)
            for s in SUBJECTS:
                for roi in ROIS:
                    base = subj[s] + (0.1 if roi == "lang" else 0.0) + 0.05 * best + task_shift
                    eff = 0.5 if m == "brain" else EFFECT[m]
                    for t in range(n_targets):
                        rows.append({"dataset": "toy", "subject": s, "condition": cond, "layer": layer,
                                     "target": f"{roi}-{t}", "roi": roi,
                                     "r": base + eff + rng.normal(0, 0.01), "r2": 0.0})
    return pd.DataFrame(rows)


def _decoding(seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for cond in _conditions()["condition"]:
        m = _method(cond)
        for layer in (0, 1):
            for s in SUBJECTS:
                for roi in ROIS:
                    acc = 0.6 + 0.02 * layer + (0.06 if m == "prefix" else 0.0) + rng.normal(0, 0.01)
                    rows.append({"dataset": "toy", "subject": s, "condition": cond, "layer": layer, "roi": roi,
                                 "pairwise_accuracy": acc, "mse": 1.0, "n_items": 40, "p": 0.01, "q": 0.02})
    return pd.DataFrame(rows)


def _similarity():
    level = {"prefix": 0.9, "partial": 0.6, "full": 0.3}
    rows = []
    for k, cond in enumerate(c for c in _conditions()["condition"] if _method(c) in level):
        for layer in (0, 1):
            v = level[_method(cond)] - 0.05 * layer + 0.01 * k
            rows.append({"condition": cond, "base_condition": "pretrained", "layer": layer, "rsa": v - 0.1,
                         "cka": v, "n_items": 40})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data():
    enc, dec, cond, sim = _encoding(), _decoding(), _conditions(), _similarity()
    table = C.comparison_table(enc, dec, cond)
    tests = C.comparison_tests(enc, dec, cond, n_perm=N_PERM)
    return {"enc": enc, "dec": dec, "cond": cond, "sim": sim, "table": table, "tests": tests,
            "table_nodec": C.comparison_table(enc, None, cond),
            "tests_nodec": C.comparison_tests(enc, None, cond, n_perm=N_PERM)}


def _brute_signflip_p(d):
    d = [float(x) for x in d]
    obs = abs(sum(d) / len(d))
    hits = sum(abs(sum(s * x for s, x in zip(signs, d)) / len(d)) >= obs - 1e-12
               for signs in itertools.product((1.0, -1.0), repeat=len(d)))
    return hits / 2 ** len(d)


def _subject_vector(enc, cond, layer, roi, subjects=SUBJECTS):
    g = enc[(enc["condition"] == cond) & (enc["layer"] == layer) & (enc["roi"] == roi)]
    return g.groupby("subject")["r"].mean().reindex(subjects).to_numpy()


# ----------------------------------------------------------------------------------------- tables

def test_subject_roi_means_fixed_layer_matches_groupby(data):
    enc = data["enc"]
    got = C.subject_roi_means(enc, 0).set_index(["subject", "condition", "roi"]).sort_index()
    ref = enc[enc["layer"] == 0].groupby(["subject", "condition", "roi"])["r"].mean().sort_index()
    assert list(got.columns) == ["layer", "r"]
    assert (got["layer"] == 0).all()
    np.testing.assert_allclose(got["r"].to_numpy(), ref.to_numpy(), rtol=1e-12)
    assert got.index.equals(ref.index)


def test_best_layer_is_the_planted_one(data):
    table = data["table"]
    layer_of = table.groupby("condition")["layer"].first()
    for cond, layer in layer_of.items():
        assert layer == (0 if _method(cond) == "partial" else 1), cond
    assert table["layer_rule"].str.contains("same data").all()
    # decoding chooses on its own measure: layer 1 (planted +0.02) everywhere
    assert (table["decoding_layer"] == 1).all()


def test_table_means_match_pandas(data):
    enc, dec, table = data["enc"], data["dec"], data["table"]
    assert list(table.columns) == C.TABLE_COLUMNS
    for r in table.itertuples():
        layer = 0 if r.method == "partial" else 1
        sub = enc[(enc["condition"] == r.condition) & (enc["layer"] == layer) & (enc["roi"] == r.roi)]
        per_subject = sub.groupby("subject")["r"].mean()
        assert r.n_subjects == 6
        assert r.encoding_r == pytest.approx(per_subject.mean(), rel=1e-12)
        assert r.encoding_sem == pytest.approx(stats.sem(per_subject.to_numpy()), rel=1e-10)
        d = dec[(dec["condition"] == r.condition) & (dec["layer"] == 1) & (dec["roi"] == r.roi)]
        assert r.decoding_accuracy == pytest.approx(d["pairwise_accuracy"].mean(), rel=1e-12)
        assert r.decoding_sem == pytest.approx(stats.sem(d["pairwise_accuracy"].to_numpy()), rel=1e-10)


def test_table_rows_baseline_and_exclusions(data):
    table = data["table"]
    assert "brain-tuned" not in set(table["condition"])
    # a brain-tuned condition is left out even when a task is (wrongly) filled in
    odd = [{"condition": "brainperm-sst2", "kind": "tuned", "base_model": "bert", "method": "brain-permuted",
            "task": "sst2", "trainable_fraction": 1.0, "source": ""}]
    enc = pd.concat([data["enc"], data["enc"][data["enc"]["condition"] == "brain-tuned"].assign(
        condition="brainperm-sst2")])
    assert "brainperm-sst2" not in set(C.comparison_table(enc, None, _conditions(odd))["condition"])
    base = table[table["condition"] == "pretrained"]
    assert set(base["method"]) == {"pretrained"} and set(base["task"]) == {""}
    assert len(table) == (1 + 6) * len(ROIS)
    assert table.iloc[0]["condition"] == "pretrained"
    frac = table.drop_duplicates("condition").set_index("condition")["trainable_fraction"]
    assert frac["prefix-cola"] == pytest.approx(0.011)
    assert np.isnan(frac["pretrained"])
    assert (table["variant"] == table["method"]).all()


def test_empty_decoding_gives_nan_columns_and_no_decoding_tests(data):
    for empty in (None, data["dec"].iloc[0:0]):
        table = C.comparison_table(data["enc"], empty, data["cond"])
        assert table["decoding_accuracy"].isna().all() and table["decoding_sem"].isna().all()
        assert (table["decoding_n_subjects"] == 0).all()
        np.testing.assert_allclose(table["encoding_r"], data["table"]["encoding_r"])
        tests = C.comparison_tests(data["enc"], empty, data["cond"], n_perm=N_PERM)
        assert set(tests["measure"]) == {"encoding_r"}


def test_decoding_only_network_roi(data):
    dec = data["dec"].copy()
    extra = dec[dec["roi"] == "lang"].assign(roi="DMN")
    table = C.comparison_table(data["enc"], pd.concat([dec, extra]), data["cond"])
    dmn = table[table["roi"] == "DMN"]
    assert len(dmn) == 7 and dmn["encoding_r"].isna().all() and (dmn["n_subjects"] == 0).all()
    assert dmn["decoding_accuracy"].notna().all()


# ------------------------------------------------------------------------------------------ tests

def test_contrast_rows_routing_mean_diff_and_exact_p(data):
    enc, tests = data["enc"], data["tests"]
    assert list(tests.columns) == C.TEST_COLUMNS
    checks = [("prefix-sst2", 1, "full-sst2", 1, "prefix vs full"),
              ("partial-cola", 0, "full-cola", 1, "partial vs full"),
              ("full-cola", 1, "pretrained", 1, "full vs pretrained")]
    for ca, la, cb, lb, label in checks:
        for roi in ROIS:
            row = tests[(tests["measure"] == "encoding_r") & (tests["condition_a"] == ca)
                        & (tests["condition_b"] == cb) & (tests["roi"] == roi)]
            assert len(row) == 1, (ca, cb, roi)
            row = row.iloc[0]
            assert row["contrast"] == label and row["task"] == ca.split("-")[1]
            d = _subject_vector(enc, ca, la, roi) - _subject_vector(enc, cb, lb, roi)
            assert row["n_subjects"] == 6
            assert row["mean_diff"] == pytest.approx(np.mean(d), rel=1e-12)
            assert row["p"] == pytest.approx(_brute_signflip_p(d), abs=1e-12)
            assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]
            assert row["note"] == ""


def test_method_level_contrast_is_mean_over_shared_tasks(data):
    enc, tests = data["enc"], data["tests"]
    for roi in ROIS:
        row = tests[(tests["measure"] == "encoding_r") & (tests["contrast"] == "prefix (mean over tasks) vs full")
                    & (tests["roi"] == roi)].iloc[0]
        a = np.mean([_subject_vector(enc, f"prefix-{t}", 1, roi) for t in TASKS], axis=0)
        b = np.mean([_subject_vector(enc, f"full-{t}", 1, roi) for t in TASKS], axis=0)
        assert row["mean_diff"] == pytest.approx(np.mean(a - b), rel=1e-12)
        assert row["p"] == pytest.approx(_brute_signflip_p(a - b), abs=1e-12)
        assert row["condition_a"] == "prefix-sst2; prefix-cola" and row["method_b"] == "full"
        assert "2 task(s)" in row["task"]


def test_planted_prefix_beats_full(data):
    tests = data["tests"]
    for measure in C.MEASURES:
        rows = tests[(tests["measure"] == measure) & (tests["method_a"] == "prefix") & (tests["method_b"] == "full")]
        assert len(rows) == len(ROIS) * (len(TASKS) + 1)
        assert (rows["mean_diff"] > 0.03).all()
        # all six subjects positive: the smallest exact two-sided p, 2 / 2**6
        np.testing.assert_allclose(rows["p"], 2 / 64)
    part = tests[(tests["measure"] == "encoding_r") & (tests["contrast"] == "partial vs full")]
    assert (part["mean_diff"] < 0).all()


def test_q_matches_scipy_bh(data):
    tests = data["tests"]
    tested = tests["p"].notna()
    assert tested.all()
    np.testing.assert_allclose(tests.loc[tested, "q"], stats.false_discovery_control(tests.loc[tested, "p"]),
                               rtol=1e-12)


def test_contrast_counts(data):
    tests = data["tests"]
    enc = tests[tests["measure"] == "encoding_r"]
    n = len(ROIS)
    assert (enc["method_b"] == "pretrained").sum() == 6 * n
    assert enc["contrast"].isin(["prefix vs full", "partial vs full"]).sum() == 4 * n
    assert enc["contrast"].str.contains("mean over tasks").sum() == 2 * n
    assert not tests["condition_a"].str.contains("brain").any()
    assert not tests["condition_b"].str.contains("brain").any()


def test_missing_subjects_reduce_n_and_too_few_give_nan(data):
    enc = data["enc"]
    short = enc[~((enc["condition"] == "prefix-sst2") & (enc["subject"] == "s6"))]
    tests = C.comparison_tests(short, None, data["cond"], n_perm=N_PERM)
    row = tests[(tests["condition_a"] == "prefix-sst2") & (tests["condition_b"] == "full-sst2")
                & (tests["roi"] == "lang")].iloc[0]
    assert row["n_subjects"] == 5 and "s6" in row["note"]
    d = _subject_vector(enc, "prefix-sst2", 1, "lang", SUBJECTS[:5]) - _subject_vector(enc, "full-sst2", 1, "lang",
                                                                                     SUBJECTS[:5])
    assert row["mean_diff"] == pytest.approx(np.mean(d), rel=1e-12)
    assert row["p"] == pytest.approx(_brute_signflip_p(d), abs=1e-12)
    level = tests[(tests["contrast"] == "prefix (mean over tasks) vs full") & (tests["roi"] == "lang")].iloc[0]
    assert level["n_subjects"] == 5 and "s6" in level["note"]
    table = C.comparison_table(short, None, data["cond"])
    assert table.set_index(["condition", "roi"]).loc[("prefix-sst2", "lang"), "n_subjects"] == 5

    few = enc[~((enc["condition"] == "prefix-sst2") & enc["subject"].isin(SUBJECTS[2:]))]
    tests = C.comparison_tests(few, None, data["cond"], n_perm=N_PERM)
    row = tests[(tests["condition_a"] == "prefix-sst2") & (tests["condition_b"] == "full-sst2")
                & (tests["roi"] == "lang")].iloc[0]
    assert row["n_subjects"] == 2 and np.isnan(row["p"]) and np.isnan(row["q"])
    assert "not tested" in row["note"]
    ok = tests["p"].notna()
    np.testing.assert_allclose(tests.loc[ok, "q"], stats.false_discovery_control(tests.loc[ok, "p"]), rtol=1e-12)


def test_absent_conditions_are_skipped_with_warning(data, caplog):
    extra = [{"condition": "prompt-sst2", "kind": "tuned", "base_model": "bert", "method": "prompt", "task": "sst2",
              "trainable_fraction": 0.001, "source": ""}]
    cond = _conditions(extra)
    enc = data["enc"][data["enc"]["condition"] != "full-cola"]
    with caplog.at_level(logging.WARNING, logger=C.__name__):
        tests = C.comparison_tests(enc, None, cond, n_perm=N_PERM)
    assert "prompt-sst2" in caplog.text and "no full fine-tuning" in caplog.text
    assert "prompt-sst2" not in set(tests["condition_a"])
    assert not tests["condition_b"].str.contains("full-cola").any()
    level = tests[tests["contrast"] == "prefix (mean over tasks) vs full"]
    assert (level["task"] == "mean over 1 task(s): sst2").all()


def test_several_partial_fractions_become_variants(data):
    enc = data["enc"]
    extra_rows = enc[enc["condition"].str.startswith("partial")].copy()
    extra_rows["condition"] = extra_rows["condition"].str.replace("partial", "partial30")
    extra = [{"condition": f"partial30-{t}", "kind": "tuned", "base_model": "bert", "method": "partial", "task": t,
              "trainable_fraction": 0.3, "source": ""} for t in TASKS]
    cond = _conditions(extra)
    table = C.comparison_table(pd.concat([enc, extra_rows]), None, cond)
    variants = table.drop_duplicates("condition").set_index("condition")["variant"]
    assert variants["partial-sst2"] == "partial (10%)" and variants["partial-cola"] == "partial (11%)"
    assert variants["partial30-sst2"] == "partial (30%)"


# ------------------------------------------------------------------------------------ correlations

def test_trainable_vs_score_matches_spearmanr(data):
    table = data["table"]
    out = C.trainable_vs_score(table)
    assert list(out.columns) == C.TRAINABLE_COLUMNS
    assert len(out) == len(C.MEASURES) * len(ROIS)
    tuned = table[table["method"] != "pretrained"]
    for r in out.itertuples():
        g = tuned[tuned["roi"] == r.roi]
        ref = stats.spearmanr(g["trainable_fraction"], g[r.measure])
        assert r.n == 6
        assert r.rho == pytest.approx(ref.statistic, abs=1e-12)
        assert r.p == pytest.approx(ref.pvalue, abs=1e-12)
    # planted: prefix (smallest fraction) best, partial worst -> not monotone, but prefix on top
    enc_rho = out[out["measure"] == "encoding_r"]["rho"]
    assert np.isfinite(enc_rho).all()


def test_trainable_vs_score_degenerate_inputs(data):
    table = data["table"].copy()
    table["trainable_fraction"] = np.where(table["method"] == "pretrained", np.nan, 0.5)
    out = C.trainable_vs_score(table)
    assert out["rho"].isna().all() and out["note"].str.contains("constant").all()
    few = data["table"][data["table"]["condition"].isin(["pretrained", "full-sst2", "prefix-sst2"])]
    out = C.trainable_vs_score(few)
    assert out["rho"].isna().all() and (out["n"] == 2).all() and out["note"].str.contains("< 3").all()


def test_similarity_vs_score_matches_spearmanr(data):
    table, sim = data["table"], data["sim"]
    out = C.similarity_vs_score(table, sim)
    assert list(out.columns) == C.SIMILARITY_SCORE_COLUMNS
    assert len(out) == len(C.MEASURES) * len(ROIS) * 2
    tuned = table[table["method"] != "pretrained"]
    for r in out.itertuples():
        g = tuned[tuned["roi"] == r.roi]
        lay_col = "layer" if r.measure == "encoding_r" else "decoding_layer"
        s = [sim[(sim["condition"] == c) & (sim["layer"] == lay)][r.index].iloc[0]
             for c, lay in zip(g["condition"], g[lay_col])]
        ref = stats.spearmanr(s, g[r.measure])
        assert r.rho == pytest.approx(ref.statistic, abs=1e-12) and r.p == pytest.approx(ref.pvalue, abs=1e-12)
        assert r.similarity_layer == "compared layer"


def test_similarity_falls_back_to_mean_over_layers(data):
    table = data["table"]
    sim = data["sim"].copy()
    sim.loc[sim["layer"] == 1, "layer"] = 5          # no similarity at the compared layer 1
    out = C.similarity_vs_score(table, sim)
    row = out[(out["measure"] == "encoding_r") & (out["roi"] == "lang") & (out["index"] == "cka")].iloc[0]
    assert row["similarity_layer"].startswith("mean over layers for 4 of 6")
    g = table[(table["method"] != "pretrained") & (table["roi"] == "lang")]
    s = []
    for c, lay in zip(g["condition"], g["layer"]):
        rows = sim[sim["condition"] == c]
        at = rows[rows["layer"] == lay]
        s.append(at["cka"].iloc[0] if len(at) else rows["cka"].mean())
    assert row["rho"] == pytest.approx(stats.spearmanr(s, g["encoding_r"]).statistic, abs=1e-12)
    assert C.similarity_vs_score(table, None).empty


def test_similarity_by_method_matches_groupby(data):
    sim, cond = data["sim"], data["cond"]
    brain = pd.DataFrame([{"condition": "brain-tuned", "base_condition": "pretrained", "layer": 0, "rsa": 0.0,
                           "cka": 0.0, "n_items": 40}])
    out = C.similarity_by_method(pd.concat([sim, brain]), cond)
    assert list(out.columns) == C.SIMILARITY_METHOD_COLUMNS
    assert list(dict.fromkeys(out["method"])) == ["full", "partial", "prefix"]
    ref = sim.assign(method=sim["condition"].map(_method)).groupby(["method", "layer"])[["rsa", "cka"]].mean()
    for r in out.itertuples():
        assert r.mean_cka == pytest.approx(ref.loc[(r.method, r.layer), "cka"], rel=1e-12)
        assert r.mean_rsa == pytest.approx(ref.loc[(r.method, r.layer), "rsa"], rel=1e-12)
        assert r.n_conditions == 2
    dup = pd.concat([sim, sim.assign(base_condition="other")])
    with pytest.raises(ValueError, match="baseline="):
        C.similarity_by_method(dup, cond)
    assert len(C.similarity_by_method(dup, cond, baseline="pretrained")) == len(out)


def test_summary_claims_numbers(data):
    table, tests, sim, cond = data["table"], data["tests"], data["sim"], data["cond"]
    trainable = C.trainable_vs_score(table)
    by_method = C.similarity_by_method(sim, cond)
    claims = C.summary_claims(table, tests, trainable, by_method)
    ref = table.groupby("method")["encoding_r"].mean()
    for m in ("full", "partial", "prefix", "pretrained"):
        assert claims["encoding_r_by_method"][m] == pytest.approx(ref[m], rel=1e-12)
    assert claims["encoding_r_minus_full"]["prefix"] == pytest.approx(ref["prefix"] - ref["full"], rel=1e-10)
    assert claims["encoding_r_minus_full"]["prefix"] > 0.03
    for roi in ROIS:
        assert claims["method_contrast_p"]["prefix vs full"][roi] == pytest.approx(2 / 64)
    enc_rho = trainable[trainable["measure"] == "encoding_r"]["rho"]
    assert claims["trainable_rho_median"] == pytest.approx(np.median(enc_rho), abs=1e-12)
    cka = sim.assign(method=sim["condition"].map(_method)).groupby("method")["cka"].mean()
    assert claims["similarity_by_method"]["prefix"]["mean_cka"] == pytest.approx(cka["prefix"], rel=1e-12)
    assert claims["prefix_minus_full_cka"] == pytest.approx(cka["prefix"] - cka["full"], rel=1e-10)
    assert claims["prefix_minus_full_cka"] > 0
    assert np.isnan(claims["prompt_minus_full_cka"])


# ----------------------------------------------------------------------------------------- figure

@pytest.mark.parametrize("with_dec, with_sim", [(True, True), (False, False), (True, False), (False, True)])
def test_figure_builds_with_expected_axes(data, with_dec, with_sim):
    table = data["table"] if with_dec else data["table_nodec"]
    tests = data["tests"] if with_dec else data["tests_nodec"]
    sim = data["sim"] if with_sim else None
    fig = C.comparison_figure(table, tests, sim, dataset="toyset", measure_names={"encoding_r": "mean r"})
    n_measures = 2 if with_dec else 1
    assert len(fig.axes) == n_measures * (len(ROIS) + 1) + (2 if with_sim else 1)
    title = fig._suptitle.get_text()
    assert "toyset" in title and "best layer" in title
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any(lab.startswith("mean r") for lab in labels)           # colourbar label / scatter y label
    scat = [ax for ax in fig.axes if ax.get_xscale() == "log"]
    assert len(scat) == 1
    legend = [t.get_text() for t in scat[0].get_legend().get_texts()]
    assert any(t.startswith("lang (rho = ") for t in legend)
    fig.savefig(io.BytesIO(), format="png", dpi=40)             # renders (layout included)


def test_figure_leaves_out_empty_roi_panels(data):
    """A unit scored by one measure only (e.g. a network that is decoded, not encoded) gets a panel
    for that measure only, never an empty heat map."""
    table = data["table"].copy()
    only_dec = table[table["roi"] == ROIS[0]].assign(roi="netonly", encoding_r=np.nan, encoding_sem=np.nan)
    table = pd.concat([table, only_dec], ignore_index=True)
    fig = C.comparison_figure(table, data["tests"], None, dataset="toyset")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles.count("ROI netonly") == 1                           # the decoding panel only
    assert len(fig.axes) == (len(ROIS) + 1) + (len(ROIS) + 2) + 1
    fig.savefig(io.BytesIO(), format="png", dpi=40)


# ------------------------------------------------------------------------------------------ errors

def test_bad_input_raises_clear_errors(data):
    enc = data["enc"].copy()
    enc.loc[enc.index[5], "r"] = np.nan
    with pytest.raises(ValueError, match="NaN r.*subject"):
        C.comparison_table(enc, None, data["cond"])
    mixed = pd.concat([data["enc"], data["enc"].assign(dataset="other")])
    with pytest.raises(ValueError, match="mixes 2 datasets"):
        C.comparison_table(mixed, None, data["cond"])
    with pytest.raises(ValueError, match="'best' or an int"):
        C.comparison_table(data["enc"], None, data["cond"], layer="last")
    with pytest.raises(ValueError, match="lacks column"):
        C.comparison_table(data["enc"].drop(columns="roi"), None, data["cond"])
    with pytest.raises(ValueError, match="repeat a subject"):
        C.comparison_table(data["enc"], pd.concat([data["dec"], data["dec"].iloc[:1]]), data["cond"])


def test_fixed_layer_missing_for_a_condition_warns(data, caplog):
    enc = data["enc"]
    enc = enc[~((enc["condition"] == "partial-sst2") & (enc["layer"] == 1))]
    with caplog.at_level(logging.WARNING, logger=C.__name__):
        table = C.comparison_table(enc, None, data["cond"], layer=1)
    assert "partial-sst2" in caplog.text and "no layer 1" in caplog.text
    assert "partial-sst2" not in set(table["condition"])
    assert (table["layer"] == 1).all() and table["layer_rule"].iloc[0] == "layer 1 for every condition"
