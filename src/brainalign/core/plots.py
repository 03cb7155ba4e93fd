"""Figures (matplotlib, Agg): layer profiles, ROI bars, variance partition, recovered-vs-planted
scatter, audio with word onsets. Legends sit outside the axes; error bars are SEM across subjects
and say so on the axis."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .stats.summaries import best_layers  # noqa: E402


def _n_label(n: pd.Series) -> str:
    """``n = 3`` (or ``n = 2-3`` when the cells have different numbers of subjects)."""
    n = pd.to_numeric(n, errors="coerce").dropna().astype(int)
    if not len(n):
        return "n = ?"
    return f"n = {n.min()}" if n.min() == n.max() else f"n = {n.min()}-{n.max()}"


def _legend_outside(fig: plt.Figure, axes, **kw):
    """One figure legend right of the axes (never over the data), with the handles of all panels."""
    seen: dict = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_"):
                seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside right upper", fontsize=8, **kw)


def layer_profile(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Mean cross-validated r (error bars: SEM across subjects) per layer, one line per ROI, one
    panel per condition (titled with it); the legend sits outside the panels."""
    conds = list(dict.fromkeys(summary["condition"]))
    rois = sorted(summary["roi"].unique())
    colours = {roi: f"C{k % 10}" for k, roi in enumerate(rois)}
    ncol = min(3, len(conds))
    nrow = -(-len(conds) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.8 * ncol + 1.8, 3.0 * nrow + 0.9), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, cond in zip(axes.flat, conds):
        s = summary[summary["condition"] == cond]
        layers = sorted(int(v) for v in s["layer"].unique())
        for roi in rois:
            g = s[s["roi"] == roi].sort_values("layer")
            if len(g):
                ax.errorbar(g["layer"].astype(int), g["mean_r"], yerr=g["sem_r"], marker="o", ms=3, capsize=2,
                            color=colours[roi], label=roi)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(layers)
        if len(layers) == 1:
            ax.set_xlim(layers[0] - 1, layers[0] + 1)
        ax.set_xlabel("layer")
        ax.set_title(f"condition: {cond}", fontsize=10)
    for ax in axes.flat[len(conds):]:
        ax.set_visible(False)
    n = f", {_n_label(summary['n_subjects'])}" if "n_subjects" in summary else ""
    for row in axes:
        row[0].set_ylabel(f"mean cross-validated r\n(error bars: SEM across subjects{n})")
    _legend_outside(fig, axes, title="ROI")
    fig.suptitle(title or "Encoding performance by layer")
    return fig


def _pair(a: float, b: float) -> str:
    """``a < b`` with as many decimals (3 to 6) as it takes to tell them apart."""
    d = 3
    while d < 6 and round(a, d) == round(b, d):
        d += 1
    return f"{a:.{d}f} < {b:.{d}f}"


def _valid_ceiling(summary: pd.DataFrame) -> pd.Series | None:
    """Per ROI the mean noise ceiling when the summary has a valid one (finite, > 0, from a real
    ceiling method); None otherwise. ``mean_isc_loso`` is a lower bound and never taken here."""
    if "mean_noise_ceiling" not in summary:
        return None
    method = str(summary["noise_ceiling_method"].iloc[0]) if "noise_ceiling_method" in summary else "unknown"
    if method in ("none", "unknown", "nan"):
        return None
    nc = pd.to_numeric(summary.groupby("roi")["mean_noise_ceiling"].first(), errors="coerce")
    nc = nc[np.isfinite(nc) & (nc > 0)]
    return nc if len(nc) else None


