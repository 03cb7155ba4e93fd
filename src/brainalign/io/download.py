"""Optional download of a public dataset into a study root (for users with internet).

A reader declares where its data come from in ``source`` (see :class:`DatasetSource`). The
``download_study`` node of data_prep (present when ``study.download`` is true) calls
:func:`ensure_study`, which calls :func:`fetch` when the reader's ``check()`` fails; nothing else
downloads (building pipelines and loading ``raw_study`` never do). Offline, :func:`fetch` fails at
once (a 3 s connection test) with a message saying where to put the files; it never half-downloads
silently.

Tools, in order: ``openneuro-py`` (``pip install openneuro-py``), then the ``datalad`` command.
"""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .readers.base import MissingDataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset is published.

    Attributes
    ----------
    openneuro : OpenNeuro accession (``ds003020``), or ``None``.
    datalad : URL of a DataLad/git-annex dataset, or ``None``.
    include : glob patterns of the files to fetch (empty: everything; mind the size).
    url : a page to download from by hand (shown in messages).
    size : human-readable size of what ``include`` selects.
    """

    openneuro: str | None = None
    datalad: str | None = None
    include: tuple[str, ...] = field(default_factory=tuple)
    url: str = ""
    size: str = ""


def online(host: str = "openneuro.org", port: int = 443, timeout: float = 3.0) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch(source: DatasetSource | None, root: str | Path, name: str) -> Path:
    """Download ``source`` into ``root``; returns ``root``.

    Raises
    ------
    MissingDataError : no source, no network, or no download tool; the message says where to put
        the files by hand.
    """
    root = Path(root)
    by_hand = (f"Download it by hand ({source.url or 'see docs/datasets/' + name + '.md'}"
               f"{', ' + source.size if source and source.size else ''}) and put it at {root}, "
               f"or point BRAINALIGN_{name.upper()}_DIR at it." if source else
               f"Put the files at {root} (see docs/datasets/{name}.md).")
    if source is None or not (source.openneuro or source.datalad):
        raise MissingDataError(f"{name}: no download source is known. {by_hand}")
    host = "openneuro.org" if source.openneuro else (source.datalad or "github.com").split("/")[2]
    if not online(host):
        raise MissingDataError(f"{name}: cannot reach {host} (offline?), so the dataset cannot be "
                               f"downloaded. {by_hand}")
    root.mkdir(parents=True, exist_ok=True)
    if source.openneuro:
        try:
            import openneuro  # type: ignore[import-not-found]
        except ImportError:
            openneuro = None
        if openneuro is not None:
            log.info("downloading %s (%s) from OpenNeuro into %s", source.openneuro, source.size, root)
            openneuro.download(dataset=source.openneuro, target_dir=str(root),
                               include=list(source.include) or None)
            return root
    if source.datalad and shutil.which("datalad"):
        log.info("installing %s with datalad into %s", source.datalad, root)
        subprocess.run(["datalad", "install", "-s", source.datalad, str(root)], check=True)
        for pattern in source.include or (".",):
            subprocess.run(["datalad", "get", pattern], cwd=root, check=True)
        return root
    raise MissingDataError(f"{name}: no download tool: pip install openneuro-py (or install datalad). "
                           f"{by_hand}")


def ensure_study(reader: str, root: str | Path, options: dict | None = None) -> dict:
    """Fetch the study that the reader registered as ``reader`` reads at ``root`` (with reader
    ``options``) when the reader's ``check()`` fails; a small JSON-able report of what was done.

    Returns
    -------
    dict with study, root, status (``"present"`` or ``"fetched"``), source (accession or URL,
    or None) and include (the patterns fetched; empty when present).

    Raises
    ------
    MissingDataError : the study is missing and cannot be fetched (see :func:`fetch`), or is still
        incomplete after fetching (the reader's message).
    """
    from .readers import get_reader

    cls = get_reader(reader)
    study = cls(root, **(options or {}))
    source = getattr(study, "source", None)
    report = {"study": study.name, "root": str(root), "status": "present",
              "source": (source.openneuro or source.datalad or source.url or None) if source else None,
              "include": []}
    try:
        study.check()
        log.info("%s study present at %s: nothing to download", study.name, root)
        return report
    except FileNotFoundError as exc:  # MissingDataError, or a reader's plain FileNotFoundError
        log.info("%s study missing or incomplete at %s (%s): downloading", study.name, root, exc)
    fetch(source, root, study.name)
    cls(root, **(options or {})).check()  # a fresh reader: readers cache what they listed
    return {**report, "status": "fetched", "include": list(source.include) if source else []}
