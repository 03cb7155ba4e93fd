"""Confidence intervals of a subject's cross-validated r by a block bootstrap over TRs.

Held-out TRs are not independent (the BOLD response and its noise are autocorrelated), so
resampling single TRs gives intervals that are too narrow. The moving unit here is a block of
``block_len`` consecutive TRs:

- each fold's held-out rows are cut, story by story, into consecutive blocks of ``block_len`` TRs
  (a story's last block may be shorter); blocks never straddle two stories;
- one bootstrap draw resamples, in every fold independently, as many blocks as the fold has, with
  replacement (stratified by fold, so each fold keeps its size in blocks);
- the statistic of a draw is the statistic the score table reports: per target, the Pearson r of
  held-out prediction and response in each fold, averaged over folds (``r``); and per group of
  targets (an ROI), the mean of that r over the group's targets, with the same draw for every
  target, so the correlation between targets is kept;
- the interval is the percentile interval of the ``n_boot`` draws at ``level``.

A draw is a vector of counts per row (how often the row's block was drawn), and r is computed
from count-weighted sums (``W @ y``, ``W @ y^2``, ...): one matrix product per fold and batch of
targets, not one Pearson per draw. :func:`block_bootstrap_r` documents shapes;
tests/core/test_bootstrap.py checks it against a direct loop over resampled index arrays (scipy
``pearsonr``) and measures coverage on AR(1) data with a known correlation.
"""
from __future__ import annotations

import numpy as np


def fold_blocks(test: np.ndarray, story_of_sample: np.ndarray, block_len: int) -> list[np.ndarray]:
    """The blocks of one fold's held-out rows: a list of row-index arrays (into the whole data),
    consecutive rows of one story, ``block_len`` long except a story's last block."""
    if int(block_len) < 1:
        raise ValueError(f"bootstrap block_len must be >= 1 TR, got {block_len}")
    test = np.asarray(test)
    labels = np.asarray(story_of_sample)[test]
    blocks = []
    for story in dict.fromkeys(labels.tolist()):
        rows = test[labels == story]
        blocks += [rows[i:i + int(block_len)] for i in range(0, len(rows), int(block_len))]
    return blocks


def block_count_draws(n_blocks: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_blocks) counts: how often each block is drawn when ``n_blocks`` blocks are drawn
    with replacement, ``n_boot`` times."""
    picks = rng.integers(0, n_blocks, size=(int(n_boot), n_blocks))
    counts = np.zeros((int(n_boot), n_blocks), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(int(n_boot)), n_blocks), picks.ravel()), 1.0)
    return counts


def _weighted_r(W: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pearson r of y and p (n_rows, n_targets) under row weights W (n_boot, n_rows): (n_boot, n_targets)."""
    n = W.sum(1, keepdims=True)
    sy, sp = W @ y, W @ p
    syy, spp, syp = W @ (y * y), W @ (p * p), W @ (y * p)
    cov = syp - sy * sp / n
    vy = syy - sy * sy / n
    vp = spp - sp * sp / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(vy * vp)
    return np.where((vy > 0) & (vp > 0), r, 0.0)


def block_bootstrap_r(Y, predictions: np.ndarray, folds: list, story_of_sample: np.ndarray,
                      block_len: int = 10, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      groups: np.ndarray | None = None, target_batch: int = 5000) -> dict:
    """Block-bootstrap confidence intervals of the fold-mean r per target and per group of targets.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_targets), responses (a memory map or
        :class:`~brainalign.core.encoding.ridge.StackedRows` is read by target batches).
    predictions : array of shape (n_samples, n_targets), held-out predictions
        (``cross_validated_encoding(..., return_predictions=True).predictions``); only the rows of
        the folds' test sets are read.
    folds : outer (train, test) index pairs, as scored.
    story_of_sample : array of shape (n_samples,), story label of each sample.
    block_len : TRs per block.
    n_boot : bootstrap draws.
    level : coverage of the percentile interval.
    seed : the draws depend only on it, the folds and the stories (the same for every cell of a
        subject with the same seed).
    groups : optional array of shape (n_targets,), a group label per target (e.g. the ROI).
    target_batch : targets per batch (bounds memory: n_boot x target_batch floats per sum).

    Returns
    -------
    dict with ``low``, ``high``: arrays (n_targets,) of the per-target interval; ``groups``: a
    dict group -> (low, high, n_targets) of the group's mean r when ``groups`` is given;
    ``n_boot``, ``block_len``, ``n_blocks`` (blocks per fold).
    """
    if not 0 < float(level) < 1:
        raise ValueError(f"bootstrap level must be in (0, 1), got {level}")
    if int(n_boot) < 1:
        raise ValueError(f"bootstrap n_boot must be >= 1, got {n_boot}")
    n_samples, n_targets = Y.shape
    if predictions.shape != (n_samples, n_targets):
        raise ValueError(f"predictions have shape {predictions.shape}, responses {(n_samples, n_targets)}")
    rng = np.random.default_rng(seed)
    fold_rows, fold_W, n_blocks = [], [], []
    for _, test in folds:
        blocks = fold_blocks(test, story_of_sample, block_len)
        if len(blocks) < 2:
            raise ValueError(f"a fold has {len(blocks)} block of {block_len} TRs in its held-out data; "
                             "a bootstrap over TR blocks needs >= 2 (choose a shorter block_len)")
        counts = block_count_draws(len(blocks), n_boot, rng)
        rows = np.concatenate(blocks)
        fold_rows.append(rows)
        n_blocks.append(len(blocks))
        fold_W.append(np.repeat(counts, [len(b) for b in blocks], axis=1))  # (n_boot, n_rows)
    boot = np.zeros((int(n_boot), n_targets))
    for s in range(0, n_targets, int(target_batch)):
        sl = slice(s, min(s + int(target_batch), n_targets))
        Yb = np.asarray(Y[:, sl], dtype=np.float64)
        Pb = np.asarray(predictions[:, sl], dtype=np.float64)
        for rows, W in zip(fold_rows, fold_W):
            y, p = Yb[rows], Pb[rows]
            boot[:, sl] += _weighted_r(W, y - y.mean(0), p - p.mean(0))
    boot /= len(folds)
    tail = (1 - float(level)) / 2
    out = {"low": np.quantile(boot, tail, axis=0), "high": np.quantile(boot, 1 - tail, axis=0),
           "n_boot": int(n_boot), "block_len": int(block_len), "n_blocks": n_blocks}
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n_targets,):
            raise ValueError(f"groups has shape {groups.shape}, expected ({n_targets},)")
        out["groups"] = {}
        for g in dict.fromkeys(groups.tolist()):
            m = boot[:, groups == g].mean(1)
            out["groups"][g] = (float(np.quantile(m, tail)), float(np.quantile(m, 1 - tail)),
                                int((groups == g).sum()))
    return out
