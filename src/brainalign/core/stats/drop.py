"""Is model A's alignment really higher than model B's on the same held-out data? A paired
block-swap permutation test for the drop in r when a property is removed (or any two models
scored on the same held-out samples).

Both models are fitted with the same folds and predict the same held-out samples. Each fold's
held-out rows are cut, story by story, into blocks of ``block_len`` consecutive TRs
(:func:`brainalign.core.stats.bootstrap.fold_blocks`). Under the null hypothesis that the two
models predict the responses equally well, the labels "A" and "B" of the two predictions of a
block are exchangeable; one permutation draw swaps the two predictions on a random half of the
blocks (each block independently with probability 1/2; the same swaps for every target, so the
correlation between targets is kept and an ROI-level test is valid) and recomputes the score
table's statistic: per target, the Pearson r of prediction and response in each fold, averaged
over folds, for "A" and for "B", and their difference ``d = r_A - r_B``. Blocks of TRs, not
single TRs, are swapped because held-out residuals are autocorrelated.

One-sided p (the alternative: A aligns better, i.e. removal lowers alignment):
``p = (1 + #{d* >= d}) / (n_perm + 1)``. Per group of targets (an ROI) the statistic is the
mean of ``d`` over the group's targets, with the same draws.

A draw's r is computed from per-block sums (``sum p``, ``sum p^2``, ``sum y p`` per block and
model), so each draw costs one (n_perm x n_blocks) @ (n_blocks x n_targets) product per sum and
fold, not a Pearson per draw. tests/core/test_drop.py checks the statistic against scipy
``pearsonr`` on explicitly swapped arrays and the calibration of p under the null.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

from .bootstrap import fold_blocks


def _block_sums(y: np.ndarray, p: np.ndarray, blocks: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """(n_blocks, n_targets) sums of p, p^2 and y p over each block's rows."""
    sp = np.stack([p[b].sum(0) for b in blocks])
    spp = np.stack([(p[b] * p[b]).sum(0) for b in blocks])
    syp = np.stack([(y[b] * p[b]).sum(0) for b in blocks])
    return sp, spp, syp


def _r_from_sums(n, sy, syy, sp, spp, syp) -> np.ndarray:
    cov = syp - sy * sp / n
    vy = syy - sy * sy / n
    vp = spp - sp * sp / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(vy * vp)
    return np.where(np.isfinite(r), r, 0.0)


