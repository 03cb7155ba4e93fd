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
from dataclasses import dataclass, field
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
class ConditionSpec:
    """One condition as the grid sees it (parameters only; nothing loaded).

    kind : the kind's name; level : ``word``, ``tr`` or ``fold`` (core.representations.base);
    layers : layers scored; inputs : catalog datasets its extraction reads; params : validated
    parameters (``kind`` filled in; a derived condition's ``against_layer`` resolved).
    """

    name: str
    kind: str
    level: str
    layers: tuple[int, ...]
    inputs: tuple[str, ...]
    params: dict = field(compare=False, hash=False)


@dataclass(frozen=True)
class Grid:
    subjects: tuple[str, ...]
    conditions: tuple[str, ...]
    layers: tuple[int, ...]
    simulate: bool = False
    brain_maps: bool = False
    flatmap: bool = False
    specs: tuple[ConditionSpec, ...] = ()
    download: bool = False  # data_prep fetches a missing real study first (study.download)
    #: variance partitioning bands (band name, condition, layer), empty when off
    partition: tuple[tuple[str, str, int], ...] = ()
    #: task-tuning cells (condition, task, method), empty when off
    tuning: tuple[tuple[str, str, str], ...] = ()
    #: property-removal conditions (condition, source, property, method), empty when off
    removal: tuple[tuple[str, str, str, str], ...] = ()
    #: brain-tuning cells (condition, source, method), empty when off
    brain: tuple[tuple[str, str, str], ...] = ()
    #: the subjects brain-tuned jointly (a head each); the grid's other subjects are left out
    brain_subjects: tuple[str, ...] = ()
    #: the ``brain_tuning`` parameters (data-efficiency layer, ...)
    brain_params: dict = field(default_factory=dict, compare=False, hash=False)
    #: decoding cells (condition, layer), empty when off
    decoding: tuple[tuple[str, int], ...] = ()

    @staticmethod
    def layer_name(layer: int) -> str:
        return f"layer_{int(layer)}"

    def spec(self, condition: str) -> ConditionSpec:
        for s in self.specs:
            if s.name == condition:
                return s
        # grids built by hand in tests: a text condition at the grid's layers
        return ConditionSpec(condition, "text", "word", tuple(self.layers), ("words",), {"kind": "text"})

    def layers_of(self, condition: str) -> tuple[int, ...]:
        return self.spec(condition).layers

    def cells(self) -> list[tuple[str, int]]:
        """(condition, layer) pairs of the grid, in condition order."""
        return [(c, k) for c in self.conditions for k in self.layers_of(c)]

    def needs(self, dataset: str) -> bool:
        """Whether a condition's extraction reads ``dataset`` (data_prep then makes it)."""
        return any(dataset in s.inputs for s in self.specs)


def grid_from_params(params: dict) -> Grid:
    """Subjects (``study.subjects``: a list, or ``auto`` to list the study directory; the
    simulated study names them from ``synthetic.n_subjects``), conditions (keys of
    ``conditions``) and ``layers``. Pure: ``auto`` only lists folders (a missing or empty study
    gives no subjects and a warning), never downloads; ``download`` (``study.download``, real
    studies) puts the ``download_study`` node in data_prep."""
    study = params.get("study", {})
    simulate = bool(study.get("simulate", False))
    subjects = study.get("subjects", "auto")
    if simulate:
        subjects = [f"sub-{i:02d}" for i in range(1, int(params["synthetic"]["n_subjects"]) + 1)]
    elif subjects == "auto":
        # building pipelines is pure: list folders only, never read a data file or download
        reader = _study_reader(study)
        try:
            subjects, why = reader.subjects(), "it has no subjects"
        except FileNotFoundError as exc:
            subjects, why = [], str(exc)
        if not subjects:
            log.warning(
                "the %s study at %s is missing or empty (%s): the subject pipelines are empty. Run "
                "`kedro run --pipeline data_prep` first (with the same --env; it downloads the study when "
                "study.download / globals download is true, else put the files there by hand), then "
                "run again.", study.get("reader"), study.get("root"), why)
            subjects = []
    for s in subjects:
        if safe_name(s) != s:
            raise ValueError(f"subject id {s!r} has characters other than letters, digits, _ and -")
    tuning = tuning_cells(params.get("task_tuning") or {})
    specs = condition_specs(params)
    removal = removal_cells(params.get("removal") or {})
    brain = brain_tuning_cells(params)
    return Grid(tuple(subjects), tuple(s.name for s in specs), tuple(int(x) for x in params.get("layers", [])),
                simulate, bool((params.get("brain_maps") or {}).get("enabled", False)),
                bool(((params.get("brain_maps") or {}).get("pycortex") or {}).get("subject")), tuple(specs),
                download=bool(study.get("download")) and not simulate,
                partition=partition_bands(params.get("variance_partition") or {}, specs), tuning=tuning,
                removal=removal, brain=brain, brain_subjects=brain_tuned_subjects(params, subjects) if brain else (),
                brain_params=dict(params.get("brain_tuning") or {}) if brain else {},
                decoding=decoding_cells(params.get("decoding") or {}, specs))


