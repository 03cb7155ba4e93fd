"""Project pipelines, built for the experiment grid of the active environment.

Every node of a registered pipeline sits under one of five top-level namespaces (node namespaces
only: dataset names are not prefixed), so kedro-viz opens on the five stages with a few dozen
datasets between them instead of a graph too large to draw (docs/architecture.md, "kedro-viz"):

* ``data_prep`` (``data_prep.<subject>`` per subject);
* ``task_tuning.<condition>`` and ``brain_tuning.<condition>``;
* ``grid``: the experiment grid, i.e. embedding (``grid.<condition>``, ``grid.<condition>.layer_<k>``),
  encoding and decoding cells (``grid.<subject>.<condition>.layer_<k>``) and the nodes that collect
  or compare the cells' results (:data:`GRID_COLLECTORS`), which read every cell or every
  condition's features;
* ``analysis``: reports and figures.

``kedro run --namespaces grid.sub-01.pretrained.layer_3`` runs one cell, ``grid.pretrained`` one
condition's features, ``grid.sub-01`` one subject's cells.
"""
from __future__ import annotations

from kedro.pipeline import Pipeline, pipeline

from .pipelines import analysis, brain_tuning, data_prep, decoding, embedding, encoding, task_tuning
from .pipelines.grid import active_parameters, grid_from_params

#: the top-level namespace of each pipeline's nodes
STAGE_NAMESPACE = {"data_prep": "data_prep", "task_tuning": "task_tuning", "brain_tuning": "brain_tuning",
                   "embedding": "grid", "encoding": "grid", "decoding": "grid", "analysis": "analysis"}
#: analysis nodes that read every cell's output or every condition's features: namespace ``grid``
#: (they stay in the ``analysis`` pipeline)
GRID_COLLECTORS = frozenset({"collect_scores", "collect_partition", "collect_data_efficiency", "removal_drop",
                             "probe_accuracy", "representational_similarity"})


def top_namespace(stage: str, node) -> str:
    """The top-level namespace of ``node`` of the ``stage`` pipeline (:data:`STAGE_NAMESPACE`)."""
    if stage == "analysis" and not node.namespace and node.name in GRID_COLLECTORS:
        return "grid"
    return STAGE_NAMESPACE[stage]


def with_stage_namespaces(stage: str, pipe: Pipeline) -> Pipeline:
    """``pipe`` with every node's namespace under its top-level namespace (:func:`top_namespace`;
    a namespace already starting with it is kept); datasets and parameters keep their names."""
    groups: dict[str, list] = {}
    kept = []
    for n in pipe.nodes:
        top = top_namespace(stage, n)
        if n.namespace == top or (n.namespace or "").startswith(top + "."):
            kept.append(n)
        else:
            groups.setdefault(top, []).append(n)
    wrapped = [pipeline(Pipeline(nodes), namespace=top, prefix_datasets_with_namespace=False)
               for top, nodes in groups.items()]
    return Pipeline([Pipeline(kept), *wrapped], tags=None)


def register_pipelines() -> dict[str, Pipeline]:
    """data_prep, task_tuning, brain_tuning, embedding, encoding, decoding, analysis and
    ``__default__`` (all of them; task_tuning, brain_tuning and decoding are empty unless enabled)."""
    grid = grid_from_params(active_parameters())
    built = {
        "data_prep": data_prep.create_pipeline(grid),
        "task_tuning": task_tuning.create_pipeline(grid),
        "brain_tuning": brain_tuning.create_pipeline(grid),
        "embedding": embedding.create_pipeline(grid),
        "encoding": encoding.create_pipeline(grid),
        "decoding": decoding.create_pipeline(grid),
        "analysis": analysis.create_pipeline(grid),
    }
    pipes = {name: with_stage_namespaces(name, p) for name, p in built.items()}
    pipes["__default__"] = sum(pipes.values(), Pipeline([]))
    return pipes