def paired_drop_test(Y, pred_a: np.ndarray, pred_b: np.ndarray, folds: list, story_of_sample: np.ndarray, *,
                     block_len: int = 10, n_perm: int = 1000, seed: int = 0, groups=None,
                     target_batch: int = 5000, return_draws: bool = False) -> dict:
    """Paired block-swap permutation test of ``r_A - r_B`` (module docstring).

    Parameters
    ----------
    Y : array-like (n_samples, n_targets), responses (rows indexed by ``folds``' test indices;
        slicing ``Y[:, a:b]`` must work, e.g. a numpy array or ``StackedRows``).
    pred_a, pred_b : float arrays (n_samples, n_targets), the held-out predictions of model A
        (e.g. the original features) and model B (the property removed), each row predicted by
        the fold that holds it out.
    folds : list of (train_idx, test_idx) pairs (``folds_from_table``).
    story_of_sample : (n_samples,) story label of each row (blocks never straddle stories).
    block_len : TRs per swapped block (>= 1); every fold needs >= 2 blocks.
    n_perm : permutation draws (> 0).
    groups : optional (n_targets,) group label of each target (e.g. ROI): adds group-level results.
    return_draws : also return ``swaps`` (per fold, (n_perm, n_blocks) 0/1), ``blocks`` (per fold,
        the list of row arrays) and ``null`` ((n_perm, n_targets) the drops of the draws).

    Returns
    -------
    dict with ``r_a``, ``r_b``, ``drop`` (= r_a - r_b) and ``p``, each (n_targets,) float64; and,
    with ``groups``, ``groups``: label -> dict(r_a, r_b, drop, p, n_targets, null) of the group
    means (``null``: the (n_perm,) drops of the draws, for :func:`combine_subjects`).
    """
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    if pred_a.shape != pred_b.shape:
        raise ValueError(f"paired_drop_test: predictions differ in shape, {pred_a.shape} vs {pred_b.shape}")
    if int(n_perm) < 1:
        raise ValueError(f"paired_drop_test: n_perm must be >= 1, got {n_perm}")
    n_targets = pred_a.shape[1]
    rng = np.random.default_rng(seed)
    fold_info = []
    for k, (_, test) in enumerate(folds):
        blocks = fold_blocks(np.asarray(test), story_of_sample, block_len)
        if len(blocks) < 2:
            raise ValueError(f"paired_drop_test: fold {k} has {len(test)} held-out TRs, fewer than 2 blocks of "
                             f"{block_len}; lower the block length")
        swaps = (rng.random((int(n_perm), len(blocks))) < 0.5).astype(np.float64)
        fold_info.append((blocks, swaps, np.concatenate(blocks)))
    labels = None if groups is None else np.asarray(groups)
    uniq = [] if labels is None else list(dict.fromkeys(labels.tolist()))
    r_a = np.zeros(n_targets)
    r_b = np.zeros(n_targets)
    null = np.zeros((int(n_perm), n_targets))
    for start in range(0, n_targets, int(target_batch)):
        cols = slice(start, min(n_targets, start + int(target_batch)))
        Yb = np.asarray(Y[:, cols], dtype=np.float64)
        A = np.asarray(pred_a[:, cols], dtype=np.float64)
        B = np.asarray(pred_b[:, cols], dtype=np.float64)
        for blocks, swaps, rows in fold_info:
            n = float(len(rows))
            y = Yb[rows]
            sy, syy = y.sum(0), (y * y).sum(0)
            a_sums = _block_sums(Yb, A, blocks)
            b_sums = _block_sums(Yb, B, blocks)
            tot_a = [s.sum(0) for s in a_sums]
            tot_b = [s.sum(0) for s in b_sums]
            r_a[cols] += _r_from_sums(n, sy, syy, *tot_a)
            r_b[cols] += _r_from_sums(n, sy, syy, *tot_b)
            # swapped blocks move B's sums into A and A's into B
            delta = [swaps @ (sb - sa) for sa, sb in zip(a_sums, b_sums)]
            ra_star = _r_from_sums(n, sy, syy, *[t + d for t, d in zip(tot_a, delta)])
            rb_star = _r_from_sums(n, sy, syy, *[t - d for t, d in zip(tot_b, delta)])
            null[:, cols] += ra_star - rb_star
    n_folds = len(folds)
    r_a /= n_folds
    r_b /= n_folds
    null /= n_folds
    drop = r_a - r_b
    p = (1 + (null >= drop[None, :] - 1e-12).sum(0)) / (int(n_perm) + 1)
    out = {"r_a": r_a, "r_b": r_b, "drop": drop, "p": p}
    if return_draws:
        out.update(swaps=[f[1] for f in fold_info], blocks=[f[0] for f in fold_info], null=null)
    if labels is not None:
        out["groups"] = {}
        for g in uniq:
            m = labels == g
            d = float(drop[m].mean())
            group_null = null[:, m].mean(1)
            out["groups"][g] = {"r_a": float(r_a[m].mean()), "r_b": float(r_b[m].mean()), "drop": d,
                                "p": float((1 + (group_null >= d - 1e-12).sum()) / (int(n_perm) + 1)),
                                "n_targets": int(m.sum()), "null": group_null}
    return out


def combine_subjects(drops, nulls) -> float:
    """Fixed-effect p of the mean drop over subjects from each subject's block-swap draws.

    Draw ``k`` of the group is the mean over subjects of their draw ``k`` (each subject's swaps
    are drawn independently, so this is a draw of the joint null: no subject's alignment drops).
    p = (1 + #{mean null_k >= mean drop}) / (K + 1). It pools the blocks of every subject, so it
    tests "these subjects' data show a drop", not a population effect (the sign-flip test of the
    subjects' drops does that, and needs more subjects: its smallest p with n subjects is
    2 / 2^n, two-sided).

    Parameters
    ----------
    drops : (n_subjects,) observed drops; nulls : (n_subjects, K) their draws (same K).
    """
    drops = np.asarray(drops, float)
    nulls = np.asarray(nulls, float)
    if nulls.ndim != 2 or len(nulls) != len(drops):
        raise ValueError(f"combine_subjects: {len(drops)} drops but null draws of shape {nulls.shape}")
    k = nulls.shape[1]
    return float((1 + (nulls.mean(0) >= drops.mean() - 1e-12).sum()) / (k + 1))


