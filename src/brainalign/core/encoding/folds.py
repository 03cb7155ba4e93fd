"""Cross-validation folds over concatenated story time series.

Samples are the kept TRs of all stories concatenated in the order of the TR-grid table.
A fold is a pair of integer index arrays (train, test). The folds table (the catalog contract)
has one row per (fold, sample) that is used in that fold, with ``role`` "train" or "test";
samples in the gap around a test block appear in neither role.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

Fold = tuple[np.ndarray, np.ndarray]


def story_offsets(n_trs: list[int]) -> np.ndarray:
    """Start index of each story in the concatenation, shape (n_stories + 1,)."""
    return np.r_[0, np.cumsum(np.asarray(n_trs, dtype=np.int64))]


def leave_stories_out(n_trs: list[int], n_folds: int | None = None) -> list[Fold]:
    """Folds that hold out whole stories.

    Parameters
    ----------
    n_trs : kept TRs per story, in concatenation order.
    n_folds : number of folds; stories are dealt round-robin into folds. ``None`` or a number
        >= n_stories gives leave-one-story-out.
    """
    n_stories = len(n_trs)
    if n_stories < 2:
        raise ValueError("leave-stories-out needs at least 2 stories; use contiguous blocks")
    k = n_stories if n_folds is None else min(int(n_folds), n_stories)
    off = story_offsets(n_trs)
    total = off[-1]
    folds = []
    for f in range(k):
        test = np.concatenate([np.arange(off[s], off[s + 1]) for s in range(n_stories) if s % k == f])
        train = np.setdiff1d(np.arange(total), test)
        folds.append((train, test))
    return folds


def contiguous_blocks(n_samples: int, n_folds: int = 5, gap: int = 5) -> list[Fold]:
    """Folds of contiguous test blocks with ``gap`` samples dropped on each side of the test
    block from training (for single-story datasets, where neighbouring TRs are correlated).
    """
    if n_folds < 2:
        raise ValueError("need at least 2 folds")
    edges = np.linspace(0, n_samples, n_folds + 1).astype(int)
    folds = []
    for f in range(n_folds):
        lo, hi = edges[f], edges[f + 1]
        test = np.arange(lo, hi)
        keep = (np.arange(n_samples) < lo - gap) | (np.arange(n_samples) >= hi + gap)
        train = np.flatnonzero(keep)
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"{n_samples} samples are too few for {n_folds} folds with gap {gap}")
        folds.append((train, test))
    return folds


def make_folds(n_trs: list[int], method: str = "auto", n_folds: int | None = None,
               gap: int = 5) -> list[Fold]:
    """Outer folds for a dataset: leave-stories-out when there are >= 2 stories ("auto"),
    contiguous blocks with gaps otherwise."""
    if method == "auto":
        method = "leave_stories_out" if len(n_trs) >= 2 else "contiguous_blocks"
    if method == "leave_stories_out":
        return leave_stories_out(n_trs, n_folds)
    if method == "contiguous_blocks":
        return contiguous_blocks(int(np.sum(n_trs)), n_folds or 5, gap)
    raise ValueError(f"unknown fold method {method!r} (leave_stories_out, contiguous_blocks, auto)")


def inner_splits(train: np.ndarray, story_of_sample: np.ndarray, n_inner: int = 5,
                 gap: int = 5) -> list[Fold]:
    """Splits of a training set for choosing alpha, as positions *within* ``train``: leave one
    story out when the training set holds >= 3 stories, else contiguous blocks with a gap."""
    stories = story_of_sample[train]
    uniq = list(dict.fromkeys(stories.tolist()))
    pos = np.arange(len(train))
    if len(uniq) >= 3:
        return [(pos[stories != s], pos[stories == s]) for s in uniq]
    return contiguous_blocks(len(train), n_inner, gap)


def folds_to_table(folds: list[Fold]) -> pd.DataFrame:
    """The folds table: columns fold, sample, role."""
    parts = []
    for f, (train, test) in enumerate(folds):
        parts.append(pd.DataFrame({"fold": f, "sample": train, "role": "train"}))
        parts.append(pd.DataFrame({"fold": f, "sample": test, "role": "test"}))
    return pd.concat(parts, ignore_index=True)


def folds_from_table(table: pd.DataFrame) -> list[Fold]:
    """Inverse of :func:`folds_to_table`."""
    out = []
    for _f, g in table.groupby("fold", sort=True):
        out.append((np.sort(g.loc[g["role"] == "train", "sample"].to_numpy()),
                    np.sort(g.loc[g["role"] == "test", "sample"].to_numpy())))
    return out


class _Splits:
    """A fixed list of splits with the scikit-learn splitter interface (for himalaya's ``cv``)."""

    def __init__(self, splits: list[Fold]):
        self.splits = splits

    def split(self, X=None, y=None, groups=None):
        yield from self.splits

    def get_n_splits(self, X=None, y=None, groups=None):
        return len(self.splits)
