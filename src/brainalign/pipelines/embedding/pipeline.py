"""embedding wiring, per condition whatever its kind (core.representations):

* kinds at level ``word`` or ``tr``: one extraction node for all layers (namespace = condition),
  reading the datasets the kind names (words, tr_grids, stimulus_audio, raw_study, a tuned model
  directory, ...), then per layer (namespace = ``condition.layer_k``) the resampling to the TR grid;
* kinds at level ``fold`` (``derived``): per layer one node fitting the transform on each outer
  fold's training samples of the source condition's TR features (the fold rule).

Every condition ends in ``<condition>.layer_<k>.tr_features``.
"""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..grid import Grid, bind, removal_probe_cells
from . import nodes


def condition_template(spec, layers: list[int], bound: dict | None = None) -> Pipeline:
    """``bound``: the condition's parameters when they are not under ``conditions`` (made by
    another pipeline: task_tuning); ``params:condition`` is then not read."""
    names = [Grid.layer_name(k) for k in layers]
    extract = node(bind(nodes.extract_features, layers=list(layers), name=spec.name, inputs=list(spec.inputs),
                        condition_params=bound),
                   [*spec.inputs, "params:condition", "params:embedding"],
                   {n: f"{n}_stimulus_features" for n in names}, name="extract_features")
    per_layer = [pipeline([node(bind(nodes.to_tr_grid, level=spec.level, condition_params=bound),
                                ["stimulus_features", "words", "tr_grids", "params:embedding", "params:condition"],
                                "tr_features", name="to_tr_grid")],
                          namespace=n, inputs={"words": "words", "tr_grids": "tr_grids",
                                               "stimulus_features": f"{n}_stimulus_features"},
                          parameters={"params:embedding", "params:condition"})
                 for n in names]
    return Pipeline([extract, *per_layer])


def derived_nodes(spec, grid: Grid | None = None) -> list:
    """Per layer: the source's TR features (and the ``against`` condition's) -> per-fold TR
    features; for a property removal the source's word features, the words and their annotations."""
    p = spec.params
    out = []
    for k in spec.layers:
        lname = Grid.layer_name(k)
        if p.get("property"):
            source = grid.spec(p["source"]) if grid is not None else None
            out.append(node(bind(nodes.remove_property, name=spec.name, params=dict(p), layer=k,
                                 source_params=dict(source.params) if source is not None else {}),
                            [f"{p['source']}.{lname}_stimulus_features", "words", "annotations", "folds", "tr_grids",
                             "params:embedding"],
                            [f"{spec.name}.{lname}.tr_features", f"{spec.name}.{lname}.removal_summary"],
                            name="remove_property",
                            namespace=f"{spec.name}.{lname}"))
            continue
        inputs = [f"{p['source']}.{lname}.tr_features", "folds", "tr_grids"]
        if p.get("against"):
            inputs.append(f"{p['against']}.{Grid.layer_name(p['against_layer'])}.tr_features")
        out.append(node(bind(nodes.derive_features, name=spec.name, params=dict(p)), inputs,
                        f"{spec.name}.{lname}.tr_features", name="derive_features",
                        namespace=f"{spec.name}.{lname}"))
    return out


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    parts = []
    # a condition made by another pipeline (task_tuning, brain_tuning) has no `conditions` entry
    made = {cond: "params:task_tuning" for cond, _, _ in grid.tuning}
    made.update({cond: "params:brain_tuning" for cond, _, _ in grid.brain})
    for c in grid.conditions:
        spec = grid.spec(c)
        if spec.level == "fold":
            parts += derived_nodes(spec, grid)
            continue
        parts.append(pipeline(condition_template(spec, list(spec.layers), dict(spec.params) if c in made else None),
                              namespace=c, inputs={"words", "tr_grids", *spec.inputs},
                              parameters={"params:condition": made.get(c, f"params:conditions.{c}"),
                                          "params:embedding": "params:embedding"}))
    props = sorted({p for _, _, p, _ in grid.removal})
    for src, k in removal_probe_cells(grid):   # linear probes of every removal property at the source's layers
        lname = Grid.layer_name(k)
        parts.append(node(bind(nodes.probe_properties, condition=src, layer=k, properties=props),
                          [f"{src}.{lname}_stimulus_features", "words", "annotations", "folds", "tr_grids",
                           "params:embedding", "params:removal"], f"{src}.{lname}.probes", name="probe_properties",
                          namespace=f"{src}.{lname}"))
    return Pipeline(parts, tags="embedding")