def roi_bars(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Mean r (error bars: SEM across subjects) per ROI at each condition's best layer (highest
    mean r over ROIs; the legend names it). A valid noise ceiling (``mean_noise_ceiling``, method
    in ``noise_ceiling_method``) is drawn as a black line across the ROI's bars, only in ROIs where
    it bounds every plotted mean r; the ROIs where the estimate falls below a score are named under
    the axes. The leave-one-subject-out ISC (``mean_isc_loso``) is a lower bound of the ceiling
    and is not drawn."""
    conds = list(dict.fromkeys(summary["condition"]))
    rois = sorted(summary["roi"].unique())
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(rois) * len(conds) + 1.5) + 3.2, 4.6),
                           layout="constrained")
    width = 0.8 / len(conds)
    x = np.arange(len(rois))
    plotted = pd.DataFrame(index=rois)
    best_of = best_layers(summary)
    for c, cond in enumerate(conds):
        s = summary[summary["condition"] == cond]
        best = best_of[cond][0]
        b = s[s["layer"] == best].set_index("roi").reindex(rois)
        ax.bar(x + c * width, b["mean_r"], width, yerr=b["sem_r"], capsize=2, label=f"{cond}, layer {best} (its best)")
        plotted[cond] = b["mean_r"]
    notes = []
    nc = _valid_ceiling(summary)
    method = str(summary["noise_ceiling_method"].iloc[0]) if "noise_ceiling_method" in summary else ""
    if nc is not None:
        from .stats.summaries import CEILING_METHODS

        top = plotted.max(axis=1)
        bounds = [r for r in rois if r in nc.index and nc[r] >= top[r]]
        below = [r for r in rois if r in nc.index and nc[r] < top[r]]
        for k, roi in enumerate(bounds):
            i = rois.index(roi)
            ax.hlines(nc[roi], i - width / 2 - 0.03, i + 0.8 - width / 2 + 0.03, color="k", lw=2,
                      label=f"noise ceiling ({method}; mean over the ROI's targets)" if k == 0 else None)
        notes.append("Noise ceiling: " + "; ".join(CEILING_METHODS.get(m, m) for m in method.split("+")) + ".")
        if below:
            notes.append("Not drawn where the ceiling estimate is below a plotted mean r (it does not bound "
                         "it there): " + ", ".join(f"{r} ({_pair(nc[r], top[r])})" for r in below) + ".")
    elif "mean_noise_ceiling" in summary:
        notes.append(f"No valid noise ceiling for these data (method: {method or 'unknown'}); none drawn.")
    if "mean_isc_loso" in summary:
        notes.append("The leave-one-subject-out ISC is a lower bound of the ceiling, not drawn (see summary.md).")
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(rois, rotation=30)
    ax.set_xlabel("ROI")
    ax.axhline(0, color="k", lw=0.5)
    n = _n_label(summary["n_subjects"]) if "n_subjects" in summary else "n = ?"
    ax.set_ylabel(f"mean cross-validated r\n(error bars: SEM across subjects, {n})")
    _legend_outside(fig, [ax])
    ax.set_title(title or "Encoding performance by ROI (best layer)")
    if notes:
        import textwrap

        fig.supxlabel("\n".join(textwrap.fill(t, 150) for t in notes), fontsize=7, ha="center")
    return fig


def partition_bars(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Unique and shared explained variance (R^2, mean, error bars SEM across subjects) per ROI:
    one bar per region of the partition (``unique[A]``, ``shared[A+B]``, ...), the joint model's
    R^2 as a black tick; legend outside the axes. ``summary``: roi, quantity, mean, sem
    (analysis ``partition_summary``)."""
    parts = [q for q in dict.fromkeys(summary["quantity"]) if q.startswith(("unique[", "shared["))]
    joint = [q for q in dict.fromkeys(summary["quantity"]) if q.startswith("r2[")]
    joint = max(joint, key=lambda q: q.count("+")) if joint else None
    rois = list(dict.fromkeys(summary["roi"]))
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(rois) * len(parts) + 2) + 3, 4.8), layout="constrained")
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
    ax.set_xlabel("ROI")
    ax.axhline(0, color="k", lw=0.5)
    n = _n_label(summary["n_subjects"]) if "n_subjects" in summary else "n = ?"
    ax.set_ylabel("cross-validated R$^2$ (mean over targets, then subjects)\n"
                  f"error bars: SEM across subjects, {n}", fontsize=9)
    _legend_outside(fig, [ax], title="partition")
    ax.set_title(title or "Variance partitioning (banded ridge)", fontsize=10)
    return fig


