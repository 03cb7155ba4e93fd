"""A tiny LeBel et al. 2023 (ds003020) study written in the published layout, with a planted signal.

Used by tests/io/test_lebel_reader.py and tests/pipelines/test_lebel_env.py (importable because
pytest puts ``tests/``, the folder of the root conftest.py, on ``sys.path``).

Layout written under ``root``::

    derivative/respdict.json                              story -> TRs of the scan
    derivative/TextGrids/<story>.TextGrid                 tiers "phone" and "word" (``sp`` pauses);
                                                          long format, the last story short format
    derivative/preprocessed_data/UTS0k/<story>.hf5        key "data", (respdict - 20, n_voxels) float32
    derivative/preprocessed_data/UTS01/wheretheressmoke_repeats.hf5
                                                          key "data", (4, respdict - 20, n_voxels)

The responses are made here with the reference code's arithmetic, written out independently of
brainalign: the feature grid of a story has ``respdict - 5`` TRs of 2 s whose trigger k sits at
``2 k`` s of the scan, the audio starts at 10 s of the scan, samples are taken mid-TR (``+ 1`` s),
and the grid is trimmed ``[10:-5]``. On that grid, per TR, the fixture counts the word midpoints
falling in the TR (``[t - 1, t + 1)``) and convolves the counts with a double-gamma HRF built from
``scipy.stats.gamma``. Voxels:

* ``v0``-``v3`` (PLANTED): z-scored HRF-convolved word count x amplitude + noise;
* ``v4`` (RATE0): the z-scored word count itself (no HRF) + small noise, for timing checks;
* ``v5``-``v11``: pure noise.

Each story's audio ends 1 s after its last word and the scan is sized as in the reference
(``respdict = ceil((audio_end + 20) / 2)``, so the story fills the ``respdict - 5`` grid): the last
words end after the last kept volume, as in the real data.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy import stats

from brainalign.core.synthetic.study import story_texts

STORIES = {"souls": "lighthouse", "avatar": "market", "wheretheressmoke": "orchard"}
SUBJECTS = ["UTS01", "UTS02"]
N_VOXELS = 12
PLANTED = [0, 1, 2, 3]
RATE0 = 4
NOISE = list(range(5, N_VOXELS))
N_WORDS = 160
N_REPEATS = 4
PAUSE_LABEL_EXTRA = "{LG}"   # a non-speech label the reference code drops (lg after stripping {})


def timed_words(text: str, rng: np.random.Generator, n_words: int = N_WORDS, start: float = 2.0) -> pd.DataFrame:
    """Lower-case words without punctuation (as in the real TextGrids) with irregular pauses, so
    that the word rate varies from TR to TR."""
    words = [w for w in (re.sub(r"[^a-z']", "", x.lower()) for x in text.split()) if w][:n_words]
    t, rows = start, []
    for w in words:
        dur = (0.12 + 0.05 * len(w)) * rng.uniform(0.85, 1.15)
        rows.append((w, round(t, 4), round(t + dur, 4)))
        t += dur
        if rng.uniform() < 0.18:
            t += rng.uniform(0.5, 4.0)
    return pd.DataFrame(rows, columns=["word", "onset", "offset"])


def reference_rows(words: pd.DataFrame, respdict_n: int):
    """(word count per kept row, HRF-convolved count per kept row) on the reference grid."""
    k = np.arange(respdict_n - 5)
    t = 2.0 * k - 10.0 + 1.0
    mid = (words["onset"].to_numpy() + words["offset"].to_numpy()) / 2
    count = np.array([((mid >= a - 1.0) & (mid < a + 1.0)).sum() for a in t], dtype=float)
    lag = np.arange(0, 32, 2.0)
    hrf = stats.gamma.pdf(lag, 6) - stats.gamma.pdf(lag, 16) / 6
    conv = np.convolve(count, hrf)[: len(t)]
    return count[10:-5], conv[10:-5]


def _z(x):
    return (x - x.mean()) / x.std()


def _phones(word: str, on: float, off: float):
    letters = [c.upper() for c in word if c.isalpha()][:3] or ["AH"]
    edges = np.linspace(on, off, len(letters) + 1)
    return [(float(a), float(b), p) for a, b, p in zip(edges[:-1], edges[1:], letters)]


def _fill(intervals, xmax):
    """Contiguous tier: gaps become ``sp`` intervals."""
    out, t = [], 0.0
    for a, b, lab in intervals:
        if a > t + 1e-9:
            out.append((t, a, "sp"))
        out.append((a, b, lab))
        t = b
    if xmax > t + 1e-9:
        out.append((t, xmax, "sp"))
    return out


def textgrid_text(tiers: dict[str, list], xmax: float, short: bool = False) -> str:
    """A Praat TextGrid (long or short text format) with the given interval tiers."""
    if short:
        lines = ['File type = "ooTextFile short"', 'Object class = "TextGrid"', "", "0", f"{xmax}",
                 "<exists>", str(len(tiers))]
        for name, ivs in tiers.items():
            lines += ['"IntervalTier"', f'"{name}"', "0", f"{xmax}", str(len(ivs))]
            for a, b, lab in ivs:
                lines += [f"{a}", f"{b}", f'"{lab}"']
        return "\n".join(lines) + "\n"
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {xmax} ",
             "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for i, (name, ivs) in enumerate(tiers.items(), 1):
        lines += [f"    item [{i}]:", '        class = "IntervalTier" ', f'        name = "{name}" ',
                  "        xmin = 0 ", f"        xmax = {xmax} ", f"        intervals: size = {len(ivs)} "]
        for j, (a, b, lab) in enumerate(ivs, 1):
            lines += [f"        intervals [{j}]:", f"            xmin = {a} ", f"            xmax = {b} ",
                      f'            text = "{lab}" ']
    return "\n".join(lines) + "\n"


def write_textgrid(path: Path, words: pd.DataFrame, xmax: float, short: bool = False,
                   extra_label: str | None = None, tier_names=("phone", "word")) -> None:
    word_iv = [(float(a), float(b), w) for w, a, b in words[["word", "onset", "offset"]].itertuples(index=False)]
    if extra_label:  # a non-speech interval inside the first long pause
        gaps = [(word_iv[i][1], word_iv[i + 1][0]) for i in range(len(word_iv) - 1)]
        a, b = max(gaps, key=lambda g: g[1] - g[0])
        word_iv.append((a + 0.1, b - 0.1, extra_label))
        word_iv.sort()
    phone_iv = [p for w, a, b in words[["word", "onset", "offset"]].itertuples(index=False)
                for p in _phones(w, float(a), float(b))]
    tiers = {tier_names[0]: _fill(phone_iv, xmax), tier_names[1]: _fill(word_iv, xmax)}
    path.write_text(textgrid_text(tiers, xmax, short=short), encoding="utf-8")


def write_hf5(path: Path, data: np.ndarray, key: str = "data") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=np.asarray(data, dtype=np.float32))


def write_lebel_study(root: Path, seed: int = 0, repeats_subject: str | None = "UTS01") -> dict:
    """Write the study; returns what was planted: words (story -> DataFrame), respdict,
    count and conv (story -> kept-row arrays), signal (subject -> story -> clean array)."""
    rng = np.random.default_rng(seed)
    deriv = Path(root) / "derivative"
    (deriv / "TextGrids").mkdir(parents=True, exist_ok=True)
    texts = story_texts(list(STORIES.values()))
    words, respdict, count, conv = {}, {}, {}, {}
    for i, (story, text_name) in enumerate(STORIES.items()):
        w = timed_words(texts[text_name], rng)
        audio_end = float(w["offset"].iloc[-1]) + 1.0
        respdict[story] = math.ceil((audio_end + 20.0) / 2.0)
        words[story] = w
        count[story], conv[story] = reference_rows(w, respdict[story])
        write_textgrid(deriv / "TextGrids" / f"{story}.TextGrid", w, audio_end, short=(i == len(STORIES) - 1),
                       extra_label=PAUSE_LABEL_EXTRA if i == 0 else None)
    (deriv / "respdict.json").write_text(json.dumps(respdict))
    amp = np.array([1.0, 0.8, 0.6, 0.5])
    signal = {}
    for subject in SUBJECTS:
        signal[subject] = {}
        for story in STORIES:
            n = respdict[story] - 20
            clean = np.zeros((n, N_VOXELS))
            clean[:, PLANTED] = _z(conv[story])[:, None] * amp
            clean[:, RATE0] = _z(count[story])
            signal[subject][story] = clean
            noise_sd = np.ones(N_VOXELS)
            noise_sd[RATE0] = 0.1
            if subject == repeats_subject and story == "wheretheressmoke":
                reps = clean[None] + rng.standard_normal((N_REPEATS, n, N_VOXELS)) * noise_sd
                write_hf5(deriv / "preprocessed_data" / subject / f"{story}_repeats.hf5", reps)
                data = reps.mean(0)  # the derivative holds the average over repeats
            else:
                data = clean + rng.standard_normal((n, N_VOXELS)) * noise_sd * 0.5
            write_hf5(deriv / "preprocessed_data" / subject / f"{story}.hf5", data)
    return {"words": words, "respdict": respdict, "count": count, "conv": conv, "signal": signal}
