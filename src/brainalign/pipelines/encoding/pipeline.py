"""encoding wiring: one cell per subject x condition x layer, namespace
``<subject>.<condition>.layer_<k>`` (run one with ``kedro run --namespaces sub-01.pretrained.layer_3``);
with ``variance_partition.enabled`` one banded-ridge node per subject, namespace ``<subject>.partition``."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..grid import Grid, bind
from . import nodes
from .partition import fit_partition


def cell_template(subject: str, condition: str, layer: int) -> Pipeline:
    return Pipeline([node(bind(nodes.fit_encoding, subject=subject, condition=condition, layer=layer),
                          ["responses", "targets", "tr_features", "folds", "tr_grids", "params:encoding",
                           "params:dataset"], "scores", name="fit_encoding")])


def partition_template(subject: str, bands: list[tuple[str, str, int]]) -> Pipeline:
    """Variance partitioning of one subject over ``bands`` ((name, condition, layer) triples)."""
    return Pipeline([node(bind(fit_partition, subject=subject, bands=bands),
                          ["responses", "targets", "folds", "tr_grids", "params:encoding",
                           "params:variance_partition", "params:dataset", *[f"band_{j}" for j in range(len(bands))]],
                          "scores", name="fit_partition")])


def drop_template(subject: str, condition: str, source: str, prop: str, method: str, layer: int) -> Pipeline:
    """The drop in alignment when ``prop`` is removed from ``source`` (one subject and layer):
    both fitted with the same folds, compared by the paired block-swap test."""
    return Pipeline([node(bind(nodes.fit_removal_drop, subject=subject, condition=condition, source=source,
                               prop=prop, method=method, layer=layer),
                          ["responses", "targets", "base_features", "removed_features", "folds", "tr_grids",
                           "params:encoding", "params:removal"], ["removal_drop", "removal_drop_roi"],
                          name="fit_removal_drop")])


def cell_namespace(subject: str, condition: str, layer: int) -> str:
    return f"{subject}.{condition}.{Grid.layer_name(layer)}"


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    cells = []
    for s in grid.subjects:
        for c, k in grid.cells():
            lname = Grid.layer_name(k)
            cells.append(pipeline(
                cell_template(s, c, k), namespace=cell_namespace(s, c, k),
                inputs={"responses": f"{s}.responses", "targets": f"{s}.targets",
                        "tr_features": f"{c}.{lname}.tr_features", "folds": "folds",
                        "tr_grids": "tr_grids"},
                parameters={"params:encoding", "params:dataset"}))
    for s in grid.subjects:  # property removal: the drop against the source, per layer
        for cond, src, prop, method in grid.removal:
            for k in grid.layers_of(cond):
                lname = Grid.layer_name(k)
                cells.append(pipeline(
                    drop_template(s, cond, src, prop, method, k), namespace=f"{cell_namespace(s, cond, k)}",
                    inputs={"responses": f"{s}.responses", "targets": f"{s}.targets",
                            "base_features": f"{src}.{lname}.tr_features",
                            "removed_features": f"{cond}.{lname}.tr_features", "folds": "folds",
                            "tr_grids": "tr_grids"},
                    parameters={"params:encoding", "params:removal"}))
    if grid.partition:  # variance partitioning: one node per subject, namespace <subject>.partition
        bands = list(grid.partition)
        for s in grid.subjects:
            cells.append(pipeline(
                partition_template(s, bands), namespace=f"{s}.partition",
                inputs={"responses": f"{s}.responses", "targets": f"{s}.targets", "folds": "folds",
                        "tr_grids": "tr_grids",
                        **{f"band_{j}": f"{c}.{Grid.layer_name(k)}.tr_features" for j, (_, c, k) in enumerate(bands)}},
                parameters={"params:encoding", "params:variance_partition", "params:dataset"}))
    if grid.brain:   # brain-tuning: the data-efficiency curve of each subject left out of tuning
        from ..brain_tuning import nodes as bt_nodes

        bt = grid.brain_params
        layer = int((bt.get("data_efficiency") or {}).get("layer", 6))
        conds = [*dict.fromkeys(src for _, src, _ in grid.brain), *[c for c, _, _ in grid.brain]]
        for c in conds:
            if layer not in grid.layers_of(c):
                raise ValueError(f"brain_tuning.data_efficiency.layer {layer} is not a scored layer of {c!r} "
                                 f"(its layers: {list(grid.layers_of(c))})")
        for s in grid.subjects:
            if s in grid.brain_subjects:
                continue
            cells.append(node(bind(bt_nodes.data_efficiency_cell, subject=s, conditions=conds, layer=layer),
                              [f"{s}.responses", f"{s}.targets", "folds", "tr_grids", "params:encoding",
                               "params:brain_tuning", *[f"{c}.{Grid.layer_name(layer)}.tr_features" for c in conds]],
                              f"{s}.data_efficiency", name="data_efficiency", namespace=f"{s}.data_efficiency"))
    return Pipeline(cells, tags="encoding")
