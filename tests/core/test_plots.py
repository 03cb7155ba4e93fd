"""Figures and the text summary say what they show: checked on the matplotlib artists and the
markdown text, from small tables built here (never against earlier output of the code)."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402

from brainalign.core import plots  # noqa: E402
from brainalign.core.stats.summaries import roi_summary  # noqa: E402
from brainalign.pipelines.analysis import nodes  # noqa: E402

ROIS = ["A1", "IFG", "WM"]


def _scores(n_subjects=3, conds=("pretrained", "lowlevel"), layers=(0, 1, 2), seed=0, drop=None):
    """Long score table: per ROI a planted r level (A1 > IFG > WM), a little subject noise; target
    t{k} of ROI r is ``r-t{k}``; ``drop``: (subject, n) removes n targets of A1 from that subject."""
    rng = np.random.default_rng(seed)
    level = {"A1": 0.45, "IFG": 0.2, "WM": 0.0}
    rows = []
    for cond in conds:
        for layer in (layers if cond != "lowlevel" else (0,)):
            for s in range(1, n_subjects + 1):
                for roi in ROIS:
                    for k in range(6):
                        if drop and drop[0] == s and roi == "A1" and k < drop[1]:
                            continue
                        r = level[roi] + 0.02 * layer + rng.normal(0, 0.03)
                        rows.append({"dataset": "toyset", "subject": f"sub-{s:02d}", "condition": cond,
                                     "layer": layer, "target": f"{roi}-t{k}", "roi": roi, "r": r, "r2": r * r,
                                     "alpha": 10.0, "r_concat": r, "alpha_at_edge": 0.0})
    return pd.DataFrame(rows)


def _ceiling(scores, value_by_roi, isc_by_roi=None, method="intersubject"):
    t = scores[["subject", "target", "roi"]].drop_duplicates()
    out = pd.DataFrame({"subject": t["subject"], "target": t["target"],
                        "noise_ceiling": t["roi"].map(value_by_roi).astype(float), "method": method})
    if isc_by_roi is not None:
        out["isc_loso"] = t["roi"].map(isc_by_roi).to_numpy(float)
    return out


def _legend_is_outside(fig):
    fig.canvas.draw()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends, "no legend"
    for leg in legends:
        lb = leg.get_window_extent()
        for ax in fig.axes:
            if ax.get_visible():
                assert not lb.overlaps(ax.get_window_extent()), "legend over an axes"


# --------------------------------------------------------------------------- roi_summary counts
def test_roi_summary_counts_are_integers_and_tell_fewest_and_most():
    sc = _scores(drop=(2, 2))
    out = roi_summary(sc)
    for col in ("n_subjects", "n_targets", "n_targets_max"):
        assert pd.api.types.is_integer_dtype(out[col]), col
    a1 = out[out["roi"] == "A1"]
    assert (a1["n_targets"] == 4).all() and (a1["n_targets_max"] == 6).all()
    other = out[out["roi"] != "A1"]
    assert (other["n_targets"] == 6).all() and (other["n_targets_max"] == 6).all()
    assert (out["n_subjects"] == 3).all()


# --------------------------------------------------------------------------- layer profile
def test_layer_profile_says_sem_names_dataset_and_conditions_legend_outside():
    summary = roi_summary(_scores())
    fig = nodes.layer_profile_plot(summary, "toyset")
    assert "toyset" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert any("pretrained" in t for t in titles) and any("lowlevel" in t for t in titles)
    ylabels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert ylabels and all("SEM across subjects" in y and "n = 3" in y for y in ylabels)
    for ax in fig.axes:
        if ax.get_visible():
            ticks = ax.get_xticks()
            assert np.allclose(ticks, np.round(ticks)), "layer ticks are whole numbers"
    _legend_is_outside(fig)
    plt.close(fig)


# --------------------------------------------------------------------------- ROI bars and ceilings
def _ceiling_segments(ax):
    """(y, x0, x1) of the horizontal line segments (ceilings; error bars are vertical)."""
    segs = []
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                if len(seg) == 2 and np.isclose(seg[0][1], seg[1][1]) and not np.isclose(seg[0][0], seg[1][0]):
                    segs.append((float(seg[0][1]), float(seg[0][0]), float(seg[1][0])))
    return segs


def test_roi_bars_ceiling_only_where_it_bounds_and_isc_never_drawn():
    sc = _scores()
    per_roi_mean = sc.groupby(["condition", "roi"])["r"].mean()
    a1_max = per_roi_mean.xs("A1", level="roi").max()
    # a valid ceiling above the scores in IFG and WM, below them in A1 (a noisy estimate)
    ceiling = {"A1": a1_max - 0.2, "IFG": 0.6, "WM": 0.3}
    isc = {"A1": 0.111, "IFG": 0.222, "WM": 0.0333}
    summary = roi_summary(sc, _ceiling(sc, ceiling, isc))
    fig = nodes.roi_bar_plot(summary, "toyset")
    ax = fig.axes[0]
    segs = _ceiling_segments(ax)
    ys = sorted(round(y, 6) for y, _, _ in segs)
    assert ys == sorted([0.3, 0.6]), ys              # A1's ceiling is below its bars: not drawn
    for v in isc.values():                           # the ISC (lower bound) is never drawn as a line
        assert all(abs(y - v) > 1e-9 for y, _, _ in segs)
    # the figure says why A1 has no ceiling, what the ceiling is, and what the error bars are
    text = fig._supxlabel.get_text()
    assert "A1" in text and "Noise ceiling" in text and "lower bound" in text
    assert "SEM across subjects" in ax.get_ylabel() and "n = 3" in ax.get_ylabel()
    assert "toyset" in ax.get_title()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("noise ceiling (intersubject" in lab for lab in labels)
    assert any(re.search(r"pretrained, layer \d", lab) for lab in labels)
    assert not any("ISC" in lab for lab in labels)
    _legend_is_outside(fig)
    plt.close(fig)


def test_roi_bars_draw_no_ceiling_without_a_valid_one():
    sc = _scores()
    nc = _ceiling(sc, {"A1": np.nan, "IFG": np.nan, "WM": np.nan}, {"A1": 0.9, "IFG": 0.9, "WM": 0.9},
                  method="none")
    fig = plots.roi_bars(roi_summary(sc, nc), "t")
    assert _ceiling_segments(fig.axes[0]) == []
    assert "No valid noise ceiling" in fig._supxlabel.get_text()
    plt.close(fig)


# --------------------------------------------------------------------------- partition
def test_partition_bars_legend_outside_and_sem_named():
    rows = []
    for roi in ROIS:
        for q, m in [("unique[a]", 0.02), ("unique[b]", 0.01), ("shared[a+b]", 0.03), ("r2[a+b]", 0.06)]:
            rows.append({"bands": "a=pretrained:4+b=lowlevel:0", "roi": roi, "quantity": q, "n_subjects": 3,
                         "mean": m, "sem": 0.005})
    fig = nodes.partition_plot(pd.DataFrame(rows), "toyset")
    ax = fig.axes[0]
    assert "SEM across subjects" in ax.get_ylabel()
    title = ax.get_title()
    assert "toyset" in title and "pretrained layer 4" in title and "lowlevel layer 0" in title
    _legend_is_outside(fig)
    plt.close(fig)


# --------------------------------------------------------------------------- recovery
def _truth(scores, seed=1):
    rng = np.random.default_rng(seed)
    t = scores[["subject", "target", "roi"]].drop_duplicates().reset_index(drop=True)
    t["is_noise"] = t["roi"] == "WM"
    t["expected_r"] = np.where(t["is_noise"], 0.0, rng.uniform(0.1, 0.8, len(t)))
    return t


def test_recovery_one_panel_per_subject_noise_marked_and_signal_r_reported():
    sc = _scores(n_subjects=3)
    truth = _truth(sc)
    rng = np.random.default_rng(2)
    # recovered r: planted r plus noise; noise targets spread around 0
    sc = sc.drop(columns="r").merge(truth[["subject", "target", "expected_r"]], on=["subject", "target"])
    sc["r"] = sc["expected_r"] * 0.8 + rng.normal(0, 0.05, len(sc))
    sc = sc.drop(columns="expected_r")
    from brainalign.core.stats.summaries import ground_truth_recovery

    rec = ground_truth_recovery(sc, truth)
    fig = nodes.recovery_plot(sc, truth, rec)
    best = rec.sort_values("pearson_r_vs_expected").iloc[-1]
    sup = fig._suptitle.get_text()
    assert "toyset" in sup and f"condition {best['condition']}" in sup and f"layer {int(best['layer'])}" in sup
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 3
    m = sc[(sc.condition == best["condition"]) & (sc.layer == best["layer"])].merge(truth, on=["subject", "target"])
    for ax in panels:
        sub = ax.get_title().splitlines()[0]
        g = m[m["subject"] == sub]
        sig = g[~g["is_noise"]]
        # the noise targets are a separate scatter with their own marker and colour
        colls = {str(c.get_label()): c for c in ax.collections if isinstance(c, PathCollection)}
        sig_c = next(c for lab, c in colls.items() if lab.startswith("signal target"))
        noise_c = next(c for lab, c in colls.items() if "noise" in lab)
        assert len(sig_c.get_offsets()) == len(sig) and len(noise_c.get_offsets()) == int(g["is_noise"].sum())
        np.testing.assert_allclose(np.asarray(noise_c.get_offsets())[:, 0], 0.0)
        assert not np.array_equal(sig_c.get_paths()[0].vertices, noise_c.get_paths()[0].vertices)  # marker
        sig_rgb = sig_c.get_facecolor()[0][:3]
        noise_rgb = (noise_c.get_edgecolor() if len(noise_c.get_edgecolor()) else noise_c.get_facecolor())[0][:3]
        assert not np.allclose(sig_rgb, noise_rgb)                                                    # colour
        # r over signal targets and over all targets, computed here independently
        r_sig = np.corrcoef(sig["expected_r"], sig["r"])[0, 1]
        r_all = np.corrcoef(g["expected_r"], g["r"])[0, 1]
        assert f"r over signal targets = {r_sig:.2f}" in ax.get_title()
        assert f"r over all targets = {r_all:.2f}" in ax.get_title()
    r_sig_pooled = np.corrcoef(m.loc[~m.is_noise, "expected_r"], m.loc[~m.is_noise, "r"])[0, 1]
    assert f"r over signal targets = {r_sig_pooled:.2f}" in sup
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("noise" in lab and "is_noise" in lab for lab in labels)
    _legend_is_outside(fig)
    plt.close(fig)


def test_recovery_plot_for_real_data_is_a_note_not_a_result():
    sc = _scores()
    empty_truth = pd.DataFrame(columns=["subject", "target", "roi", "expected_r", "is_noise"])
    rec = nodes.recovery(sc, empty_truth)
    fig = nodes.recovery_plot(sc, empty_truth, rec)
    assert not [ax for ax in fig.axes if ax.get_visible()], "no axes: nothing that looks like data"
    text = " ".join(t.get_text() for t in fig.texts)
    assert "toyset" in text and "no planted ground truth" in text and "not a result" in text
    w, h = fig.get_size_inches()
    assert w * h < 15
    plt.close(fig)


# --------------------------------------------------------------------------- summary.md
def test_report_tables_show_mean_and_sem_and_integer_counts():
    sc = _scores()
    summary = roi_summary(sc)
    truth = _truth(sc)
    from brainalign.core.stats.summaries import ground_truth_recovery

    rec = ground_truth_recovery(sc, truth)
    excl = pd.DataFrame(columns=["subject", "target", "reason"])
    text, metrics = nodes.report(summary, rec, excl, sc, "toyset")
    assert "mean ± SEM" in text
    # every cell of the r table is "mean ± SEM", with the values of the summary
    row = summary[(summary.condition == "pretrained") & (summary.layer == 1) & (summary.roi == "IFG")].iloc[0]
    section = text.split("## pretrained")[1].split("##")[0]
    ifg = [ln for ln in section.splitlines() if ln.startswith("| IFG |")][0]
    cells = [c.strip() for c in ifg.strip("|").split("|")]
    assert cells[2] == f"{row.mean_r:.3f} ± {row.sem_r:.3f}"
    # counts in the ground-truth table are printed as integers
    gt = text.split("## Planted ground truth")[1]
    line = [ln for ln in gt.splitlines() if ln.startswith("| pretrained | 1 |")][0]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == str(int(rec[(rec.condition == "pretrained") & (rec.layer == 1)]["n_targets"].iloc[0]))
    assert "signal targets" in gt
    assert metrics["r.pretrained.layer_1.IFG"] == pytest.approx(row.mean_r)


def test_md_table_writes_nan_and_counts_plainly():
    df = pd.DataFrame({"n_targets": [3.0, 4.0], "x": [0.5, np.nan]}, index=pd.Index(["a", "b"], name="roi"))
    out = nodes._md_table(df)
    assert "| a | 3 | 0.500 |" in out and "| b | 4 | n/a |" in out
