"""One validator for the word timings of every reader (docs/reliability.md).

Every reader's words pass through :func:`validate_words` (called by
:func:`~brainalign.core.timing.stimuli.build_words_table`) before anything is computed from them.
Word rows are checked in the order the file gives them, and nothing is re-sorted silently:

- onset and offset are numbers (not NaN or inf), onset >= 0 and offset >= onset;
- onsets do not decrease in file order (a file whose rows are out of order would give the model
  another text); ``sort=True`` (reader option ``sort_words``) sorts them instead, with a warning;
- no row repeats the one before it (same word, onset and offset: rows pasted twice), and a word
  does not start more than ``overlap_tolerance`` seconds before the previous word ends.

:func:`check_word_coverage` (called in data_prep, where the TR grid is known) checks that a story's
words span a plausible share of its scan, which catches a wrong TR, a wrong clock (ms for s) or a
wrong story file.

Readers may name the file a table came from in ``df.attrs["source"]``; messages then name it.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .stimuli import StimulusError

log = logging.getLogger(__name__)

#: seconds a word may start before the previous word ends (aligners round to 10 ms)
OVERLAP_TOLERANCE = 0.05


def _where(df: pd.DataFrame, story: str) -> str:
    src = df.attrs.get("source")
    return f"{src} (story {story!r})" if src else f"story {story!r}"


def _row(df: pd.DataFrame, k: int) -> str:
    r = df.iloc[k]

    def t(v):
        try:
            return f"{float(v):g} s"
        except (TypeError, ValueError):
            return repr(v)
    return f"word {k + 1} ({str(r['word'])!r}, onset {t(r['onset'])}, offset {t(r['offset'])})"


def validate_words(df: pd.DataFrame, story: str, sort: bool = False,
                   overlap_tolerance: float = OVERLAP_TOLERANCE) -> pd.DataFrame:
    """Check one story's word timings; return them (sorted by onset only when ``sort``).

    Parameters
    ----------
    df : DataFrame with columns word, onset, offset (seconds), one row per word, in file order.
    story : the story's name, for messages.
    sort : sort rows whose onsets are out of order (stable), with a warning, instead of an error.
    overlap_tolerance : seconds a word may start before the previous word's offset.

    Returns
    -------
    The table (a copy when sorted), index reset.

    Raises
    ------
    StimulusError naming the file or story, the first offending word and what to change.
    """
    where = _where(df, story)
    missing = [c for c in ("word", "onset", "offset") if c not in df.columns]
    if missing:
        raise StimulusError(f"{where}: word timings lack columns {missing} (have {list(df.columns)})")
    if len(df) == 0:
        raise StimulusError(f"{where}: no words")
    df = df.reset_index(drop=True)
    on = pd.to_numeric(df["onset"], errors="coerce").to_numpy(float)
    off = pd.to_numeric(df["offset"], errors="coerce").to_numpy(float)
    bad = ~(np.isfinite(on) & np.isfinite(off))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise StimulusError(f"{where}: {int(bad.sum())} words with a missing or non-numeric time, first "
                            f"{_row(df, k)}; fix the file or drop those rows")
    neg = on < 0
    if neg.any():
        k = int(np.flatnonzero(neg)[0])
        raise StimulusError(f"{where}: {int(neg.sum())} words with a negative onset, first {_row(df, k)}; "
                            "times are seconds from the start of the story's first volume (a clock "
                            "offset belongs in the TR grid's t0, not in the word times)")
    rev = off < on
    if rev.any():
        k = int(np.flatnonzero(rev)[0])
        raise StimulusError(f"{where}: {int(rev.sum())} words end before they start, first {_row(df, k)}")
    back = np.diff(on) < 0
    if back.any():
        k = int(np.flatnonzero(back)[0]) + 1
        if not sort:
            raise StimulusError(
                f"{where}: word onsets go back in time at {_row(df, k)}, after {_row(df, k - 1)} "
                f"({int(back.sum())} such places). The rows are read in file order, which is the text "
                "the model reads; fix the file, or set the reader option sort_words: true to sort "
                "them by onset")
        log.warning("%s: %d words out of onset order; sorted by onset (sort_words: true)", where, int(back.sum()))
        order = np.argsort(on, kind="stable")
        df, on, off = df.iloc[order].reset_index(drop=True), on[order], off[order]
    words = df["word"].astype(str).to_numpy()
    dup = (words[1:] == words[:-1]) & (on[1:] == on[:-1]) & (off[1:] == off[:-1])
    if dup.any():
        k = int(np.flatnonzero(dup)[0]) + 1
        raise StimulusError(f"{where}: {int(dup.sum())} rows repeat the row before them, first {_row(df, k)}; "
                            "rows pasted twice? remove the duplicates")
    overlap = on[1:] < off[:-1] - float(overlap_tolerance)
    if overlap.any():
        k = int(np.flatnonzero(overlap)[0]) + 1
        raise StimulusError(f"{where}: {int(overlap.sum())} words start more than {overlap_tolerance} s "
                            f"before the previous word ends, first {_row(df, k)} after {_row(df, k - 1)}; "
                            "overlapping rows (two alignments pasted together?)")
    return df


def check_word_coverage(words: pd.DataFrame, grids: pd.DataFrame, min_coverage: float = 0.3,
                        source: str = "") -> None:
    """Raise when a story's words span less than ``min_coverage`` of its scan.

    The span is last offset - first onset; the scan lasts ``n_trs_total * tr`` seconds. A story
    whose words fill a small share of the scan was most likely read with a wrong TR (header TR) or
    clock, or paired with another story's timings. ``min_coverage = 0`` turns the check off.
    """
    if not min_coverage:
        return
    for story, w in words.groupby("story", sort=False):
        g = grids[grids["story"] == story]
        if not len(g):
            continue
        g = g.iloc[0]
        scan = float(g["n_trs_total"]) * float(g["tr"])
        span = float(w["offset"].max() - w["onset"].min())
        if scan > 0 and span / scan < float(min_coverage):
            raise StimulusError(
                f"{source}: story {story!r}: its {len(w)} words span {span:.1f} s of a {scan:.1f} s scan "
                f"({int(g['n_trs_total'])} volumes x TR {float(g['tr']):g} s), {100 * span / scan:.0f} % "
                f"(< {100 * float(min_coverage):.0f} %). Is the TR right (the reader's tr option, or the "
                "image header), and are the word times in seconds? Set study.min_word_coverage lower "
                "if the scan really is mostly silent")
