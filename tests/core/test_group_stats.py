"""Group-level statistics (core/stats/group.py), each number checked against an independent reference.

References: statsmodels' ``multipletests(method='fdr_bh')`` and a textbook Benjamini-Hochberg loop;
``scipy.stats.wilcoxon``; brute-force enumeration of all 2**n sign vectors with ``itertools``;
``scipy.stats.bootstrap(method='percentile')``; subject means recomputed with plain pandas; and
simulations under the null (test calibration) and with a known mean (CI coverage).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainalign.core.stats import group as G


def _bh_textbook(p):
    """Benjamini-Hochberg as printed: sort, q_(i) = min_{j>=i} p_(j) m / j, cap at 1, unsort."""
    p = list(map(float, p))
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return np.array(q)


def _brute_signflip_p(d):
    """Two-sided exact sign-flip p of the mean by enumerating every sign vector in pure Python."""
    d = [float(x) for x in d]
    n = len(d)
    obs = abs(sum(d) / n)
    hits = 0
    for signs in itertools.product((1.0, -1.0), repeat=n):
        m = abs(sum(s * x for s, x in zip(signs, d)) / n)
        if m >= obs - 1e-12:
            hits += 1
    return hits / 2 ** n


P_CASES = [np.random.default_rng(0).uniform(size=50),
           np.array([0.01, 0.01, 0.04, 0.04, 0.04, 0.2, 0.5, 0.5, 1.0, 0.0]),
           np.random.default_rng(1).uniform(0, 0.02, size=30),
           np.array([0.3])]


@pytest.mark.parametrize("p", P_CASES)
def test_bh_fdr_matches_statsmodels(p):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    ref = multitest.multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(G.bh_fdr(p), ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("p", P_CASES)
def test_bh_fdr_matches_textbook_loop(p):
    q = G.bh_fdr(p)
    np.testing.assert_allclose(q, _bh_textbook(p), rtol=1e-12, atol=0)
    assert np.all(q >= p * (1 - 1e-12)) and np.all(q <= 1)  # q = p m / m may round by an ulp
    order = np.argsort(p, kind="mergesort")
    assert np.all(np.diff(q[order]) >= 0)  # monotone in p


def test_bh_fdr_keeps_shape_and_rejects_nan_and_out_of_range():
    p = np.random.default_rng(2).uniform(size=(4, 5))
    q = G.bh_fdr(p)
    assert q.shape == (4, 5)
    np.testing.assert_allclose(q.ravel(), _bh_textbook(p.ravel()), rtol=1e-12)
    assert G.bh_fdr(np.array([])).shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        G.bh_fdr([0.01, np.nan, 0.3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        G.bh_fdr([0.01, 1.2])


def test_wilcoxon_p_matches_scipy():
    rng = np.random.default_rng(3)
    for n in (5, 9, 14, 40):
        values, null = rng.normal(0.05, 0.03, n), rng.normal(0.01, 0.03, n)
        res = G.one_sample_vs_null(values, null)
        assert res["p_wilcoxon"] == pytest.approx(stats.wilcoxon(values, null).pvalue, rel=1e-12)
        res0 = G.one_sample_vs_null(values)
        assert res0["p_wilcoxon"] == pytest.approx(stats.wilcoxon(values).pvalue, rel=1e-12)
        a, b = rng.normal(size=n), rng.normal(size=n)
        assert G.paired_test(a, b)["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)


def test_exact_signflip_matches_brute_force_n8():
    rng = np.random.default_rng(4)
    cases = [rng.normal(0.4, 1.0, 8),                       # generic floats
             np.array([3, -1, 2, 2, -2, 1, 0, 4.0]),         # ties and a zero (integer sums exact)
             np.array([1, 1, 1, 1, 1, 1, 1, 1.0]),           # the most extreme: p = 2 / 256
             np.zeros(8)]                                    # no effect at all: p = 1
    for d in cases:
        ref = _brute_signflip_p(d)
        res = G.one_sample_vs_null(d, n_perm=10000)
        assert res["p_signflip"] == pytest.approx(ref, abs=1e-15), d
        assert res["signflip_method"] == "exact (256 flips)"
    assert G.one_sample_vs_null(np.ones(8))["p_signflip"] == pytest.approx(2 / 256)
    # with a null and in the paired form the test runs on the difference
    a, b = rng.normal(size=8), rng.normal(size=8)
    ref = _brute_signflip_p(a - b)
    assert G.paired_test(a, b)["p_signflip"] == pytest.approx(ref, abs=1e-15)
    assert G.one_sample_vs_null(a, b)["p_signflip"] == pytest.approx(ref, abs=1e-15)


def test_reported_mean_and_t_statistic():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.2, 1, 10), rng.normal(0, 1, 10)
    res = G.paired_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert res["n"] == 10
    assert res["mean"] == pytest.approx(np.mean(a - b), rel=1e-12)
    assert res["statistic"] == pytest.approx(ref.statistic, rel=1e-10)


def test_monte_carlo_signflip_agrees_with_exact_and_uses_the_k_plus_1_formula():
    rng = np.random.default_rng(6)
    d = rng.normal(0.5, 1, 12)
    exact = G.sign_flip_p(d, n_perm=4096)
    assert exact[1] == "exact (4096 flips)"
    p_mc, method = G.sign_flip_p(d, n_perm=4095, seed=0)
    assert method == "monte carlo (4095 flips)"
    assert abs(p_mc - exact[0]) < 4 * np.sqrt(exact[0] * (1 - exact[0]) / 4095) + 1 / 4096
    # (1 + count) / (K + 1): with an extreme effect only the observed data is counted
    p_min, _ = G.sign_flip_p(np.full(30, 2.0), n_perm=999, seed=1)
    assert p_min == pytest.approx(1 / 1000)
    p999, _ = G.sign_flip_p(d, n_perm=999, seed=2)
    assert (p999 * 1000) == pytest.approx(round(p999 * 1000))
    # deterministic for a seed
    assert G.sign_flip_p(d, n_perm=999, seed=2)[0] == p999


@pytest.mark.parametrize("n_perm", [10000, 999])
def test_signflip_is_calibrated_under_the_null(n_perm):
    """2,000 null groups of 12 subjects, d ~ N(0, 1): P(p < 0.05) within [0.035, 0.065]
    (exact enumeration with n_perm=10000, Monte Carlo with 999)."""
    rng = np.random.default_rng(7)
    d = rng.normal(size=(2000, 12))
    ps = np.array([G.sign_flip_p(row, n_perm=n_perm, seed=i)[0] for i, row in enumerate(d)])
    rate = float(np.mean(ps < 0.05))
    assert 0.035 <= rate <= 0.065, rate


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(8).normal(0.1, 0.05, 15)
    low, high = G.bootstrap_ci(x, n_boot=20000, level=0.95, seed=0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, confidence_level=0.95,
                          method="percentile", rng=np.random.default_rng(1)).confidence_interval
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert abs(low - ref.low) < 0.05 * se
    assert abs(high - ref.high) < 0.05 * se
    assert low < x.mean() < high


def test_bootstrap_ci_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(9)
    true_mean, n = 0.3, 30
    hits = 0
    for i in range(500):
        low, high = G.bootstrap_ci(rng.normal(true_mean, 1.0, n), n_boot=2000, level=0.95, seed=i)
        hits += low <= true_mean <= high
    assert 0.92 <= hits / 500 <= 0.98, hits / 500


def test_primitives_reject_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        G.one_sample_vs_null([0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        G.one_sample_vs_null([0.1, np.nan, 0.2, 0.3])
    with pytest.raises(ValueError, match="shape"):
        G.paired_test([0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="level"):
        G.bootstrap_ci([0.1, 0.2, 0.3], level=95)


def _planted_scores(n_subjects=8, n_targets=20, seed=10):
    """ROI 'effect': r clearly above r_null in every subject under 'pretrained' L2; ROI 'none': r and
    r_null from the same distribution. 'random_init' L6 has no effect anywhere."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for cond, layer, gain in (("pretrained", 2, 0.08), ("random_init", 6, 0.0)):
            for roi, eff in (("effect", gain), ("none", 0.0)):
                for t in range(n_targets):
                    rows.append({"subject": f"sub-{s:02d}", "condition": cond, "layer": layer,
                                 "target": f"{roi}_{t}", "roi": roi,
                                 "r": 0.01 + eff + rng.normal(0, 0.05),
                                 "r_null": 0.01 + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def test_group_tests_on_a_planted_table():
    scores = _planted_scores()
    contrasts = [("null", "pretrained", 2), ("paired", ("pretrained", 2), ("random_init", 6))]
    out = G.group_tests(scores, contrasts, n_perm=10000, n_boot=4000, seed=0)
    assert list(out.columns) == G.GROUP_TEST_COLUMNS
    assert list(out["contrast"]) == ["pretrained L2 - null"] * 2 + ["pretrained L2 - random_init L6"] * 2
    assert list(out["roi"]) == ["effect", "none"] * 2
    assert (out["n_subjects"] == 8).all()
    eff, none = out[out["roi"] == "effect"], out[out["roi"] == "none"]
    assert (eff["q"] < 0.05).all() and (eff["mean"] > 0.05).all()
    assert (none["q"] > 0.05).all()
    # q is BH over the whole table (4 tests)
    np.testing.assert_allclose(out["q"], _bh_textbook(out["p"]), rtol=1e-12)

    # independent recomputation of the first row from plain pandas + brute force + scipy
    cell = scores[(scores["condition"] == "pretrained") & (scores["layer"] == 2) & (scores["roi"] == "effect")]
    m = cell.groupby("subject")[["r", "r_null"]].mean()
    d = (m["r"] - m["r_null"]).to_numpy()
    row = out.iloc[0]
    assert row["mean"] == pytest.approx(d.mean(), rel=1e-12)
    assert row["statistic"] == pytest.approx(stats.ttest_1samp(d, 0).statistic, rel=1e-10)
    assert row["p"] == pytest.approx(_brute_signflip_p(d), abs=1e-15)
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-12)
    assert row["ci_low"] < d.mean() < row["ci_high"]
    assert row["test"].startswith("sign-flip exact")

    # paired row, recomputed
    cell_b = scores[(scores["condition"] == "random_init") & (scores["layer"] == 6) & (scores["roi"] == "none")]
    cell_a = scores[(scores["condition"] == "pretrained") & (scores["layer"] == 2) & (scores["roi"] == "none")]
    dp = (cell_a.groupby("subject")["r"].mean() - cell_b.groupby("subject")["r"].mean()).to_numpy()
    row = out.iloc[3]
    assert row["p"] == pytest.approx(_brute_signflip_p(dp), abs=1e-15)
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(dp).pvalue, rel=1e-12)

    # same seed, same table
    again = G.group_tests(scores, contrasts, n_perm=10000, n_boot=4000, seed=0)
    pd.testing.assert_frame_equal(out, again)