REMOVAL_COLUMNS = ["subject", "condition", "base_condition", "property", "method", "layer", "roi", "r_base",
                   "r_removed", "drop", "p", "q", "n_targets", "share_targets_q05", "test"]


def drop_summary(cells: list, roi_tables: list, n_perm: int = 10000, seed: int = 0) -> pd.DataFrame:
    """``removal_drop.csv``: the drop in alignment per removal condition, layer and ROI.

    ``cells``: per-cell drop tables (one row per target: subject, condition, base_condition,
    property, method, layer, target, roi, r_base, r_removed, roi_drop, roi_p, q); ``roi_tables``:
    per-cell ROI tables (subject, condition, layer, roi, null: the block-swap draws); ``n_perm``,
    ``seed``: the sign-flip test's. Rows:

    - per subject (``test = block_swap``): the ROI's mean r with and without the property, the
      drop and its one-sided p from the paired block-swap test, the share of the ROI's targets
      with per-target q < 0.05;
    - ``subject = group``, ``test = block_swap_fixed``: the subjects' mean drop against the mean
      of their draws (core.stats.drop.combine_subjects: these subjects' data, all blocks pooled);
    - ``subject = group``, ``test = sign_flip``: the two-sided sign-flip test of the subjects'
      drops (a population claim; needs 3 subjects, smallest p 2 / 2^n).

    q: Benjamini-Hochberg within each test's rows (the family: every condition, layer and ROI).
    """
    from .group import MIN_SUBJECTS, bh_fdr, paired_test

    cells = [c for c in cells if c is not None and len(c)]
    if not cells:
        return pd.DataFrame(columns=REMOVAL_COLUMNS)
    t = pd.concat(cells, ignore_index=True)
    keys = ["condition", "base_condition", "property", "method", "layer", "roi"]
    sub = (t.groupby(["subject", *keys], sort=False)
           .agg(r_base=("r_base", "mean"), r_removed=("r_removed", "mean"), drop=("roi_drop", "first"),
                p=("roi_p", "first"), n_targets=("target", "size"),
                share_targets_q05=("q", lambda q: float((q < 0.05).mean())))
           .reset_index())
    sub["test"] = "block_swap"
    nulls = {}
    for r in (x for x in roi_tables if x is not None and len(x)):
        for row in r.itertuples():
            nulls[(row.subject, row.condition, int(row.layer), row.roi)] = np.asarray(row.null, float)
    fixed, flips = [], []
    for key, g in sub.groupby(keys, sort=False):
        row = dict(zip(keys, key), subject="group", r_base=g["r_base"].mean(), r_removed=g["r_removed"].mean(),
                   drop=g["drop"].mean(), n_targets=int(g["n_targets"].sum()),
                   share_targets_q05=float(np.average(g["share_targets_q05"], weights=g["n_targets"])))
        k = dict(zip(keys, key))
        draws = [nulls.get((s, k["condition"], int(k["layer"]), k["roi"])) for s in g["subject"]]
        if all(d is not None for d in draws) and len({len(d) for d in draws}) == 1:
            fixed.append({**row, "p": combine_subjects(g["drop"].to_numpy(), np.stack(draws)),
                          "test": "block_swap_fixed"})
        flip = {**row, "p": np.nan, "test": "sign_flip"}
        if len(g) >= MIN_SUBJECTS:
            res = paired_test(g["r_base"].to_numpy(), g["r_removed"].to_numpy(), n_perm=int(n_perm), seed=int(seed))
            flip["p"] = res["p_signflip"]
        flips.append(flip)
    if sub["subject"].nunique() < MIN_SUBJECTS:
        log.warning("removal_drop: fewer than %d subjects, no sign-flip test across subjects (the block-swap tests "
                    "per subject and pooled are in the table)", MIN_SUBJECTS)
    out = pd.concat([sub, pd.DataFrame(fixed), pd.DataFrame(flips)], ignore_index=True)
    out["q"] = np.nan
    for test, rows in out.groupby("test").groups.items():
        ok = out.loc[rows, "p"].notna()
        idx = ok[ok].index
        if len(idx):
            out.loc[idx, "q"] = bh_fdr(out.loc[idx, "p"].to_numpy())
    return out[REMOVAL_COLUMNS]
