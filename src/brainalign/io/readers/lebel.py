"""LeBel et al. 2023 (OpenNeuro ds003020): story-listening fMRI, 8 subjects, 84 Moth stories.

Layout (as published; ``root`` is the ds003020 folder, or its ``derivative/`` folder)::

    derivative/respdict.json                                story -> number of TRs of the scan
    derivative/TextGrids/<story>.TextGrid                   phone and word tiers (``sp`` = pause)
    derivative/preprocessed_data/<subject>/<story>.hf5      HDF5 key ``data``: (TRs, voxels), float
    stimuli/<story>.wav                                     story audio (optional; :meth:`audio`)
    derivative/preprocessed_data/<subject>/wheretheressmoke_repeats.hf5
                                                            optional, not in the release: key
                                                            ``data``, (n_repeats, TRs, voxels)

Timing, as in the dataset's reference code (HuthLab/deep-fMRI-dataset, ``encoding/``): the
feature grid of a story has ``respdict[story] - 5`` TRs of 2 s starting 10 s before the audio
(``load_simulated_trfiles(respdict, tr=2.0, start_time=10.0, pad=5)``), sampled mid-TR
(``DataSequence.from_grid``: trigger times - sound start + tr/2, so feature row k sits at
``2k - 9`` s), and is trimmed ``[5 + 5 : -5]`` (``apply_zscore_and_hrf(..., trim=5)``). That
leaves ``respdict[story] - 20`` rows, the number of rows of the stored responses, and stored row
``j`` (feature row ``k = j + 10``) sits at story time ``2 (j + 10) - 9 = 2 j + 11`` s. In the
TR-grid contract: ``n_trs_total = respdict[story] - 20``, ``tr = 2.0``, ``t0 = 11.0``, no further
trimming. The scanner TR is 2.0045 s; the reference code uses 2.0, and so does this reader by
default (option ``tr``) so that scores compare with published ones.

Voxels are in each subject's own cortical space (not MNI): targets are ``v<k>`` (column ``k`` of
the HDF5 matrix) with roi/network ``cortex``; they are not comparable across subjects.
"""
from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.brain.preprocess import LazyStories
from ...core.timing.stimuli import PAUSE_LABELS, StimulusError, read_textgrid, words_from_textgrid
from .base import MissingDataError, StudyReader

log = logging.getLogger(__name__)

#: rows removed from each story by the reference pipeline: respdict - 5 grid TRs, trimmed [10:-5]
TRIM_ROWS = 20
#: the default story subset of the lebel env (fetched by ``globals.download``)
DEFAULT_STORIES = ("alternateithicatom", "souls", "avatar", "howtodraw", "undertheinfluence",
                   "wheretheressmoke")
#: labels the reference code drops from the word tier (``dsutils.DEFAULT_BAD_WORDS``, compared
#: after stripping braces), plus the core pause labels
LEBEL_PAUSE_LABELS = frozenset(PAUSE_LABELS | {
    "sentence_start", "sentence_end", "br", "lg", "ls", "ns", "sp",
    "{br}", "{lg}", "{ls}", "{ns}", "{sp}", "{sentence_start}", "{sentence_end}"})