def _study_reader(study: dict):
    """The reader of ``study`` (``study`` parameters: reader, root, options); nothing is read yet."""
    from ..io.readers import get_reader

    return get_reader(study["reader"])(study["root"], **(study.get("options") or {}))


def check_study_present(params: dict) -> None:
    """Raise before a run when a real study is missing and nothing will fetch it.

    A simulated study is made by the run, and ``study.download`` puts a node that fetches it, so
    both pass. Otherwise the reader's ``check()`` and ``subjects()`` must succeed: a missing or
    empty folder is a :class:`~brainalign.io.readers.base.MissingDataError` naming the folder and
    what to set, raised before any node runs, so no earlier output is touched.
    """
    study = params.get("study", {}) or {}
    if study.get("simulate") or study.get("download") or not study.get("reader"):
        return
    from ..io.readers.base import MissingDataError

    reader = _study_reader(study)
    try:
        reader.check()
        subjects = reader.subjects()
    except FileNotFoundError as exc:
        raise MissingDataError(f"the {study['reader']} study is missing: {exc} Nothing was run.") from exc
    if not subjects:
        raise MissingDataError(f"the {study['reader']} study at {study['root']} has no subjects; nothing was run")


def _registered_pair(params: dict, section: str, a: str, reg_a: dict, b: str, reg_b: dict) -> tuple[list, list]:
    """``params[a]`` and ``params[b]`` as lists, every name checked against its registry, neither
    empty (``section`` names the parameter block in the errors)."""
    first, second = list(params.get(a) or []), list(params.get(b) or [])
    unknown = [x for x in first if x not in reg_a] + [x for x in second if x not in reg_b]
    if unknown:
        raise ValueError(f"{section}: unknown {a} or {b} {unknown} ({a}: {sorted(reg_a)}; {b}: {sorted(reg_b)})")
    if not first or not second:
        raise ValueError(f"{section} is enabled but {section}.{a} or {section}.{b} is empty")
    return first, second


def tuning_variants(params: dict) -> dict[str, tuple[str, dict]]:
    """``task_tuning.variants``: variant name -> (registered method, its parameters). A variant is a
    method with its own parameters, e.g. ``partial-25: {method: partial, fraction: 0.25}``, so one
    run can tune several proportions of parameters; its parameters replace
    ``method_params[<method>]``. Names must be new (not a registered method) and path-safe."""
    from ..core.tasks.methods import METHODS

    out = {}
    for name, spec in dict(params.get("variants") or {}).items():
        spec = dict(spec or {})
        method = spec.pop("method", None)
        if method not in METHODS:
            raise ValueError(f"task_tuning.variants.{name}: 'method' must be one of {sorted(METHODS)}, got {method!r}")
        if name in METHODS or _SAFE.search(str(name)):
            raise ValueError(f"task_tuning.variants: {name!r} must differ from the registered methods and use only "
                             "letters, digits, _ and -")
        out[str(name)] = (str(method), spec)
    return out


