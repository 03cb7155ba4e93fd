"""The experiment grid (subjects x conditions x layers) read from the active parameters.

Kedro builds pipelines before it runs them, so the grid must be known at registration time: the
project hook stores the parameters of the active environment (``--env``, ``--params``) when the
context is created, and :func:`active_parameters` falls back to reading ``conf/`` directly (env
from ``KEDRO_ENV``) when pipelines are built outside a session.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import partial, update_wrapper
from pathlib import Path

log = logging.getLogger(__name__)
_ACTIVE: dict | None = None


def set_active_parameters(params: dict) -> None:
    global _ACTIVE
    _ACTIVE = params


def active_parameters() -> dict:
    if _ACTIVE is not None:
        return _ACTIVE
    from kedro.config import OmegaConfigLoader
    from kedro.framework.project import settings

    conf = Path.cwd() / settings.CONF_SOURCE
    loader = OmegaConfigLoader(str(conf), env=os.environ.get("KEDRO_ENV"),
                               **{k: v for k, v in settings.CONFIG_LOADER_ARGS.items()})
    return loader["parameters"]


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_name(name: str) -> str:
    """A namespace-safe version of a subject or condition id (letters, digits, _ and -)."""
    return _SAFE.sub("_", str(name))


@dataclass(frozen=True)
class Grid:
    subjects: tuple[str, ...]
    conditions: tuple[str, ...]
    layers: tuple[int, ...]
    simulate: bool = False
    brain_maps: bool = False
    flatmap: bool = False

    @staticmethod
    def layer_name(layer: int) -> str:
        return f"layer_{int(layer)}"


def grid_from_params(params: dict) -> Grid:
    """Subjects (``study.subjects``: a list, or ``auto`` to list the study directory; the
    simulated study names them from ``synthetic.n_subjects``), conditions (keys of
    ``conditions``) and ``layers``."""
    study = params.get("study", {})
    simulate = bool(study.get("simulate", False))
    subjects = study.get("subjects", "auto")
    if simulate:
        subjects = [f"sub-{i:02d}" for i in range(1, int(params["synthetic"]["n_subjects"]) + 1)]
    elif subjects == "auto":
        from ..io.readers import get_reader

        reader = get_reader(study["reader"])(study["root"], **(study.get("options") or {}))
        try:
            try:
                subjects = reader.subjects()
            except FileNotFoundError:
                if not study.get("download"):
                    raise
                from ..io.download import fetch

                fetch(getattr(reader, "source", None), study["root"], reader.name)
                subjects = reader.subjects()
        except FileNotFoundError as exc:
            log.warning("cannot list the subjects of the study (%s); the subject pipelines are empty", exc)
            subjects = []
    for s in subjects:
        if safe_name(s) != s:
            raise ValueError(f"subject id {s!r} has characters other than letters, digits, _ and -")
    conditions = list(params.get("conditions", {}))
    for c in conditions:
        if safe_name(c) != c:
            raise ValueError(f"condition name {c!r} has characters other than letters, digits, _ and -")
    return Grid(tuple(subjects), tuple(conditions), tuple(int(x) for x in params.get("layers", [])),
                simulate, bool((params.get("brain_maps") or {}).get("enabled", False)),
                bool(((params.get("brain_maps") or {}).get("pycortex") or {}).get("subject")))


def bind(func, **kwargs):
    """``partial`` that keeps the function's name and docstring (for node functions whose
    subject, condition or layer is fixed when the grid is built)."""
    return update_wrapper(partial(func, **kwargs), func)