class LebelReader(StudyReader):
    """Reader of the ds003020 derivative (see the module docstring for layout and timing).

    Parameters
    ----------
    root : the ds003020 folder (holding ``derivative/``) or the ``derivative/`` folder itself.
    tr : seconds between volumes on the word clock (2.0 as in the reference code; the scanner's
        is 2.0045).
    start_time : seconds between the first volume of the scan and the start of the audio (10 in
        the reference code). With ``tr`` it sets ``t0 = 10 tr - start_time + tr / 2``.
    test_story : the story heard in every session (its repeats give the noise ceiling).
    word_tier : name(s) of the TextGrid word tier (case-insensitive); when none is found the
        second tier is used, as the reference code does (``grids[story].tiers[1]``), with a
        logged warning.
    key : the HDF5 dataset holding the responses.
    """

    name = "lebel"
    download_hint = ("Download the derivative folder of OpenNeuro ds003020 (respdict.json, TextGrids/, "
                     "preprocessed_data/<subject>/*.hf5; see docs/datasets/lebel.md) and set "
                     "BRAINALIGN_LEBEL_DIR to the folder holding derivative/.")

    @property
    def source(self):
        """Where the data are published (imported here: ``download`` imports the readers)."""
        from ..download import DatasetSource

        return DatasetSource(
            openneuro="ds003020",
            include=("derivative/respdict.json", "derivative/TextGrids/*",
                     *(f"derivative/preprocessed_data/*/{s}.hf5" for s in DEFAULT_STORIES)),
            url="https://openneuro.org/datasets/ds003020",
            size="about 6 GB for the default 6 stories x 8 subjects (all 84 stories: about 10 GB "
                 "per subject for UTS01-03)")

    #: voxels are in each subject's own space: the same target id in two subjects is not the same
    #: place, so no inter-subject noise ceiling is computed (data_prep ``noise_ceiling``)
    targets_shared_across_subjects = False

    def __init__(self, root, tr: float = 2.0, start_time: float = 10.0,
                 test_story: str = "wheretheressmoke", word_tier: str | list[str] = ("word", "words"),
                 key: str = "data"):
        super().__init__(root)
        root = Path(root)
        self.deriv = root if (root / "respdict.json").exists() and not (root / "derivative").exists() \
            else root / "derivative"
        self.tr = float(tr)
        self.start_time = float(start_time)
        # feature row k of the reference grid sits at k tr - start_time + tr / 2; stored row j is k = j + 10
        self.t0 = 10 * self.tr - self.start_time + self.tr / 2
        self.test_story = test_story
        self.word_tier = word_tier
        self.key = key
        self.data_dir = self.deriv / "preprocessed_data"
        self.textgrid_dir = self.deriv / "TextGrids"
        self._respdict = lru_cache(maxsize=1)(self._read_respdict)

    # ------------------------------------------------------------------ layout
    def check(self) -> None:
        self.require(self.root, "the study directory")
        self.require(self.deriv / "respdict.json", "respdict.json")
        self.require(self.data_dir, "the preprocessed_data folder")
        self.require(self.textgrid_dir, "the TextGrids folder")

    def _read_respdict(self) -> dict[str, int]:
        path = self.require(self.deriv / "respdict.json", "respdict.json")
        try:
            raw = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict) or not raw:
            raise ValueError(f"{path}: expected a JSON object story -> number of TRs")
        out = {}
        for story, n in raw.items():
            if not isinstance(n, (int, float)) or int(n) != n or int(n) <= TRIM_ROWS:
                raise ValueError(f"{path}: story {story!r} has {n!r} TRs; expected an integer above "
                                 f"{TRIM_ROWS} (the reference pipeline keeps respdict - {TRIM_ROWS} rows)")
            out[str(story)] = int(n)
        return out

    def respdict(self) -> dict[str, int]:
        """story -> number of TRs of the scan, as published in ``respdict.json``."""
        return dict(self._respdict())

    def subjects(self) -> list[str]:
        self.require(self.data_dir, "the preprocessed_data folder")
        return sorted(p.name for p in self.data_dir.iterdir() if p.is_dir())

    def _path(self, subject: str, story: str) -> Path:
        return self.data_dir / subject / f"{story}.hf5"

    def stories(self) -> list[str]:
        """Stories of ``respdict.json`` with an ``.hf5`` file for at least one subject (sorted).
        ``.hf5`` files of stories not in ``respdict.json`` are reported with a warning."""
        rd = self._respdict()
        present: set[str] = set()
        for subject in self.subjects():
            present |= {p.stem for p in (self.data_dir / subject).glob("*.hf5")}
        repeats = f"{self.test_story}_repeats"
        unknown = sorted(present - set(rd) - {repeats})
        if unknown:
            log.warning("%s: .hf5 files of %d stories not in respdict.json are ignored: %s", self.data_dir,
                        len(unknown), ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))
        return sorted(set(rd) & present)

    # ------------------------------------------------------------------ stimuli
    def tr_grids(self) -> pd.DataFrame:
        rd = self._respdict()
        rows = [{"story": s, "n_trs_total": rd[s] - TRIM_ROWS, "tr": self.tr, "t0": self.t0}
                for s in self.stories()]
        if not rows:
            raise MissingDataError(f"{self.name} study: no .hf5 file of a story in respdict.json under "
                                   f"{self.data_dir}/<subject>/. {self.download_hint}")
        return pd.DataFrame(rows)

    def textgrid_path(self, story: str) -> Path:
        return self.textgrid_dir / f"{story}.TextGrid"

    def audio_candidates(self, story: str) -> list[Path]:
        """Where the audio of ``story`` may be: ``stimuli/<story>.wav`` of the dataset root (the
        folder holding ``derivative/``), then of the reader's root."""
        return list(dict.fromkeys([self.deriv.parent / "stimuli" / f"{story}.wav",
                                   self.root / "stimuli" / f"{story}.wav"]))

    def audio(self, story: str):
        """``(waveform float32 (n_samples,), sample_rate)`` of ``stimuli/<story>.wav``, mono
        (channels averaged). Its clock is the TextGrid's (audio seconds). A missing file is a
        :class:`MissingDataError` naming the story and the paths looked at."""
        return self._read_audio(story, self.audio_candidates(story))

    def _words(self, story: str) -> pd.DataFrame:
        path = self.require(self.textgrid_path(story), f"the TextGrid of story {story!r} (listed in "
                                                        "respdict.json; leave the story out of study.stories "
                                                        "or add the file)")
        try:
            return words_from_textgrid(path, tier=self.word_tier, pause_labels=LEBEL_PAUSE_LABELS)
        except StimulusError as exc:
            if "no word tier" not in str(exc):
                raise
            tiers = list(read_textgrid(path))
            if len(tiers) < 2:
                raise
            if "phon" in tiers[1].lower():
                # never score phones as words: the fallback is only for a word tier named otherwise
                raise StimulusError(f"{path}: no tier named {self.word_tier} and the second tier {tiers[1]!r} "
                                    f"is a phone tier (tiers: {tiers}); name the word tier with the "
                                    "reader option word_tier") from exc
            log.warning("%s: no tier named %s; using the second tier %r as the word tier, as the "
                        "reference code does (tiers: %s)", path, self.word_tier, tiers[1], tiers)
            return words_from_textgrid(path, tier=tiers[1], pause_labels=LEBEL_PAUSE_LABELS)

    def _phones(self, story: str) -> pd.DataFrame:
        path = self.require(self.textgrid_path(story), f"the TextGrid of story {story!r}")
        try:
            ph = words_from_textgrid(path, tier=("phone", "phones"), pause_labels=LEBEL_PAUSE_LABELS)
        except StimulusError as exc:
            raise StimulusError(f"{path}: no phone tier for the low-level phoneme rate ({exc})") from exc
        return ph.rename(columns={"word": "phone"})

    def phones(self) -> LazyStories:
        """story -> DataFrame(phone, onset, offset), the phone tier of each story's TextGrid
        (pauses removed), read when accessed; the ``lowlevel`` kind's phoneme rate counts them."""
        return LazyStories(self.stories(), self._phones)

    def words(self) -> LazyStories:
        """story -> DataFrame(word, onset, offset, pause_before), one entry per story of
        :meth:`tr_grids`, read from the word tier of its TextGrid when accessed (so TextGrids of
        stories left out by ``study.stories`` are never needed). Times are audio seconds."""
        return LazyStories(self.stories(), self._words)

    # ------------------------------------------------------------------ responses
    def _inspect(self, path: Path) -> tuple[int, ...]:
        """Shape of the response matrix in ``path`` (checked: the key exists)."""
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if self.key not in f:
                    raise ValueError(f"{path}: no HDF5 dataset {self.key!r}; the file has keys "
                                     f"{sorted(f.keys())}. LeBel responses are stored under 'data' "
                                     "(reader option key)")
                return tuple(int(d) for d in f[self.key].shape)
        except OSError as exc:
            raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc

    def _read(self, path: Path) -> np.ndarray:
        import h5py

        with h5py.File(path, "r") as f:
            return np.asarray(f[self.key][()], dtype=np.float32)

    def responses(self, subject: str, stories: list[str] | None = None):
        """Lazy responses of ``subject``: story -> float32 (respdict[story] - 20, n_voxels).

        ``stories`` defaults to the stories the subject has. Every file is checked before anything
        is read: it exists (else :class:`MissingDataError`), has the ``data`` key, has
        ``respdict[story] - 20`` rows, and all have the same number of voxels.
        """
        rd = self._respdict()
        subject_dir = self.require(self.data_dir / subject, f"the folder of subject {subject}")
        if stories is None:
            stories = [s for s in self.stories() if self._path(subject, s).exists()]
        stories = list(stories)
        unknown = [s for s in stories if s not in rd]
        if unknown:
            raise MissingDataError(f"{self.name} study: stories {unknown} are not in "
                                   f"{self.deriv / 'respdict.json'}")
        missing = [s for s in stories if not self._path(subject, s).exists()]
        if missing:
            have = sorted(p.stem for p in subject_dir.glob("*.hf5") if p.stem in rd)
            raise MissingDataError(
                f"{self.name} study: subject {subject} has no responses for {len(missing)} of the "
                f"{len(stories)} selected stories: {self._path(subject, missing[0])} not found"
                + (f" (also {missing[1:6]}{' ...' if len(missing) > 6 else ''})" if len(missing) > 1 else "")
                + f". Restrict study.stories to stories every selected subject has (subject {subject} "
                f"has {len(have)}), or leave the subject out of study.subjects.")
        shapes = {}
        for s in stories:
            path = self._path(subject, s)
            shape = self._inspect(path)
            if len(shape) != 2:
                raise ValueError(f"{path}: responses of shape {shape}, expected (TRs, voxels)")
            expected = rd[s] - TRIM_ROWS
            if shape[0] != expected:
                hint = ("the file looks untrimmed (respdict counts every TR of the scan)" if shape[0] == rd[s]
                        else "the file and respdict.json come from different versions of the dataset, "
                             "or the file is truncated")
                raise ValueError(f"{path}: {shape[0]} rows, but respdict.json says {rd[s]} TRs for story "
                                 f"{s!r}, so the preprocessed file should have {rd[s]} - {TRIM_ROWS} = "
                                 f"{expected} rows (the derivative is trimmed by {TRIM_ROWS} TRs); {hint}")
            shapes[s] = shape
        counts = {s: shape[1] for s, shape in shapes.items()}
        if len(set(counts.values())) > 1:
            ref = max(set(counts.values()), key=list(counts.values()).count)
            odd = {str(self._path(subject, s)): n for s, n in counts.items() if n != ref}
            example = next(self._path(subject, s) for s, n in counts.items() if n == ref)
            raise ValueError(f"subject {subject}: the stories disagree on the number of voxels: most files "
                             f"(e.g. {example}) have {ref}, but {odd}; all of a subject's files must "
                             "share one voxel set")
        n_vox = next(iter(counts.values())) if counts else self._voxel_count(subject)
        targets = pd.DataFrame({"target": [f"v{k}" for k in range(n_vox)], "roi": "cortex",
                                "network": "cortex", "column": np.arange(n_vox)})
        sources = {s: str(self._path(subject, s)) for s in stories}
        return LazyStories(stories, lambda s: self._read(self._path(subject, s))), targets, sources

    def _voxel_count(self, subject: str) -> int:
        files = sorted(p for p in (self.data_dir / subject).glob("*.hf5") if p.stem in self._respdict())
        if not files:
            raise MissingDataError(f"{self.name} study: no story .hf5 file for subject {subject} in "
                                   f"{self.data_dir / subject}")
        shape = self._inspect(files[0])
        if len(shape) != 2:
            raise ValueError(f"{files[0]}: responses of shape {shape}, expected (TRs, voxels)")
        return shape[1]

    def averaged_stories(self) -> list[str]:
        """The test story: the derivative releases it as the mean over its repeats."""
        return [self.test_story]

    def repeats_path(self, subject: str) -> Path:
        return self.data_dir / subject / f"{self.test_story}_repeats.hf5"

    def repeats(self, subject: str) -> np.ndarray | None:
        """Single-presentation responses to the test story, float32 (n_repeats, respdict - 20,
        n_voxels), from ``<subject>/<test_story>_repeats.hf5`` (key ``data``); None when the
        subject has no such file (the published derivative has only the averaged story)."""
        path = self.repeats_path(subject)
        if not path.exists():
            return None
        shape = self._inspect(path)
        rd = self._respdict()
        if self.test_story not in rd:
            raise ValueError(f"{path}: the test story {self.test_story!r} is not in respdict.json, so "
                             "the number of rows cannot be checked")
        expected = rd[self.test_story] - TRIM_ROWS
        n_vox = self._voxel_count(subject)
        if len(shape) != 3 or shape[0] < 2 or shape[1] != expected or shape[2] != n_vox:
            raise ValueError(f"{path}: repeats of shape {shape}, expected (n_repeats >= 2, {expected}, "
                             f"{n_vox}): respdict[{self.test_story!r}] - {TRIM_ROWS} rows and the voxels "
                             f"of the subject's other files")
        return self._read(path)