def _pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def recovery_scatter(scores: pd.DataFrame, truth: pd.DataFrame, layer: int, title: str = "") -> plt.Figure:
    """Recovered r against the planted expected r at ``layer``, one panel per subject: signal
    targets as dots, pure-noise targets (ground truth ``is_noise``; planted r 0 without that
    column) as red crosses. Each panel gives Pearson r over the signal targets and over all
    targets (the noise targets stacked at 0 can inflate the latter); the title gives both pooled.
    NONLIN targets are left out, as in :func:`~brainalign.core.stats.summaries.ground_truth_recovery`."""
    if "nonlinear_share" in truth:
        truth = truth[~(truth["nonlinear_share"].fillna(0) > 0)]
    m = scores[scores["layer"] == layer].merge(truth, on=["subject", "target"], suffixes=("", "_t"))
    noise = (m["is_noise"].astype(bool) if "is_noise" in m else m["expected_r"] == 0).to_numpy()
    subjects = sorted(m["subject"].unique())
    ncol = min(4, max(len(subjects), 1))
    nrow = max(-(-len(subjects) // ncol), 1)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol + 2.6, 3.4 * nrow + 1.2), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    lo = float(min(0.0, m["r"].min(), m["expected_r"].min())) if len(m) else 0.0
    hi = float(max(m["expected_r"].max(), m["r"].max())) if len(m) else 1.0
    lim = [lo - 0.02, hi + 0.02]
    for ax, sub in zip(axes.flat, subjects):
        sel = (m["subject"] == sub).to_numpy()
        sig, nz = m[sel & ~noise], m[sel & noise]
        ax.scatter(sig["expected_r"], sig["r"], s=5, alpha=0.45, color="tab:blue", linewidths=0,
                   label="signal target (planted r > 0)")
        ax.scatter(nz["expected_r"], nz["r"], s=14, marker="x", alpha=0.6, color="tab:red", linewidths=0.7,
                   label="pure-noise target (is_noise, planted r = 0)")
        ax.plot(lim, lim, "k--", lw=0.7, label="recovered = planted")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_title(f"{sub}\nr over signal targets = {_pearson(sig['expected_r'], sig['r']):.2f} (n = {len(sig)})\n"
                     f"r over all targets = {_pearson(m.loc[sel, 'expected_r'], m.loc[sel, 'r']):.2f} "
                     f"(n = {int(sel.sum())})", fontsize=8)
    for ax in axes.flat[len(subjects):]:
        ax.set_visible(False)
    fig.supxlabel("planted expected r (ground truth)")
    fig.supylabel("recovered cross-validated r")
    _legend_outside(fig, axes)
    pooled = (f"pooled over {len(subjects)} subjects: r over signal targets = "
              f"{_pearson(m.loc[~noise, 'expected_r'], m.loc[~noise, 'r']):.2f}, over all targets = "
              f"{_pearson(m['expected_r'], m['r']):.2f}")
    fig.suptitle(f"{title or f'Planted vs recovered r, layer {layer}'}\n{pooled}", fontsize=10)
    return fig


def no_ground_truth(dataset: str = "") -> plt.Figure:
    """A small text-only figure (no axes, so it cannot be read as a result) saying that the data
    have no planted ground truth, for the file a catalog names for the recovery plot."""
    fig = plt.figure(figsize=(6.5, 1.4))
    fig.text(0.5, 0.5, f"{dataset + ': ' if dataset else ''}no planted ground truth.\n"
             "Recovery of planted effects is defined for simulated studies only; this file is not a result.",
             ha="center", va="center", fontsize=9, wrap=True)
    return fig


def audio_words(waveform: np.ndarray, sample_rate: int, words: pd.DataFrame, story: str = "",
                seconds: float | None = 8.0, dataset: str = "") -> plt.Figure:
    """One story's waveform with a line and the word at each word onset (the first ``seconds``
    after the first word; None: all of it); the title names ``dataset`` (when given) and story."""
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
    where = f"{dataset}, story {story}" if dataset else f"story {story}"
    ax.set_title(f"{where}: audio waveform and word onsets ({len(shown)} words in the first "
                 f"{stop - start:.0f} s shown)")
    fig.tight_layout()
    return fig


def removal_heatmap(drops: pd.DataFrame, probes: pd.DataFrame, title: str = "") -> plt.Figure:
    """Property removal: one heat map per ROI of the drop in mean r (rows: property x method,
    columns: layer; the pooled group rows of ``removal_drop``, ``test = block_swap_fixed``, when
    there are any, else the mean over subjects), starred where their q < 0.05; and a last panel
    with each property's probe accuracy above the majority baseline by layer (original features,
    solid; removed, dashed). With group rows of both tests, ``*`` marks q < 0.05 of the pooled
    block-swap test (fixed effect over subjects) and ``†`` q < 0.05 of the sign flip across
    subjects (random effect)."""
    keys = ["property", "method", "layer", "roi"]
    pooled = drops["test"] == "block_swap_fixed"
    d = drops[pooled] if pooled.any() else drops
    d = d.groupby(keys, sort=False).agg(drop=("drop", "mean"), q=("q", "min")).reset_index()
    flip = drops[drops["test"] == "sign_flip"] if pooled.any() else drops.iloc[:0]
    d = d.merge(flip.groupby(keys)["q"].min().rename("q_flip").reset_index(), on=keys, how="left")
    rois = list(dict.fromkeys(d["roi"].tolist()))
    n = len(rois) + 1
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol + 1.6, 0.45 * max(2, d.groupby(["property", "method"]).ngroups) * nrow + 1.2),
                             squeeze=False, gridspec_kw={"wspace": 0.12, "hspace": 0.45})
    flat = axes.ravel()
    lim = float(np.nanmax(np.abs(d["drop"]))) if len(d) else 1.0
    lim = lim if lim > 0 else 1.0
    im = None
    for k, (ax, roi) in enumerate(zip(flat, rois)):
        g = d[d["roi"] == roi]
        rows = list(dict.fromkeys(zip(g["property"], g["method"])))
        layers = sorted(g["layer"].unique())
        M = np.full((len(rows), len(layers)), np.nan)
        Q = np.full_like(M, np.nan)
        QF = np.full_like(M, np.nan)
        for r in g.itertuples():
            i, j = rows.index((r.property, r.method)), layers.index(r.layer)
            M[i, j], Q[i, j], QF[i, j] = r.drop, r.q, r.q_flip
        im = ax.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                if np.isfinite(M[i, j]):
                    star = ("*" if np.isfinite(Q[i, j]) and Q[i, j] < 0.05 else "") + \
                        ("\u2020" if np.isfinite(QF[i, j]) and QF[i, j] < 0.05 else "")
                    ax.text(j, i, f"{M[i, j]:+.3f}{star}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(layers)), [str(k) for k in layers])
        ax.set_yticks(range(len(rows)), [f"{p} ({m})" for p, m in rows] if k % ncol == 0 else [], fontsize=7)
        ax.set_xlabel("layer")
        ax.set_title(str(roi), fontsize=9)
    ax = flat[len(rois)]
    if probes is not None and len(probes):
        for (prop, feat), g in probes.groupby(["property", "features"], sort=False):
            g = g.sort_values("layer")
            ax.plot(g["layer"], g["above_baseline"], marker="o", ls="-" if feat == "original" else "--",
                    label=f"{prop} ({feat})")
        ax.axhline(0, color="k", lw=0.8)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)   # below the panel, off the data
    ax.set_xlabel("layer")
    ax.set_ylabel("probe accuracy - majority")
    ax.set_title("linear probes (held-out words)", fontsize=9)
    for extra in flat[len(rois) + 1:]:
        extra.axis("off")
    if im is not None:
        fig.colorbar(im, ax=list(flat[:len(rois)]), shrink=0.8, label="drop in r")
    fig.suptitle(title, fontsize=10)
    return fig


