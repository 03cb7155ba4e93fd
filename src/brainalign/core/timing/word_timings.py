"""Word timings from forced-aligner output and from BIDS event tables.

Two sources that published story-listening datasets use:

* Gentle (``align.json``, the Narratives collection): every transcript token is listed, but
  tokens the aligner could not find in the audio (``case`` ``not-found-in-audio``) have no
  ``start``/``end``. :func:`words_from_gentle` either interpolates their times between the
  aligned neighbours (default: the words were heard, so the language model should see them) or
  drops them; the count is returned either way, for the caller to log.
* BIDS ``events.tsv`` (or a word table) with one row per word mixed with non-word rows
  (``trial_type`` ``silence``, ``music``, ...). :func:`words_from_events` keeps the word rows and
  returns the count of each non-word label left out, for the caller to log.

Both return the reader word table: columns ``word, onset, offset, pause_before`` (seconds).
No Kedro here.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .stimuli import PAUSE_LABELS, StimulusError

#: labels of rows that are not words in an events table whose word column is ``trial_type``
#: (compared lower-cased); set the reader option ``non_words`` to change them
DEFAULT_NON_WORDS = tuple(sorted(PAUSE_LABELS | {"silence", "music", "noise", "n/a", "na", "nan",
                                                 "fixation", "trigger", "pulse", "beep"}))
UNALIGNED_POLICIES = ("interpolate", "drop")
_TRAILING_PUNCT = re.compile(r"^[^\w\s]+")
_LEADING_PUNCT = re.compile(r"[^\w\s]+$")


def _pause_before(onset: np.ndarray, offset: np.ndarray) -> np.ndarray:
    if len(onset) == 0:
        return np.zeros(0)
    return np.r_[0.0, np.clip(onset[1:] - offset[:-1], 0, None)]


# --------------------------------------------------------------------------- Gentle
def interpolate_unaligned(onset: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times for words without times (NaN), spread evenly between their aligned neighbours.

    A run of ``k`` unaligned words between an aligned word ending at ``a`` and the next aligned
    word starting at ``b`` gets the intervals ``[a + j (b - a) / k, a + (j + 1) (b - a) / k]``,
    ``j = 0 .. k-1`` (zero-length intervals at ``b`` when ``b <= a``, so onsets keep the word
    order). A run before the first
    aligned word ends at its onset and starts ``k`` median word durations earlier (not before
    0); a run after the last one starts at its offset and lasts ``k`` median durations.

    Parameters
    ----------
    onset, offset : float arrays of shape (n_words,), NaN where the word is not aligned.

    Returns
    -------
    onset, offset : new float arrays of shape (n_words,), all finite.
    """
    on, off = np.array(onset, float), np.array(offset, float)
    ok = np.isfinite(on) & np.isfinite(off)
    if not ok.any():
        raise StimulusError("no word has aligned times; cannot interpolate the others")
    dur = float(np.median(off[ok] - on[ok])) if ok.any() else 0.3
    dur = dur if dur > 0 else 0.3
    n = len(on)
    i = 0
    while i < n:
        if ok[i]:
            i += 1
            continue
        j = i
        while j < n and not ok[j]:
            j += 1
        k = j - i  # words i .. j-1 unaligned
        if i == 0:
            b = on[j]
            a = max(0.0, b - k * dur) if b > 0 else b
        elif j == n:
            a = off[i - 1]
            b = a + k * dur
        else:
            a, b = off[i - 1], on[j]
        if b < a:  # the aligned neighbours overlap: zero-length words at the earlier time keep the order
            a = b
        step = max(b - a, 0.0) / k
        on[i:j] = a + step * np.arange(k)
        off[i:j] = on[i:j] + step
        i = j
    return on, off


def _with_punctuation(transcript: str, starts: list[int], ends: list[int], k: int) -> str:
    """Token k of the transcript with the punctuation attached to it (``"Hello,"``)."""
    s, e = starts[k], ends[k]
    word = transcript[s:e]
    limit = starts[k + 1] if k + 1 < len(starts) else len(transcript)
    after = _TRAILING_PUNCT.match(transcript[e:limit])
    before_limit = ends[k - 1] if k > 0 else 0
    before = _LEADING_PUNCT.search(transcript[before_limit:s])
    return (before.group(0) if before else "") + word + (after.group(0) if after else "")