def tuning_method(params: dict, name: str) -> tuple[str, dict]:
    """(registered method, method parameters) of a ``task_tuning.methods`` entry: a method (its
    ``method_params``) or a variant (:func:`tuning_variants`)."""
    variants = tuning_variants(params)
    if name in variants:
        return variants[name]
    return name, dict((params.get("method_params") or {}).get(name) or {})


def tuning_cells(params: dict) -> tuple[tuple[str, str, str], ...]:
    """(condition, task, method) for every task x method of ``task_tuning`` when it is enabled,
    ``method`` a registered method or a variant (``task_tuning.variants``) and the condition
    ``<base>-<method or variant>-<task>``; checked against the task and method registries (reads no
    file)."""
    if not params.get("enabled"):
        return ()
    from ..core.tasks.methods import METHODS
    from ..core.tasks.readers import TASKS
    from ..core.tasks.run import condition_name

    known = {**METHODS, **tuning_variants(params)}
    tasks, methods = _registered_pair(params, "task_tuning", "tasks", TASKS, "methods", known)
    base = params.get("base_model", "all-MiniLM-L6-v2")
    return tuple((condition_name(base, m, t), t, m) for t in tasks for m in methods)


def tuned_conditions(params: dict) -> dict:
    """The encoding conditions of the task-tuning cells (``task_tuning.as_conditions``, default
    true): kind ``tuned`` reading ``<condition>.tuned_model``, with ``task_tuning.condition``
    (e.g. layers, context_words) applied to each."""
    tt = params.get("task_tuning") or {}
    if not tt.get("enabled") or not tt.get("as_conditions", True):
        return {}
    extra = dict(tt.get("condition") or {})
    return {cond: {"kind": "tuned", "base_model": str(tt.get("base_model", "all-MiniLM-L6-v2")),
                   "method": tuning_method(tt, method)[0], "task": task, **extra}
            for cond, task, method in tuning_cells(tt)}


def brain_sources(params: dict) -> list[str]:
    """``brain_tuning.source``: a condition name or a list of them (each a text or speech condition)."""
    src = (params.get("brain_tuning") or {}).get("source")
    return [str(x) for x in src] if isinstance(src, (list, tuple)) else ([str(src)] if src else [])


def brain_tuning_cells(params: dict) -> tuple[tuple[str, str, str], ...]:
    """(condition, source, method) for every source x method of ``brain_tuning`` when it is
    enabled: the condition ``<source>-<method>`` (e.g. ``pretrained-brain``,
    ``pretrained-brain-permuted``); each source must be a ``text`` or ``speech`` condition (reads
    no file)."""
    bt = params.get("brain_tuning") or {}
    if not bt.get("enabled"):
        return ()
    from ..core.brain_tuning.run import METHODS

    conds = params.get("conditions") or {}
    sources = brain_sources(params)
    if not sources:
        raise ValueError("brain_tuning is enabled but brain_tuning.source is empty")
    for source in sources:
        if conds.get(source) is None:
            raise ValueError(f"brain_tuning.source {source!r} is not among the conditions "
                             f"{sorted(k for k, v in conds.items() if v)}")
        kind = (conds[source] or {}).get("kind", "text")
        if kind not in ("text", "speech"):
            raise ValueError(f"brain_tuning.source {source!r} is a {kind} condition; brain-tuning tunes a text or "
                             f"speech model")
    methods = list(bt.get("methods") or [])
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"brain_tuning.methods {methods!r}: expected a non-empty list of {list(METHODS)}")
    return tuple((f"{source}-{m}", source, m) for source in sources for m in methods)


