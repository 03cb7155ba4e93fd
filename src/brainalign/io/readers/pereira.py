"""Pereira et al. 2018 (Nature Communications 9:963), sentence-reading fMRI, experiments 2 and 3.

Published on OSF (https://osf.io/crwz7/) as one folder per subject (``P01``, ``M02``, ...)::

    <subject>/data_384sentences.mat     experiment 2: 384 sentences (96 passages x 4, 24 topics)
    <subject>/data_243sentences.mat     experiment 3: 243 sentences (72 passages of 3-4, 24 topics)
    <subject>/data_180concepts_*.mat    experiment 1 (concepts, not sentences: not read)

Each sentence file (MATLAB v5, read with ``scipy.io.loadmat(struct_as_record=False,
squeeze_me=True)``) holds

* ``examples_passagesentences`` (``examples`` in some copies; reader option ``examples_key``):
  (n_sentences, n_voxels), one response pattern per sentence - already the output of the
  authors' GLM, so there is no HRF, delay or drift left to model;
* ``keySentences``: cell array of the sentence strings, in the row order of the examples;
* ``labelsPassageForEachSentence`` (passage of each sentence, 1-based),
  ``labelsPassageCategory`` (topic of each passage) and ``keyPassageCategory`` (topic names):
  optional, reported by :meth:`PereiraReader.sentence_table`;
* ``meta``: a struct. Fields used when present: ``colToCoord`` (n_voxels, 3; MATLAB 1-based
  voxel coordinates of each column), ``atlases`` (cell of atlas names, e.g. ``languageLH``,
  ``MD``, ``DMN``, ``visual``, ``aal_1ofN``, ``gordon``) with ``roiMultimask`` (cell, one
  (n_voxels,) label vector per atlas, 0 or NaN = no ROI) and ``rois`` (cell, the ROI names of each
  atlas); ``roiColumns`` (cell per atlas of cells of 1-based column lists) stands in for a
  missing ``roiMultimask``; fields ``roiMultimask<Name>`` with ``rois<Name>`` (e.g.
  ``roiMultimaskGordon``/``roisGordon``) are read as an atlas called ``<Name>``.

Mapping to the study contract (see docs/datasets/pereira.md):

* one story per experiment (``exp2``, ``exp3``); its "TRs" are the sentences in file order, with
  ``tr = 1.0`` and ``t0 = 0`` (nominal: the scanner TR plays no role);
* sentence ``k`` is ``sentence_id = k``; its whitespace-separated words are spread evenly over
  ``[k + 0.1, k + 0.9]`` s, so sentence ``k`` falls in "TR" ``k`` with box downsampling whatever
  the sentence-event time (offset, midpoint or onset);
* targets are the voxels: ``v<c>`` for column ``c`` (0-based) of the subject's examples, with
  ``i, j, k`` = ``colToCoord - 1`` (0-based), ``roi`` and ``network`` from the atlases named in
  the ``networks`` option (the decoding study's four networks by default). Voxels are in each
  subject's own space: ids are not comparable across subjects.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.brain.preprocess import LazyStories
from .base import MissingDataError, StudyReader

log = logging.getLogger(__name__)

#: story -> file name, for the sentence experiments
EXPERIMENTS = {"exp2": "data_384sentences.mat", "exp3": "data_243sentences.mat"}
#: network -> atlas names in ``meta.atlases`` (case-insensitive), first match wins for a voxel
DEFAULT_NETWORKS = {
    "language": ["languageLH", "languageRH", "language"],
    "multiple_demand": ["MD", "multipleDemand", "multiple_demand"],
    "default_mode": ["DMN", "default_mode"],
    "visual": ["visual"],
}
EXAMPLE_KEYS = ("examples_passagesentences", "examples")
NONE = "none"
#: words of sentence k lie in [k + WORD_SPAN[0], k + WORD_SPAN[1]] s
WORD_SPAN = (0.1, 0.9)


def _strings(x) -> list[str]:
    """A MATLAB cell array of strings (as loaded with squeeze_me) as a flat list of str."""
    if isinstance(x, str):
        return [x]
    arr = np.asarray(x, dtype=object).ravel()
    out = []
    for item in arr:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, np.ndarray):
            out.extend(_strings(item) if item.size != 1 else [str(item.ravel()[0])])
        else:
            out.append(str(item))
    return out


def _cells(x) -> list:
    """A MATLAB cell array as a flat list of its elements (one element stays a one-item list)."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return list(x.ravel())
    return [x]


