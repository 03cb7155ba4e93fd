"""Kedro datasets named by the catalog.

* :class:`NpyStoriesDataset` - a folder of float32 NPY files, one per story, loaded as
  memory maps (``dict story -> array``); an ``_index.json`` written last marks it complete.
  Keys ``"<fold>/<story>"`` (features fitted per outer fold, the fold rule) are sub-folders.
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
            (self._path / f"{story}.npy").parent.mkdir(parents=True, exist_ok=True)  # "<fold>/<story>" keys
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
    download : accepted for catalogs that still pass it, and ignored: loading never downloads.
        Fetching a missing study is the ``download_study`` node of data_prep (present when
        ``study.download`` is true; :func:`brainalign.io.download.ensure_study`).
    """

    def __init__(self, root: str, reader: str, options: dict | None = None,
                 download: bool = False, metadata: dict | None = None):
        from .readers import get_reader

        self._root = Path(root)
        self._reader_cls = get_reader(reader)
        self._reader = reader
        self._options = options or {}
        self.metadata = metadata  # download: ignored (see the class docstring)

    def load(self):
        return self._reader_cls(self._root, **self._options)

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


class ModelDirectory:
    """A model or adapter directory on disk (what :class:`ModelDirectoryDataset` loads).

    Attributes
    ----------
    path : the directory; layout : ``"model"`` or ``"adapter"``; info : its ``brainalign.json``.
    """

    def __init__(self, path: str | Path):
        from ..core.representations.tuned import check_model_directory, read_info

        self.path = Path(path)
        self.layout = check_model_directory(self.path)
        self.info = read_info(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"ModelDirectory({str(self.path)!r}, {self.layout})"


class ModelDirectoryDataset(AbstractDataset[Any, ModelDirectory]):
    """A tuned model or adapter written by a pipeline of this project (safetensors only).

    ``save`` takes an object with ``save_pretrained`` (a transformers or peft model; a
    ``(model, tokenizer)`` pair saves both, and an optional third item, a dict, is written as
    ``brainalign.json``) and writes it with safetensors into a fresh directory that replaces the
    old one only when complete. ``load`` gives a :class:`ModelDirectory` (checked: weights present,
    never pickles).
    """

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> ModelDirectory:
        try:
            return ModelDirectory(self._path)
        except (FileNotFoundError, ValueError) as exc:
            raise DatasetError(str(exc)) from exc

    def save(self, data) -> None:
        items = list(data) if isinstance(data, (tuple, list)) else [data]
        tmp = self._path.with_name(self._path.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for item in items:
            if isinstance(item, dict):
                (tmp / "brainalign.json").write_text(json.dumps(item, indent=2, default=str))
            else:
                try:
                    item.save_pretrained(tmp, safe_serialization=True)
                except TypeError:  # tokenizers take no safe_serialization
                    item.save_pretrained(tmp)
        if self._path.exists():
            shutil.rmtree(self._path)
        tmp.replace(self._path)

    def _exists(self) -> bool:
        return self._path.is_dir() and any(self._path.iterdir())

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