def test_group_tests_without_r_null_tests_against_zero():
    scores = _planted_scores().drop(columns="r_null")
    out = G.group_tests(scores, [("null", "pretrained", 2)], n_boot=1000)
    assert list(out["contrast"]) == ["pretrained L2 - 0"] * 2
    cell = scores[(scores["condition"] == "pretrained") & (scores["layer"] == 2) & (scores["roi"] == "none")]
    d = cell.groupby("subject")["r"].mean().to_numpy()
    assert out.iloc[1]["p"] == pytest.approx(_brute_signflip_p(d), abs=1e-15)


def test_group_tests_errors_for_fewer_than_three_subjects():
    scores = _planted_scores(n_subjects=4)
    # ROI 'none' of pretrained L2 keeps only two subjects
    drop = ((scores["condition"] == "pretrained") & (scores["roi"] == "none")
            & scores["subject"].isin(["sub-00", "sub-01"]))
    thin = scores[~drop]
    with pytest.raises(ValueError, match=r"pretrained L2 - null', ROI 'none': 2 subject"):
        G.group_tests(thin, [("null", "pretrained", 2)], n_boot=100)
    with pytest.raises(ValueError, match=r"pretrained L2 - random_init L6', ROI 'none': 2 subject"):
        G.group_tests(thin, [("paired", ("pretrained", 2), ("random_init", 6))], n_boot=100)
    # the ROI with all four subjects alone is fine
    ok = G.group_tests(thin[thin["roi"] == "effect"], [("null", "pretrained", 2)], n_boot=100)
    assert ok["n_subjects"].tolist() == [4]


def test_group_tests_rejects_malformed_contrasts_and_missing_cells():
    scores = _planted_scores(n_subjects=3, n_targets=3)
    with pytest.raises(ValueError, match="expected"):
        G.group_tests(scores, [("nul", "pretrained", 2)])
    with pytest.raises(ValueError, match="expected"):
        G.group_tests(scores, [("paired", "pretrained", "random_init")])
    with pytest.raises(ValueError, match="no rows"):
        G.group_tests(scores, [("null", "pretrained", 7)])
    bad = scores.copy()
    bad.loc[bad.index[0], "r"] = np.nan
    with pytest.raises(ValueError, match="NaN r"):
        G.group_tests(bad, [("null", "pretrained", 2)], n_boot=100)