def brain_tuning_history(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """Brain-tuning training curves: validation loss (left) and validation r (right) by epoch, one
    line per condition and fold; epoch 0 is the untuned backbone with its ridge heads, so a line
    that never drops below its epoch-0 value means the tuning did not help that fold."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    for (cond, fold), g in history.groupby(["condition", "fold"], sort=False):
        g = g.sort_values("epoch")
        for ax, col in zip(axes, ("val_loss", "val_r")):
            ax.plot(g["epoch"], g[col], marker="o", label=f"{cond} fold {fold}")
    axes[0].set(xlabel="epoch (0: untuned backbone, ridge heads)", ylabel="validation MSE (standardised responses)")
    axes[1].set(xlabel="epoch (0: untuned backbone, ridge heads)", ylabel="validation r (mean over targets, subjects)")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title or "brain-tuning: validation loss and r per epoch")
    _legend_outside(fig, axes)
    return fig


def _bars_by_roi(ax, groups: list, rois: list, column: str, err=None) -> list:
    """Grouped bars of ``column`` per ROI, one bar per group (``groups``: (label, table indexed by
    ``rois``)), error bars ``err(table)`` when given, a zero line, ROI ticks and a legend; returns
    each group's bar positions."""
    w = 0.8 / len(groups)
    xs = []
    for k, (label, g) in enumerate(groups):
        x = np.arange(len(rois)) + (k - (len(groups) - 1) / 2) * w
        ax.bar(x, g[column], w, yerr=None if err is None else err(g), capsize=2, label=label)
        xs.append(x)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(rois)), rois, rotation=45, ha="right")
    ax.legend(fontsize=7)
    return xs