def _field(struct, name: str):
    return getattr(struct, name, None) if struct is not None and name in getattr(struct, "_fieldnames", []) else None


class PereiraReader(StudyReader):
    """Reader of the Pereira et al. 2018 sentence experiments (see the module docstring).

    Parameters (reader options, ``globals.study_options``)
    ----------
    experiments : story -> file name in each subject folder (default ``EXPERIMENTS``).
    examples_key : the variable holding the (sentences, voxels) matrix (default: the first of
        ``examples_passagesentences``, ``examples`` present in the file).
    networks : network -> atlas names of ``meta.atlases`` (default ``DEFAULT_NETWORKS``).
    voxels : ``all`` (default: every voxel, those in no network get roi/network ``none``) or
        ``networks`` (only voxels of the networks; the others are left out with a log line).
    """

    name = "pereira"
    download_hint = ("Download the subject folders of Pereira et al. 2018 from OSF (https://osf.io/crwz7/; "
                     "see docs/datasets/pereira.md) and set BRAINALIGN_PEREIRA_DIR to the folder holding "
                     "them (P01/, M02/, ...).")
    #: voxels are in each subject's own space (no inter-subject noise ceiling)
    targets_shared_across_subjects = False

    @property
    def source(self):
        from ..download import DatasetSource

        return DatasetSource(url="https://osf.io/crwz7/",
                             size="one data_384sentences.mat / data_243sentences.mat per subject and "
                                  "experiment (hundreds of MB each); OSF, by hand")

    def __init__(self, root, experiments: dict[str, str] | None = None, examples_key: str | None = None,
                 networks: dict[str, list[str]] | None = None, voxels: str = "all"):
        super().__init__(root)
        self.experiments = dict(experiments or EXPERIMENTS)
        self.examples_key = examples_key
        self.networks = {k: list(v) for k, v in (networks or DEFAULT_NETWORKS).items()}
        if voxels not in ("all", "networks"):
            raise ValueError(f"pereira reader option voxels must be 'all' or 'networks', got {voxels!r}")
        self.voxels = voxels
        self._sentences = lru_cache(maxsize=None)(self._read_sentences)

    # ------------------------------------------------------------------ layout
    def _path(self, subject: str, story: str) -> Path:
        if story not in self.experiments:
            raise MissingDataError(f"{self.name} study: no experiment {story!r}; the experiments are "
                                   f"{sorted(self.experiments)} (reader option experiments)")
        return self.root / subject / self.experiments[story]

    def check(self) -> None:
        self.require(self.root, "the study directory")
        if not self._subject_dirs():
            raise MissingDataError(f"{self.name} study: no subject folder under {self.root} holds any of "
                                   f"{sorted(self.experiments.values())}. {self.download_hint}")

    def _subject_dirs(self) -> list[str]:
        """Subject folders holding at least one sentence-experiment file (sorted)."""
        self.require(self.root, "the study directory")
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and any((p / f).is_file() for f in self.experiments.values()))

    def subjects(self) -> list[str]:
        """Subjects with a file for every experiment of ``experiments`` (sorted); subjects that
        have only some are left out with a logged warning (list them in ``study.subjects`` with
        the matching ``study.stories``, or narrow the reader option ``experiments``)."""
        dirs = self._subject_dirs()
        full = [s for s in dirs if all(self._path(s, e).is_file() for e in self.experiments)]
        partial = {s: [e for e in self.experiments if self._path(s, e).is_file()] for s in dirs if s not in full}
        if partial:
            log.warning("%s study at %s: subjects %s have only some of the experiments %s and are not "
                        "listed by subjects: auto (to use them, set the reader option experiments to the "
                        "ones they have)", self.name, self.root, partial, list(self.experiments))
        return full

    def stories(self) -> list[str]:
        """Experiments with a file for at least one subject, in the order of ``experiments``."""
        subjects = self._subject_dirs()
        return [s for s in self.experiments if any(self._path(sub, s).is_file() for sub in subjects)]

    def _reference(self, story: str) -> Path:
        """The first subject's file of ``story`` (its sentences define the story)."""
        for sub in self._subject_dirs():
            if self._path(sub, story).is_file():
                return self._path(sub, story)
        raise MissingDataError(f"{self.name} study: no subject has {self.experiments.get(story, story)} "
                               f"under {self.root}. {self.download_hint}")

    # ------------------------------------------------------------------ .mat access
    @staticmethod
    def _load(path: Path, names: list[str]) -> dict:
        from scipy.io import loadmat

        try:
            return loadmat(path, struct_as_record=False, squeeze_me=True, variable_names=names)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(f"{path}: not a readable MATLAB file ({exc})") from exc

    @staticmethod
    def _variables(path: Path) -> dict[str, tuple[int, ...]]:
        from scipy.io import whosmat

        try:
            return {name: tuple(shape) for name, shape, _cls in whosmat(path)}
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path}: not a readable MATLAB file ({exc})") from exc

    def _examples_key(self, path: Path) -> tuple[str, tuple[int, ...]]:
        have = self._variables(path)
        keys = [self.examples_key] if self.examples_key else list(EXAMPLE_KEYS)
        key = next((k for k in keys if k in have), None)
        if key is None:
            raise ValueError(f"{path}: no response matrix (looked for {keys}; the file has {sorted(have)}). "
                             "Name it with the reader option examples_key")
        return key, have[key]

    def _read_sentences(self, path: Path) -> tuple[str, ...]:
        data = self._load(path, ["keySentences"])
        if "keySentences" not in data:
            raise ValueError(f"{path}: no keySentences (the sentence strings); is this a sentence "
                             f"experiment file ({sorted(self.experiments.values())})?")
        sentences = tuple(s.strip() for s in _strings(data["keySentences"]))
        empty = [k for k, s in enumerate(sentences) if not s.split()]
        if empty:
            raise ValueError(f"{path}: sentences {empty[:5]} of keySentences are empty")
        return sentences

    def sentences(self, story: str) -> list[str]:
        """The sentences of ``story`` in file order (from the first subject's file)."""
        return list(self._sentences(self._reference(story)))

    # ------------------------------------------------------------------ stimuli
    def words(self) -> dict[str, pd.DataFrame]:
        """story -> DataFrame(word, onset, offset, pause_before, sentence_id): sentence ``k``'s
        words evenly spread over ``[k + 0.1, k + 0.9]`` s, ``sentence_id = k``."""
        out = {}
        for story in self.stories():
            rows = []
            for k, sentence in enumerate(self.sentences(story)):
                ws = sentence.split()
                edges = k + WORD_SPAN[0] + (WORD_SPAN[1] - WORD_SPAN[0]) * np.arange(len(ws) + 1) / len(ws)
                rows += [(w, edges[j], edges[j + 1], k) for j, w in enumerate(ws)]
            df = pd.DataFrame(rows, columns=["word", "onset", "offset", "sentence_id"])
            df["pause_before"] = np.r_[0.0, np.clip(df["onset"].to_numpy()[1:] - df["offset"].to_numpy()[:-1], 0, None)]
            out[story] = df
            contiguous = self.passages_contiguous(story)
            if contiguous is False:
                log.warning("%s: the sentences of some passages are not adjacent in file order, so "
                            "contiguous cross-validation blocks split passages", self._reference(story))
            elif contiguous is None:
                log.info("%s: no passage labels (labelsPassageForEachSentence)", self._reference(story))
        return out

    def tr_grids(self) -> pd.DataFrame:
        rows = [{"story": s, "n_trs_total": len(self.sentences(s)), "tr": 1.0, "t0": 0.0} for s in self.stories()]
        if not rows:
            raise MissingDataError(f"{self.name} study: no sentence-experiment file under {self.root}. "
                                   f"{self.download_hint}")
        return pd.DataFrame(rows, columns=["story", "n_trs_total", "tr", "t0"])

    def sentence_table(self, story: str) -> pd.DataFrame:
        """Sentences of ``story`` with their passage and topic where the file has them.

        Returns
        -------
        DataFrame with columns story, sentence_id, sentence, passage (1-based, or -1), category
        (topic name, or ``""``).
        """
        path = self._reference(story)
        sentences = self.sentences(story)
        data = self._load(path, ["labelsPassageForEachSentence", "labelsPassageCategory", "keyPassageCategory"])
        passage = np.full(len(sentences), -1, dtype=np.int64)
        category = np.array([""] * len(sentences), dtype=object)
        if "labelsPassageForEachSentence" in data:
            p = np.asarray(data["labelsPassageForEachSentence"], dtype=float).ravel()
            if len(p) != len(sentences):
                raise ValueError(f"{path}: labelsPassageForEachSentence has {len(p)} entries for "
                                 f"{len(sentences)} sentences")
            passage = p.astype(np.int64)
            if "labelsPassageCategory" in data and "keyPassageCategory" in data:
                cat_of_passage = np.asarray(data["labelsPassageCategory"], dtype=float).ravel().astype(int)
                names = _strings(data["keyPassageCategory"])
                if passage.max() <= len(cat_of_passage) and cat_of_passage.max() <= len(names):
                    category = np.array([names[cat_of_passage[q - 1] - 1] for q in passage], dtype=object)
        return pd.DataFrame({"story": story, "sentence_id": np.arange(len(sentences)), "sentence": sentences,
                             "passage": passage, "category": category})

    def passages_contiguous(self, story: str) -> bool | None:
        """Whether every passage's sentences are adjacent in file order (None: no passage labels)."""
        p = self.sentence_table(story)["passage"].to_numpy()
        if (p < 0).all():
            return None
        runs = p[np.r_[True, p[1:] != p[:-1]]]
        return len(runs) == len(set(runs.tolist()))

    # ------------------------------------------------------------------ targets
    def _atlases(self, meta, path: Path, n_vox: int) -> dict[str, tuple[np.ndarray, list[str] | None]]:
        """atlas name -> (labels int (n_vox,), 0 = none; ROI names or None) from ``meta``."""
        out: dict[str, tuple[np.ndarray, list[str] | None]] = {}

        def labels_of(vec, what):
            v = np.asarray(vec, dtype=float).ravel()
            if v.shape != (n_vox,):
                raise ValueError(f"{path}: {what} has {v.size} entries for {n_vox} voxels")
            return np.where(np.isfinite(v), v, 0).astype(np.int64)

        names = _strings(_field(meta, "atlases")) if _field(meta, "atlases") is not None else []
        rois = _cells(_field(meta, "rois")) if _field(meta, "rois") is not None else [None] * len(names)
        masks = _field(meta, "roiMultimask")
        columns = _field(meta, "roiColumns")
        if names:
            if masks is not None:
                masks = _cells(masks) if len(names) > 1 else [masks]
                if len(masks) != len(names):
                    raise ValueError(f"{path}: meta.roiMultimask has {len(masks)} entries for {len(names)} atlases")
                for k, name in enumerate(names):
                    out[name] = (labels_of(masks[k], f"meta.roiMultimask{{{k + 1}}} ({name})"), None)
            elif columns is not None:
                columns = _cells(columns) if len(names) > 1 else [columns]
                for k, name in enumerate(names):
                    lab = np.zeros(n_vox, np.int64)
                    for r, cols in enumerate(_cells(columns[k])):
                        idx = np.asarray(cols, dtype=float).ravel().astype(np.int64) - 1
                        if idx.size and (idx.min() < 0 or idx.max() >= n_vox):
                            raise ValueError(f"{path}: meta.roiColumns of atlas {name} indexes columns "
                                             f"outside 1..{n_vox}")
                        lab[idx] = r + 1
                    out[name] = (lab, None)
            else:
                log.warning("%s: meta.atlases lists %s but there is neither roiMultimask nor roiColumns; "
                            "no atlas read", path, names)
            rois = rois if len(names) > 1 else [_field(meta, "rois")]
            for k, name in enumerate(names):
                if name in out and k < len(rois) and rois[k] is not None:
                    out[name] = (out[name][0], _strings(rois[k]))
        for field in getattr(meta, "_fieldnames", []):
            if field.startswith("roiMultimask") and field != "roiMultimask":
                name = field[len("roiMultimask"):]
                roi_names = _field(meta, "rois" + name)
                out.setdefault(name, (labels_of(getattr(meta, field), f"meta.{field}"),
                                      _strings(roi_names) if roi_names is not None else None))
        return out

    def _targets(self, path: Path, n_vox: int) -> pd.DataFrame:
        meta = self._load(path, ["meta"]).get("meta")
        if meta is None:
            log.warning("%s: no meta struct: voxels get no coordinates and roi/network %s", path, NONE)
        targets = pd.DataFrame({"target": [f"v{c}" for c in range(n_vox)], "roi": NONE, "network": NONE})
        coords = _field(meta, "colToCoord")
        if coords is not None:
            coords = np.asarray(coords, dtype=float)
            if coords.shape != (n_vox, 3):
                raise ValueError(f"{path}: meta.colToCoord has shape {coords.shape}, expected ({n_vox}, 3)")
            base = 1 if coords.min() >= 1 else 0
            if base == 0:
                log.warning("%s: meta.colToCoord has zeros, so it is read as 0-based (MATLAB files are "
                            "usually 1-based)", path)
            ijk = coords.astype(np.int64) - base
            targets["i"], targets["j"], targets["k"] = ijk[:, 0], ijk[:, 1], ijk[:, 2]
        else:
            log.warning("%s: no meta.colToCoord: voxels get no i, j, k", path)
        atlases = self._atlases(meta, path, n_vox) if meta is not None else {}
        lower = {a.lower(): a for a in atlases}
        network = np.array([NONE] * n_vox, dtype=object)
        roi = np.array([NONE] * n_vox, dtype=object)
        source_atlas = np.array([""] * n_vox, dtype=object)
        multi = np.zeros(n_vox, dtype=np.int64)
        for net, names in self.networks.items():
            found = [lower[n.lower()] for n in names if n.lower() in lower]
            if not found:
                log.warning("%s: network %s: none of the atlases %s is in meta.atlases (the file has %s); "
                            "no voxel gets this network", path, net, names, sorted(atlases))
                continue
            in_net = np.zeros(n_vox, dtype=bool)
            for a in found:
                lab, names_a = atlases[a]
                hit = lab > 0
                if not hit.any():
                    log.warning("%s: network %s: atlas %r labels no voxel of the data", path, net, a)
                    continue
                new = hit & (network == NONE)
                network[new] = net
                source_atlas[new] = a
                roi[new] = [names_a[v - 1] if names_a is not None and v - 1 < len(names_a) else f"{a}_{v}"
                            for v in lab[new]]
                in_net |= hit
            multi += in_net
        overlap = int((multi > 1).sum())
        if overlap:
            log.info("%s: %d voxels lie in several networks; each got the first of %s", path, overlap,
                     list(self.networks))
        # an ROI name used in two atlases is prefixed with its atlas to stay unambiguous
        pairs = pd.DataFrame({"roi": roi, "atlas": source_atlas})[network != NONE].drop_duplicates()
        clash = set(pairs["roi"][pairs["roi"].duplicated(keep=False)])
        if clash:
            roi = np.array([f"{a}_{r}" if r in clash else r for r, a in zip(roi, source_atlas)], dtype=object)
        targets["roi"], targets["network"] = roi, network
        counts = pd.Series(network).value_counts().to_dict()
        log.info("%s: %d voxels; per network %s", path, n_vox, counts)
        return targets

    # ------------------------------------------------------------------ responses
    def responses(self, subject: str, stories: list[str] | None = None):
        """Lazy responses of ``subject``: story -> float32 (n_sentences, n_voxels).

        Every file is checked first: it exists (else :class:`MissingDataError` naming it), its
        sentences are those of the story (same order as the first subject's file) and its matrix
        has one row per sentence. When a subject's files disagree on the voxels (``colToCoord``),
        the voxels common to all are used (matched by coordinates, logged).
        """
        subject_dir = self.require(self.root / subject, f"the folder of subject {subject}")
        if stories is None:
            stories = [s for s in self.stories() if self._path(subject, s).is_file()]
        stories = list(stories)
        missing = [s for s in stories if not self._path(subject, s).is_file()]
        if missing:
            have = [s for s in self.experiments if self._path(subject, s).is_file()]
            raise MissingDataError(
                f"{self.name} study: subject {subject} has no {self.experiments[missing[0]]} "
                f"({self._path(subject, missing[0])} not found; the subject did not take part in "
                f"experiment {missing[0]}, or the file is elsewhere). Subject {subject} has {have} in "
                f"{subject_dir}; restrict study.stories to experiments every selected subject has, or "
                "list the subjects in study.subjects.")
        keys, targets, cols = {}, None, {}
        dropped = self._record_dropped(subject)
        for story in stories:
            path = self._path(subject, story)
            ref = self._reference(story)
            if self._sentences(path) != self._sentences(ref):
                a, b = self._sentences(path), self._sentences(ref)
                first = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
                raise ValueError(f"{path}: its keySentences differ from those of {ref} ({len(a)} vs {len(b)} "
                                 f"sentences, first difference at sentence {first}); the rows of every "
                                 "subject's file must be the same sentences in the same order")
            key, shape = self._examples_key(path)
            if len(shape) != 2 or shape[0] != len(self._sentences(path)):
                raise ValueError(f"{path}: {key} has shape {shape}, expected ({len(self._sentences(path))} "
                                 "sentences, n_voxels): one row per sentence of keySentences")
            keys[story] = key
            t = self._targets(path, shape[1])
            if targets is None:
                targets, cols[story] = t, np.arange(shape[1])
                continue
            if "i" in t and "i" in targets:
                here = pd.MultiIndex.from_frame(t[["i", "j", "k"]])
                first_ijk = pd.MultiIndex.from_frame(targets[["i", "j", "k"]])
                pos = here.get_indexer(first_ijk)
            elif shape[1] == len(targets):
                pos = np.arange(shape[1])
            else:
                raise ValueError(f"{path}: {shape[1]} voxels but the subject's other file has {len(targets)}, "
                                 "and without meta.colToCoord they cannot be matched")
            if (pos < 0).any() or len(pos) != shape[1]:
                keep = pos >= 0
                log.warning("subject %s: %s and %s disagree on the voxels; the %d voxels they share are used "
                            "(%d of the first file and %d of this one are left out)", subject,
                            self._path(subject, stories[0]), path, int(keep.sum()), int((~keep).sum()),
                            shape[1] - int(keep.sum()))
                reason = (f"voxel not in every file of the subject (matched by colToCoord): absent from "
                          f"{path.name}")
                dropped += [("*", t, reason) for t in targets["target"][~keep]]
                unmatched = np.setdiff1d(np.arange(shape[1]), pos[keep])
                dropped += [("*", t, f"voxel of {path.name} absent from {self._path(subject, stories[0]).name}")
                            for t in t["target"].to_numpy()[unmatched]]
                targets = targets[keep].reset_index(drop=True)
                for s in cols:
                    cols[s] = cols[s][keep]
                pos = pos[keep]
            cols[story] = pos
        if targets is None:
            raise MissingDataError(f"{self.name} study: no story selected for subject {subject}")
        if self.voxels == "networks":
            keep = (targets["network"] != NONE).to_numpy()
            if not keep.any():
                raise ValueError(f"subject {subject}: no voxel lies in the networks {list(self.networks)} "
                                 f"(files {[str(self._path(subject, s)) for s in stories]}); check the atlas "
                                 "names (reader option networks) or use voxels: all")
            log.info("subject %s: %d of %d voxels lie in the networks %s and are kept (voxels: networks)",
                     subject, int(keep.sum()), len(keep), list(self.networks))
            targets = targets[keep].reset_index(drop=True)
            cols = {s: c[keep] for s, c in cols.items()}

        def read(story: str) -> np.ndarray:
            path = self._path(subject, story)
            x = np.asarray(self._load(path, [keys[story]])[keys[story]])
            return np.ascontiguousarray(x[:, cols[story]], dtype=np.float32)

        sources = {s: str(self._path(subject, s)) for s in stories}
        return LazyStories(stories, read), targets, sources
