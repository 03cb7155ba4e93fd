"""Brennan et al. 2016 "Alice in Wonderland" story-listening fMRI (ROI time courses).

Layout (as published): ``timecourses_6mm/sNN-timecourses.txt`` (362 TRs x 6 ROIs,
whitespace-separated: LATL RATL LPTL LIPL LPreM LIFG), ``stimulus/*.TextGrid`` (tier "word").
TR 2 s; the first 10 volumes were discarded, so row i is at audio time ``20 + 2 i`` s.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core.timing.stimuli import StimulusError, words_from_textgrid
from .base import MissingDataError, StudyReader

log = logging.getLogger(__name__)
ROIS = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]


class AliceReader(StudyReader):
    name = "alice"
    download_hint = ("Download the Alice dataset (Brennan et al. 2016, CC-BY) and set "
                     "BRAINALIGN_ALICE_DIR to the folder holding timecourses_6mm/ and stimulus/.")
    story = "alice"

    def __init__(self, root, tr: float = 2.0, t0: float = 20.0, timecourses: str = "timecourses_6mm",
                 textgrid: str | None = None, word_tier: str | list[str] = ("word", "words")):
        super().__init__(root)
        self.word_tier = word_tier
        self.tr, self.t0 = float(tr), float(t0)
        self.tc_dir = self.root / timecourses
        self.textgrid = textgrid

    def check(self) -> None:
        self.require(self.tc_dir, "the ROI time-course folder")
        self._textgrid_path()

    def _textgrid_path(self):
        stim = self.require(self.root / "stimulus", "the stimulus folder")
        if self.textgrid:
            return self.require(stim / self.textgrid, "the TextGrid")
        found = sorted(stim.glob("*.TextGrid"))
        if not found:
            raise StimulusError(f"{stim}: no .TextGrid file")
        return found[0]

    def _file(self, subject: str):
        return self.require(self.tc_dir / f"{subject}-timecourses.txt", f"time courses of {subject}")

    def subjects(self) -> list[str]:
        self.check()
        return sorted(p.name.split("-")[0] for p in self.tc_dir.glob("s*-timecourses.txt"))

    def words(self) -> dict[str, pd.DataFrame]:
        return {self.story: words_from_textgrid(self._textgrid_path(), tier=self.word_tier)}

    def _load(self, subject: str) -> np.ndarray:
        path = self._file(subject)
        try:
            data = np.loadtxt(path, dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path}: not a whitespace-separated numeric table ({exc})") from exc
        if data.shape[1] != len(ROIS):
            raise ValueError(f"{path}: {data.shape[1]} columns, expected {len(ROIS)} ({' '.join(ROIS)})")
        return data

    def tr_grids(self) -> pd.DataFrame:
        subjects = self.subjects()
        counts = {s: self._load(s).shape[0] for s in subjects}
        n = max(set(counts.values()), key=list(counts.values()).count)
        odd = {s: c for s, c in counts.items() if c != n}
        if odd:
            raise ValueError(f"{self.tc_dir}: subjects {odd} have a different number of TRs than "
                             f"the others ({n}); the files disagree on duration")
        return pd.DataFrame([{"story": self.story, "n_trs_total": n, "tr": self.tr, "t0": self.t0}])

    def responses(self, subject: str, stories: list[str] | None = None):
        unknown = sorted(set(stories or []) - {self.story})
        if unknown:
            raise MissingDataError(f"{self.name} study: no story {unknown} (the only story is {self.story!r})")
        data = self._load(subject).astype(np.float32)
        targets = pd.DataFrame({"target": ROIS, "roi": ROIS, "network": "language"})
        return {self.story: data}, targets, {self.story: str(self._file(subject))}

    #: the least correlation of a subject's copy of a predictor with the mean of all copies (the
    #: 28 copies of rate and sndpwr agree at r > 0.99999; they differ by rounding, about 0.1 %)
    PREDICTOR_MIN_R = 0.999

    #: the authors' linguistic predictors (one file, HRF-convolved, columns as README_data.txt
    #: names them; 372 rows: before the 10-volume discard, so rows 10.. are the kept TRs; its
    #: rate_conv correlates r = 0.98 with the per-subject rate file at that offset, < 0.1 at 0 or 5)
    GENERIC_FILE = "sept18-generic-predictors-under-hrf-with-logfrqhal.txt"
    GENERIC_COLUMNS = ("rate_conv", "frq_conv_orth", "break_conv_orth", "tdp_conv_orth", "tdx_conv_orth",
                       "bup_conv_orth", "bux_conv_orth", "cfgsurp_conv_orth", "bigramlex_conv_orth",
                       "trigramlex_conv_orth", "bigrampos_conv_orth", "trigrampos_conv_orth")
    GENERIC_DISCARD = 10

    def predictors(self, story: str, names: list[str]) -> pd.DataFrame:
        """The authors' per-subject predictor files ``predictors/sNN-<name>.txt`` (``rate``: word
        rate, ``sndpwr``: sound power; already HRF-convolved, one row per kept TR), averaged over the
        subjects' copies, which agree to rounding; a copy correlating below
        :data:`PREDICTOR_MIN_R` with the median of the copies is left out with a warning naming it
        (s33's sound power: r = 0.45), and an error when half of them disagree. Names among
        :data:`GENERIC_COLUMNS` (word frequency, top-down / bottom-up parser node counts, CFG
        surprisal, n-gram surprisals; ``_orth``: orthogonalised by the authors) come from the one
        :data:`GENERIC_FILE`, its first 10 rows (discarded volumes) dropped.

        Returns
        -------
        DataFrame (n_trs, len(names)), columns ``names``.
        """
        if story != self.story:
            raise MissingDataError(f"{self.name} study: no story {story!r} (the only story is {self.story!r})")
        folder = self.require(self.root / "predictors", "the predictors folder")
        cols = {}
        generic = [n for n in names if n in self.GENERIC_COLUMNS]
        if generic:
            path = self.require(folder / self.GENERIC_FILE, "the authors' linguistic predictors")
            table = np.loadtxt(path, dtype=np.float64, ndmin=2)
            if table.shape[1] != len(self.GENERIC_COLUMNS):
                raise ValueError(f"{path}: {table.shape[1]} columns, README_data.txt names {len(self.GENERIC_COLUMNS)}")
            for n in generic:
                cols[n] = table[self.GENERIC_DISCARD:, self.GENERIC_COLUMNS.index(n)]
        for name in (n for n in names if n not in self.GENERIC_COLUMNS):
            files = sorted(folder.glob(f"s*-{name}.txt"))
            if not files:
                raise MissingDataError(f"{self.name} study: no predictor files {folder}/sNN-{name}.txt")
            arrays = []
            for f in files:
                try:
                    arrays.append(np.loadtxt(f, dtype=np.float64, ndmin=1))
                except ValueError as exc:
                    raise ValueError(f"{f}: not a numeric column ({exc})") from exc
            lengths = {f.name: len(a) for f, a in zip(files, arrays)}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"{self.name} predictors {name!r}: files differ in length {lengths}")
            stack = np.vstack(arrays)
            median = np.median(stack, axis=0)
            agree = np.array([np.corrcoef(a, median)[0, 1] if a.std() > 0 and median.std() > 0 else 0.0
                              for a in stack])
            ok = agree >= self.PREDICTOR_MIN_R
            if ok.sum() * 2 <= len(files):
                raise ValueError(f"{self.name} predictors {name!r}: the subjects' copies in {folder} disagree "
                                 f"(correlation with their median: {np.round(agree, 3).tolist()})")
            if not ok.all():
                log.warning("%s predictors %r: %s differ from the other subjects' copies and are left out of "
                            "the mean", self.name, name,
                            [f"{f.name} (r = {r:.3f})" for f, r, k in zip(files, agree, ok) if not k])
            cols[name] = stack[ok].mean(0)
        lengths = {n: len(v) for n, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{self.name} predictors differ in length {lengths}")
        return pd.DataFrame({n: cols[n] for n in names})
