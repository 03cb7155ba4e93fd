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


def leave_stories_out(n_trs: list[int], n_folds: int | None = None,
                      train_only: list[int] | tuple = ()) -> list[Fold]:
    """Folds that hold out whole stories.

    Parameters
    ----------
    n_trs : kept TRs per story, in concatenation order.
    n_folds : number of folds; the stories that may be tested are dealt round-robin into folds.
        ``None`` or a number >= their count gives leave-one-story-out.
    train_only : positions (in ``n_trs``) of stories that are in the training set of every fold
        and never tested (e.g. a story released as the mean over repeats, whose noise level
        differs from the single presentations scored in the folds).
    """
    n_stories = len(n_trs)
    train_only = sorted({int(k) for k in train_only})
    bad = [k for k in train_only if not 0 <= k < n_stories]
    if bad:
        raise ValueError(f"train_only positions {bad} are outside the {n_stories} stories")
    testable = [s for s in range(n_stories) if s not in train_only]
    if len(testable) < 1 or n_stories < 2:
        raise ValueError(f"leave-stories-out needs at least 2 stories of which one may be tested; got "
                         f"{n_stories} stories, {len(train_only)} train-only; use contiguous blocks")
    k = len(testable) if n_folds is None else min(int(n_folds), len(testable))
    off = story_offsets(n_trs)
    total = off[-1]
    folds = []
    for f in range(k):
        test = np.concatenate([np.arange(off[s], off[s + 1]) for i, s in enumerate(testable) if i % k == f])
        train = np.setdiff1d(np.arange(total), test)
        if len(train) == 0:
            raise ValueError("leave-stories-out: a fold has no training story")
        folds.append((train, test))
    return folds


def held_out_stories(n_trs: list[int], test: list[int]) -> list[Fold]:
    """One fold: train on every story except those at positions ``test``, test on those (the
    train/test split of datasets that release a separate test story, e.g. LeBel's
    ``wheretheressmoke``, the mean over its repeats)."""
    n_stories = len(n_trs)
    test = sorted({int(k) for k in test})
    if not test:
        raise ValueError("held_out_stories needs at least one test story (cv.test_stories)")
    bad = [k for k in test if not 0 <= k < n_stories]
    if bad:
        raise ValueError(f"test story positions {bad} are outside the {n_stories} stories")
    if len(test) == n_stories:
        raise ValueError("held_out_stories: every story is a test story; none is left to train on")
    off = story_offsets(n_trs)
    te = np.concatenate([np.arange(off[s], off[s + 1]) for s in test])
    return [(np.setdiff1d(np.arange(off[-1]), te), te)]


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
               gap: int = 5, stories: list[str] | None = None, test_stories: list[str] | None = None,
               train_only_stories: list[str] | None = None) -> list[Fold]:
    """Outer folds for a dataset.

    Methods: ``auto`` (leave-stories-out when there are >= 2 stories, contiguous blocks with
    gaps otherwise), ``leave_stories_out`` (``train_only_stories`` never tested),
    ``held_out_stories`` (one fold testing ``test_stories``), ``contiguous_blocks``.
    ``stories`` names the entries of ``n_trs`` (needed for the story lists; an unknown name is an
    error naming it)."""
    names = list(stories) if stories is not None else [str(k) for k in range(len(n_trs))]
    if len(names) != len(n_trs):
        raise ValueError(f"{len(names)} story names for {len(n_trs)} stories")

    def positions(listed, what):
        listed = list(listed or [])
        unknown = [s for s in listed if s not in names]
        if unknown:
            raise ValueError(f"cv.{what}: stories {unknown} are not in the TR grid (stories: {names})")
        return [names.index(s) for s in listed]

    if method == "auto":
        method = "leave_stories_out" if len(n_trs) >= 2 else "contiguous_blocks"
    if method == "leave_stories_out":
        return leave_stories_out(n_trs, n_folds, positions(train_only_stories, "train_only_stories"))
    if method == "held_out_stories":
        return held_out_stories(n_trs, positions(test_stories, "test_stories"))
    if method == "contiguous_blocks":
        return contiguous_blocks(int(np.sum(n_trs)), n_folds or 5, gap)
    raise ValueError(f"unknown fold method {method!r} (leave_stories_out, held_out_stories, "
                     "contiguous_blocks, auto)")


def tested_stories(folds: list[Fold], n_trs: list[int], stories: list[str]) -> list[str]:
    """The stories with at least one test sample in some fold, in story order."""
    off = story_offsets(n_trs)
    test = np.zeros(off[-1], bool)
    for _, te in folds:
        test[te] = True
    return [s for k, s in enumerate(stories) if test[off[k]:off[k + 1]].any()]


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
