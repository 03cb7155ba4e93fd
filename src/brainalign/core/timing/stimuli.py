"""Stimuli: word tables, TextGrid and TSV word timings, TR grids.

Data contracts
--------------
words : DataFrame with columns ``story, word_index, word, onset, offset, sentence_id``;
    times in seconds from the start of the story's first scanner volume unless the TR grid
    says otherwise (``t0``).
tr_grids : DataFrame with one row per story and columns ``story, n_trs_total, tr, t0,
    trim_start, trim_end, n_trs``. Volume ``i`` (0-based, before trimming) is sampled at
    ``t0 + i * tr`` seconds on the word clock; ``n_trs = n_trs_total - trim_start - trim_end``
    volumes are kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

WORD_COLUMNS = ["story", "word_index", "word", "onset", "offset", "sentence_id"]
GRID_COLUMNS = ["story", "n_trs_total", "tr", "t0", "trim_start", "trim_end", "n_trs"]
PAUSE_LABELS = frozenset({"", "sp", "sil", "<sil>", "{sl}", "{lg}", "{ns}", "sp1"})
# sentence-final punctuation (ASCII and CJK full-width), optionally followed by closing quotes/brackets
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f\uff0e]['\")\]\u201d\u2019\u300d\u300f\uff09\u300b]*$")


class StimulusError(ValueError):
    """Raised for unreadable or inconsistent stimulus files; the message names the file."""


# --------------------------------------------------------------------------- TextGrid
@dataclass
class Interval:
    xmin: float
    xmax: float
    text: str


def read_textgrid(path: str | Path) -> dict[str, list[Interval]]:
    """Parse a Praat TextGrid (long "ooTextFile" or short format) into its interval tiers.

    Parameters
    ----------
    path : path to the ``.TextGrid`` file (UTF-8 or UTF-16).

    Returns
    -------
    tiers : dict tier name -> list of Interval, in file order. Point tiers are skipped.
    """
    path = Path(path)
    raw = path.read_bytes()
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    if "ooTextFile" not in text[:200]:
        raise StimulusError(f"{path}: not a Praat TextGrid (no 'ooTextFile' header)")
    tokens = _textgrid_tokens(text)
    try:
        return _parse_textgrid_tokens(tokens)
    except (IndexError, ValueError) as exc:
        raise StimulusError(f"{path}: malformed TextGrid ({exc})") from exc


def _textgrid_tokens(text: str) -> list[str]:
    # Values are either quoted strings ("" escapes a quote) or bare numbers/flags; keys of the
    # long format ("xmin =") are dropped so both formats give the same token stream.
    out = []
    for m in re.finditer(r'"((?:[^"]|"")*)"|([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|<exists>', text):
        if m.group(1) is not None:
            out.append("S" + m.group(1).replace('""', '"'))
        elif m.group(2) is not None:
            out.append(m.group(2))
    return out


def _parse_textgrid_tokens(tok: list[str]) -> dict[str, list[Interval]]:
    # stream: "SooTextFile" "STextGrid" xmin xmax n_tiers, then per tier: class name xmin xmax n
    i = 2
    i += 2  # xmin, xmax
    n_tiers = int(float(tok[i]))
    i += 1
    tiers: dict[str, list[Interval]] = {}
    for _ in range(n_tiers):
        # skip the "item [k]" numbers of the long format
        while not tok[i].startswith("S"):
            i += 1
        cls, name = tok[i][1:], tok[i + 1][1:]
        i += 2
        i += 2  # tier xmin, xmax
        n = int(float(tok[i]))
        i += 1
        items = []
        for _k in range(n):
            if cls == "IntervalTier":
                # long format puts the interval number before xmin: skip numbers until a
                # triple (num, num, string) is found
                while not (tok[i + 2].startswith("S") and not tok[i].startswith("S")
                           and not tok[i + 1].startswith("S")):
                    i += 1
                items.append(Interval(float(tok[i]), float(tok[i + 1]), tok[i + 2][1:].strip()))
                i += 3
            else:  # TextTier: (time, mark)
                while not (tok[i + 1].startswith("S") and not tok[i].startswith("S")):
                    i += 1
                i += 2
        if cls == "IntervalTier":
            tiers[name] = items
    return tiers


def words_from_textgrid(path: str | Path, tier: str | list[str] = ("word", "words"),
                        pause_labels=PAUSE_LABELS) -> pd.DataFrame:
    """Word table (word, onset, offset) from a TextGrid's word tier, pauses removed.

    Parameters
    ----------
    path : TextGrid file.
    tier : name or candidate names of the word tier (first found is used, case-insensitive).
    pause_labels : interval labels that mark pauses (``sp`` etc.), dropped.

    Returns
    -------
    DataFrame with columns word, onset, offset, pause_before (s of silence before the word).
    """
    tiers = read_textgrid(path)
    names = [tier] if isinstance(tier, str) else list(tier)
    lower = {k.lower(): k for k in tiers}
    found = next((lower[n.lower()] for n in names if n.lower() in lower), None)
    if found is None:
        raise StimulusError(
            f"{path}: no word tier (looked for {names}; the file has tiers {list(tiers)}). "
            "Name the word tier with the reader option word_tier (catalog: raw_study: options: {word_tier: ...}).")
    rows, last_end = [], None
    for iv in tiers[found]:
        if iv.text.lower() in pause_labels:
            continue
        pause = 0.0 if last_end is None else max(0.0, iv.xmin - last_end)
        rows.append((iv.text, iv.xmin, iv.xmax, pause))
        last_end = iv.xmax
    if not rows:
        raise StimulusError(f"{path}: tier '{found}' has no words (only pauses)")
    out = pd.DataFrame(rows, columns=["word", "onset", "offset", "pause_before"])
    out.attrs["source"] = f"{path} (tier {found!r})"
    return out


def read_word_tsv(path: str | Path) -> pd.DataFrame:
    """Word timings from a TSV with columns ``word`` (or ``trial_type``/``text``), ``onset`` and
    ``offset`` or ``duration`` (BIDS events style).

    Returns
    -------
    DataFrame with columns word, onset, offset, pause_before.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise StimulusError(f"{path}: cannot read word TSV ({exc})") from exc
    word_col = next((c for c in ("word", "text", "token") if c in df.columns), None)
    if word_col is None or "onset" not in df.columns or not (
            "offset" in df.columns or "duration" in df.columns):
        raise StimulusError(f"{path}: a word TSV needs columns word, onset and offset or duration;"
                            f" found {list(df.columns)}")
    offset = df["offset"] if "offset" in df.columns else df["onset"] + df["duration"]
    out = pd.DataFrame({"word": df[word_col].astype(str), "onset": df["onset"].astype(float),
                        "offset": offset.astype(float)})
    bad = out[~np.isfinite(out[["onset", "offset"]]).all(axis=1) | (out["offset"] < out["onset"])]
    if len(bad):
        raise StimulusError(f"{path}: {len(bad)} rows with missing or reversed times "
                            f"(first at row {bad.index[0] + 2})")
    out = out[~out["word"].str.lower().isin(PAUSE_LABELS)].reset_index(drop=True)
    if out.empty:
        raise StimulusError(f"{path}: no words (the table has {len(df)} rows, none of them a word)")
    out.attrs["source"] = str(path)
    out["pause_before"] = np.r_[0.0, np.clip(out["onset"].values[1:] - out["offset"].values[:-1], 0, None)]
    return out


