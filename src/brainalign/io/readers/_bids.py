"""Helpers shared by the BIDS-layout readers (``narratives``, ``bids``): file names and
entities, sidecar look-up, repetition times, NIfTI/GIFTI runs, voxel grids and masks.

Nothing here knows a particular dataset; the readers decide what to look for.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .base import MissingDataError

log = logging.getLogger(__name__)

EXTENSIONS = (".nii.gz", ".nii", ".func.gii", ".label.gii", ".shape.gii", ".gii", ".tsv", ".csv",
              ".json", ".tsv.gz")
#: absolute tolerance (s) when comparing repetition times
TR_ATOL = 1e-3
#: ``space`` entities that are each subject's own (targets not comparable across subjects)
SUBJECT_SPACES = frozenset({"T1w", "T2w", "native", "fsnative", "boldref", "func", "orig", "anat"})


# --------------------------------------------------------------------------- names
def split_name(name: str) -> tuple[dict[str, str], str, str]:
    """Entities, suffix and extension of a BIDS file name.

    ``sub-001_task-pieman_run-1_space-X_desc-clean_bold.nii.gz`` ->
    ``({"sub": "001", "task": "pieman", "run": "1", "space": "X", "desc": "clean"}, "bold",
    ".nii.gz")``; ``sub-001_task-t_space-fsaverage6_hemi-L_desc-clean.func.gii`` has suffix ``""``
    and extension ``.func.gii``.
    """
    ext = next((e for e in EXTENSIONS if name.endswith(e)), "")
    stem = name[: len(name) - len(ext)] if ext else name
    entities, suffix = {}, ""
    parts = stem.split("_")
    for k, part in enumerate(parts):
        if "-" in part:
            key, _, value = part.partition("-")
            entities[key] = value
        elif k == len(parts) - 1:
            suffix = part
    return entities, suffix, ext


def entity_stem(entities: dict[str, str], keys=("sub", "ses", "task", "acq", "run")) -> str:
    """``sub-X[_ses-Y]_task-T[_acq-A][_run-N]`` from entities (the raw-data part of a name)."""
    return "_".join(f"{k}-{entities[k]}" for k in keys if k in entities)


def run_sort_key(entities: dict[str, str]):
    """Sort runs by session then run number (numeric when it is a number)."""
    def num(v):
        return (0, int(v), "") if v and v.isdigit() else (1, 0, v or "")
    return (num(entities.get("ses")), num(entities.get("run")))


# --------------------------------------------------------------------------- sidecars and TR
def sidecar_candidates(root: Path, raw_dir: Path, entities: dict[str, str],
                       beside: Path | None = None) -> list[Path]:
    """JSON sidecars that may hold ``RepetitionTime`` for a run, most specific first: beside the
    (derivative) file itself, the raw run sidecar, and the inherited ones up to the dataset root
    (``task-T_bold.json``)."""
    out = []
    if beside is not None:
        _ents, _suffix, ext = split_name(beside.name)
        if ext:
            out.append(beside.parent / (beside.name[: -len(ext)] + ".json"))
        if ext == ".func.gii":
            out.append(beside.parent / (beside.name[: -len(ext)] + ".func.json"))
    stem = entity_stem(entities)
    out.append(raw_dir / f"{stem}_bold.json")
    sub, task = entities.get("sub"), entities.get("task")
    no_run = {k: v for k, v in entities.items() if k != "run"}
    out.append(raw_dir / f"{entity_stem(no_run)}_bold.json")
    if sub:
        out.append(root / f"sub-{sub}" / f"sub-{sub}_task-{task}_bold.json")
    out.append(root / f"task-{task}_bold.json")
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def sidecar_tr(candidates: list[Path]) -> tuple[float | None, Path | None]:
    """``RepetitionTime`` (s) of the first candidate JSON that has it, and that file."""
    for p in candidates:
        if p.is_file():
            try:
                doc = json.loads(p.read_text())
            except ValueError as exc:
                raise ValueError(f"{p}: not valid JSON ({exc})") from exc
            tr = doc.get("RepetitionTime") if isinstance(doc, dict) else None
            if tr is not None:
                return float(tr), p
    return None, None


def header_tr(path: Path) -> float | None:
    """The TR (s) in a NIfTI header (``pixdim[4]``, converted from ms/us by ``xyzt_units``), or
    None when the header has none (0 or not 4D)."""
    import nibabel as nib

    hdr = nib.load(path).header
    zooms = hdr.get_zooms()
    if len(zooms) < 4 or not np.isfinite(zooms[3]) or zooms[3] <= 0:
        return None
    tr = float(zooms[3])
    unit = hdr.get_xyzt_units()[1] if hasattr(hdr, "get_xyzt_units") else "sec"
    return tr / 1000.0 if unit == "msec" else tr / 1e6 if unit == "usec" else tr


def run_tr(path: Path, candidates: list[Path], fallback: float | None = None,
           use_header: bool = True) -> tuple[float, str]:
    """The TR of one run and where it came from.

    From the NIfTI header (volumes) and the first sidecar JSON with ``RepetitionTime``; when
    both exist they must agree (``TR_ATOL``), else ``ValueError`` naming both. ``fallback`` (the
    reader option ``tr``) is used when neither has one.
    """
    h = header_tr(path) if use_header else None
    s, sfile = sidecar_tr(candidates)
    if h is not None and s is not None and abs(h - s) > TR_ATOL:
        raise ValueError(f"{path}: the NIfTI header says TR = {h:g} s but {sfile} says "
                         f"RepetitionTime = {s:g} s; fix the wrong one (or remove the sidecar)")
    if h is not None:
        return h, f"NIfTI header of {path}"
    if s is not None:
        return s, str(sfile)
    if fallback is not None:
        return float(fallback), "the reader option tr"
    where = ["the NIfTI header"] if use_header else []
    raise ValueError(f"{path}: no repetition time found (looked in {', '.join(where + [str(c) for c in candidates])}); "
                     "set the reader option tr (study_options: {tr: <seconds>})")


def odd_tr_error(story: str, path: str, tr: float, ref_tr: float, ref_path: str, n_ref: int) -> ValueError:
    return ValueError(
        f"story {story}: {path} has TR {tr:g} s but the other runs of this task have TR {ref_tr:g} s "
        f"({n_ref} runs, e.g. {ref_path}); runs with a different TR cannot share one TR grid. "
        "Leave that run out (reader option exclude: [<file name prefix>]) or the subject "
        "(study.subjects)")


def majority(values: dict[str, float], atol: float = TR_ATOL) -> tuple[float, int, str]:
    """The most common value (within ``atol``), how many have it and one key that has it."""
    if not values:
        raise ValueError("no values")
    rounded = Counter(round(v / atol) for v in values.values())
    top, count = rounded.most_common(1)[0]
    key = next(k for k, v in values.items() if round(v / atol) == top)
    return values[key], count, key


# --------------------------------------------------------------------------- data files
def n_volumes_nifti(path: Path) -> int:
    import nibabel as nib

    shape = nib.load(path).shape
    if len(shape) != 4:
        raise ValueError(f"{path}: BOLD image is not 4D (shape {shape})")
    return int(shape[3])


def load_gifti(path: Path) -> np.ndarray:
    """A GIFTI time series as float32 (n_trs, n_vertices): one data array per TR, or a single
    2D array of shape (n_vertices, n_trs)."""
    import nibabel as nib

    try:
        img = nib.load(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a readable GIFTI file ({exc})") from exc
    arrays = [np.asarray(d.data) for d in img.darrays]
    if not arrays:
        raise ValueError(f"{path}: GIFTI file without data arrays")
    if len(arrays) == 1 and arrays[0].ndim == 2:
        return np.ascontiguousarray(arrays[0].T, dtype=np.float32)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"{path}: GIFTI data arrays of shapes {sorted(shapes)}; expected one 1D "
                         "array per TR (all of one length) or a single 2D array")
    return np.stack(arrays).astype(np.float32)


def n_volumes_gifti(path: Path, chunk_size: int = 1 << 22) -> int:
    """Number of TRs of a GIFTI time series (counts the data arrays without decoding them,
    reading ``chunk_size`` bytes at a time; a single array is read to see whether it is 2D)."""
    pattern = b"<DataArray"
    count, tail = 0, b""
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            buf = tail + chunk  # a match cannot lie inside the short tail alone: none counted twice
            count += buf.count(pattern)
            tail = buf[-(len(pattern) - 1):]
    if count <= 1:
        return load_gifti(path).shape[0]
    return count


def same_grid(shape_a, affine_a, shape_b, affine_b, atol: float = 1e-3) -> bool:
    return tuple(shape_a) == tuple(shape_b) and np.allclose(affine_a, affine_b, atol=atol)


def grid_error(what_a: str, shape_a, affine_a, what_b: str, shape_b, affine_b, hint: str) -> ValueError:
    def fmt(a):
        return np.array2string(np.asarray(a, float), precision=3, suppress_small=True).replace("\n", "")
    return ValueError(f"{what_a} (shape {tuple(shape_a)}, affine {fmt(affine_a)}) is not on the grid of "
                      f"{what_b} (shape {tuple(shape_b)}, affine {fmt(affine_b)}); {hint}")


def variance_mask(data: np.ndarray) -> np.ndarray:
    """Targets with finite values and non-zero variance: data of shape (..., n_trs) -> bool
    array of shape data.shape[:-1]."""
    data = np.asarray(data)
    finite = np.isfinite(data).all(axis=-1)
    clean = np.where(np.isfinite(data), data, 0.0)
    spread = clean.max(axis=-1) - clean.min(axis=-1)
    scale = np.maximum(np.abs(clean).max(axis=-1), 1e-30)
    return finite & (spread > 1e-6 * scale)


def find_story_audio(stim_dir: Path, story: str, reader: str = "bids") -> Path:
    """The audio file of ``story`` in a BIDS ``stimuli`` folder: ``<story>.wav`` when present,
    else the single ``*<story>*.wav`` there (e.g. ``task-<story>_audio.wav``).

    Raises
    ------
    MissingDataError naming the story and what was looked for; ValueError listing the files when
    several match the pattern.
    """
    import glob

    exact = Path(stim_dir) / f"{story}.wav"
    if exact.is_file():
        return exact
    pattern = f"*{glob.escape(story)}*.wav"
    matches = sorted(p for p in Path(stim_dir).glob(pattern) if p.is_file()) if Path(stim_dir).is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"{reader} study: several audio files match story {story}: "
                         f"{', '.join(str(m) for m in matches)}; name the story's file {exact}")
    raise MissingDataError(f"{reader} study: no audio for story {story}: looked for {exact} and "
                           f"{Path(stim_dir) / pattern}")


@dataclass
class Run:
    """One functional run of one subject: its data file(s), entities and TR."""

    subject: str
    story: str
    entities: dict[str, str]
    files: tuple[Path, ...]          # one NIfTI, or the L and R GIFTI files
    tr: float | None = None
    tr_source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.files[0].name

    @property
    def label(self) -> str:
        return " + ".join(str(f) for f in self.files)


# --------------------------------------------------------------------------- shared reader
class FuncRunsReader:
    """Mixin for readers of BIDS functional runs (volumes or surfaces); see ``narratives`` and
    ``bids``. The subclass provides ``_scan()`` (story -> subject -> usable runs, and the runs it
    left out), ``stories()``, ``_timing(story, tr, n_vols)`` and the messages; this class gives
    ``tr_grids()``, ``responses()`` and ``reference_image()``.

    Attributes the subclass sets: ``kind`` (``"volume"``/``"surface"``), ``runs`` (``"mean"`` or
    ``"first"``: what to do with several runs of one story), ``mask_path`` (user mask or None),
    ``tr_fallback`` (reader option ``tr`` or None).
    """

    kind = "volume"
    runs = "mean"
    mask_path = None
    tr_fallback = None

    # ---- provided by the subclass
    def _scan(self) -> tuple[dict[str, dict[str, list[Run]]], dict[tuple[str, str], list[str]]]:
        raise NotImplementedError

    def _timing(self, story: str, tr: float, n_vols: int) -> tuple[int, int, float]:
        """(first kept volume, end (exclusive), time of the first kept volume on the word clock)."""
        return 0, n_vols, 0.0

    def _missing_message(self, subject: str, story: str) -> str:
        raise NotImplementedError

    def _mask_candidates(self, subject: str, story: str, run: Run) -> list[Path]:
        return []

    def _surface_mask_candidates(self, hemi: str) -> list[Path]:
        return []

    def _tr_candidates(self, run: Run) -> list[Path]:
        return []

    # ---- index and TRs
    def _index(self):
        if getattr(self, "_index_cache", None) is None:
            self._index_cache = self._scan()
        return self._index_cache

    def _run_tr(self, run: Run) -> float:
        if run.tr is None and "tr_error" not in run.extra:
            try:
                run.tr, run.tr_source = run_tr(run.files[0], self._tr_candidates(run), self.tr_fallback,
                                               use_header=self.kind == "volume")
            except ValueError as exc:
                run.extra["tr_error"] = exc
        if "tr_error" in run.extra:
            raise run.extra["tr_error"]
        return run.tr

    def _n_vols(self, run: Run) -> int:
        if "n_vols" not in run.extra:
            f = run.files[0]
            run.extra["n_vols"] = n_volumes_nifti(f) if self.kind == "volume" else n_volumes_gifti(f)
        return run.extra["n_vols"]

    def _story_runs(self, story: str) -> list[Run]:
        subjects = self._index()[0].get(story, {})
        return [r for s in sorted(subjects) for r in subjects[s]]

    def _story_grid(self, story: str) -> dict:
        """TR (most common over the story's runs), volumes, crop and t0 of one story (cached)."""
        cache = self.__dict__.setdefault("_grid_cache", {})
        if story in cache:
            return cache[story]
        runs = self._story_runs(story)
        if not runs:
            raise MissingDataError(f"{self.name} study: no usable run of story {story} at {self.root}")
        trs = {}
        for r in runs:
            try:
                trs[r.label] = self._run_tr(r)
            except ValueError:
                continue  # raised when that subject is read
        if not trs:
            self._run_tr(runs[0])  # every run failed: raise the first run's error
        tr, n_with, ref = majority(trs)
        ok = [r for r in runs if r.label in trs and abs(trs[r.label] - tr) <= TR_ATOL]
        if self.kind == "volume":
            counts = {r.label: float(self._n_vols(r)) for r in ok}
            n_vols = int(majority(counts, atol=0.5)[0])
        else:
            n_vols = self._n_vols(ok[0])
        k0, k1, t0 = self._timing(story, tr, n_vols)
        cache[story] = {"tr": tr, "n_ref": n_with, "ref": ref, "n_vols": n_vols, "k0": int(k0),
                        "k1": int(k1), "t0": float(t0)}
        return cache[story]

    def tr_grids(self) -> pd.DataFrame:
        rows = []
        for story in self.stories():
            g = self._story_grid(story)
            rows.append({"story": story, "n_trs_total": g["k1"] - g["k0"], "tr": g["tr"], "t0": g["t0"]})
        return pd.DataFrame(rows, columns=["story", "n_trs_total", "tr", "t0"])

    # ---- one subject
    def _subject_runs(self, subject: str, story: str) -> list[Run]:
        index, excluded = self._index()
        runs = index.get(story, {}).get(subject, [])
        if not runs:
            if (subject, story) in excluded:
                raise MissingDataError(
                    f"{self.name} study: every run of subject {subject}, story {story} is excluded "
                    f"({'; '.join(excluded[(subject, story)])}); restrict study.stories or study.subjects")
            raise MissingDataError(self._missing_message(subject, story))
        return runs[:1] if self.runs == "first" else runs

    def _check_runs(self, subject: str, story: str, runs: list[Run]) -> dict:
        g = self._story_grid(story)
        for r in runs:
            tr = self._run_tr(r)
            if abs(tr - g["tr"]) > TR_ATOL:
                raise odd_tr_error(story, r.label, tr, g["tr"], g["ref"], g["n_ref"])
        return g

    def _volume_mask(self, subject: str, story: str, run: Run):
        """(mask bool (X, Y, Z), affine, where it came from) for the subject's voxel set."""
        import nibabel as nib

        bold = nib.load(run.files[0])
        shape, affine = bold.shape[:3], bold.affine
        if self.mask_path is not None:
            path = Path(self.mask_path)
            path = path if path.is_absolute() else self.root / path
            cands = [self.require(path, "the brain mask (option mask)")]
        else:
            cands = [p for p in self._mask_candidates(subject, story, run) if p.is_file()]
        if cands:
            img = nib.load(cands[0])
            if not same_grid(img.shape[:3], img.affine, shape, affine):
                raise grid_error(f"brain mask {cands[0]}", img.shape[:3], img.affine,
                                 f"BOLD image {run.files[0]}", shape, affine,
                                 "resample the mask to the BOLD grid (nearest neighbour), e.g. with "
                                 "nilearn.image.resample_to_img, or leave it out")
            mask = np.asarray(img.dataobj) > 0
            if mask.ndim == 4 and mask.shape[3] == 1:
                mask = mask[..., 0]
            if not mask.any():
                raise ValueError(f"{cands[0]}: the brain mask is empty")
            return mask, affine, str(cands[0])
        data = np.asarray(bold.dataobj, dtype=np.float32)
        mask = variance_mask(data)
        if not mask.any():
            raise ValueError(f"{run.files[0]}: no voxel has finite values with non-zero variance")
        return mask, affine, f"voxels with non-zero variance in {run.files[0]}"

    def _subject_targets(self, subject: str, stories: list[str], runs: dict[str, list[Run]]):
        """Targets table and what is needed to read a story (mask/vertex selection), cached per
        subject and first story."""
        cache = self.__dict__.setdefault("_target_cache", {})
        key = (subject, stories[0])
        self.__dict__.setdefault("_last_key", {})[subject] = key
        first = runs[stories[0]][0]
        if self.kind == "volume":
            import nibabel as nib

            ref = nib.load(first.files[0])
            for story in stories:
                for r in runs[story]:
                    img = nib.load(r.files[0])
                    if not same_grid(img.shape[:3], img.affine, ref.shape[:3], ref.affine):
                        raise grid_error(f"subject {subject}, story {story}: {r.files[0]}", img.shape[:3],
                                         img.affine, f"story {stories[0]}: {first.files[0]}", ref.shape[:3],
                                         ref.affine, "one subject's stories must share one voxel grid; "
                                         "choose stories on the same grid with study.stories")
            if key not in cache:
                mask, affine, origin = self._volume_mask(subject, stories[0], first)
                log.info("%s: subject %s: %d voxels (%s)", self.name, subject, int(mask.sum()), origin)
                ijk = np.nonzero(mask)
                targets = pd.DataFrame({
                    "target": [f"v{i}_{j}_{k}" for i, j, k in zip(*ijk)], "roi": "none", "network": "none",
                    "i": ijk[0], "j": ijk[1], "k": ijk[2]})
                cache[key] = (targets, {"mask": mask, "affine": affine})
            return cache[key]
        # surfaces
        if key not in cache:
            sel, parts = {}, []
            first_data = None
            for h, f in zip(("L", "R"), first.files):
                cands = [p for p in self._surface_mask_candidates(h) if p.is_file()]
                if cands:
                    m = load_gifti(cands[0])[0] > 0  # the first map of the mask file
                    origin = str(cands[0])
                else:
                    first_data = load_gifti(f)
                    m = variance_mask(first_data.T)
                    origin = f"vertices with non-zero variance in {f}"
                n_vert = len(m)
                sel[h] = np.flatnonzero(m)
                log.info("%s: subject %s: hemisphere %s: %d of %d vertices (%s)", self.name, subject, h,
                         len(sel[h]), n_vert, origin)
                parts.append(pd.DataFrame({"target": [f"{h}{v}" for v in sel[h]], "roi": "none",
                                           "network": "none", "hemi": h, "vertex": sel[h]}))
            cache[key] = (pd.concat(parts, ignore_index=True), {"vertices": sel})
        return cache[key]

    def _read_run(self, run: Run, sel: dict, g: dict, story: str) -> np.ndarray:
        """One run as float32 (k1 - k0, n_targets)."""
        import nibabel as nib

        if self.kind == "volume":
            data = np.asarray(nib.load(run.files[0]).dataobj, dtype=np.float32)
            if data.ndim != 4:
                raise ValueError(f"{run.files[0]}: BOLD image is not 4D (shape {data.shape})")
            y = data[sel["mask"]].T  # (n_vols, n_vox)
        else:
            hemis = []
            for h, f in zip(("L", "R"), run.files):
                d = load_gifti(f)
                v = sel["vertices"][h]
                if v.size and v.max() >= d.shape[1]:
                    raise ValueError(f"{f}: {d.shape[1]} vertices, but the vertex selection of this "
                                     f"subject goes up to vertex {v.max()} (a different mesh?)")
                hemis.append(d[:, v])
            if hemis[0].shape[0] != hemis[1].shape[0]:
                raise ValueError(f"{run.files[0]} has {hemis[0].shape[0]} TRs but {run.files[1]} has "
                                 f"{hemis[1].shape[0]}")
            y = np.concatenate(hemis, axis=1)
        n = y.shape[0]
        strict = not getattr(self, "crop", False)  # without cropping every run has the story's length
        if n < g["k1"] or (strict and n != g["n_vols"]):
            raise ValueError(
                f"story {story}: {run.label} has {n} volumes but the TR grid of the story needs "
                f"{g['k1'] if n < g['k1'] else g['n_vols']} (volumes {g['k0']}..{g['k1'] - 1} are kept; "
                f"the story's runs have {g['n_vols']}); leave that run out (reader option exclude) or "
                "the subject (study.subjects)")
        return np.ascontiguousarray(y[g["k0"]: g["k1"]], dtype=np.float32)

    def responses(self, subject: str, stories: list[str] | None = None):
        """``(story -> float32 (n_trs_total, n_targets) read lazily, targets, story -> files)``.

        Several runs of one story are averaged (``runs: mean``) or the first is used
        (``runs: first``); a story the subject lacks is a :class:`MissingDataError`."""
        from ...core.brain.preprocess import LazyStories

        stories = list(self.stories() if stories is None else stories)
        if not stories:
            raise ValueError(f"{self.name} study at {self.root}: no stories to read")
        runs = {s: self._subject_runs(subject, s) for s in stories}
        grids = {s: self._check_runs(subject, s, runs[s]) for s in stories}
        targets, sel = self._subject_targets(subject, stories, runs)
        for s in stories:
            if len(runs[s]) > 1:
                log.info("%s: subject %s, story %s: mean of %d runs (%s)", self.name, subject, s, len(runs[s]),
                         ", ".join(r.name for r in runs[s]))

        def read(story: str) -> np.ndarray:
            parts = [self._read_run(r, sel, grids[story], story) for r in runs[story]]
            return parts[0] if len(parts) == 1 else np.mean(parts, axis=0, dtype=np.float64).astype(np.float32)

        sources = {s: " + ".join(r.label for r in runs[s]) for s in stories}
        return LazyStories(stories, read), targets, sources

    def reference_image(self, subject: str | None = None):
        """The brain mask (3D, on the BOLD grid of the first story of ``stories()``) that the
        voxel targets' ``i, j, k`` index; None for surfaces."""
        if self.kind != "volume":
            return None
        import nibabel as nib

        index, _ = self._index()
        stories = self.stories()
        if subject is None:
            subject = next((s for s in self.subjects() if s in index.get(stories[0], {})), None)
            if subject is None:
                raise MissingDataError(f"{self.name} study: no subject has story {stories[0]}")
        last = self.__dict__.get("_last_key", {}).get(subject)
        if last is not None and last in self.__dict__.get("_target_cache", {}):
            sel = self._target_cache[last][1]  # the voxel set responses() used
            return nib.Nifti1Image(sel["mask"].astype(np.uint8), sel["affine"])
        story = next((s for s in stories if subject in index.get(s, {})), stories[0])
        runs = {story: self._subject_runs(subject, story)}
        _targets, sel = self._subject_targets(subject, [story], runs)
        return nib.Nifti1Image(sel["mask"].astype(np.uint8), sel["affine"])