def brain_tuning_report(gain: pd.DataFrame, impact: pd.DataFrame, efficiency: pd.DataFrame,
                        downstream: pd.DataFrame, title: str = "") -> plt.Figure:
    """Brain-tuning at a glance: (a) the gain in mean r over the untuned source per ROI (each brain
    condition and layer; bars = mean over subjects, error bars = 95 % bootstrap CI over subjects,
    * where q < 0.05); (b) the low-level impact, % of r lost when the low-level features are
    regressed out; (c) the data-efficiency curve of the subjects left out of tuning (mean r over
    ROIs and left-out subjects against the share of their training data the ridge saw); (d)
    downstream probe accuracy with the majority baseline (black ticks)."""
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2), layout="constrained")

    def empty(ax, what):
        ax.text(0.5, 0.5, f"{what}: not run", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()

    ax = axes[0]
    if len(gain):
        rois = sorted(gain["roi"].unique())
        groups = [(f"{c} L{layer}", gain[(gain["condition"] == c) & (gain["layer"] == layer)].set_index("roi").reindex(rois))
                  for c, layer in dict.fromkeys(zip(gain["condition"], gain["layer"]))]
        xs = _bars_by_roi(ax, groups, rois, "gain",
                          err=lambda g: np.vstack([g["gain"] - g["ci_low"], g["ci_high"] - g["gain"]]).clip(min=0))
        for x, (_, g) in zip(xs, groups):
            for xi, (gv, q, hi) in zip(x, g[["gain", "q", "ci_high"]].to_numpy(float)):
                if q < 0.05:
                    ax.text(xi, max(gv, hi), "*", ha="center", va="bottom")
        ax.set(ylabel="gain in mean r over the untuned source", title="(a) alignment gain (95 % CI over subjects)")
    else:
        empty(ax, "(a) alignment gain (needs >= 3 subjects)")
    ax = axes[1]
    if len(impact):
        top = impact[impact["layer"] == impact["layer"].max()]
        rois = sorted(top["roi"].unique())
        _bars_by_roi(ax, [(c, top[top["condition"] == c].set_index("roi").reindex(rois))
                          for c in dict.fromkeys(top["condition"])], rois, "drop_pct")
        ax.set(ylabel="% of r lost without the low-level features",
               title=f"(b) low-level impact, layer {int(top['layer'].iloc[0])} (mean over subjects)")
    else:
        empty(ax, "(b) low-level impact")
    ax = axes[2]
    if len(efficiency):
        m = efficiency.groupby(["condition", "fraction"], sort=False)["mean_r"].mean().reset_index()
        styles = [("-", "o", 7), ("--", "s", 5), (":", "^", 4)]   # identical curves stay visible
        for j, (c, g) in enumerate(m.groupby("condition", sort=False)):
            ls, mk, ms = styles[j % len(styles)]
            ax.plot(g["fraction"], g["mean_r"], ls=ls, marker=mk, ms=ms, label=c)
        subs = ", ".join(sorted(efficiency["subject"].unique()))
        ax.set(xlabel="share of the left-out subject's training data", ylabel="mean r over ROIs",
               title=f"(c) data efficiency ({subs}, layer {int(efficiency['layer'].iloc[0])})")
        ax.legend(fontsize=7)
    else:
        empty(ax, "(c) data efficiency (no subject left out of tuning)")
    ax = axes[3]
    if len(downstream):
        labels = [f"{r.condition}\n{r.task}" for r in downstream.itertuples()]
        x = np.arange(len(downstream))
        ax.bar(x, downstream["accuracy"], yerr=downstream["sem"], capsize=2)
        ax.scatter(x, downstream["majority"], marker="_", s=400, color="k", label="majority class", zorder=3)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        ax.set(ylabel="probe accuracy (5-fold CV)",
               title=f"(d) downstream probes, layer {int(downstream['layer'].iloc[0])}\n(error bar: SEM over folds)")
        ax.legend(fontsize=7)
    else:
        empty(ax, "(d) downstream probes")
    fig.suptitle(title or "brain-tuning: alignment, low-level impact, data efficiency, downstream")
    return fig


def decoding_bars(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Decoding at a glance: per ROI / network, the mean pairwise matching accuracy over subjects of
    each condition (and layer), error bars = SEM over subjects, the mean permutation-null accuracy
    as a black tick on each bar and chance (0.5) as a dashed line; * where q < 0.05."""
    summary = summary.assign(label=[r if u == "roi" else f"{r} (network)" for r, u in zip(summary["roi"], summary["unit"])])
    groups = list(dict.fromkeys(zip(summary["condition"], summary["layer"])))
    units = list(dict.fromkeys(summary["label"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(units) * max(1, len(groups)) ** 0.5 + 3), 4.2),
                           layout="constrained")
    table = [(f"{c} L{k}", summary[(summary["condition"] == c) & (summary["layer"] == k)].set_index("label")
              .reindex(units)) for c, k in groups]
    xs = _bars_by_roi(ax, table, units, "mean_accuracy", err=lambda g: g["sem_accuracy"])
    w = 0.8 / len(table)
    for x, (_, g) in zip(xs, table):
        ax.hlines(g["mean_null"], x - w / 2, x + w / 2, color="k", lw=1.5)
        for xi, (acc, q) in enumerate(zip(g["mean_accuracy"], g["q"])):
            if np.isfinite(q) and q < 0.05:
                ax.text(x[xi], acc + 0.01, "*", ha="center", fontsize=9)
    ax.get_legend().remove()
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance (0.5)")
    lo = np.nanmin(summary["mean_accuracy"].to_numpy(float)) if len(summary) else 0.5
    ax.set_ylim(min(0.4, lo - 0.05), 1.0)
    ax.set_ylabel("pairwise matching accuracy\n(mean over subjects, error bar: SEM)")
    ax.set_title(title or "decoding: stimulus features from brain targets", fontsize=10)
    ax.text(1.0, -0.32, "black tick: mean permutation-null accuracy; * q < 0.05 (sign flip across subjects, BH)",
            transform=ax.transAxes, ha="right", fontsize=7)
    _legend_outside(fig, [ax])
    return fig
