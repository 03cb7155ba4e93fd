"""Response preprocessing: trimming, per-story detrending, exclusion of unusable targets.

Exclusions are never silent: every excluded target comes back in an exclusions table with the
subject, story, target and reason, and the caller logs it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import signal

from ..encoding.metrics import is_constant

EXCLUSION_COLUMNS = ["subject", "story", "target", "reason"]


class LazyStories(Mapping):
    """``story -> array`` computed on access, one story at a time (nothing is kept).

    Lets a subject's responses flow from a reader to an NPY folder without holding every story
    in memory (LeBel: ~100k voxels x 84 stories). Each access recomputes the story.
    """

    def __init__(self, stories: Iterable[str], compute: Callable[[str], np.ndarray]):
        self._stories = list(stories)
        self._compute = compute

    def __getitem__(self, story: str) -> np.ndarray:
        if story not in self._stories:
            raise KeyError(story)
        return self._compute(story)

    def __iter__(self):
        return iter(self._stories)

    def __len__(self) -> int:
        return len(self._stories)

    def __repr__(self) -> str:
        return f"LazyStories({self._stories})"


def trim(x: np.ndarray, trim_start: int, trim_end: int) -> np.ndarray:
    """Drop ``trim_start`` leading and ``trim_end`` trailing rows (TRs)."""
    return x[trim_start: x.shape[0] - trim_end]


def detrend(x: np.ndarray) -> np.ndarray:
    """Remove a least-squares linear trend (and the mean) from each column of one story."""
    return signal.detrend(np.asarray(x, dtype=np.float64), axis=0, type="linear").astype(np.float32)


def dct_basis(n: int, tr: float, cutoff: float) -> np.ndarray:
    """Discrete cosine drift regressors (SPM's high-pass basis) for ``n`` volumes.

    Returns
    -------
    array of shape (n, k) with ``k = floor(2 n tr / cutoff)`` cosines of period >= ``cutoff`` s
    (column j: ``cos(pi (t + 1/2) j / n)``, j = 1..k).
    """
    k = int(np.floor(2 * n * tr / cutoff))
    t = np.arange(n)[:, None] + 0.5
    return np.cos(np.pi * t * np.arange(1, k + 1)[None, :] / n)


def highpass(x: np.ndarray, tr: float, cutoff: float = 128.0) -> np.ndarray:
    """Remove the mean and the drifts slower than ``cutoff`` seconds (least-squares fit of a
    constant and :func:`dct_basis`, as SPM's high-pass filter) from each column of one story."""
    x = np.asarray(x, dtype=np.float64)
    basis = np.c_[np.ones(x.shape[0]), dct_basis(x.shape[0], tr, cutoff)]
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    return (x - basis @ coef).astype(np.float32)


DETREND_METHODS = ("linear", "highpass", "none")


def detrend_method(do_detrend: bool | str) -> str:
    """The detrending method named by ``study.detrend`` (True -> linear, False -> none)."""
    method = {True: "linear", False: "none"}.get(do_detrend, do_detrend)
    if method not in DETREND_METHODS:
        raise ValueError(f"study.detrend must be one of {DETREND_METHODS} (or true/false), got {do_detrend!r}")
    return method


def detrend_story(y: np.ndarray, method: str, tr: float, highpass_cutoff: float = 128.0) -> np.ndarray:
    """One story's (n_trs, n_targets) responses detrended by ``method`` (``linear``,
    ``highpass`` or ``none``), as float32. The same step is applied to the responses and to
    repeated presentations, so the noise ceiling sees the data the model is scored on."""
    y = np.asarray(y, dtype=np.float32)
    if not y.shape[1] or method == "none":
        return y
    if method == "highpass":
        return highpass(y, tr, highpass_cutoff)
    return detrend(y)


def prepare_repeats(repeats: np.ndarray, method: str, tr: float, trim_start: int = 0, trim_end: int = 0,
                    highpass_cutoff: float = 128.0) -> np.ndarray:
    """Repeated presentations trimmed and detrended as the responses are (:func:`trim`,
    :func:`detrend_story` on each repeat).

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_trs_total, n_targets)
    method : ``linear``, ``highpass`` or ``none`` (:func:`detrend_method`).

    Returns
    -------
    float32 array of shape (n_repeats, n_trs, n_targets). Targets with a non-finite value in any
    repeat are left as they are (callers drop them).
    """
    out = np.array([trim(r, trim_start, trim_end) for r in np.asarray(repeats)], dtype=np.float32)
    ok = np.isfinite(out).all(axis=(0, 1))
    for k in range(out.shape[0]):
        out[k][:, ok] = detrend_story(out[k][:, ok], method, tr, highpass_cutoff)
    return out


def find_bad_targets(responses: dict[str, np.ndarray], target_ids: list[str], subject: str,
                     source: str = "") -> pd.DataFrame:
    """Targets with non-finite values or zero variance (constant up to rounding,
    :func:`~brainalign.core.encoding.metrics.is_constant`) in any story.

    Parameters
    ----------
    responses : story -> array of shape (n_trs, n_targets)
    target_ids : ids of the columns.

    Returns
    -------
    exclusions : DataFrame with columns subject, story, target, reason (one row per target and
        story where it is bad).
    """
    rows = []
    for story, y in responses.items():
        y = np.asarray(y)
        finite = np.isfinite(y)
        nonfinite = ~finite.all(0)
        const = is_constant(np.where(finite, y, np.nan))
        for j in np.flatnonzero(nonfinite):
            rows.append((subject, story, target_ids[j],
                         f"{int((~finite[:, j]).sum())} non-finite values (NaN/inf) in {source or story}"))
        for j in np.flatnonzero(const & ~nonfinite):
            rows.append((subject, story, target_ids[j], f"zero variance in {source or story}"))
    return pd.DataFrame(rows, columns=EXCLUSION_COLUMNS)


def clean_responses(responses: dict[str, np.ndarray], grids: pd.DataFrame, target_ids: list[str],
                    subject: str, do_detrend: bool | str = True, sources: dict[str, str] | None = None,
                    highpass_cutoff: float = 128.0):
    """Check, trim and detrend one subject's responses.

    Parameters
    ----------
    responses : story -> array of shape (n_trs_total, n_targets), as read.
    grids : the TR-grid table (story, n_trs_total, trim_start, trim_end, ...).
    target_ids : column ids.
    do_detrend : ``linear`` (or True; scipy linear detrend), ``highpass`` (constant + DCT drifts
        slower than ``highpass_cutoff`` s removed, :func:`highpass`) or ``none`` (or False).
    sources : story -> file name, for messages.

    Returns
    -------
    kept : story -> float32 array of shape (n_trs, n_kept_targets), a :class:`LazyStories`
        (each story is read and cleaned when accessed)
    keep : bool array of shape (n_targets,)
    exclusions : DataFrame (subject, story, target, reason)
    """
    sources = sources or {}
    method = detrend_method(do_detrend)
    g = grids.set_index("story")
    extra = sorted(set(responses) - set(g.index))
    missing = sorted(set(g.index) - set(responses))
    if missing or extra:
        raise ValueError(f"subject {subject}: stories {missing} have no responses"
                         + (f" and {extra} are not in the TR grid" if extra else "")
                         + "; list the stories every subject has in study.stories, or leave the "
                         "subject out of study.subjects")

    def trimmed(story: str) -> np.ndarray:
        y = np.asarray(responses[story])
        row = g.loc[story]
        if y.shape[0] != row["n_trs_total"]:
            raise ValueError(f"subject {subject}, story {story}: {y.shape[0]} TRs in "
                             f"{sources.get(story, 'the responses')} but the TR grid says "
                             f"{int(row['n_trs_total'])}: the files disagree on duration")
        if y.ndim != 2 or y.shape[1] != len(target_ids):
            raise ValueError(f"subject {subject}, story {story}: responses of shape {y.shape} in "
                             f"{sources.get(story, 'the responses')}, expected (n_trs, {len(target_ids)})")
        return trim(y, int(row["trim_start"]), int(row["trim_end"]))

    # pass 1: one story at a time, find unusable targets
    parts = [find_bad_targets({s: trimmed(s)}, target_ids, subject, sources.get(s, s)) for s in g.index]
    exclusions = pd.concat(parts, ignore_index=True)
    bad = set(exclusions["target"])
    keep = np.array([t not in bad for t in target_ids])

    # pass 2 (lazy): trimmed, kept columns, detrended
    def clean(story: str) -> np.ndarray:
        return detrend_story(trimmed(story)[:, keep], method, float(g.loc[story, "tr"]), highpass_cutoff)

    return LazyStories(list(g.index), clean), keep, exclusions