def words_from_gentle(path: str | Path, unaligned: str = "interpolate",
                      punctuation: bool = True) -> tuple[pd.DataFrame, dict]:
    """Word table from a Gentle forced-aligner ``align.json``.

    Parameters
    ----------
    path : the ``align.json`` file: ``{"transcript": str, "words": [{"word", "alignedWord",
        "case", "start", "end", "startOffset", "endOffset"}, ...]}``. Times are seconds from the
        start of the aligned audio file.
    unaligned : ``"interpolate"`` (default): words without ``start``/``end`` get times between
        their aligned neighbours (:func:`interpolate_unaligned`); ``"drop"``: they are left out.
    punctuation : attach the punctuation around each token in ``transcript`` (from the
        character offsets) to the word, so that sentence ends are known; without offsets the
        ``word`` field is used as is.

    Returns
    -------
    words : DataFrame with columns word, onset, offset, pause_before; shape (n_words, 4).
    info : dict with ``n_words`` (in the file), ``n_unaligned`` and ``cases`` (count of each
        ``case`` value among the unaligned words), for the caller to log.
    """
    path = Path(path)
    if unaligned not in UNALIGNED_POLICIES:
        raise ValueError(f"unaligned must be one of {UNALIGNED_POLICIES}, got {unaligned!r}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StimulusError(f"{path}: not a readable Gentle align.json ({exc})") from exc
    items = doc.get("words") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise StimulusError(f"{path}: no 'words' list (expected Gentle output: "
                            "{'transcript': ..., 'words': [{'word', 'case', 'start', 'end'}, ...]})")
    for k, w in enumerate(items):
        if not isinstance(w, dict) or "word" not in w:
            raise StimulusError(f"{path}: words[{k}] has no 'word' field")
    transcript = doc.get("transcript")
    has_offsets = (punctuation and isinstance(transcript, str)
                   and all("startOffset" in w and "endOffset" in w for w in items))
    if has_offsets:
        starts = [int(w["startOffset"]) for w in items]
        ends = [int(w["endOffset"]) for w in items]
        text = [_with_punctuation(transcript, starts, ends, k) for k in range(len(items))]
    else:
        text = [str(w["word"]) for w in items]
    on = np.array([float(w["start"]) if w.get("start") is not None else np.nan for w in items])
    off = np.array([float(w["end"]) if w.get("end") is not None else np.nan for w in items])
    missing = ~(np.isfinite(on) & np.isfinite(off))
    bad = np.flatnonzero(~missing & (off < on))
    if len(bad):
        raise StimulusError(f"{path}: word {bad[0]} ({text[bad[0]]!r}) ends before it starts")
    cases = Counter(str(items[k].get("case", "unknown")) for k in np.flatnonzero(missing))
    info = {"n_words": len(items), "n_unaligned": int(missing.sum()), "cases": dict(cases)}
    if missing.all():
        raise StimulusError(f"{path}: none of the {len(items)} words is aligned (cases: {dict(cases)})")
    if unaligned == "interpolate":
        on, off = interpolate_unaligned(on, off)
        keep = np.ones(len(items), bool)
    else:
        keep = ~missing
    text = [t for t, k in zip(text, keep) if k]
    on, off = on[keep], off[keep]
    order = np.argsort(on, kind="stable")
    if not np.array_equal(order, np.arange(len(on))):
        raise StimulusError(f"{path}: aligned word times are not in transcript order "
                            f"(word {int(np.flatnonzero(np.diff(on) < 0)[0]) + 1} starts before "
                            "the one before it)")
    words = pd.DataFrame({"word": text, "onset": on, "offset": off})
    words.attrs["source"] = str(path)
    words["pause_before"] = _pause_before(on, off)
    return words, info


# --------------------------------------------------------------------------- events tables
def words_from_events(events: pd.DataFrame, word_column: str | None = None,
                      non_words=DEFAULT_NON_WORDS, source: str = "") -> tuple[pd.DataFrame, dict]:
    """Word rows of a BIDS events table (or word table), non-word rows left out and counted.

    Parameters
    ----------
    events : DataFrame with ``onset``, ``duration`` (or ``offset``) and a word column, one row
        per event, seconds.
    word_column : the column holding the words. Default: ``word`` when present, else
        ``trial_type`` (then ``text``, ``token``).
    non_words : labels (case-insensitive) of rows that are not words. A row is left out when its
        word is empty/NaN or one of these labels, or when the table has a ``trial_type`` column
        besides the word column and its ``trial_type`` is one of these labels.
    source : file name for messages.

    Returns
    -------
    words : DataFrame with columns word, onset, offset, pause_before, in file order.
    dropped : dict label -> number of rows left out (``""`` for empty words).
    """
    cols = list(events.columns)
    defaulted = word_column is None
    if word_column is None:
        word_column = next((c for c in ("word", "trial_type", "text", "token") if c in cols), None)
        if word_column is None:
            raise StimulusError(f"{source}: no word column (looked for word, trial_type, text, token; "
                                f"found {cols}); name it with the reader option word_column")
    elif word_column not in cols:
        raise StimulusError(f"{source}: no column {word_column!r} (option word_column); found {cols}")
    if "onset" not in cols or not ("duration" in cols or "offset" in cols):
        raise StimulusError(f"{source}: a word table needs onset and duration (or offset) columns; "
                            f"found {cols}")
    nw = {str(x).strip().lower() for x in (non_words or ())}
    raw = events[word_column]
    label = raw.where(raw.notna(), "").astype(str).str.strip()
    low = label.str.lower()
    drop = (low == "") | low.isin(nw)
    if "trial_type" in cols and word_column != "trial_type":
        tt = events["trial_type"].where(events["trial_type"].notna(), "").astype(str).str.strip()
        drop_tt = tt.str.lower().isin(nw - {""})
        label = label.where(~((drop | drop_tt) & (tt != "")), tt)  # count dropped rows by trial_type
        drop = drop | drop_tt
    dropped = dict(Counter(label[drop].tolist()))
    kept = events.loc[~drop]
    chosen = set(label[~drop].str.lower())
    if defaulted and word_column != "word" and int((~drop).sum()) > 1 and len(chosen) == 1:
        # a fallback column holding one value in every row is a label, not the words
        raise StimulusError(f"{source}: no 'word' column, and the fallback column {word_column!r} holds one "
                            f"value ({label[~drop].iloc[0]!r}) in every word row; name the column that holds "
                            f"the words with the reader option word_column (columns: {cols})")
    onset = pd.to_numeric(kept["onset"], errors="coerce").to_numpy(float)
    if "offset" in cols:
        offset = pd.to_numeric(kept["offset"], errors="coerce").to_numpy(float)
    else:
        offset = onset + pd.to_numeric(kept["duration"], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(onset) | ~np.isfinite(offset) | (offset < onset)
    if bad.any():
        row = int(kept.index[np.flatnonzero(bad)[0]])
        raise StimulusError(f"{source}: {int(bad.sum())} word rows with missing, non-numeric or "
                            f"negative-duration times (first: table row {row + 2}, "
                            f"{label[~drop].iloc[int(np.flatnonzero(bad)[0])]!r})")
    # file order is kept: core.timing.validate checks it (never re-sorted silently)
    words = pd.DataFrame({"word": label[~drop].to_numpy(), "onset": onset, "offset": offset})
    words.attrs["source"] = str(source) if source else ""
    if words.empty:
        raise StimulusError(f"{source}: no word rows (column {word_column!r}; left out: {dropped})")
    words["pause_before"] = _pause_before(words["onset"].to_numpy(), words["offset"].to_numpy())
    return words, dropped


def read_event_table(path: str | Path) -> pd.DataFrame:
    """A BIDS events TSV or a word table (``.tsv`` tab-separated, ``.csv`` comma-separated);
    ``n/a`` cells become NaN."""
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, na_values=["n/a", ""], keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise StimulusError(f"{path}: cannot read the table ({exc})") from exc
