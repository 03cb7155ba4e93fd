"""Representations as plug-ins: one module per condition kind, registered in :data:`KINDS`.

A condition is ``{<name>: {kind: <kind>, ...}}`` in the parameters (``kind`` defaults to ``text``):

``text``      a transformers text model (:mod:`.text`)
``speech``    Wav2Vec2, HuBERT or the Whisper encoder on the story audio (:mod:`.speech`)
``lowlevel``  word rate, phoneme rate, sound power, spectral envelope, dataset predictors (:mod:`.lowlevel`)
``control``   ``random_init`` or ``no_position`` versions of a text model (:mod:`.control`)
``tuned``     a model or adapter directory written by a pipeline of this project (:mod:`.tuned`)
``derived``   a registered transform of another condition's features, fitted by the fold rule (:mod:`.derived`)

See :mod:`.base` for what a kind offers and the feature levels.
"""
from __future__ import annotations

from .base import DESCRIPTION_COLUMNS, EMBEDDING_OVERRIDES, ConditionError, RepresentationKind, input_argument
from .control import ControlKind
from .derived import DerivedKind
from .lowlevel import LowlevelKind
from .speech import SpeechKind
from .text import TextKind
from .tuned import TunedKind

#: kind name -> kind (add a kind by adding a module and a line here)
KINDS: dict[str, RepresentationKind] = {k.name: k for k in (
    TextKind(), SpeechKind(), LowlevelKind(), ControlKind(), TunedKind(), DerivedKind())}


def get_kind(name: str) -> RepresentationKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConditionError(f"unknown condition kind {name!r}; registered: {sorted(KINDS)}") from None


def parse_conditions(conditions: dict | None) -> dict[str, tuple[RepresentationKind, dict]]:
    """Validated conditions: name -> (kind, parameters with ``kind`` filled in); a condition set
    to None (``random_init: null`` in an env) is left out. Checks every
    condition's parameters, and that ``derived`` sources exist and form no cycle. Pure: reads no
    file and loads no model."""
    out: dict[str, tuple[RepresentationKind, dict]] = {}
    for name, params in (conditions or {}).items():
        if params is None:  # an env drops a condition inherited from base by setting it to null
            continue
        if not isinstance(params, dict):
            raise ConditionError(f"condition {name!r}: expected a mapping of parameters, got {params!r}")
        params = dict(params)
        kind = get_kind(params.setdefault("kind", "text"))
        out[str(name)] = (kind, kind.check(str(name), params))
    for name, (kind, params) in out.items():
        for ref in ("source", "against"):
            other = params.get(ref) if kind.name == "derived" else None
            if other is not None and other not in out:
                raise ConditionError(f"condition {name!r}: {ref} {other!r} is not a condition (conditions: "
                                     f"{sorted(out)})")
    for name, (kind, params) in out.items():   # a property is removed from word features
        if kind.name == "derived" and params.get("property"):
            src_kind, src_params = out[params["source"]]
            if src_kind.level_of(src_params) != "word":
                raise ConditionError(f"condition {name!r}: property removal works on word features, but its source "
                                     f"{params['source']!r} (kind {src_kind.name}) has {src_kind.level_of(src_params)}-"
                                     f"level features; remove properties from a text, control or tuned condition")
    for name in out:  # no cycles among derived conditions
        seen, cur = {name}, name
        while out[cur][0].name == "derived":
            cur = out[cur][1]["source"]
            if cur in seen:
                raise ConditionError(f"condition {name!r}: derived conditions form a cycle through {cur!r}")
            seen.add(cur)
    return out


def condition_layers(parsed: dict, default_layers) -> dict[str, tuple[int, ...]]:
    """Layers scored per condition (a derived condition's default: its source's)."""
    default_layers = tuple(int(x) for x in default_layers)
    out: dict[str, tuple[int, ...]] = {}

    def layers_of(name: str) -> tuple[int, ...]:
        if name not in out:
            kind, params = parsed[name]
            if kind.name == "derived" and params.get("layers") is None:
                out[name] = layers_of(params["source"])
            else:
                out[name] = kind.layers(name, params, default_layers)
        return out[name]

    for name in parsed:
        layers_of(name)
    for name, (kind, params) in parsed.items():
        if kind.name == "derived":
            missing = sorted(set(out[name]) - set(out[params["source"]]))
            if missing:
                raise ConditionError(f"condition {name!r}: layers {missing} are not layers of its source "
                                     f"{params['source']!r} ({list(out[params['source']])})")
            if params.get("against"):
                against_layers = out[params["against"]]
                params.setdefault("against_layer", against_layers[0])
                if int(params["against_layer"]) not in against_layers:
                    raise ConditionError(f"condition {name!r}: against_layer {params['against_layer']} is not a "
                                         f"layer of {params['against']!r} ({list(against_layers)})")
    return out


def describe_conditions(conditions: dict | None, infos: dict | None = None) -> "pd.DataFrame":  # noqa: F821
    """``conditions.csv``: one row per condition (:data:`DESCRIPTION_COLUMNS`; empty where a column
    does not apply). ``infos``: condition -> the ``brainalign.json`` of its tuned model directory,
    which fills the description fields the parameters leave out."""
    import pandas as pd

    infos = infos or {}
    rows = [kind.describe(name, params, infos.get(name)) if kind.name == "tuned" else kind.describe(name, params)
            for name, (kind, params) in parse_conditions(conditions).items()]
    return pd.DataFrame(rows, columns=DESCRIPTION_COLUMNS).fillna("")


__all__ = ["KINDS", "get_kind", "parse_conditions", "condition_layers", "describe_conditions",
           "RepresentationKind", "ConditionError", "EMBEDDING_OVERRIDES", "DESCRIPTION_COLUMNS", "input_argument"]
