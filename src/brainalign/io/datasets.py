"""Kedro datasets named by the catalog.

* :class:`NpyStoriesDataset` - a folder of float32 NPY files, one per story, loaded as
  memory maps (``dict story -> array``); an ``_index.json`` written last marks it complete.
  Keys ``"<fold>/<story>"`` (features fitted per outer fold, the fold rule) are sub-folders.
* :class:`StudyDataset` - a raw study directory read by a registered reader (load gives the
  reader); saving a :class:`~brainalign.core.synthetic.study.SimulatedStudy` writes it in real formats.
* :class:`FigureDataset` - kedro-datasets' ``MatplotlibDataset`` (saves a figure as PNG) whose load
  gives the saved file (:class:`FigureFile`: path and pixel size), so that the report index can
  read a figure back.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.matplotlib import MatplotlibDataset


def check_safe_key(key: str, where: str = "") -> str:
    """``key`` (a story, or ``<fold>/<story>``) if every ``/``-separated part is a plain file name:
    not empty, not ``.`` or ``..``, no backslash, no NUL, not absolute; otherwise a DatasetError.
    Names from configuration and files never become paths outside their folder."""
    parts = str(key).split("/")
    if (str(key).startswith("/") or any(p in ("", ".", "..") for p in parts)
            or any(c in str(key) for c in ("\\", "\x00", ":"))):
        raise DatasetError(f"{where}: {key!r} cannot be a file name here (it would point outside the folder, "
                           "or is empty); rename the story, subject or condition")
    return str(key)


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
        info = json.loads(index.read_text())
        out = {}
        for s in info["stories"]:
            f = self._path / f"{check_safe_key(s, str(self._path))}.npy"
            try:
                arr = np.load(f, mmap_mode=self._mmap_mode)
            except (OSError, ValueError, EOFError) as exc:
                raise DatasetError(f"{f}: cannot be read ({exc}); the file is damaged or was written "
                                   "incompletely: run the node that writes it again") from exc
            want = info.get("shapes", {}).get(s)
            if want is not None and list(arr.shape) != list(want):
                raise DatasetError(f"{f}: shape {list(arr.shape)}, but {index} says {want}; the folder "
                                   "holds files of two runs: run the node that writes it again")
            out[s] = arr
        return out

    def save(self, data: dict[str, np.ndarray]) -> None:
        if self._path.exists():
            shutil.rmtree(self._path)
        self._path.mkdir(parents=True)
        shapes = {}
        for story, arr in data.items():  # one story in memory at a time (data may be lazy)
            check_safe_key(story, str(self._path))
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            (self._path / f"{story}.npy").parent.mkdir(parents=True, exist_ok=True)  # "<fold>/<story>" keys
            np.save(self._path / f"{story}.npy", arr)
            shapes[story] = list(arr.shape)
        # the index is the completion marker: written last, under a temporary name, then renamed
        tmp = self._path / "_index.json.partial"
        tmp.write_text(json.dumps({"stories": list(data), "shapes": shapes}))
        tmp.replace(self._path / "_index.json")

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
        # written beside the final folder and renamed when complete: a crash mid-way never leaves a
        # half-written study that a later run would take for a finished one
        tmp = self._root.with_name(self._root.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        write_study(data, tmp)
        if self._root.exists():
            old = self._root.with_name(self._root.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            self._root.replace(old)
            tmp.replace(self._root)
            shutil.rmtree(old)
        else:
            tmp.replace(self._root)

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


class FigureFile:
    """A figure saved as PNG: ``path`` (as the catalog gives it), ``width`` and ``height`` in pixels."""

    def __init__(self, path: str, width: int, height: int):
        self.path, self.width, self.height = str(path), int(width), int(height)

    def __repr__(self) -> str:
        return f"FigureFile({self.path!r}, {self.width}x{self.height})"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file from its IHDR chunk; a DatasetError naming the file otherwise."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise DatasetError(f"{path}: not a PNG file (the figure datasets save PNG; was it written by another tool?)")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


class FigureDataset(MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` (same arguments; saves a figure, PNG by the file name) whose
    load returns a :class:`FigureFile` instead of refusing: the file's path and pixel size."""

    def load(self) -> FigureFile:  # type: ignore[override]
        path = Path(str(self._get_load_path()))
        if not path.is_file():
            raise DatasetError(f"{path}: no such figure file (run the node that draws it first)")
        width, height = png_size(path)
        return FigureFile(str(path), width, height)