def assign_sentences(words: pd.DataFrame, pause_threshold: float = 0.5) -> np.ndarray:
    """Sentence ids from final punctuation; for unpunctuated transcripts (TextGrids) a pause of at
    least ``pause_threshold`` seconds ends a sentence.

    Parameters
    ----------
    words : DataFrame with columns word and pause_before, one story, in order.

    Returns
    -------
    sentence_id : int array of shape (n_words,)
    """
    w = words["word"].astype(str).tolist()
    punctuated = any(_SENTENCE_END.search(x) for x in w)
    ids = np.zeros(len(w), dtype=np.int64)
    sid = 0
    for k in range(len(w)):
        if k > 0:
            if punctuated and _SENTENCE_END.search(w[k - 1]):
                sid += 1
            elif not punctuated and words["pause_before"].iloc[k] >= pause_threshold:
                sid += 1
        ids[k] = sid
    return ids


def build_words_table(stories: dict[str, pd.DataFrame], pause_threshold: float = 0.5,
                      sort: bool = False) -> pd.DataFrame:
    """Concatenate per-story word timings into the ``words`` contract table.

    Each story's rows pass :func:`~brainalign.core.timing.validate.validate_words` in file order
    (numeric, non-negative, non-decreasing onsets, no duplicated or overlapping rows); ``sort``
    sorts out-of-order rows by onset with a warning instead of raising. Sentence ids come from
    :func:`assign_sentences`, unless a story's table already has a ``sentence_id`` column
    (reader-provided, e.g. one sentence per stimulus): then it is kept (integers, no missing values).
    """
    from .validate import validate_words

    parts = []
    for story, df in stories.items():
        df = validate_words(df, story, sort=sort)
        if "sentence_id" in df.columns:
            sid = pd.to_numeric(df["sentence_id"], errors="coerce")
            if sid.isna().any() or (sid != np.round(sid)).any():
                raise StimulusError(f"story {story}: the reader's sentence_id column has missing or "
                                    "non-integer values")
            sentence_id = sid.to_numpy().astype(np.int64)
        else:
            sentence_id = assign_sentences(df, pause_threshold)
        parts.append(pd.DataFrame({
            "story": story, "word_index": np.arange(len(df)), "word": df["word"].astype(str),
            "onset": df["onset"].astype(float), "offset": df["offset"].astype(float),
            "sentence_id": sentence_id}))
    return pd.concat(parts, ignore_index=True)[WORD_COLUMNS]