def brain_tuned_subjects(params: dict, subjects) -> tuple[str, ...]:
    """``brain_tuning.subjects`` (null: every subject of the grid but the last ``leave_out``),
    checked against the grid."""
    bt = params.get("brain_tuning") or {}
    chosen = bt.get("subjects")
    if chosen is None:
        n_out = int(bt.get("leave_out") or 0)
        if n_out < 0 or (subjects and n_out >= len(subjects)):
            raise ValueError(f"brain_tuning.leave_out {n_out} must leave at least one of the {len(subjects)} "
                             f"subjects to tune on")
        return tuple(subjects[:len(subjects) - n_out])
    chosen = [str(s) for s in chosen]
    if subjects:
        unknown = sorted(set(chosen) - set(subjects))
        if unknown:
            raise ValueError(f"brain_tuning.subjects {unknown} are not subjects of the study ({list(subjects)})")
    if not chosen:
        raise ValueError("brain_tuning.subjects is an empty list; null tunes on every subject")
    return tuple(chosen)


def lowlevel_impact_name(condition: str) -> str:
    """The derived condition that regresses the low-level features out of ``condition``."""
    return f"{condition}-minus-lowlevel"


def brain_conditions(params: dict) -> dict:
    """The ``tuned`` conditions of the brain-tuning cells (model ``<condition>.tuned_model``, per
    fold), at ``brain_tuning.condition.layers``; with ``brain_tuning.lowlevel_impact.enabled`` also
    a derived ``<condition>-minus-lowlevel`` (residual against the low-level condition, fitted per
    fold) of the source and of each brain condition."""
    bt = params.get("brain_tuning") or {}
    cells = brain_tuning_cells(params)
    if not cells:
        return {}
    out = {}
    for cond, src_name, method in cells:
        src = dict(params["conditions"][src_name])
        speech = src.get("kind", "text") == "speech"
        keep = ("window_s", "stride_s", "family") if speech else ("context_words",)
        extra = {k: src[k] for k in keep if k in src}
        extra.update(dict(bt.get("condition") or {}))
        out[cond] = {"kind": "tuned", "modality": "speech" if speech else "text", "base_model": str(src["model"]),
                     "method": method, **extra}
    li = bt.get("lowlevel_impact") or {}
    if li.get("enabled"):
        against = li.get("against", "lowlevel")
        if (params.get("conditions") or {}).get(against) is None:
            raise ValueError(f"brain_tuning.lowlevel_impact.against {against!r} is not among the conditions")
        layers = (bt.get("condition") or {}).get("layers")
        for c in [*brain_sources(params), *list(out)]:
            spec = {"kind": "derived", "source": c, "transform": "residual", "against": against,
                    "against_layer": int(li.get("against_layer", 0))}
            if layers is not None:
                own = out[c].get("layers") if c in out else (params["conditions"][c].get("layers")
                                                              or params.get("layers") or [])
                spec["layers"] = [int(x) for x in layers if int(x) in {int(k) for k in own}]
                if not spec["layers"]:
                    continue   # the source is not scored at any brain-condition layer
            out[lowlevel_impact_name(c)] = spec
    return out


def removal_name(source: str, prop: str, method: str) -> str:
    """The condition a removal makes: ``<source>-removed-<property>-<method>``."""
    return f"{source}-removed-{prop}-{method}"


def removal_cells(params: dict) -> tuple[tuple[str, str, str, str], ...]:
    """(condition, source, property, method) for every property x method of ``removal`` when it is
    enabled; names checked against the annotator and removal-method registries (reads no file)."""
    if not params.get("enabled"):
        return ()
    from ..core.removal.annotators import ANNOTATORS
    from ..core.removal.methods import REMOVERS

    props, methods = _registered_pair(params, "removal", "properties", ANNOTATORS, "methods", REMOVERS)
    if not params.get("source"):
        raise ValueError("removal is enabled but removal.source is empty")
    sources = params["source"] if isinstance(params["source"], (list, tuple)) else [params["source"]]
    return tuple((removal_name(src, p, m), str(src), p, m) for src in sources for p in props for m in methods)


def removal_probe_cells(grid: "Grid") -> list[tuple[str, int]]:
    """(source, layer) pairs probed for every removal property: each source at its removal
    conditions' layers."""
    out = []
    for c, src, *_ in grid.removal:
        out += [(src, k) for k in grid.layers_of(c) if (src, k) not in out]
    return out


