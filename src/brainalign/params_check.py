"""Parameters checked when a run starts, before any data is read (docs/reliability.md).

``conf/base/parameters.yml`` is the one place where every parameter and its default live; an env's
``parameters.yml`` and ``--params`` may only set keys that exist there. A key that does not (a
typo such as ``encoding.backnd``) is an error naming the nearest valid keys, instead of being
ignored. The maps whose keys are the user's own names (conditions, reader options, per-method
options) are open. :func:`check_values` then checks choices and ranges that would otherwise fail
late (after embedding) or not at all.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

#: maps whose keys are names the user chooses (not checked against the base parameters)
OPEN_MAPS = ("conditions", "study.options", "task_tuning.method_params", "task_tuning.variants", "task_tuning.lr",
             "removal.method_params")

BACKENDS = ("numpy", "torch", "torch_cuda")
CV_METHODS = ("auto", "leave_stories_out", "contiguous_blocks", "held_out_stories")


#: names that become file and folder names (conditions, stories, subjects, tasks)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


class ParameterError(ValueError):
    """A parameter that is unknown, of the wrong type or out of range; the message names it."""


def base_parameters(conf_source: str | Path) -> dict:
    """The keys and defaults of ``<conf_source>/base/parameters.yml`` (interpolations left as text)."""
    path = Path(conf_source) / "base" / "parameters.yml"
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def unknown_keys(params: dict, reference: dict, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys of ``params`` that ``reference`` does not have, as (dotted key, nearest valid keys).

    Recurses where both sides are maps; a map in ``OPEN_MAPS``, or where the reference holds a
    value that is not a map (``null``, a list), is not looked into.
    """
    out = []
    for key, value in params.items():
        path = f"{prefix}{key}"
        if key not in reference:
            valid = [str(k) for k in reference]
            near = difflib.get_close_matches(str(key), valid, n=3, cutoff=0.6)
            out.append((path, [f"{prefix}{k}" for k in near]))
            continue
        ref = reference[key]
        if isinstance(value, dict) and isinstance(ref, dict) and path not in OPEN_MAPS:
            out += unknown_keys(value, ref, f"{path}.")
    return out


def _get(params: dict, dotted: str, default: Any = None) -> Any:
    cur: Any = params
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _int_list(value, name: str, minimum: int) -> list[int]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f"{name} must be a non-empty list of integers, got {value!r}")
    try:
        ints = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a list of integers, got {value!r}") from None
    if any(float(v) != i for v, i in zip(value, ints)) or min(ints) < minimum:
        raise ParameterError(f"{name} must hold integers >= {minimum}, got {value!r}")
    if len(set(ints)) != len(ints):
        raise ParameterError(f"{name} holds a value twice: {value!r}")
    return ints


def check_values(params: dict) -> None:
    """Choices and ranges of the parameters that a run uses; a ParameterError names the key."""
    backend = _get(params, "encoding.backend", "numpy")
    if backend not in BACKENDS:
        raise ParameterError(f"encoding.backend must be one of {BACKENDS}, got {backend!r}")
    from .core.encoding.solvers import SOLVERS

    solver = _get(params, "encoding.solver", "himalaya")
    if solver not in SOLVERS:
        raise ParameterError(f"encoding.solver must be one of {SOLVERS}, got {solver!r}")
    objective = _get(params, "brain_tuning.objective", "heads")
    if objective not in ("heads", "ridge_cv"):
        raise ParameterError(f"brain_tuning.objective must be heads or ridge_cv, got {objective!r}")
    extraction = _get(params, "embedding.extraction", "exact")
    if extraction not in ("exact", "strided", "auto"):
        raise ParameterError(f"embedding.extraction must be exact, strided or auto, got {extraction!r}")
    a = _get(params, "encoding.alphas") or {}
    try:
        low, high, n = float(a.get("low", 1e-2)), float(a.get("high", 1e8)), int(a.get("n", 21))
    except (TypeError, ValueError):
        raise ParameterError(f"encoding.alphas needs numbers low, high and an integer n; got {a!r}") from None
    if not (0 < low < high) or n < 1:
        raise ParameterError(f"encoding.alphas must have 0 < low < high and n >= 1; got {a!r}")
    if "layers" in params:
        _int_list(params["layers"], "layers", 0)
    if _get(params, "embedding.delays") is not None:
        _int_list(_get(params, "embedding.delays"), "embedding.delays", 0)
    method = _get(params, "cv.method", "auto")
    if method not in CV_METHODS:
        raise ParameterError(f"cv.method must be one of {CV_METHODS}, got {method!r}")
    stories = _get(params, "study.stories", "all")
    if stories not in (None, "all"):
        if not isinstance(stories, (list, tuple)) or not stories:
            raise ParameterError(f"study.stories must be 'all' or a non-empty list of story names, got {stories!r}")
        dup = sorted({s for s in stories if list(stories).count(s) > 1})
        if dup:
            raise ParameterError(f"study.stories names {dup} more than once")
    subjects = _get(params, "study.subjects", "auto")
    if subjects not in (None, "auto") and (not isinstance(subjects, (list, tuple)) or not subjects):
        raise ParameterError(f"study.subjects must be 'auto' or a non-empty list of subject ids, got {subjects!r}")
    names = [("conditions", k) for k, v in (params.get("conditions") or {}).items() if v is not None]
    for key in ("study.stories", "study.subjects", "task_tuning.tasks"):
        v = _get(params, key)
        if isinstance(v, (list, tuple)):
            names += [(key, x) for x in v]
    for key, name in names:
        if not SAFE_NAME.match(str(name)) or ".." in str(name):
            raise ParameterError(f"{key}: {name!r} cannot be used: names become file and folder names, so they "
                                 "must start with a letter or digit and hold only letters, digits and _ . + = - "
                                 "(no '/', '..' or spaces)")
    for key in ("study.trim_start", "study.trim_end"):
        v = _get(params, key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ParameterError(f"{key} must be an integer >= 0 (TRs), got {v!r}")


def check_parameters(params: dict, conf_source: str | Path) -> None:
    """Raise a ParameterError listing every unknown key (with the nearest valid ones), then check
    values (:func:`check_values`)."""
    bad = unknown_keys(params, base_parameters(conf_source))
    if bad:
        lines = [f"  {k}" + (f" (did you mean {' or '.join(near)}?)" if near else "") for k, near in bad]
        raise ParameterError("unknown parameters (they are not in conf/base/parameters.yml, where every "
                             "parameter and its default are listed):\n" + "\n".join(lines))
    check_values(params)
