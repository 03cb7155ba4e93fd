"""SMN4Lang (Wang et al. 2022, Scientific Data 9:590; OpenNeuro ds004078): 12 native Mandarin
speakers listening to 60 Chinese stories in the scanner (one run per story, TR 0.71 s).

Layout read (``root`` is the ds004078 folder; ``<N>`` is the story number 1-60, the story id in
the pipeline is ``story_<N>``)::

    derivatives/preprocessed_data/sub-XX/<space>/sub-XX_task-RDR_run-<N>_bold.nii.gz
                                        preprocessed 4D BOLD (option data: preprocessed, the
                                        default; option space, default MNI)
    sub-XX/func/sub-XX_task-RDR_run-<N>_bold.nii.gz
                                        raw 4D BOLD (option data: raw)
    sub-XX/func/sub-XX_task-RDR_run-<N>_events.tsv
                                        optional: BIDS events; the row whose stim_file is
                                        story_<N>.wav (or the only row) gives the audio onset
    word timings of story N, the first file found of:
      annotations/story_<N>_words.tsv (or .csv)
      derivatives/annotations/story_<N>_words.tsv (or .csv)
                                        columns word (or text/token/char), onset (or start),
                                        offset (or end) or duration, optional sentence_id
      derivatives/annotations/time_align/word-level/story_<N>_word_time.mat
      annotations/time_align/word-level/story_<N>_word_time.mat
                                        MATLAB: ``word`` (cell of strings), ``start`` and ``end``
                                        (1 x n seconds), as published
      (option unit: char reads .../char-level/story_<N>_char_time.mat (``char``/``word``,
      ``start``, ``end``) instead)

Conventions and choices (docs/datasets/smn4lang.md):

* word times are seconds of the story audio (the forced alignment ran on the audio files). The
  TR grid's ``t0`` (time of volume 0 on that clock) is ``-onset``, the audio onset of the run's
  events.tsv (option ``t0: events``, the default); a number (or story -> number) sets it by hand.
  A story without events.tsv gets ``t0 = 0`` (word times taken to be scan seconds), logged.
* tokens made only of punctuation (``，`` ``。``) are attached to the preceding word (so that
  ``。`` ends a sentence for :func:`brainalign.core.timing.stimuli.assign_sentences`); words are Chinese
  words without spaces (the embedding env joins them with ``word_separator: ""``).
* every run's TR (NIfTI header ``pixdim[4]``, or the JSON sidecar ``RepetitionTime``) must equal
  the ``tr`` option (0.71 s) within 1 ms, and all subjects must have the same number of volumes
  for a story: otherwise a ``ValueError`` names the file.
* voxels: the ``mask`` option (a NIfTI on the BOLD grid), else the voxels with finite,
  non-constant values in the subject's first selected run; targets ``v<i>_<j>_<k>``.
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.brain.preprocess import LazyStories
from ...core.timing.stimuli import PAUSE_LABELS, StimulusError
from .base import MissingDataError, StudyReader

log = logging.getLogger(__name__)

TASK = "RDR"
TR_ATOL = 1e-3
_STORY = re.compile(r"^story_(\d+)$")


def is_punctuation(token: str) -> bool:
    """True for a non-empty token made only of punctuation characters (Unicode category P*)."""
    token = str(token).strip()
    return bool(token) and all(unicodedata.category(c).startswith("P") for c in token)


def attach_punctuation(words: pd.DataFrame) -> pd.DataFrame:
    """Append punctuation-only tokens to the preceding word (a leading one to the following
    word); times of the words are kept. Returns a new DataFrame (same columns), index reset."""
    rows = words.reset_index(drop=True).to_dict("records")
    out: list[dict] = []
    pending = ""
    for r in rows:
        if is_punctuation(r["word"]):
            if out:
                out[-1]["word"] += str(r["word"]).strip()
            else:
                pending += str(r["word"]).strip()
            continue
        r = dict(r)
        r["word"] = pending + str(r["word"]).strip()
        pending = ""
        out.append(r)
    return pd.DataFrame(out, columns=words.columns)


def _nifti_tr(path: Path) -> float | None:
    """TR (s) from the NIfTI header (ms/us converted), None when unset."""
    import nibabel as nib

    hdr = nib.load(path).header
    zooms = hdr.get_zooms()
    if len(zooms) < 4 or not np.isfinite(zooms[3]) or zooms[3] <= 0:
        return None
    unit = hdr.get_xyzt_units()[1]
    return float(zooms[3]) / {"msec": 1e3, "usec": 1e6}.get(unit, 1.0)


class Smn4langReader(StudyReader):
    """Reader of SMN4Lang (ds004078); see the module docstring.

    Parameters (reader options, ``globals.study_options``)
    ----------
    tr : repetition time (s), 0.71; every run is checked against it (``check_tr``).
    data : ``preprocessed`` (``derivatives/preprocessed_data/sub-XX/<space>/``) or ``raw``
        (``sub-XX/func/``).
    space : folder of the preprocessed data (``MNI``).
    t0 : ``events`` (``-`` the audio onset of the run's events.tsv), a number or a mapping
        story -> number (s): the time of volume 0 on the word clock.
    unit : ``word`` (word-level timings) or ``char`` (character-level .mat files).
    mask : a NIfTI brain mask on the BOLD grid (relative to root, or absolute).
    check_tr : compare each run's header TR with ``tr`` (default true).
    """

    name = "smn4lang"
    download_hint = ("Download SMN4Lang (OpenNeuro ds004078; see docs/datasets/smn4lang.md) and set "
                     "BRAINALIGN_SMN4LANG_DIR to the ds004078 folder (holding derivatives/ and sub-XX/), "
                     "or set download: true in conf/smn4lang/globals.yml.")

    @property
    def source(self):
        from ..download import DatasetSource

        return DatasetSource(
            openneuro="ds004078",
            include=("derivatives/annotations/time_align/*", "sub-*/func/*task-RDR*_events.tsv",
                     "derivatives/preprocessed_data/sub-*/MNI/*task-RDR*_bold.nii.gz"),
            url="https://openneuro.org/datasets/ds004078",
            size="the MNI derivative of 12 subjects x 60 runs is large (hundreds of MB per run; see the "
                 "OpenNeuro page)")

    def __init__(self, root, tr: float = 0.71, data: str = "preprocessed", space: str = "MNI",
                 t0="events", unit: str = "word", mask: str | None = None, check_tr: bool = True):
        super().__init__(root)
        if data not in ("preprocessed", "raw"):
            raise ValueError(f"smn4lang reader option data must be 'preprocessed' or 'raw', got {data!r}")
        if unit not in ("word", "char"):
            raise ValueError(f"smn4lang reader option unit must be 'word' or 'char', got {unit!r}")
        self.tr, self.data, self.space, self.t0 = float(tr), data, space, t0
        self.unit, self.mask_path, self.check_tr = unit, mask, bool(check_tr)
        self._grid_cache: pd.DataFrame | None = None

    # ------------------------------------------------------------------ layout
    def _subject_root(self) -> Path:
        return self.root / "derivatives" / "preprocessed_data" if self.data == "preprocessed" else self.root

    def _run_dir(self, subject: str) -> Path:
        return self._subject_root() / subject / (self.space if self.data == "preprocessed" else "func")

    def bold_path(self, subject: str, story: str) -> Path:
        return self._run_dir(subject) / f"{subject}_task-{TASK}_run-{self._number(story)}_bold.nii.gz"

    def events_path(self, subject: str, story: str) -> Path:
        return self.root / subject / "func" / f"{subject}_task-{TASK}_run-{self._number(story)}_events.tsv"

    @staticmethod
    def _number(story: str) -> int:
        m = _STORY.match(str(story))
        if not m:
            raise MissingDataError(f"smn4lang study: story ids are story_<N> (N = run number), got {story!r}")
        return int(m.group(1))

    def timing_candidates(self, story: str) -> list[Path]:
        n = self._number(story)
        level, kind = ("word-level", "word") if self.unit == "word" else ("char-level", "char")
        out = []
        if self.unit == "word":
            for base in (self.root / "annotations", self.root / "derivatives" / "annotations"):
                out += [base / f"story_{n}_words.tsv", base / f"story_{n}_words.csv"]
        for base in (self.root / "derivatives" / "annotations", self.root / "annotations"):
            out.append(base / "time_align" / level / f"story_{n}_{kind}_time.mat")
        return out

    def timing_path(self, story: str) -> Path | None:
        return next((p for p in self.timing_candidates(story) if p.is_file()), None)

    def check(self) -> None:
        self.require(self.root, "the study directory")
        self.require(self._subject_root(), "the folder of the subjects' runs")
        if not self.subjects():
            raise MissingDataError(f"{self.name} study: no sub-* folder with a run under {self._subject_root()}. "
                                   f"{self.download_hint}")

    def subjects(self) -> list[str]:
        base = self.require(self._subject_root(), "the folder of the subjects' runs")
        return sorted(p.name for p in base.glob("sub-*")
                      if p.is_dir() and any((p / (self.space if self.data == "preprocessed" else "func"))
                                            .glob(f"{p.name}_task-{TASK}_run-*_bold.nii.gz")))

    def stories(self) -> list[str]:
        """``story_<N>`` for every run number with a BOLD file for some subject and a word-timing
        file (runs without timings are reported with a warning), in run order."""
        runs: set[int] = set()
        for sub in self.subjects():
            for p in self._run_dir(sub).glob(f"{sub}_task-{TASK}_run-*_bold.nii.gz"):
                m = re.search(r"_run-(\d+)_bold", p.name)
                if m:
                    runs.add(int(m.group(1)))
        stories = [f"story_{n}" for n in sorted(runs)]
        no_timing = [s for s in stories if self.timing_path(s) is None]
        if no_timing:
            log.warning("%s study: runs of %s have no word timings (looked for e.g. %s) and are left out",
                        self.name, no_timing, [str(p) for p in self.timing_candidates(no_timing[0])])
        return [s for s in stories if s not in no_timing]

    # ------------------------------------------------------------------ word timings
    def _read_table(self, path: Path) -> pd.DataFrame:
        sep = "\t" if path.suffix == ".tsv" else ","
        try:
            df = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""], dtype={"word": str})
        except Exception as exc:  # noqa: BLE001 - re-raised with the file name
            raise StimulusError(f"{path}: cannot read the word table ({exc})") from exc
        word = next((c for c in ("word", "text", "token", "char") if c in df.columns), None)
        on = next((c for c in ("onset", "start") if c in df.columns), None)
        off = next((c for c in ("offset", "end") if c in df.columns), None)
        if word is None or on is None or (off is None and "duration" not in df.columns):
            raise StimulusError(f"{path}: a word table needs columns word, onset and offset (or start/end, "
                                f"or duration); found {list(df.columns)}")
        out = pd.DataFrame({"word": df[word].astype(str), "onset": pd.to_numeric(df[on], errors="coerce")})
        out["offset"] = pd.to_numeric(df[off], errors="coerce") if off else out["onset"] + df["duration"]
        if "sentence_id" in df.columns:
            out["sentence_id"] = df["sentence_id"]
        return out

    def _read_mat(self, path: Path) -> pd.DataFrame:
        from scipy.io import loadmat

        try:
            d = loadmat(path, squeeze_me=True)
        except Exception as exc:  # noqa: BLE001
            raise StimulusError(f"{path}: not a readable MATLAB file ({exc})") from exc
        key = next((k for k in ("word", "char", "words", "chars") if k in d), None)
        if key is None or "start" not in d or "end" not in d:
            raise StimulusError(f"{path}: expected variables word (or char), start and end; found "
                                f"{sorted(k for k in d if not k.startswith('__'))}")
        words = [str(w).strip() for w in np.atleast_1d(np.asarray(d[key], dtype=object)).ravel()]
        start = np.atleast_1d(np.asarray(d["start"], dtype=float)).ravel()
        end = np.atleast_1d(np.asarray(d["end"], dtype=float)).ravel()
        if not (len(words) == len(start) == len(end)):
            raise StimulusError(f"{path}: {len(words)} {key}s but {len(start)} start and {len(end)} end times")
        return pd.DataFrame({"word": words, "onset": start, "offset": end})

    def _words(self, story: str) -> pd.DataFrame:
        path = self.timing_path(story)
        if path is None:
            raise MissingDataError(f"{self.name} study: no word timings of {story} (looked for "
                                   f"{[str(p) for p in self.timing_candidates(story)]}). {self.download_hint}")
        df = self._read_mat(path) if path.suffix == ".mat" else self._read_table(path)
        bad = df[~np.isfinite(df[["onset", "offset"]].to_numpy(float)).all(1) | (df["offset"] < df["onset"])]
        if len(bad):
            raise StimulusError(f"{path}: {len(bad)} words with missing or reversed times (first: row "
                                f"{bad.index[0]}, {bad.iloc[0]['word']!r})")
        df = df[~df["word"].str.strip().str.lower().isin(PAUSE_LABELS)]
        n_punct = int(df["word"].map(is_punctuation).sum())
        df = attach_punctuation(df)
        if df.empty:
            raise StimulusError(f"{path}: no words")
        if n_punct:
            log.debug("%s: %d punctuation tokens attached to the preceding words", path, n_punct)
        df = df.reset_index(drop=True)   # file order: core.timing.validate checks it
        df.attrs["source"] = str(path)
        df["pause_before"] = np.r_[0.0, np.clip(df["onset"].to_numpy()[1:] - df["offset"].to_numpy()[:-1], 0, None)]
        return df

    def words(self) -> LazyStories:
        """story -> DataFrame(word, onset, offset, pause_before[, sentence_id]), seconds of the
        story audio, read when accessed."""
        return LazyStories(self.stories(), self._words)

    # ------------------------------------------------------------------ TR grid
    def _audio_onset(self, story: str) -> float | None:
        """Audio onset (s after the first volume) from the subjects' events.tsv, None if none has one."""
        n = self._number(story)
        onsets = {}
        for sub in self.subjects():
            path = self.events_path(sub, story)
            if not path.is_file():
                continue
            ev = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
            if "onset" not in ev.columns:
                raise ValueError(f"{path}: an events.tsv needs an onset column; found {list(ev.columns)}")
            rows = ev
            if "stim_file" in ev.columns:
                rows = ev[ev["stim_file"].astype(str).map(lambda f: Path(str(f)).name == f"story_{n}.wav")]
            if len(rows) != 1:
                if len(ev) == 1:
                    rows = ev
                else:
                    raise ValueError(f"{path}: cannot tell which row is the story audio ({len(rows)} rows with "
                                     f"stim_file story_{n}.wav among {len(ev)}); set the reader option t0")
            onsets[str(path)] = float(rows["onset"].iloc[0])
        if not onsets:
            return None
        values = np.array(list(onsets.values()))
        if values.max() - values.min() > self.tr / 2:
            raise ValueError(f"story {story}: the events files disagree on the audio onset by more than half "
                             f"a TR: {onsets}; set the reader option t0 for this story")
        return float(np.median(values))

    def _t0(self, story: str) -> float:
        if isinstance(self.t0, dict):
            if story not in self.t0:
                raise ValueError(f"smn4lang reader option t0 has no entry for {story}")
            return float(self.t0[story])
        if self.t0 != "events":
            return float(self.t0)
        onset = self._audio_onset(story)
        if onset is None:
            log.warning("%s study: no events.tsv for %s (e.g. %s): t0 = 0, i.e. the word times are taken to "
                        "be seconds from the first volume", self.name, story,
                        self.events_path(self.subjects()[0], story) if self.subjects() else "?")
            return 0.0
        return -onset

    def _sidecar_tr(self, bold: Path) -> float | None:
        side = bold.with_name(bold.name.replace(".nii.gz", ".json"))
        if side.is_file():
            try:
                value = json.loads(side.read_text()).get("RepetitionTime")
            except ValueError as exc:
                raise ValueError(f"{side}: not valid JSON ({exc})") from exc
            return None if value is None else float(value)
        return None

    def _run_info(self, subject: str, story: str) -> tuple[int, float | None]:
        import nibabel as nib

        path = self.bold_path(subject, story)
        shape = nib.load(path).shape
        if len(shape) != 4:
            raise ValueError(f"{path}: BOLD image of shape {shape} is not 4D")
        tr = _nifti_tr(path)
        side = self._sidecar_tr(path)
        return int(shape[3]), (tr if tr is not None else side)

    def tr_grids(self) -> pd.DataFrame:
        """story, n_trs_total, tr, t0: every subject's run of a story is checked (TR, volumes)."""
        if self._grid_cache is not None:
            return self._grid_cache.copy()
        rows = []
        for story in self.stories():
            vols = {}
            for sub in self.subjects():
                path = self.bold_path(sub, story)
                if not path.is_file():
                    continue
                n, tr = self._run_info(sub, story)
                if self.check_tr and tr is not None and abs(tr - self.tr) > TR_ATOL:
                    raise ValueError(f"{path}: the run has TR {tr:g} s but the study's TR is {self.tr:g} s "
                                     "(reader option tr); every run of a story must share one TR grid. "
                                     "Leave the subject out (study.subjects) or the story (study.stories), or "
                                     "set check_tr: false if the header is wrong")
                if self.check_tr and tr is None:
                    log.warning("%s: no TR in the header or sidecar; assumed %g s", path, self.tr)
                vols[str(path)] = n
            counts = pd.Series(vols)
            ref = int(counts.mode().iloc[0])
            odd = counts[counts != ref]
            if len(odd):
                raise ValueError(f"story {story}: runs disagree on the number of volumes: {odd.to_dict()} "
                                 f"but {int((counts == ref).sum())} runs (e.g. {counts[counts == ref].index[0]}) "
                                 f"have {ref}; leave the odd subject out (study.subjects)")
            rows.append({"story": story, "n_trs_total": ref, "tr": self.tr, "t0": self._t0(story)})
        if not rows:
            raise MissingDataError(f"{self.name} study: no run with word timings under {self.root}. "
                                   f"{self.download_hint}")
        self._grid_cache = pd.DataFrame(rows, columns=["story", "n_trs_total", "tr", "t0"])
        return self._grid_cache.copy()

    # ------------------------------------------------------------------ responses
    def _mask(self, subject: str, first: Path):
        import nibabel as nib

        img = nib.load(first)
        if self.mask_path is not None:
            mpath = Path(self.mask_path)
            mpath = self.require(mpath if mpath.is_absolute() else self.root / mpath, "the brain mask (option mask)")
            m = nib.load(mpath)
            if m.shape[:3] != img.shape[:3] or not np.allclose(m.affine, img.affine, atol=1e-3):
                raise ValueError(f"{mpath}: the mask (shape {m.shape[:3]}) is not on the grid of {first} "
                                 f"(shape {img.shape[:3]}); resample it to the BOLD grid")
            mask = np.asarray(m.dataobj).reshape(m.shape[:3]) > 0
        else:
            data = np.asarray(img.dataobj, dtype=np.float32)
            finite = np.isfinite(data).all(-1)
            clean = np.where(np.isfinite(data), data, 0)
            mask = finite & (clean.max(-1) - clean.min(-1) > 1e-6 * np.maximum(np.abs(clean).max(-1), 1e-30))
        if not mask.any():
            raise ValueError(f"subject {subject}: the brain mask is empty ({self.mask_path or first})")
        return mask, img.affine, img.shape[:3]

    def responses(self, subject: str, stories: list[str] | None = None):
        """Lazy responses of ``subject``: story -> float32 (n_volumes, n_voxels), voxels of the
        subject's mask; all runs must be on the grid of the first. A missing run is a
        :class:`MissingDataError` naming the file."""
        self.require(self._subject_root() / subject, f"the folder of subject {subject}")
        stories = list(self.stories() if stories is None else stories)
        if not stories:
            raise MissingDataError(f"{self.name} study: no story selected for subject {subject}")
        missing = [s for s in stories if not self.bold_path(subject, s).is_file()]
        if missing:
            raise MissingDataError(
                f"{self.name} study: subject {subject} has no run of {missing[0]}: "
                f"{self.bold_path(subject, missing[0])} not found"
                + (f" (also {missing[1:6]})" if len(missing) > 1 else "")
                + ". Restrict study.stories to stories every selected subject has, or leave the subject "
                "out of study.subjects.")
        first = self.bold_path(subject, stories[0])
        mask, affine, shape = self._mask(subject, first)

        def read(story: str) -> np.ndarray:
            import nibabel as nib

            path = self.bold_path(subject, story)
            img = nib.load(path)
            if img.shape[:3] != shape or not np.allclose(img.affine, affine, atol=1e-3):
                raise ValueError(f"{path}: grid (shape {img.shape[:3]}) differs from the subject's first run "
                                 f"{first} (shape {shape}); all runs of a subject must share one voxel grid")
            return np.ascontiguousarray(np.asarray(img.dataobj, dtype=np.float32)[mask].T)

        ijk = np.nonzero(mask)
        targets = pd.DataFrame({"target": [f"v{i}_{j}_{k}" for i, j, k in zip(*ijk)], "roi": "none",
                                "network": "none", "i": ijk[0], "j": ijk[1], "k": ijk[2]})
        sources = {s: str(self.bold_path(subject, s)) for s in stories}
        return LazyStories(stories, read), targets, sources

    def reference_image(self, subject: str | None = None):
        """The subject's voxel mask on the grid of its first run (the grid of ``i, j, k``)."""
        import nibabel as nib

        subject = subject or self.subjects()[0]
        stories = [s for s in self.stories() if self.bold_path(subject, s).is_file()]
        if not stories:
            raise MissingDataError(f"{self.name} study: subject {subject} has no run")
        mask, affine, _ = self._mask(subject, self.bold_path(subject, stories[0]))
        return nib.Nifti1Image(mask.astype(np.uint8), affine)
