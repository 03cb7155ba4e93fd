"""Any BIDS dataset of story listening (or reading) with word timings.

Layout::

    sub-XX/[ses-YY/]func/sub-XX[_ses-YY]_task-<task>[_run-N]_bold.nii.gz   4D BOLD (TR in the header)
    sub-XX/[ses-YY/]func/sub-XX[_ses-YY]_task-<task>[_run-N]_bold.json     RepetitionTime (optional)
    sub-XX/[ses-YY/]func/sub-XX[_ses-YY]_task-<task>[_run-N]_events.tsv    word rows (optional)
    task-<task>_bold.json, task-<task>_events.tsv                          inherited (optional)
    stimuli/<story>_words.tsv | .csv                                       word table (optional)
    stimuli/<story>.wav (or one stimuli/*<story>*.wav)                     story audio (optional)

A story is a task (the ``task`` entity); with ``runs: separate`` (default) a task recorded in
several runs gives one story per run, ``<task>_run-<N>`` (e.g. the sections of a book). Words
come from ``stimuli/<story>_words.tsv``/``.csv`` when present, else from the runs' events.tsv
(rows with a word; non-word rows such as ``trial_type`` ``silence`` are left out and counted in
the log). Word times are seconds from the first volume (BIDS events), so ``t0 = 0`` unless the
option ``onsets`` says at what scan time the word clock starts. See docs/datasets/bids.md.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.timing.stimuli import StimulusError
from ...core.timing.word_timings import DEFAULT_NON_WORDS, read_event_table, words_from_events
from ._bids import (SUBJECT_SPACES, FuncRunsReader, Run, entity_stem, find_story_audio, run_sort_key,
                    sidecar_candidates, split_name)
from .base import MissingDataError, StudyReader

log = logging.getLogger(__name__)
WORD_TIME_ATOL = 5e-3


class BidsReader(FuncRunsReader, StudyReader):
    """Generic BIDS reader (volumes).

    Parameters (reader options, ``globals.study_options``)
    ----------
    bold_dir : folder holding the ``sub-*`` BOLD files, relative to the root (default: the root;
        e.g. ``derivatives/fmriprep``). Events and sidecars are looked for beside the BOLD files
        and in the raw ``sub-*`` folders of the root.
    space, desc : keep only BOLD files with these entities (default: any; several files for one
        run is an error asking to set them).
    session : keep only this session (``ses`` entity, without ``ses-``).
    words : ``auto`` (default: stimuli table when present, else events.tsv), ``events`` or
        ``stimuli``.
    word_column : the events.tsv column holding the words (default ``word``, else ``trial_type``);
        stimuli tables always use ``word`` (or ``text``, ``token``).
    non_words : labels of non-word rows (default: silence, music, noise, n/a, sp, sil, ...).
    runs : ``separate`` (default: each run its own story ``<task>_run-<N>``), ``mean`` (average
        the runs of a task: repeated presentations) or ``first``.
    mask : a NIfTI brain mask on the BOLD grid (default: voxels with non-zero variance in the
        subject's first story).
    onsets : story -> scan time (s) at which the word clock starts (default 0: word times are
        seconds from the first volume, as in BIDS events).
    tr : repetition time (s) used where neither the header nor a sidecar has one.
    """

    name = "bids"
    download_hint = ("Point BRAINALIGN_BIDS_DIR at a BIDS dataset with sub-*/func/*_bold.nii.gz and word "
                     "timings (events.tsv word rows or stimuli/<task>_words.tsv); see docs/datasets/bids.md.")

    def __init__(self, root, bold_dir: str | None = None, space: str | None = None, desc: str | None = None,
                 session: str | None = None, words: str = "auto", word_column: str | None = None,
                 non_words: list[str] | None = None, runs: str = "separate", mask: str | None = None,
                 onsets: dict | None = None, tr: float | None = None):
        super().__init__(root)
        if words not in ("auto", "events", "stimuli"):
            raise ValueError(f"bids: option words must be auto, events or stimuli, got {words!r}")
        if runs not in ("separate", "mean", "first"):
            raise ValueError(f"bids: option runs must be separate, mean or first, got {runs!r}")
        self.bold_dir = self.root / bold_dir if bold_dir else self.root
        self.space, self.desc = space, desc
        self.session = None if session is None else str(session).removeprefix("ses-")
        self.words_from, self.word_column = words, word_column
        self.non_words = DEFAULT_NON_WORDS if non_words is None else tuple(non_words)
        self.runs = runs
        self.mask_path, self.tr_fallback = mask, (None if tr is None else float(tr))
        self.onsets = {str(k): float(v) for k, v in (onsets or {}).items()}

    @property
    def targets_shared_across_subjects(self) -> bool:
        """True only when every run is in a template space (``space`` entity such as
        ``MNI152NLin2009cAsym``): raw BIDS BOLD is in each subject's own space, where the same
        voxel id is not the same place in two brains (no inter-subject noise ceiling then)."""
        runs = [r for by_subject in self._index()[0].values() for rs in by_subject.values() for r in rs]
        return bool(runs) and all(r.entities.get("space") not in (None, *SUBJECT_SPACES) for r in runs)

    # ------------------------------------------------------------------ index
    def check(self) -> None:
        self.require(self.root, "the study directory")
        self.require(self.bold_dir, "the folder of the BOLD files (option bold_dir)")
        if not self._index()[0]:
            raise MissingDataError(f"bids study: no sub-*/[ses-*/]func/*_bold.nii.gz under {self.bold_dir}"
                                   + (f" with space {self.space!r}" if self.space else "")
                                   + (f", desc {self.desc!r}" if self.desc else "")
                                   + (f", session {self.session!r}" if self.session else "")
                                   + f". {self.download_hint}")

    def _story_name(self, ents: dict) -> str:
        if self.runs == "separate" and "run" in ents:
            return f"{ents['task']}_run-{ents['run']}"
        return ents["task"]

    def _scan(self):
        self.require(self.bold_dir, "the folder of the BOLD files (option bold_dir)")
        files = sorted(self.bold_dir.glob("sub-*/func/*_bold.nii*")) + sorted(
            self.bold_dir.glob("sub-*/ses-*/func/*_bold.nii*"))
        groups: dict[tuple, list[tuple[dict, Path]]] = {}
        for f in files:
            ents, suffix, ext = split_name(f.name)
            if suffix != "bold" or ext not in (".nii.gz", ".nii") or "task" not in ents or "sub" not in ents:
                continue
            if self.space is not None and ents.get("space") != self.space:
                continue
            if self.desc is not None and ents.get("desc") != self.desc:
                continue
            if self.session is not None and ents.get("ses") != self.session:
                continue
            key = tuple((k, ents[k]) for k in ("sub", "ses", "task", "acq", "run") if k in ents)
            groups.setdefault(key, []).append((ents, f))
        index: dict[str, dict[str, list[Run]]] = {}
        for key, items in groups.items():
            if len(items) > 1:
                raise ValueError(f"bids study: several BOLD files for one run: {[str(f) for _e, f in items]}; "
                                 "choose one with the reader options space and/or desc")
            ents, f = items[0]
            subject, story = f"sub-{ents['sub']}", self._story_name(ents)
            index.setdefault(story, {}).setdefault(subject, []).append(Run(subject, story, ents, (f,)))
        for story, by_subject in index.items():
            for subject, runs in by_subject.items():
                runs.sort(key=lambda r: run_sort_key(r.entities))
                if self.runs == "separate" and len(runs) > 1:
                    raise ValueError(
                        f"bids study: subject {subject} has story {story} in several sessions "
                        f"({', '.join(str(r.files[0]) for r in runs)}); choose one with the reader option "
                        "session, or average repeated runs with runs: mean")
        return index, {}

    def stories(self) -> list[str]:
        return sorted(self._index()[0])

    def subjects(self) -> list[str]:
        self.require(self.root, "the study directory")
        return sorted({s for by_subject in self._index()[0].values() for s in by_subject})

    def _missing_message(self, subject: str, story: str) -> str:
        task, _, run = story.partition("_run-")
        name = f"{subject}_task-{task}" + (f"_run-{run}" if run else "") + "_bold.nii.gz"
        return (f"bids study: subject {subject} has no story {story}: {self.bold_dir / subject / 'func' / name} "
                f"not found; restrict study.stories to the stories every selected subject has, or "
                f"study.subjects to the subjects who have {story}")

    def _raw_func(self, ents: dict) -> Path:
        return self.root / f"sub-{ents['sub']}" / (f"ses-{ents['ses']}" if "ses" in ents else "") / "func"

    def _tr_candidates(self, run: Run) -> list[Path]:
        c = sidecar_candidates(self.root, self._raw_func(run.entities), run.entities, beside=run.files[0])
        return c + sidecar_candidates(self.root, run.files[0].parent, run.entities)

    def _mask_candidates(self, subject: str, story: str, run: Run) -> list[Path]:
        return []  # only the option mask (FuncRunsReader._volume_mask), else non-zero variance

    # ------------------------------------------------------------------ audio
    def audio(self, story: str):
        """``(waveform float32 (n_samples,), sample_rate)`` of ``stimuli/<story>.wav``, else of
        the one ``stimuli/*<story>*.wav`` (:func:`~brainalign.io.readers._bids.find_story_audio`),
        mono (channels averaged); sample 0 is time 0 of the word clock. Missing: a
        :class:`MissingDataError` naming the story and the paths looked at; several matches: a
        ValueError listing them."""
        from ...core.timing.audio import read_wav

        return read_wav(find_story_audio(self.root / "stimuli", story, self.name))

    # ------------------------------------------------------------------ words
    def _events_candidates(self, run: Run) -> list[Path]:
        ents = run.entities
        stem = entity_stem(ents)
        task_run = f"task-{ents['task']}" + (f"_run-{ents['run']}" if "run" in ents else "")
        out = [self._raw_func(ents) / f"{stem}_events.tsv", run.files[0].parent / f"{stem}_events.tsv",
               self.root / f"{task_run}_events.tsv", self.root / f"task-{ents['task']}_events.tsv"]
        return list(dict.fromkeys(out))

    def _stimuli_table(self, story: str) -> Path | None:
        for ext in (".tsv", ".csv"):
            p = self.root / "stimuli" / f"{story}_words{ext}"
            if p.is_file():
                return p
        return None

    def _words_of(self, path: Path, table: bool = False) -> tuple[pd.DataFrame, dict]:
        """Words of an events file (``word_column`` applies) or of a stimuli table (column
        ``word``, ``text`` or ``token``)."""
        return words_from_events(read_event_table(path), None if table else self.word_column, self.non_words,
                                 source=str(path))

    def words(self) -> dict[str, pd.DataFrame]:
        out = {}
        for story in self.stories():
            table = self._stimuli_table(story) if self.words_from in ("auto", "stimuli") else None
            if table is None and self.words_from == "stimuli":
                raise MissingDataError(f"bids study: no word table for story {story}: "
                                       f"{self.root / 'stimuli' / (story + '_words.tsv')} (or .csv) not found")
            if table is not None:
                words, dropped = self._words_of(table, table=True)
                sources = [table]
            else:
                words, dropped, sources = self._words_from_events(story)
            if dropped:
                log.warning("bids: story %s: %d non-word rows left out of %s (%s)", story, sum(dropped.values()),
                            sources[0], ", ".join(f"{k or '<empty>'}: {v}" for k, v in sorted(dropped.items())))
            out[story] = words
        return out

    def _words_from_events(self, story: str):
        runs = self._story_runs(story)
        paths = []
        for r in runs:
            p = next((c for c in self._events_candidates(r) if c.is_file()), None)
            if p is None:
                raise MissingDataError(
                    f"bids study: no word timings for story {story}: neither "
                    f"{self.root / 'stimuli' / (story + '_words.tsv')} nor an events file for {r.files[0]} "
                    f"({', '.join(str(c) for c in self._events_candidates(r)[:2])}) exists")
            if p not in paths:
                paths.append(p)
        words, dropped = self._words_of(paths[0])
        for p in paths[1:]:
            other, _ = self._words_of(p)
            same = len(other) == len(words) and (other["word"].to_numpy() == words["word"].to_numpy()).all()
            if same:
                d = np.abs(other[["onset", "offset"]].to_numpy() - words[["onset", "offset"]].to_numpy())
                same = bool((d <= WORD_TIME_ATOL).all())
            if not same:
                raise StimulusError(_first_difference(story, paths[0], words, p, other))
        return words, dropped, paths

    def _timing(self, story: str, tr: float, n_vols: int) -> tuple[int, int, float]:
        return 0, n_vols, 0.0 - self.onsets.get(story, 0.0)


def _first_difference(story, p0, w0, p1, w1) -> str:
    n = min(len(w0), len(w1))
    k = next((i for i in range(n) if w0["word"].iloc[i] != w1["word"].iloc[i]
              or abs(w0["onset"].iloc[i] - w1["onset"].iloc[i]) > WORD_TIME_ATOL
              or abs(w0["offset"].iloc[i] - w1["offset"].iloc[i]) > WORD_TIME_ATOL), n)
    what = (f"{len(w0)} vs {len(w1)} words" if k == n else
            f"word {k}: {w0['word'].iloc[k]!r} at {w0['onset'].iloc[k]:.3f}-{w0['offset'].iloc[k]:.3f} s vs "
            f"{w1['word'].iloc[k]!r} at {w1['onset'].iloc[k]:.3f}-{w1['offset'].iloc[k]:.3f} s")
    return (f"bids study: story {story}: the word timings of {p0} and {p1} differ ({what}); one story has "
            f"one word clock: put a common table in stimuli/{story}_words.tsv, or select the runs that "
            "agree (study.subjects)")
