"""Kedro datasets named by the catalog.

* :class:`NpyStoriesDataset` - a folder of float32 NPY files, one per story, loaded as
  memory maps (``dict story -> array``); an ``_index.json`` written last marks it complete.
* :class:`StudyDataset` - a raw study directory read by a registered reader (load gives the
  reader); saving a :class:`~brainalign.core.synthetic.study.SimulatedStudy` writes it in real formats.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError


class NpyStoriesDataset(AbstractDataset[dict, dict]):
    """``dict story -> float32 array`` stored as ``<path>/<story>.npy``, loaded with mmap.

    Parameters
    ----------
    path : folder.
    mmap_mode : passed to ``numpy.load`` (``"r"`` by default; ``None`` loads into memory).
    """

    def __init__(self, path: str, mmap_mode: str | None = "r", metadata: dict | None = None):
        self._path = Path(path)
        self._mmap_mode = mmap_mode
        self.metadata = metadata

    def load(self) -> dict[str, np.ndarray]:
        index = self._path / "_index.json"
        if not index.exists():
            raise DatasetError(f"{self._path}: no _index.json (not written, or written incompletely)")
        stories = json.loads(index.read_text())["stories"]
        return {s: np.load(self._path / f"{s}.npy", mmap_mode=self._mmap_mode) for s in stories}

    def save(self, data: dict[str, np.ndarray]) -> None:
        if self._path.exists():
            shutil.rmtree(self._path)
        self._path.mkdir(parents=True)
        shapes = {}
        for story, arr in data.items():  # one story in memory at a time (data may be lazy)
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            np.save(self._path / f"{story}.npy", arr)
            shapes[story] = list(arr.shape)
        (self._path / "_index.json").write_text(json.dumps({"stories": list(data), "shapes": shapes}))

    def _exists(self) -> bool:
        return (self._path / "_index.json").exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "mmap_mode": self._mmap_mode}


class StudyDataset(AbstractDataset[Any, Any]):
    """A raw study on disk, read by the reader registered under ``reader``.

    Parameters
    ----------
    root : the study's root directory.
    reader : name in :data:`brainalign.io.readers.READERS`.
    options : keyword options of the reader.
    download : when the study folder is missing or incomplete, fetch it from the reader's
        ``source`` (:mod:`brainalign.io.download`; needs internet). Default: no.
    """

    def __init__(self, root: str, reader: str, options: dict | None = None,
                 download: bool = False, metadata: dict | None = None):
        from .readers import get_reader

        self._root = Path(root)
        self._reader_cls = get_reader(reader)
        self._reader = reader
        self._options = options or {}
        self._download = bool(download)
        self.metadata = metadata

    def load(self):
        reader = self._reader_cls(self._root, **self._options)
        if self._download:
            from .download import fetch
            from .readers.base import MissingDataError

            try:
                reader.check()
            except MissingDataError:
                fetch(getattr(reader, "source", None), self._root, reader.name)
        return reader

    def save(self, data) -> None:
        from ..core.synthetic.study import SimulatedStudy, write_study

        if not isinstance(data, SimulatedStudy):
            raise DatasetError(f"{self._root}: only a simulated study can be written, got {type(data)}")
        write_study(data, self._root)

    def _exists(self) -> bool:
        try:
            self._reader_cls(self._root, **self._options).check()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not there"
            return False

    def _describe(self) -> dict[str, Any]:
        return {"root": str(self._root), "reader": self._reader, "options": self._options}


class NiftiDataset(AbstractDataset[Any, Any]):
    """A NIfTI image (nibabel) at ``filepath``; loads a ``nibabel.Nifti1Image``."""

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._path = Path(filepath)
        self.metadata = metadata

    def load(self):
        import nibabel as nib

        if not self._path.exists():
            raise DatasetError(f"{self._path}: no such NIfTI file")
        return nib.load(self._path)

    def save(self, data) -> None:
        import nibabel as nib

        self._path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(data, self._path)

    def _exists(self) -> bool:
        return self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}