def removal_conditions(params: dict) -> dict:
    """The ``derived`` conditions of ``removal`` (one per source x property x method), at
    ``removal.layers`` (null: the source's layers)."""
    rm = params.get("removal") or {}
    out = {}
    for cond, src, prop, method in removal_cells(rm):
        tp = {**dict((rm.get("method_params") or {}).get(method) or {}), "n_bins": int(rm.get("n_bins", 5))}
        spec = {"kind": "derived", "source": src, "transform": method, "property": prop, "transform_params": tp}
        if rm.get("layers") is not None:
            spec["layers"] = [int(x) for x in rm["layers"]]
        out[cond] = spec
    return out


def partition_bands(params: dict, specs: list[ConditionSpec]) -> tuple[tuple[str, str, int], ...]:
    """The bands of ``variance_partition`` (``{enabled, bands: [{name, condition, layer}, ...]}``, a
    list so that an env replaces the bands rather than merging them) as (name, condition, layer),
    checked against the conditions and their layers; () when off."""
    if not params.get("enabled"):
        return ()
    bands = params.get("bands") or []
    if not isinstance(bands, (list, tuple)) or not 2 <= len(bands) <= 3:
        raise ValueError(f"variance_partition.bands must list 2 or 3 bands {{name, condition, layer}}; got {bands!r}")
    by_name = {s.name: s for s in specs}
    out = []
    for b in bands:
        if not isinstance(b, dict) or "condition" not in b:
            raise ValueError(f"variance_partition: each band needs a condition (and a name and a layer); got {b!r}")
        name = b.get("name", b["condition"])
        if not isinstance(name, str) or safe_name(name) != name:
            raise ValueError(f"variance_partition band name {name!r}: use letters, digits, _ and -")
        cond = b["condition"]
        if cond not in by_name:
            raise ValueError(f"variance_partition band {name!r}: condition {cond!r} is not among the conditions "
                             f"{sorted(by_name)}")
        layers = by_name[cond].layers
        layer = int(b.get("layer", layers[0] if len(layers) == 1 else -1))
        if layer not in layers:
            raise ValueError(f"variance_partition band {name!r}: layer {b.get('layer')!r} of {cond!r} is not scored "
                             f"(its layers: {list(layers)})")
        out.append((str(name), str(cond), layer))
    if len({n for n, _, _ in out}) < len(out):
        raise ValueError(f"variance_partition: two bands share a name: {[n for n, _, _ in out]}")
    if len({(c, k) for _, c, k in out}) < len(out):
        raise ValueError(f"variance_partition: two bands are the same condition and layer: {out}")
    return tuple(out)


def decoding_cells(params: dict, specs: list[ConditionSpec]) -> tuple[tuple[str, int], ...]:
    """(condition, layer) of every decoding cell when ``decoding`` is enabled: ``decoding.conditions``
    (null: every condition of ``decoding.kinds``, null: of any kind) at ``decoding.layers`` (null: each condition's scored layers; a listed
    layer that a condition does not score is an error)."""
    if not params.get("enabled"):
        return ()
    by_name = {s.name: s for s in specs}
    wanted = params.get("conditions")
    kinds = params.get("kinds")
    names = ([s.name for s in specs if kinds is None or s.kind in kinds] if wanted is None
             else [str(c) for c in wanted])
    unknown = [c for c in names if c not in by_name]
    if unknown:
        raise ValueError(f"decoding.conditions names {unknown}, which are not conditions of this run "
                         f"(conditions: {list(by_name)})")
    cells = []
    for c in names:
        scored = by_name[c].layers
        layers = scored if params.get("layers") is None else tuple(int(k) for k in params["layers"] if k in scored)
        if not layers:
            if wanted is not None:
                raise ValueError(f"decoding.layers {list(params['layers'])} are not scored layers of condition "
                                 f"{c!r} (its layers: {list(scored)})")
            log.info("decoding: condition %s scores none of decoding.layers %s (its layers: %s): not decoded",
                     c, list(params["layers"]), list(scored))
        cells += [(c, int(k)) for k in layers]
    return tuple(cells)


