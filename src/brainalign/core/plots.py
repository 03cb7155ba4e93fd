"""Figures (matplotlib, Agg): layer profiles, ROI bars, recovered-vs-planted scatter."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def layer_profile(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Mean cross-validated r (+- SEM across subjects) per layer, one line per ROI, one panel
    per condition."""
    conds = list(dict.fromkeys(summary["condition"]))
    fig, axes = plt.subplots(1, len(conds), figsize=(5.5 * len(conds), 4), squeeze=False, sharey=True)
    for ax, cond in zip(axes[0], conds):
        s = summary[summary["condition"] == cond]
        for roi, g in s.groupby("roi"):
            g = g.sort_values("layer")
            ax.errorbar(g["layer"], g["mean_r"], yerr=g["sem_r"], marker="o", ms=3, capsize=2, label=roi)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("layer")
        ax.set_title(cond)
    axes[0][0].set_ylabel("mean cross-validated r")
    axes[0][-1].legend(fontsize=7, loc="best", title="ROI")
    fig.suptitle(title or "Encoding performance by layer")
    fig.tight_layout()
    return fig


def roi_bars(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Mean r (+- SEM) per ROI at each condition's best layer (highest mean r over ROIs)."""
    conds = list(dict.fromkeys(summary["condition"]))
    rois = sorted(summary["roi"].unique())
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(rois) * len(conds) + 2), 4))
    width = 0.8 / len(conds)
    for c, cond in enumerate(conds):
        s = summary[summary["condition"] == cond]
        best = s.groupby("layer")["mean_r"].mean().idxmax()
        b = s[s["layer"] == best].set_index("roi").reindex(rois)
        ax.bar(np.arange(len(rois)) + c * width, b["mean_r"], width, yerr=b["sem_r"], capsize=2,
               label=f"{cond} (layer {best})")
        if "mean_noise_ceiling" in b:
            ax.scatter(np.arange(len(rois)) + c * width, b["mean_noise_ceiling"], marker="_", s=200,
                       color="k", label="noise ceiling" if c == 0 else None)
    ax.set_xticks(np.arange(len(rois)) + 0.4 - width / 2)
    ax.set_xticklabels(rois, rotation=30)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("mean cross-validated r")
    ax.legend(fontsize=7)
    ax.set_title(title or "Encoding performance by ROI (best layer)")
    fig.tight_layout()
    return fig


def partition_bars(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Unique and shared explained variance (R^2, mean +- SEM over subjects) per ROI: one bar per
    region of the partition (``unique[A]``, ``shared[A+B]``, ...), the joint model's R^2 as a
    black tick. ``summary``: roi, quantity, mean, sem (analysis ``partition_summary``)."""
    parts = [q for q in dict.fromkeys(summary["quantity"]) if q.startswith(("unique[", "shared["))]
    joint = [q for q in dict.fromkeys(summary["quantity"]) if q.startswith("r2[")]
    joint = max(joint, key=lambda q: q.count("+")) if joint else None
    rois = list(dict.fromkeys(summary["roi"]))
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(rois) * len(parts) + 2), 4))
    width = 0.8 / max(len(parts), 1)
    piv = summary.set_index(["quantity", "roi"])
    for j, q in enumerate(parts):
        b = piv.loc[q].reindex(rois)
        ax.bar(np.arange(len(rois)) + j * width, b["mean"], width, yerr=b["sem"], capsize=2, label=q)
    if joint is not None:
        b = piv.loc[joint].reindex(rois)
        ax.scatter(np.arange(len(rois)) + 0.4 - width / 2, b["mean"], marker="_", s=400, color="k",
                   label=f"{joint} (joint model)")
    ax.set_xticks(np.arange(len(rois)) + 0.4 - width / 2)
    ax.set_xticklabels(rois, rotation=30)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("cross-validated R$^2$ (mean over targets, then subjects)")
    ax.legend(fontsize=7)
    ax.set_title(title or "Variance partitioning (banded ridge)")
    fig.tight_layout()
    return fig


def recovery_scatter(scores: pd.DataFrame, truth: pd.DataFrame, layer: int) -> plt.Figure:
    """Recovered r against the planted expected r, one point per subject and voxel."""
    m = scores[scores["layer"] == layer].merge(truth, on=["subject", "target"], suffixes=("", "_t"))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(m["expected_r"], m["r"], s=4, alpha=0.4)
    lim = [min(0, m["r"].min()), max(m["expected_r"].max(), m["r"].max())]
    ax.plot(lim, lim, "k--", lw=0.7)
    ax.set_xlabel("planted expected r")
    ax.set_ylabel("recovered cross-validated r")
    rr = np.corrcoef(m["expected_r"], m["r"])[0, 1]
    ax.set_title(f"layer {layer}: r(recovered, planted) = {rr:.2f}")
    fig.tight_layout()
    return fig


def audio_words(waveform: np.ndarray, sample_rate: int, words: pd.DataFrame, story: str = "",
                seconds: float | None = 8.0) -> plt.Figure:
    """One story's waveform with a line and the word at each word onset (the first ``seconds``
    after the first word; None: all of it)."""
    t_first = float(words["onset"].min()) if len(words) else 0.0
    start = max(0.0, t_first - 0.5)
    stop = len(waveform) / sample_rate if seconds is None else min(len(waveform) / sample_rate, start + seconds)
    a, b = int(start * sample_rate), int(stop * sample_rate)
    fig, ax = plt.subplots(figsize=(12, 3))
    ax.plot(np.arange(a, b) / sample_rate, np.asarray(waveform[a:b]), lw=0.3, color="0.3")
    shown = words[(words["onset"] >= start) & (words["onset"] < stop)]
    top = float(np.abs(np.asarray(waveform[a:b])).max() or 1.0)
    for k, w in enumerate(shown.itertuples()):
        ax.axvline(w.onset, color="tab:red", lw=0.6)
        ax.text(w.onset, top * (1.05 + 0.17 * (k % 3)), str(w.word), fontsize=8, rotation=0, ha="left")
    ax.set_ylim(-top * 1.1, top * 1.6)
    ax.set_xlim(start, stop)
    ax.set_xlabel("time (s, TR-grid clock)")
    ax.set_ylabel("amplitude")
    ax.set_title(f"{story}: synthesised audio and word onsets ({len(shown)} words shown)")
    fig.tight_layout()
    return fig
