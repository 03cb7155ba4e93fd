"""The Narratives collection (Nastase et al. 2021, Scientific Data 8:250; OpenNeuro ds002345).

Layout, as published (BIDS; ``<task>`` is a story, e.g. ``pieman``)::

    code/scan_exclude.json                  task -> subject -> [file-name prefixes to leave out]
    code/event_meta.json                    task -> subtask -> {onset, duration} in TRs (optional)
    code/task_meta.json                     task -> subject -> {bold, condition, ...} (optional)
    stimuli/gentle/<task>/align.json        Gentle forced alignment (seconds of the story audio)
    stimuli/<task>_audio.wav                the story audio (or stimuli/<task>.wav; :meth:`audio`)
    sub-XXX/func/sub-XXX_task-<task>[_run-N]_events.tsv       onset/duration/trial_type (s)
    sub-XXX/func/sub-XXX_task-<task>[_run-N]_bold.json        RepetitionTime (surfaces)
    derivatives/afni-nosmooth/sub-XXX/func/
        sub-XXX_task-<task>[_run-N]_space-MNI152NLin2009cAsym_res-native_desc-clean_bold.nii.gz
        sub-XXX_task-<task>[_run-N]_space-fsaverage6_hemi-{L,R}_desc-clean.func.gii
    derivatives/afni-nosmooth/tpl-MNI152NLin2009cAsym/tpl-..._res-<task>_desc-brain_mask.nii.gz
    derivatives/afni-nosmooth/tpl-fsaverage6/tpl-fsaverage6_hemi-{L,R}_desc-cortex_mask.gii

Clocks: word times are seconds of the story audio (Gentle); the story starts at ``onset``
seconds after the first volume (the ``story`` row of the run's events.tsv; else
``code/event_meta.json`` onset x TR; the option ``onsets`` overrides both). With ``crop`` (default)
the volumes before the story onset and after its end (+ ``crop_tail`` s for the hemodynamic lag)
are dropped, so volume i of the grid sits at ``t0 + i TR`` with
``t0 = floor(onset / TR) TR - onset``. See docs/datasets/narratives.md for every choice.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from ...core.timing.word_timings import UNALIGNED_POLICIES, read_event_table, words_from_gentle
from ._bids import (SUBJECT_SPACES, FuncRunsReader, Run, entity_stem, run_sort_key, sidecar_candidates,
                    split_name)
from .base import MissingDataError, StudyReader

log = logging.getLogger(__name__)

VOLUME_SPACES_HINT = "MNI152NLin2009cAsym"
SURFACE_PREFIXES = ("fsaverage", "fsnative", "fsLR")
ONSET_ATOL = 1e-3


def is_surface_space(space: str) -> bool:
    return str(space).startswith(SURFACE_PREFIXES)


class NarrativesReader(FuncRunsReader, StudyReader):
    """Reader of the Narratives BIDS dataset (volumes in MNI space or fsaverage surfaces).

    Parameters (reader options, ``globals.study_options``)
    ----------
    space : ``MNI152NLin2009cAsym`` (volumes, default) or ``fsaverage6`` (surfaces; any
        ``fsaverage*``/``fsnative`` space is read as a surface).
    derivative : folder under ``derivatives/`` (default ``afni-nosmooth``).
    desc : the ``desc`` entity of the data files (default ``clean``).
    res : the ``res`` entity of volume files when several exist (default: any, must be unique).
    tasks : stories to offer (default: every task with data in ``space`` and an align.json).
    onsets : task -> stimulus onset (s after the first volume), overriding events.tsv and
        code/event_meta.json.
    gentle : task -> folder under ``stimuli/gentle`` when it is not the task name
        (e.g. ``{milkyway: milkywayoriginal}``).
    unaligned : ``interpolate`` (default) or ``drop`` words Gentle could not align.
    punctuation : attach the transcript's punctuation to the words (default true).
    runs : ``mean`` (default) or ``first``: several runs of one story for one subject.
    scan_exclude : leave out the runs listed in ``code/scan_exclude.json`` (default true).
    exclude : further file-name prefixes to leave out (``sub-001_task-pieman_run-2``).
    crop : keep only the volumes from the story onset to its end + ``crop_tail`` (default true).
    crop_tail : seconds kept after the story ends (default 8).
    mask : a NIfTI brain mask on the BOLD grid (path, relative to the root or absolute).
    tr : repetition time (s) used where no header or sidecar has one.
    """

    name = "narratives"
    download_hint = ("Download the Narratives dataset (OpenNeuro ds002345; see docs/datasets/narratives.md) "
                     "and set BRAINALIGN_NARRATIVES_DIR to its root (the folder holding code/, stimuli/ "
                     "and derivatives/), or set download: true in conf/narratives/globals.yml.")

    def __init__(self, root, space: str = VOLUME_SPACES_HINT, derivative: str = "afni-nosmooth",
                 desc: str = "clean", res: str | None = None, tasks: list[str] | None = None,
                 onsets: dict | None = None, gentle: dict | None = None, unaligned: str = "interpolate",
                 punctuation: bool = True, runs: str = "mean", scan_exclude: bool = True,
                 exclude: list[str] | None = None, crop: bool = True, crop_tail: float = 8.0,
                 mask: str | None = None, tr: float | None = None):
        super().__init__(root)
        self.space, self.derivative, self.desc, self.res = str(space), str(derivative), str(desc), res
        self.kind = "surface" if is_surface_space(self.space) else "volume"
        if tasks is not None and isinstance(tasks, str):
            tasks = [tasks]
        self.tasks_option = None if tasks in (None, "all") else [str(t) for t in tasks]
        self.onsets = {str(k): float(v) for k, v in (onsets or {}).items()}
        self.gentle = {str(k): str(v) for k, v in (gentle or {}).items()}
        if unaligned not in UNALIGNED_POLICIES:
            raise ValueError(f"narratives: option unaligned must be one of {UNALIGNED_POLICIES}, got {unaligned!r}")
        if runs not in ("mean", "first"):
            raise ValueError(f"narratives: option runs must be 'mean' or 'first', got {runs!r}")
        self.unaligned, self.punctuation, self.runs = unaligned, bool(punctuation), runs
        self.scan_exclude, self.exclude = bool(scan_exclude), [str(e) for e in (exclude or [])]
        self.crop, self.crop_tail = bool(crop), float(crop_tail)
        self.mask_path, self.tr_fallback = mask, (None if tr is None else float(tr))

    @property
    def targets_shared_across_subjects(self) -> bool:
        """Template spaces (MNI, fsaverage) share target ids across subjects; ``fsnative``/``T1w``
        do not."""
        return self.space not in SUBJECT_SPACES

    # ------------------------------------------------------------------ paths
    @property
    def source(self):
        from ..download import DatasetSource

        data = (f"derivatives/{self.derivative}/sub-*/func/*_space-{self.space}_*desc-{self.desc}*"
                + ("_bold.nii.gz" if self.kind == "volume" else ".func.gii"))
        return DatasetSource(
            openneuro="ds002345", datalad="https://github.com/OpenNeuroDatasets/ds002345.git",
            include=("code/*.json", "stimuli/gentle/*/align.json", "sub-*/func/*_events.tsv",
                     "sub-*/func/*_bold.json", "task-*_bold.json", data,
                     f"derivatives/{self.derivative}/tpl-{self.space}/*"),
            url="https://openneuro.org/datasets/ds002345",
            size="hundreds of GB for every story; one story's preprocessed volumes are a few GB")

    @property
    def deriv_dir(self) -> Path:
        return self.root / "derivatives" / self.derivative

    def gentle_path(self, task: str) -> Path:
        return self.root / "stimuli" / "gentle" / self.gentle.get(task, task) / "align.json"

    def audio_candidates(self, task: str) -> list[Path]:
        """Where the audio of a story may be: ``stimuli/<task>_audio.wav`` (the published name),
        the same for the Gentle folder the option ``gentle`` maps the task to, then
        ``stimuli/<task>.wav``."""
        stim = self.root / "stimuli"
        names = [f"{task}_audio.wav", f"{self.gentle.get(task, task)}_audio.wav", f"{task}.wav"]
        return [stim / n for n in dict.fromkeys(names)]

    def audio(self, story: str):
        """``(waveform float32 (n_samples,), sample_rate)`` of the story (a task), mono
        (channels averaged); its clock is the Gentle alignment's (audio seconds). A missing file
        is a :class:`MissingDataError` naming the story and the paths looked at."""
        return self._read_audio(story, self.audio_candidates(story))

    def check(self) -> None:
        self.require(self.root, "the study directory")
        self.require(self.deriv_dir, f"the derivatives folder {self.derivative!r} (option derivative)")
        self.require(self.root / "stimuli" / "gentle", "the Gentle alignments folder stimuli/gentle")
        if not self._index()[0]:
            raise MissingDataError(f"narratives study: no {self.kind} data in space {self.space!r} with "
                                   f"desc {self.desc!r} under {self.deriv_dir}. {self.download_hint}")

    def _json(self, name: str) -> dict | None:
        path = self.root / "code" / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc

    # ------------------------------------------------------------------ index
    def _exclusions(self) -> list[tuple[dict, str]]:
        out = []
        if self.scan_exclude:
            doc = self._json("scan_exclude.json") or {}
            for task, by_subject in doc.items():
                for _subject, prefixes in (by_subject or {}).items():
                    out += [(split_name(p)[0], f"{p} (code/scan_exclude.json)") for p in prefixes]
        out += [(split_name(p)[0], f"{p} (option exclude)") for p in self.exclude]
        return out

    def _scan(self):
        self.require(self.deriv_dir, f"the derivatives folder {self.derivative!r} (option derivative)")
        groups: dict[tuple, dict] = {}
        for f in sorted(self.deriv_dir.glob("sub-*/func/*")) + sorted(self.deriv_dir.glob("sub-*/ses-*/func/*")):
            ents, suffix, ext = split_name(f.name)
            if ents.get("space") != self.space or ents.get("desc") != self.desc or "task" not in ents:
                continue
            if self.kind == "volume":
                if suffix != "bold" or ext not in (".nii.gz", ".nii"):
                    continue
                if self.res is not None and ents.get("res") != str(self.res):
                    continue
            elif ext != ".func.gii" or ents.get("hemi") not in ("L", "R"):
                continue
            key = tuple((k, ents[k]) for k in ("sub", "ses", "task", "acq", "run") if k in ents)
            g = groups.setdefault(key, {"ents": dict(key), "files": {}})
            slot = ents.get("hemi", "vol")
            if slot in g["files"]:
                raise ValueError(f"narratives study: two data files for one run: {g['files'][slot]} and {f}; "
                                 "choose one with the reader option res (or desc)")
            g["files"][slot] = f
        rules = self._exclusions()
        index: dict[str, dict[str, list[Run]]] = {}
        excluded: dict[tuple[str, str], list[str]] = {}
        n_excluded = 0
        for key, g in groups.items():
            ents = g["ents"]
            subject, task = f"sub-{ents['sub']}", ents["task"]
            first = next(iter(g["files"].values()))
            why = [w for rule, w in rules if rule and all(ents.get(k) == v for k, v in rule.items())]
            if why:
                excluded.setdefault((subject, task), []).append(f"{first.name} by {why[0]}")
                n_excluded += 1
                continue
            if self.kind == "surface":
                missing = [h for h in ("L", "R") if h not in g["files"]]
                if missing:
                    other = "R" if missing[0] == "L" else "L"
                    raise MissingDataError(
                        f"narratives study: {first} has no hemisphere-{missing[0]} partner "
                        f"({first.name.replace('hemi-' + other, 'hemi-' + missing[0])} is missing); surface "
                        f"runs need both hemispheres: download it, or leave the run out with the reader "
                        f"option exclude: [{entity_stem(ents)}]")
                files = (g["files"]["L"], g["files"]["R"])
            else:
                files = (g["files"]["vol"],)
            index.setdefault(task, {}).setdefault(subject, []).append(Run(subject, task, ents, files))
        for by_subject in index.values():
            for runs in by_subject.values():
                runs.sort(key=lambda r: run_sort_key(r.entities))
        if n_excluded:
            log.warning("narratives: %d runs left out by the exclusion lists: %s", n_excluded,
                        "; ".join(w for ws in excluded.values() for w in ws)[:2000])
        return index, excluded

    # ------------------------------------------------------------------ stories and subjects
    def stories(self) -> list[str]:
        if getattr(self, "_stories_cache", None) is not None:
            return self._stories_cache
        index, excluded = self._index()
        have = set(index) | {t for _s, t in excluded}
        if self.tasks_option is not None:
            for t in self.tasks_option:
                if t not in have:
                    raise MissingDataError(
                        f"narratives study: task {t} (option tasks) has no {self.kind} data in space "
                        f"{self.space!r} under {self.deriv_dir} (expected e.g. "
                        f"{self._expected_name('sub-XXX', t)}); tasks there: {sorted(have)}")
                if t not in index:
                    raise MissingDataError(f"narratives study: every run of task {t} is excluded "
                                           "(code/scan_exclude.json / option exclude)")
                self.require(self.gentle_path(t), f"the Gentle alignment of task {t} (option gentle maps a "
                                                  "task to another folder of stimuli/gentle)")
            out = list(self.tasks_option)
        else:
            out, no_align = [], []
            for t in sorted(index):
                (out if self.gentle_path(t).is_file() else no_align).append(t)
            if no_align:
                log.warning("narratives: tasks %s have BOLD data but no stimuli/gentle/<task>/align.json; "
                            "they are left out (map them with the option gentle, or list tasks)", no_align)
            if not out:
                raise MissingDataError(f"narratives study: no task under {self.deriv_dir} has a Gentle "
                                       f"alignment in {self.root / 'stimuli' / 'gentle'}. {self.download_hint}")
        self._warn_conditions(out)
        self._stories_cache = out
        return out

    def _warn_conditions(self, tasks: list[str]) -> None:
        meta = self._json("task_meta.json")
        if not meta:
            return
        for t in tasks:
            conds = sorted({str(v.get("condition")) for v in (meta.get(t) or {}).values()
                            if isinstance(v, dict) and str(v.get("condition")) not in ("n/a", "None")})
            if len(conds) > 1:
                log.warning("narratives: subjects of task %s heard it in different conditions %s "
                            "(code/task_meta.json); the words come from %s; if the conditions differ in "
                            "their audio (milkyway), list the subjects of one condition in study.subjects",
                            t, conds, self.gentle_path(t))

    def subjects(self) -> list[str]:
        """Subjects with at least one usable run of one of the stories."""
        self.require(self.root, "the study directory")
        index, _ = self._index()
        stories = self.stories()
        return sorted({s for t in stories for s in index.get(t, {})})

    def _expected_name(self, subject: str, task: str) -> str:
        if self.kind == "volume":
            return (f"{subject}_task-{task}[_run-N]_space-{self.space}_res-native_desc-{self.desc}_bold.nii.gz")
        return f"{subject}_task-{task}[_run-N]_space-{self.space}_hemi-L_desc-{self.desc}.func.gii"

    def _missing_message(self, subject: str, story: str) -> str:
        path = self.deriv_dir / subject / "func" / self._expected_name(subject, story)
        return (f"narratives study: subject {subject} has no story {story}: {path} not found. In "
                f"Narratives each story was heard by a subset of the subjects; restrict study.stories "
                f"to the stories {subject} heard or study.subjects to the subjects who heard {story} "
                f"(or set the reader option tasks).")

    # ------------------------------------------------------------------ words and timing
    def words(self) -> dict[str, pd.DataFrame]:
        out = {}
        for task in self.stories():
            words, info = words_from_gentle(self.gentle_path(task), self.unaligned, self.punctuation)
            if info["n_unaligned"]:
                log.warning("narratives: %s: %d of %d words not aligned by Gentle (%s); %s",
                            self.gentle_path(task), info["n_unaligned"], info["n_words"],
                            ", ".join(f"{k}: {v}" for k, v in info["cases"].items()),
                            "their times were interpolated between the aligned neighbours"
                            if self.unaligned == "interpolate" else "they were left out (unaligned: drop)")
            out[task] = words
        return out

    def _events_path(self, run: Run) -> list[Path]:
        ents = run.entities
        sub_dir = self.root / f"sub-{ents['sub']}" / (f"ses-{ents['ses']}" if "ses" in ents else "") / "func"
        return [sub_dir / f"{entity_stem(ents)}_events.tsv", self.root / f"task-{ents['task']}_events.tsv"]

    def _tr_candidates(self, run: Run) -> list[Path]:
        ents = run.entities
        raw = self.root / f"sub-{ents['sub']}" / (f"ses-{ents['ses']}" if "ses" in ents else "") / "func"
        return sidecar_candidates(self.root, raw, ents, beside=run.files[0])

    def _mask_candidates(self, subject: str, story: str, run: Run) -> list[Path]:
        ents = {k: v for k, v in run.entities.items()}
        func = run.files[0].parent
        stem = entity_stem(ents)
        res = split_name(run.files[0].name)[0].get("res")
        res_part = f"_res-{res}" if res else ""
        tpl = self.deriv_dir / f"tpl-{self.space}"
        return [func / f"{stem}_space-{self.space}{res_part}_desc-brain_mask.nii.gz",
                func / f"{entity_stem({k: v for k, v in ents.items() if k != 'run'})}_space-{self.space}"
                       f"{res_part}_desc-brain_mask.nii.gz",
                tpl / f"tpl-{self.space}_res-{story}_desc-brain_mask.nii.gz",
                tpl / f"tpl-{self.space}_desc-brain_mask.nii.gz"]

    def _surface_mask_candidates(self, hemi: str) -> list[Path]:
        tpl = self.deriv_dir / f"tpl-{self.space}"
        return [tpl / f"tpl-{self.space}_hemi-{hemi}_desc-cortex_mask.gii"]

    def story_onset(self, task: str, tr: float) -> tuple[float, float | None, str]:
        """(onset s, duration s or None, where it came from) of a story within its runs."""
        found: dict[str, tuple[float, float]] = {}
        multi = None
        for run in self._story_runs(task):
            path = next((p for p in self._events_path(run) if p.is_file()), None)
            if path is None or str(path) in found:
                continue
            ev = read_event_table(path)
            if "trial_type" not in ev.columns or "onset" not in ev.columns:
                continue
            story = ev[ev["trial_type"].astype(str).str.lower() == "story"]
            if len(story) > 1:
                multi = path
                continue
            if len(story) == 1:
                dur = float(story["duration"].iloc[0]) if "duration" in ev.columns else math.nan
                found[str(path)] = (float(story["onset"].iloc[0]), dur)
        duration = None
        if found:
            (p0, (on0, d0)), *rest = found.items()
            for p, (on, _d) in rest:
                if abs(on - on0) > ONSET_ATOL and task not in self.onsets:
                    raise ValueError(f"narratives: task {task}: the story starts at {on0:g} s in {p0} but at "
                                     f"{on:g} s in {p}; one word clock cannot fit both. Set the onset with "
                                     f"study_options.onsets: {{{task}: <seconds>}} and leave out the other runs")
            duration = d0 if math.isfinite(d0) else None
            onset, where = on0, f"the 'story' row of {p0}" + (f" (and {len(rest)} more events files)" if rest else "")
        else:
            meta = (self._json("event_meta.json") or {}).get(task)
            onset = None
            if isinstance(meta, dict) and meta:
                sub = meta.get(task) if task in meta else (next(iter(meta.values())) if len(meta) == 1 else None)
                if sub is None and task not in self.onsets:
                    raise ValueError(f"narratives: task {task} has several parts in code/event_meta.json "
                                     f"({sorted(meta)}); the reader handles one story per task: set "
                                     f"study_options.onsets: {{{task}: <seconds>}}")
                if sub is not None:
                    onset, duration = float(sub["onset"]) * tr, float(sub["duration"]) * tr
                    where = f"code/event_meta.json ({sub['onset']} TRs of {tr:g} s)"
            if onset is None and task not in self.onsets:
                if multi is not None:
                    raise ValueError(f"narratives: {multi} has several 'story' rows (task {task}); the "
                                     f"reader handles one story per task: set study_options.onsets: "
                                     f"{{{task}: <seconds>}} (the time of stimuli/gentle word 0 s)")
                raise MissingDataError(
                    f"narratives: no stimulus onset for task {task}: no events.tsv with a 'story' row "
                    f"(e.g. {self._events_path(self._story_runs(task)[0])[0]}) and no entry in "
                    f"{self.root / 'code' / 'event_meta.json'}; set study_options.onsets: {{{task}: <seconds>}}")
        if task in self.onsets:
            onset, where = self.onsets[task], "the reader option onsets"
        return float(onset), duration, where

    def _timing(self, story: str, tr: float, n_vols: int) -> tuple[int, int, float]:
        onset, duration, where = self.story_onset(story, tr)
        if not self.crop:
            log.info("narratives: task %s: story onset %.3f s (%s); all %d volumes kept", story, onset,
                     where, n_vols)
            return 0, n_vols, -onset
        k0 = max(0, int(math.floor(onset / tr + 1e-6)))
        k1 = n_vols
        if duration is not None:
            k1 = min(n_vols, int(math.ceil((onset + duration + self.crop_tail) / tr - 1e-6)))
        if k1 <= k0:
            raise ValueError(f"narratives: task {story}: the story onset {onset:g} s ({where}) is after the "
                             f"end of the runs ({n_vols} volumes of {tr:g} s)")
        log.info("narratives: task %s: story onset %.3f s (%s)%s; volumes %d..%d of %d kept", story, onset, where,
                 "" if duration is None else f", duration {duration:g} s (+{self.crop_tail:g} s)", k0, k1 - 1,
                 n_vols)
        return k0, k1, k0 * tr - onset