def similarity_pairs(grid: "Grid") -> tuple[list[tuple[str, str, int]], list[tuple[str, str]]]:
    """(condition, base condition, layer) for every condition with a base model in the grid, at the
    layers both score, and (condition, reason) for those skipped. The base: a derived or
    brain-tuned condition's ``source``; a tuned or control condition's ``base_model`` / ``model``
    resolved to the grid's first ``text`` or ``speech`` condition of that model."""
    text_of = {}
    for s in grid.specs:
        if s.kind in ("text", "speech") and s.params.get("model"):
            text_of.setdefault(str(s.params["model"]), s.name)
    pairs, skipped = [], []
    for s in grid.specs:
        if s.kind in ("text", "lowlevel", "speech"):
            continue
        base = s.params.get("source")
        if not base:
            model = s.params.get("base_model") or s.params.get("model")
            base = text_of.get(str(model)) if model else None
            if base is None:
                skipped.append((s.name, f"no text condition of its base model {model!r} in this run"))
                continue
        if base not in grid.conditions:
            skipped.append((s.name, f"its base condition {base!r} is not in this run"))
            continue
        common = [k for k in s.layers if k in grid.layers_of(base)]
        if not common:
            skipped.append((s.name, f"no layer scored by both it and {base!r}"))
        pairs += [(s.name, base, k) for k in common]
    return pairs, skipped


def tuning_baseline(grid: "Grid") -> str:
    """The condition the task-tuned ones are compared with: the grid's first ``text`` condition of
    ``task_tuning.base_model`` (``pretrained`` when there is none: the report then says it is missing)."""
    bases = {str(s.params.get("base_model")) for s in grid.specs if s.name in {c for c, _, _ in grid.tuning}}
    for s in grid.specs:
        if s.kind == "text" and str(s.params.get("model")) in bases:
            return s.name
    return "pretrained"


def feature_layout(grid: "Grid", condition: str) -> dict:
    """The condition's own ``response_model`` / ``delays`` overrides of the ``embedding`` parameters
    (for derived and brain-tuned conditions, those of their source), i.e. how its TR features were
    delayed; empty when it uses the ``embedding`` parameters."""
    seen = set()
    spec = grid.spec(condition)
    while True:
        own = {k: spec.params[k] for k in ("response_model", "delays") if spec.params.get(k) is not None}
        if own or not spec.params.get("source") or spec.params["source"] in seen:
            return own
        seen.add(spec.name)
        spec = grid.spec(spec.params["source"])


def condition_specs(params: dict) -> list[ConditionSpec]:
    """The conditions of the parameters (``conditions``, ``layers``), validated by their kinds
    (:func:`brainalign.core.representations.parse_conditions`); reads no file."""
    from ..core.representations import condition_layers, parse_conditions

    conditions = dict(params.get("conditions") or {})
    for name, spec in tuned_conditions(params).items():
        if conditions.get(name) is not None:
            raise ValueError(f"condition {name!r} is both in conditions and a task_tuning cell; rename one")
        conditions[name] = spec
    for name, spec in removal_conditions(params).items():
        if conditions.get(name) is not None:
            raise ValueError(f"condition {name!r} is both in conditions and a removal condition; rename one")
        conditions[name] = spec
    for name, spec in brain_conditions(params).items():
        if conditions.get(name) is not None:
            raise ValueError(f"condition {name!r} is both in conditions and a brain_tuning condition; rename one")
        conditions[name] = spec
    parsed = parse_conditions(conditions)
    for c in parsed:
        if safe_name(c) != c:
            raise ValueError(f"condition name {c!r} has characters other than letters, digits, _ and -")
    layers = condition_layers(parsed, params.get("layers", []))
    return [ConditionSpec(name, kind.name, kind.level_of(p), layers[name], tuple(kind.inputs(name, p)), p)
            for name, (kind, p) in parsed.items()]


def bind(func, **kwargs):
    """``partial`` that keeps the function's name and docstring (for node functions whose
    subject, condition or layer is fixed when the grid is built)."""
    return update_wrapper(partial(func, **kwargs), func)