def word_times(words: pd.DataFrame, align: str = "midpoint") -> np.ndarray:
    """Time stamp of each word: interval midpoint (default) or onset."""
    if align == "midpoint":
        return ((words["onset"] + words["offset"]) / 2).to_numpy(float)
    if align == "onset":
        return words["onset"].to_numpy(float)
    raise ValueError(f"word alignment must be 'midpoint' or 'onset', got {align!r}")


# --------------------------------------------------------------------------- TR grids
def make_tr_grid(story: str, n_trs_total: int, tr: float, t0: float = 0.0,
                 trim_start: int = 0, trim_end: int = 0) -> dict:
    """One row of the TR-grid table; checks that trimming leaves volumes."""
    n = int(n_trs_total) - int(trim_start) - int(trim_end)
    if n <= 0:
        raise StimulusError(f"story {story}: trimming {trim_start}+{trim_end} TRs leaves no volumes "
                            f"of {n_trs_total}")
    return {"story": story, "n_trs_total": int(n_trs_total), "tr": float(tr), "t0": float(t0),
            "trim_start": int(trim_start), "trim_end": int(trim_end), "n_trs": n}


def tr_times(grid_row) -> np.ndarray:
    """Sample times (s) of all volumes of a story before trimming, shape (n_trs_total,)."""
    return grid_row["t0"] + grid_row["tr"] * np.arange(int(grid_row["n_trs_total"]))


def check_words_fit_grid(words: pd.DataFrame, grids: pd.DataFrame, source: str = "",
                         tolerance: float | None = None) -> None:
    """Raise if a story's words run past the end of its scan (files disagree on duration).

    The scan of a story covers ``[t0, t0 + n_trs_total * tr)``; words may end at most
    ``tolerance`` seconds (default: one TR) after it.
    """
    g = grids.set_index("story")
    missing = sorted(set(words["story"]) ^ set(g.index))
    if missing:
        raise StimulusError(f"{source}: stories {missing} are in only one of the word timings "
                            "and the responses")
    for story, w in words.groupby("story"):
        row = g.loc[story]
        end = row["t0"] + row["n_trs_total"] * row["tr"]
        tol = row["tr"] if tolerance is None else tolerance
        last = float(w["offset"].max())
        if last > end + tol:
            raise StimulusError(
                f"{source}: story '{story}': the words end at {last:.1f} s but the responses "
                f"({int(row['n_trs_total'])} TRs of {row['tr']} s from t0={row['t0']} s) end at "
                f"{end:.1f} s: the word timings and the response file disagree on duration")
        first = float(w["onset"].min())
        if first < row["t0"] - 60:
            raise StimulusError(f"{source}: story '{story}': words start at {first:.1f} s, more than "
                                f"60 s before the first volume (t0={row['t0']} s)")
