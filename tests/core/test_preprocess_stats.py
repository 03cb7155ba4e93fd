"""core/preprocess.py (bad-target exclusion, cleaning) and core/stats.py (ROI summaries,
ground-truth recovery) against independent numpy / scipy computations."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainalign.core.brain.preprocess import (EXCLUSION_COLUMNS, clean_responses, detrend,
                                        find_bad_targets, trim)
from brainalign.core.stats.summaries import ground_truth_recovery, roi_summary

TARGETS = ["v0", "v1", "v2", "v3", "v4"]


def _responses(seed=0, n=(20, 15)):
    rng = np.random.default_rng(seed)
    return {"s1": rng.standard_normal((n[0], 5)), "s2": rng.standard_normal((n[1], 5))}


# --------------------------------------------------------------------------- find_bad_targets
def test_find_bad_targets_zero_variance_and_nan():
    resp = _responses()
    resp["s1"][:, 1] = 2.0          # zero variance in s1 (std exactly 0 in floating point)
    resp["s2"][3, 3] = np.nan       # one NaN in s2
    resp["s2"][[0, 5], 4] = np.inf  # two infs in s2
    ex = find_bad_targets(resp, TARGETS, "sub-07")
    assert list(ex.columns) == EXCLUSION_COLUMNS
    assert len(ex) == 3
    assert not ex.isna().any().any()  # never a NaN in the table
    rows = {(r.story, r.target): r for r in ex.itertuples()}
    assert set(rows) == {("s1", "v1"), ("s2", "v3"), ("s2", "v4")}
    assert (ex["subject"] == "sub-07").all()
    assert "zero variance" in rows[("s1", "v1")].reason
    assert rows[("s2", "v3")].reason.startswith("1 non-finite")
    assert rows[("s2", "v4")].reason.startswith("2 non-finite")
    # the story names the place unless a source file is given
    assert "s1" in rows[("s1", "v1")].reason
    ex2 = find_bad_targets({"s1": resp["s1"]}, TARGETS, "sub-07", source="sub-07_s1.nii.gz")
    assert "sub-07_s1.nii.gz" in ex2["reason"].iloc[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_find_bad_targets_flags_any_constant_value(dtype):
    rng = np.random.default_rng(12)
    values = rng.uniform(1, 1000, 5).astype(dtype)
    y = np.tile(values, (20, 1))  # every column constant
    ex = find_bad_targets({"s1": y}, TARGETS, "sub-01")
    assert sorted(ex["target"]) == TARGETS
    assert ex["reason"].str.contains("zero variance").all()


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")  # all-NaN column
def test_find_bad_targets_nan_plus_constant_is_one_row():
    """A column that is constant apart from its NaNs is reported once, as non-finite."""
    y = np.random.default_rng(1).standard_normal((10, 5))
    y[:, 2] = 1.0
    y[4, 2] = np.nan
    y[:, 0] = np.nan  # all NaN
    ex = find_bad_targets({"s": y}, TARGETS, "sub-01")
    assert sorted(ex["target"]) == ["v0", "v2"]
    assert ex["reason"].str.contains("non-finite").all()
    assert ex.set_index("target").loc["v0", "reason"].startswith("10 non-finite")


def test_find_bad_targets_clean_data_gives_empty_table():
    ex = find_bad_targets(_responses(2), TARGETS, "sub-01")
    assert len(ex) == 0 and list(ex.columns) == EXCLUSION_COLUMNS


# --------------------------------------------------------------------------- clean_responses
def _grid_table(n1=20, n2=15, trims=((2, 1), (0, 3))):
    rows = []
    for story, n, (a, b) in zip(["s1", "s2"], [n1, n2], trims):
        rows.append({"story": story, "n_trs_total": n, "tr": 2.0, "t0": 0.0, "trim_start": a,
                     "trim_end": b, "n_trs": n - a - b})
    return pd.DataFrame(rows)


def _linear_detrend(y):
    t = np.arange(len(y), dtype=np.float64)
    out = np.empty_like(y, dtype=np.float64)
    for j in range(y.shape[1]):
        slope, icpt = np.polyfit(t, y[:, j], 1)
        out[:, j] = y[:, j] - (slope * t + icpt)
    return out


def test_clean_responses_excludes_trims_and_detrends():
    resp = _responses(3)
    resp["s1"][:, 0] += 0.5 * np.arange(20)      # a trend, removed by detrending
    resp["s1"][2:19, 1] = 2.0                     # constant over exactly the kept TRs -> bad
    resp["s2"][13, 3] = np.nan                    # NaN in a trimmed-away TR of s2 -> kept
    resp["s2"][4, 4] = np.nan                     # NaN in a kept TR of s2 -> bad everywhere
    kept, keep, ex = clean_responses(resp, _grid_table(), TARGETS, "sub-02")
    np.testing.assert_array_equal(keep, [True, False, True, True, False])
    assert sorted(zip(ex["story"], ex["target"])) == [("s1", "v1"), ("s2", "v4")]
    assert (ex["subject"] == "sub-02").all() and not ex.isna().any().any()
    assert kept["s1"].shape == (17, 3) and kept["s2"].shape == (12, 3)
    for story, (a, b) in zip(["s1", "s2"], [(2, 1), (0, 3)]):
        y = resp[story][a:len(resp[story]) - b][:, keep]
        assert kept[story].dtype == np.float32
        assert np.isfinite(kept[story]).all()
        np.testing.assert_allclose(kept[story], _linear_detrend(y.astype(np.float32)),
                                   atol=1e-5)
    # without detrending: trimmed values only
    kept2, _, _ = clean_responses(resp, _grid_table(), TARGETS, "sub-02", do_detrend=False)
    np.testing.assert_allclose(kept2["s2"], resp["s2"][0:12][:, keep], rtol=1e-6)


def test_clean_responses_duration_mismatch_names_subject_story_file():
    resp = _responses(4, n=(20, 14))
    with pytest.raises(ValueError) as exc:
        clean_responses(resp, _grid_table(), TARGETS, "sub-03",
                        sources={"s2": "sub-03_task-s2_bold.nii.gz"})
    msg = str(exc.value)
    assert "sub-03" in msg and "s2" in msg and "sub-03_task-s2_bold.nii.gz" in msg
    assert "14" in msg and "15" in msg


def test_clean_responses_missing_or_extra_story():
    resp = _responses(5)
    with pytest.raises(ValueError, match=r"sub-04.*\['s2'\]"):
        clean_responses({"s1": resp["s1"]}, _grid_table(), TARGETS, "sub-04")
    with pytest.raises(ValueError, match="s9"):
        clean_responses({**resp, "s9": resp["s1"]}, _grid_table(), TARGETS, "sub-04")


def test_trim_and_detrend_helpers():
    x = np.arange(30, dtype=float).reshape(10, 3)
    np.testing.assert_array_equal(trim(x, 2, 3), x[2:7])
    np.testing.assert_array_equal(trim(x, 0, 0), x)
    rng = np.random.default_rng(6)
    y = rng.standard_normal((25, 4)) + np.arange(25)[:, None] * [1, -2, 0, 0.3] + 7
    np.testing.assert_allclose(detrend(y), _linear_detrend(y), atol=1e-5)


# --------------------------------------------------------------------------- roi_summary
def _scores(seed=7, n_subjects=4):
    rng = np.random.default_rng(seed)
    rows = []
    for cond in ["base", "tuned"]:
        for subj in range(n_subjects):
            for t in range(12):
                rows.append({"dataset": "d", "subject": f"sub-{subj}", "condition": cond,
                             "layer": 3, "target": f"t{t}", "roi": "A" if t < 7 else "B",
                             "r": rng.uniform(-0.1, 0.6), "r2": rng.uniform(-0.2, 0.3),
                             "alpha": 10.0, "r_concat": 0.0,
                             "alpha_at_edge": rng.choice([0.0, 0.25, 1.0])})
    return pd.DataFrame(rows)


def test_roi_summary_matches_numpy_and_scipy():
    sc = _scores()
    out = roi_summary(sc)
    assert len(out) == 4
    for row in out.itertuples():
        sel = sc[(sc.condition == row.condition) & (sc.layer == row.layer) & (sc.roi == row.roi)]
        subjects = sorted(sel["subject"].unique())
        subj_r = np.array([sel.loc[sel.subject == s, "r"].to_numpy().mean() for s in subjects])
        subj_r2 = np.array([sel.loc[sel.subject == s, "r2"].to_numpy().mean() for s in subjects])
        subj_edge = np.array([sel.loc[sel.subject == s, "alpha_at_edge"].to_numpy().mean()
                              for s in subjects])
        n = len(subj_r)
        assert row.mean_r == pytest.approx(subj_r.sum() / n, abs=1e-12)
        sem = np.sqrt(((subj_r - subj_r.mean()) ** 2).sum() / (n - 1)) / np.sqrt(n)
        assert row.sem_r == pytest.approx(sem, abs=1e-12)
        assert row.sem_r == pytest.approx(stats.sem(subj_r), abs=1e-12)
        assert row.mean_r2 == pytest.approx(subj_r2.mean(), abs=1e-12)
        assert row.n_subjects == n == 4
        assert row.n_targets == (7 if row.roi == "A" else 5)
        assert row.share_alpha_at_edge == pytest.approx(subj_edge.mean(), abs=1e-12)
    assert list(out.columns[:5]) == ["condition", "layer", "roi", "mean_r", "sem_r"]


def test_roi_summary_single_subject_sem_zero_and_noise_ceiling():
    sc = _scores(8, n_subjects=1)
    out = roi_summary(sc)
    np.testing.assert_array_equal(out["sem_r"], 0.0)
    assert not out["sem_r"].isna().any()
    sc = _scores(9, n_subjects=3)
    rng = np.random.default_rng(10)
    nc = pd.DataFrame([{"subject": f"sub-{s}", "target": f"t{t}", "noise_ceiling": rng.uniform()}
                       for s in range(3) for t in range(12)])
    out = roi_summary(sc, noise_ceiling=nc)
    for roi, targets in [("A", range(7)), ("B", range(7, 12))]:
        vals = nc[nc.target.isin([f"t{t}" for t in targets])]["noise_ceiling"].to_numpy()
        got = out.loc[out.roi == roi, "mean_noise_ceiling"].to_numpy()
        np.testing.assert_allclose(got, vals.mean(), atol=1e-12)
    assert set(out["noise_ceiling_method"]) == {"unknown"}
    np.testing.assert_allclose(out["r_norm"], out["mean_r"] / out["mean_noise_ceiling"], rtol=1e-12)
    nc["method"] = np.where(nc["subject"] == "sub-0", "repeats_single", "intersubject")
    assert set(roi_summary(sc, noise_ceiling=nc)["noise_ceiling_method"]) == {"intersubject+repeats_single"}
    # no valid ceiling (only the ISC): r_norm is NaN, the ISC is averaged under its own name
    nc["isc_loso"], nc["noise_ceiling"], nc["method"] = nc["noise_ceiling"], np.nan, "none"
    out = roi_summary(sc, noise_ceiling=nc)
    assert out["r_norm"].isna().all() and out["mean_noise_ceiling"].isna().all()
    np.testing.assert_allclose(out.loc[out.roi == "B", "mean_isc_loso"],
                               nc[nc.target.isin([f"t{t}" for t in range(7, 12)])]["isc_loso"].mean(), atol=1e-12)


def test_report_names_the_noise_ceiling_method_it_was_given():
    from brainalign.pipelines.analysis.nodes import report

    sc = _scores(12, n_subjects=2)
    nc = pd.DataFrame([{"subject": f"sub-{s}", "target": f"t{t}", "noise_ceiling": 0.5,
                        "method": "repeats_mean"} for s in range(2) for t in range(12)])
    empty = pd.DataFrame(columns=["subject", "target", "reason"])
    text, _ = report(roi_summary(sc, nc), pd.DataFrame(), empty, sc, "demo")
    assert "## Noise ceiling (CC_max of the mean over repeated presentations" in text
    assert "inter-subject" not in text and "| roi | repeats_mean |" in text


# --------------------------------------------------------------------------- ground truth
def test_ground_truth_recovery_matches_scipy():
    rng = np.random.default_rng(11)
    n_t = 40
    expected = np.r_[np.zeros(10), rng.uniform(0.05, 0.8, n_t - 10)]
    rows, truth = [], []
    for subj in ["sub-1", "sub-2"]:
        for t in range(n_t):
            truth.append({"subject": subj, "target": f"t{t}", "expected_r": expected[t]})
        for cond, noise in [("base", 0.05), ("tuned", 0.2)]:
            for t in range(n_t):
                rows.append({"subject": subj, "condition": cond, "layer": 2, "target": f"t{t}",
                             "r": expected[t] + rng.normal(0, noise)})
    scores, truth = pd.DataFrame(rows), pd.DataFrame(truth)
    out = ground_truth_recovery(scores, truth)
    assert len(out) == 2
    for row in out.itertuples():
        g = scores[scores.condition == row.condition].merge(truth, on=["subject", "target"])
        assert row.n_targets == 2 * n_t
        assert row.pearson_r_vs_expected == pytest.approx(
            stats.pearsonr(g["r"], g["expected_r"])[0], abs=1e-12)
        assert row.spearman_r_vs_expected == pytest.approx(
            stats.spearmanr(g["r"], g["expected_r"])[0], abs=1e-12)
        noise_r = g.loc[g.expected_r == 0, "r"].to_numpy()
        sig = g[g.expected_r != 0]
        assert row.pearson_r_signal == pytest.approx(stats.pearsonr(sig["r"], sig["expected_r"])[0], abs=1e-12)
        assert row.noise_n == 20
        assert row.noise_mean_r == pytest.approx(noise_r.mean(), abs=1e-12)
        assert row.noise_sem_r == pytest.approx(noise_r.std(ddof=1) / np.sqrt(20), abs=1e-12)
    # the planted signal is recovered better with less noise
    by = out.set_index("condition")["pearson_r_vs_expected"]
    assert by["base"] > by["tuned"] > 0.5

    # an explicit is_noise column takes precedence over expected_r == 0
    truth2 = truth.assign(is_noise=truth["target"].isin(["t0", "t1", "t2"]))
    out2 = ground_truth_recovery(scores, truth2)
    for row in out2.itertuples():
        g = scores[scores.condition == row.condition].merge(truth2, on=["subject", "target"])
        assert row.noise_n == 6
        assert row.noise_mean_r == pytest.approx(g.loc[g.is_noise, "r"].mean(), abs=1e-12)


def test_highpass_removes_slow_drifts_and_keeps_fast_signal():
    """Against a direct least-squares fit of the SPM DCT basis written here from its formula."""
    from brainalign.core.brain.preprocess import highpass

    n, tr, cutoff = 300, 2.0, 128.0
    t = np.arange(n)
    rng = np.random.default_rng(0)
    fast = np.sin(2 * np.pi * t * tr / 20.0)  # 20 s period: kept
    slow = 3 * np.cos(np.pi * (t + 0.5) * 2 / n)  # 300 s period: removed
    y = np.c_[fast + slow + 5.0, rng.standard_normal(n)]
    k = int(np.floor(2 * n * tr / cutoff))
    B = np.c_[np.ones(n), np.stack([np.cos(np.pi * (t + 0.5) * j / n) for j in range(1, k + 1)], 1)]
    expected = y - B @ np.linalg.lstsq(B, y, rcond=None)[0]
    got = highpass(y, tr, cutoff)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.corrcoef(got[:, 0], fast)[0, 1] > 0.99
    assert abs(got.mean(0)).max() < 1e-4


def test_clean_responses_detrend_methods():
    import pandas as pd

    from brainalign.core.brain.preprocess import clean_responses

    n = 100
    y = np.c_[np.linspace(0, 10, n) + np.sin(np.arange(n))]
    grids = pd.DataFrame([{"story": "a", "n_trs_total": n, "tr": 2.0, "t0": 0.0, "trim_start": 0,
                           "trim_end": 0, "n_trs": n}])
    lin, _, _ = clean_responses({"a": y}, grids, ["t"], "s", "linear")
    from scipy.signal import detrend as sp_detrend

    np.testing.assert_allclose(lin["a"], sp_detrend(y, axis=0), atol=1e-5)
    none, _, _ = clean_responses({"a": y}, grids, ["t"], "s", "none")
    np.testing.assert_allclose(none["a"], y, atol=1e-5)
    with pytest.raises(ValueError, match="study.detrend"):
        clean_responses({"a": y}, grids, ["t"], "s", "quadratic")


def test_paired_condition_test_against_scipy():
    from scipy import stats as st

    from brainalign.core.stats.summaries import paired_condition_test

    rng = np.random.default_rng(0)
    rows = []
    for s in range(8):
        for cond, layer, shift in (("p", 2, 0.1), ("q", 1, 0.0)):
            for t in range(3):
                rows.append({"subject": f"s{s}", "condition": cond, "layer": layer, "roi": "A", "target": f"t{t}",
                             "r": shift + 0.05 * rng.standard_normal()})
    scores = pd.DataFrame(rows)
    out = paired_condition_test(scores, ("p", 2), ("q", 1), "A")
    piv = scores.groupby(["condition", "subject"])["r"].mean()
    x, y = piv["p"].to_numpy(), piv["q"].to_numpy()
    assert out["n_subjects"] == 8 and out["mean_diff"] == pytest.approx((x - y).mean())
    assert out["p_t"] == pytest.approx(st.ttest_rel(x, y).pvalue)
    assert out["p_wilcoxon"] == pytest.approx(st.wilcoxon(x, y).pvalue)
