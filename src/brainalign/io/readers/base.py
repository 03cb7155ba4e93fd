"""The reader interface shared by all dataset layouts."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


class MissingDataError(FileNotFoundError):
    """A file or directory of a study is missing; the message says where to put it."""


class StudyReader:
    """Base class: see :mod:`brainalign.io.readers` for the interface."""

    name = "base"
    #: what to tell a user whose directory is missing
    download_hint = ""
    #: where the data are published (:class:`brainalign.io.download.DatasetSource`), or None
    source = None

    def __init__(self, root: str | Path, **options):
        self.root = Path(root)
        self.options = options

    def require(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise MissingDataError(
                f"{self.name} study: {what} not found at {path}. {self.download_hint}".strip())
        return path

    def check(self) -> None:
        self.require(self.root, "the study directory")

    def subjects(self) -> list[str]:
        raise NotImplementedError

    def words(self) -> dict[str, pd.DataFrame]:
        raise NotImplementedError

    def tr_grids(self) -> pd.DataFrame:
        raise NotImplementedError

    def responses(self, subject: str, stories: list[str] | None = None):
        """``(story -> array (n_trs_total, n_targets), targets, story -> source file)`` for the
        given stories (default: all). The mapping may be lazy (read on access). A story the
        subject lacks is a :class:`MissingDataError` naming the file."""
        raise NotImplementedError

    def reference_image(self, subject: str | None = None):
        """The 3D grid (nibabel image) the voxel targets' ``i, j, k`` index, or None for data
        without voxels (ROI time courses, surfaces)."""
        return None

    def ground_truth(self) -> pd.DataFrame | None:
        return None

    #: False where target ids name each subject's own voxels (no inter-subject noise ceiling)
    targets_shared_across_subjects = True

    def dropped_targets(self, subject: str) -> list[tuple[str, str, str]]:
        """Targets the reader itself left out of the last :meth:`responses` of ``subject``, as
        ``(story, target, reason)`` rows (``story`` may be ``"*"``); data_prep adds them to the
        exclusion table. Default: none."""
        return list(getattr(self, "_dropped", {}).get(subject, []))

    def _record_dropped(self, subject: str) -> list[tuple[str, str, str]]:
        """A fresh list, returned by :meth:`dropped_targets` for ``subject``, that a reader's
        :meth:`responses` appends its ``(story, target, reason)`` rows to."""
        self.__dict__.setdefault("_dropped", {})[subject] = rows = []
        return rows

    def audio(self, story: str):
        """The story's audio as ``(waveform float32 (n_samples,), sample_rate)``, mono, sample 0
        at time 0 of the story's word clock (:func:`brainalign.core.timing.audio.read_wav`).
        Default: a :class:`MissingDataError` (the layout ships no audio)."""
        raise MissingDataError(f"the {self.name} layout ships no audio for story {story}")

    def _read_audio(self, story: str, candidates: list[Path]):
        """``read_wav`` of the first existing file of ``candidates``; a :class:`MissingDataError`
        naming the story and every path looked at when none exists."""
        from ...core.timing.audio import read_wav

        candidates = list(dict.fromkeys(Path(c) for c in candidates))
        for path in candidates:
            if path.is_file():
                return read_wav(path)
        raise MissingDataError(f"{self.name} study: no audio for story {story}: looked for "
                               f"{', '.join(str(c) for c in candidates)}")

    def averaged_stories(self) -> list[str]:
        """Stories whose released responses are the mean over repeated presentations (their noise
        level differs from a single presentation's; data_prep never tests them in the same folds as
        single presentations, and scores on them get the ceiling of the mean). None by default."""
        return []

    def repeats(self, subject: str):
        """Repeated presentations of one story, array (n_repeats, n_trs, n_targets) over the
        targets of :meth:`responses`, or None (the default: no repeats). data_prep's noise
        ceiling uses them (``repeats_mean`` / ``repeats_single``) where present."""
        return None
