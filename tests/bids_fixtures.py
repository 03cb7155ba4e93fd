"""Tiny studies written in real published layouts (Narratives, generic BIDS) with a planted signal.

Used by tests/io/test_narratives_reader.py, tests/io/test_bids_reader.py and the end-to-end env
tests. Everything is written with nibabel, json and pandas directly; nothing here calls the
readers under test. Every planted value (word times, onsets, TRs, which targets carry signal) is
returned so that tests can compare the readers' output with it.

The signal: for each story, word onsets on the scan clock are counted on a 0.1 s grid, convolved
with a double-gamma HRF (peak 6 s, undershoot 16 s, ratio 1/6; scipy.stats.gamma) and sampled at
the volume times; z-scored per run. "Signal" targets are ``2 * signal + noise``, "noise" targets
are noise only (noise sd 1), both around a per-target baseline; voxels outside the "brain" are 0.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats

SHAPE = (5, 5, 4)
AFFINE = np.array([[3.0, 0, 0, -6], [0, 3.0, 0, -6], [0, 0, 4.0, -6], [0, 0, 0, 1]])
N_VERTICES = {"L": 30, "R": 26}
MEDIAL = {"L": [0, 1], "R": [25]}            # NaN vertices (the medial wall of fsaverage files)
SPACE_VOL = "MNI152NLin2009cAsym"
SPACE_SURF = "fsaverage6"
SIGNAL_AMP = 2.0


def story_tokens(name: str, n_words: int) -> list[str]:
    """The first ``n_words`` whitespace tokens of a packaged story that hold exactly one word
    (``[\\w']+``), so that the Gentle token and the transcript token map one to one."""
    from importlib import resources

    text = (resources.files("brainalign") / "data" / "stories" / f"{name}.txt").read_text()
    out = [t for t in text.split() if len(re.findall(r"[\w']+", t)) == 1]
    return out[:n_words]


def time_tokens(tokens: list[str], rng: np.random.Generator, start: float = 0.4) -> pd.DataFrame:
    """Word times (s of the story audio): durations from word length, short gaps, longer ones
    after sentences and a long pause every 12-25 words (the word rate varies)."""
    rows, t = [], start
    next_pause = int(rng.integers(12, 25))
    for k, tok in enumerate(tokens):
        core = re.findall(r"[\w']+", tok)[0]
        dur = (0.12 + 0.05 * len(core)) * rng.uniform(0.85, 1.15)
        rows.append((tok, core, round(t, 3), round(t + dur, 3)))
        t += dur + 0.08
        if re.search(r"[.!?][\"')]*$", tok):
            t += 0.5
        if k == next_pause:
            t += rng.uniform(2.0, 4.0)
            next_pause += int(rng.integers(12, 25))
    return pd.DataFrame(rows, columns=["token", "word", "onset", "offset"])


def hrf_regressor(word_onsets_scan: np.ndarray, n_vols: int, tr: float) -> np.ndarray:
    """HRF-convolved word rate sampled at volume times ``i * tr`` (scan clock), z-scored."""
    dt = 0.1
    n_fine = int(math.ceil((n_vols * tr + 32) / dt))
    x = np.zeros(n_fine)
    idx = np.floor(np.asarray(word_onsets_scan) / dt).astype(int)
    idx = idx[(idx >= 0) & (idx < n_fine)]
    np.add.at(x, idx, 1.0)
    t = np.arange(0, 32, dt)
    h = stats.gamma.pdf(t, 6) - stats.gamma.pdf(t, 16) / 6.0
    y = np.convolve(x, h)[:n_fine]
    s = y[np.round(np.arange(n_vols) * tr / dt).astype(int)]
    return (s - s.mean()) / s.std()


def gentle_json(words: pd.DataFrame, unaligned: list[int]) -> dict:
    """Gentle output for a timed token table; the rows in ``unaligned`` get no times."""
    transcript = " ".join(words["token"])
    items, pos = [], 0
    for k, r in enumerate(words.itertuples()):
        s = transcript.index(r.token, pos)
        core_at = s + r.token.index(r.word)
        pos = s + len(r.token)
        item = {"word": r.word, "startOffset": core_at, "endOffset": core_at + len(r.word)}
        if k in unaligned:
            item["case"] = "not-found-in-audio"
        else:
            item.update(case="success", alignedWord=r.word.lower(), start=float(r.onset), end=float(r.offset),
                        phones=[{"phone": "x", "duration": round(float(r.offset - r.onset), 3)}])
        items.append(item)
    return {"transcript": transcript, "words": items}


def save_nifti(path: Path, data: np.ndarray, tr: float | None, affine=AFFINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 0.0 if tr is None else tr  # nibabel's default would be 1.0
    nib.save(img, path)


def save_gifti(path: Path, data: np.ndarray) -> None:
    """(n_trs, n_vertices) -> GIFTI with one float32 data array per TR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [nib.gifti.GiftiDataArray(np.asarray(row, np.float32), intent="NIFTI_INTENT_TIME_SERIES",
                                       datatype="NIFTI_TYPE_FLOAT32") for row in data]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), path)


def volume_layout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(brain, signal, noise) bool masks of SHAPE: i == 0 is outside the brain (all zeros);
    k in {0, 1} carries the signal, k in {2, 3} is noise."""
    ii, _jj, kk = np.indices(SHAPE)
    brain = ii >= 1
    return brain, brain & (kk <= 1), brain & (kk >= 2)


def surface_layout() -> dict[str, dict[str, np.ndarray]]:
    """Per hemisphere: cortex (not medial), signal (even vertices) and noise (odd) bool arrays."""
    out = {}
    for h, n in N_VERTICES.items():
        v = np.arange(n)
        cortex = ~np.isin(v, MEDIAL[h])
        out[h] = {"cortex": cortex, "signal": cortex & (v % 2 == 0), "noise": cortex & (v % 2 == 1)}
    return out


def volume_run(signal: np.ndarray, rng, amp: float = SIGNAL_AMP) -> np.ndarray:
    brain, sig, _noise = volume_layout()
    n = len(signal)
    data = np.zeros(SHAPE + (n,), np.float32)
    base = 100 + 10 * rng.random(SHAPE)
    noise = rng.standard_normal(SHAPE + (n,))
    data[brain] = (base[brain][:, None] + noise[brain])
    data[sig] += amp * signal[None, :]
    return data


def surface_run(signal: np.ndarray, rng, amp: float = SIGNAL_AMP) -> dict[str, np.ndarray]:
    out = {}
    for h, lay in surface_layout().items():
        n_v = N_VERTICES[h]
        d = 50 + 5 * rng.random(n_v)[None, :] + rng.standard_normal((len(signal), n_v))
        d[:, lay["signal"]] += amp * signal[:, None]
        d[:, ~lay["cortex"]] = np.nan
        out[h] = d.astype(np.float32)
    return out


# --------------------------------------------------------------------------- Narratives
NARRATIVES_STORIES = {  # task: (packaged text, n words, story onset s, events kind)
    "pieman": ("lighthouse", 110, 10.5, "music+story"),
    "tunnel": ("market", 110, 3.0, "story"),
    "lucy": ("orchard", 100, 6.0, "none"),   # onset from code/event_meta.json only
}
NARRATIVES_UNALIGNED = {"pieman": [5, 40, 41], "tunnel": [0], "lucy": []}


@dataclass
class Plant:
    root: Path
    tr: float
    stories: dict = field(default_factory=dict)   # story -> dict(words, onset, duration, n_vols, signal)
    runs: dict = field(default_factory=dict)      # (subject, story) -> list of (path(s), data arrays)
    excluded: list = field(default_factory=list)


def write_narratives(root: Path, *, subjects=("sub-001", "sub-002", "sub-003"), tr: float = 1.0,
                     spaces=("volume", "surface"), seed: int = 0, tail: float = 14.0,
                     extra_runs: bool = True) -> Plant:
    """A Narratives-layout study (see module docstring). With ``extra_runs``: sub-002 heard
    ``tunnel`` twice (run-1, run-2, both kept: averaged), sub-003 heard ``pieman`` twice and
    run-2 is listed in code/scan_exclude.json (its data carry no signal)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    plant = Plant(root, tr)
    deriv = root / "derivatives" / "afni-nosmooth"
    event_meta = {}
    for task, (text, n_words, onset, kind) in NARRATIVES_STORIES.items():
        words = time_tokens(story_tokens(text, n_words), rng)
        duration = round(float(words["offset"].iloc[-1]) + 0.5, 3)
        n_vols = int(math.ceil((onset + duration + tail) / tr))
        signal = hrf_regressor(words["onset"].to_numpy() + onset, n_vols, tr)
        gdir = root / "stimuli" / "gentle" / task
        gdir.mkdir(parents=True, exist_ok=True)
        (gdir / "align.json").write_text(json.dumps(gentle_json(words, NARRATIVES_UNALIGNED[task]), indent=1))
        (gdir / "transcript.txt").write_text(" ".join(words["token"]))
        plant.stories[task] = {"words": words, "onset": onset, "duration": duration, "n_vols": n_vols,
                               "signal": signal, "events": kind}
        # event_meta (TRs): deliberately 1 TR off for pieman (events.tsv must win)
        on_trs = int(round(onset / tr)) + (1 if task == "pieman" else 0)
        event_meta[task] = {task: {"onset": on_trs, "duration": int(math.ceil(duration / tr))}}
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "event_meta.json").write_text(json.dumps(event_meta, indent=2))
    exclude = {t: {} for t in NARRATIVES_STORIES}
    for subject in subjects:
        for task, st in plant.stories.items():
            run_labels = [None]
            if extra_runs and (subject, task) in {("sub-002", "tunnel"), ("sub-003", "pieman")}:
                run_labels = ["1", "2"]
            for run in run_labels:
                stem = f"{subject}_task-{task}" + (f"_run-{run}" if run else "")
                bad = extra_runs and subject == "sub-003" and task == "pieman" and run == "2"
                if bad:
                    exclude[task].setdefault(subject, []).append(stem)
                    plant.excluded.append(stem)
                sig = np.zeros_like(st["signal"]) if bad else st["signal"]
                raw = root / subject / "func"
                raw.mkdir(parents=True, exist_ok=True)
                (raw / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": tr, "TaskName": task}))
                if st["events"] != "none":
                    rows = ([(0.0, 8.0, "music", f"{task}_audio.wav")] if st["events"] == "music+story" else [])
                    rows.append((st["onset"], st["duration"], "story", f"{task}_audio.wav"))
                    pd.DataFrame(rows, columns=["onset", "duration", "trial_type", "stim_file"]).to_csv(
                        raw / f"{stem}_events.tsv", sep="\t", index=False)
                entry = {"stem": stem, "excluded": bad}
                if "volume" in spaces:
                    vol = volume_run(sig, rng)
                    path = deriv / subject / "func" / f"{stem}_space-{SPACE_VOL}_res-native_desc-clean_bold.nii.gz"
                    save_nifti(path, vol, tr)
                    entry.update(volume=path, volume_data=vol)
                if "surface" in spaces:
                    surf = surface_run(sig, rng)
                    for h in ("L", "R"):
                        path = deriv / subject / "func" / f"{stem}_space-{SPACE_SURF}_hemi-{h}_desc-clean.func.gii"
                        save_gifti(path, surf[h])
                        entry[f"surface_{h}"] = path
                    entry["surface_data"] = surf
                plant.runs.setdefault((subject, task), []).append(entry)
    (code / "scan_exclude.json").write_text(json.dumps(exclude, indent=2))
    (root / "dataset_description.json").write_text(json.dumps({"Name": "Narratives (tiny fixture)",
                                                               "BIDSVersion": "1.4.0"}))
    return plant


# --------------------------------------------------------------------------- generic BIDS
BIDS_STORIES = {  # story: (packaged text, n words, words source)
    "lighthouse": ("lighthouse", 110, "events_word"),     # events.tsv: word column + silence rows
    "orchard": ("orchard", 100, "events_trial_type"),     # events.tsv: trial_type holds the words
    "market": ("market", 110, "stimuli_csv"),             # stimuli/market_words.csv
}


def write_bids(root: Path, *, subjects=("sub-01", "sub-02"), tr: float = 1.0, seed: int = 1,
               tail: float = 14.0, start: float = 4.0, header_tr_for_orchard: bool = False) -> Plant:
    """A BIDS study (see module docstring). sub-02 is stored in session ``ses-1``. Word times are
    seconds from the first volume (the story audio starts ``start`` s in). ``orchard`` has no TR
    in its NIfTI header (pixdim[4] = 0) but a sidecar JSON with RepetitionTime, unless
    ``header_tr_for_orchard``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    plant = Plant(root, tr)
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    for story, (text, n_words, kind) in BIDS_STORIES.items():
        words = time_tokens(story_tokens(text, n_words), rng, start=start)
        n_vols = int(math.ceil((float(words["offset"].iloc[-1]) + tail) / tr))
        signal = hrf_regressor(words["onset"].to_numpy(), n_vols, tr)
        plant.stories[story] = {"words": words, "n_vols": n_vols, "signal": signal, "kind": kind}
        if kind == "stimuli_csv":
            pd.DataFrame({"word": words["token"], "onset": words["onset"],
                          "duration": (words["offset"] - words["onset"]).round(3)}).to_csv(
                root / "stimuli" / f"{story}_words.csv", index=False)
    for subject in subjects:
        ses = "ses-1" if subject == "sub-02" else None
        func = root / subject / (ses or "") / "func"
        for story, st in plant.stories.items():
            stem = f"{subject}" + (f"_{ses}" if ses else "") + f"_task-{story}"
            vol = volume_run(st["signal"], rng)
            path = func / f"{stem}_bold.nii.gz"
            no_header = story == "orchard" and not header_tr_for_orchard
            save_nifti(path, vol, None if no_header else tr)
            if no_header:
                (func / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": tr}))
            w = st["words"]
            if st["kind"] == "events_word":
                ev = pd.DataFrame({"onset": w["onset"], "duration": (w["offset"] - w["onset"]).round(3),
                                   "trial_type": "word", "word": w["token"]})
                sil = pd.DataFrame({"onset": [0.0, float(w["offset"].iloc[-1])], "duration": [start, 3.0],
                                    "trial_type": "silence", "word": ["n/a", "n/a"]})
                ev = pd.concat([sil.iloc[:1], ev, sil.iloc[1:]], ignore_index=True)
                ev.to_csv(func / f"{stem}_events.tsv", sep="\t", index=False, na_rep="n/a")
            elif st["kind"] == "events_trial_type":
                ev = pd.DataFrame({"onset": w["onset"], "duration": (w["offset"] - w["onset"]).round(3),
                                   "trial_type": w["token"]})
                extra = pd.DataFrame({"onset": [0.0, 1.0, float(w["offset"].iloc[-1]) + 0.5],
                                      "duration": [1.0, start - 1.0, 2.0],
                                      "trial_type": ["music", "silence", "silence"]})
                ev = pd.concat([extra.iloc[:2], ev, extra.iloc[2:]], ignore_index=True)
                ev.to_csv(func / f"{stem}_events.tsv", sep="\t", index=False)
            plant.runs.setdefault((subject, story), []).append({"stem": stem, "volume": path, "volume_data": vol})
    (root / "dataset_description.json").write_text(json.dumps({"Name": "bids tiny fixture", "BIDSVersion": "1.8.0"}))
    return plant
