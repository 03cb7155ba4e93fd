"""decoding wiring: one cell per subject x condition x layer of ``decoding.conditions`` /
``decoding.layers``, namespace ``<subject>.<condition>.layer_<k>`` (the encoding cell's; node
``fit_decoding``), then ``collect_decoding`` -> ``decoding_scores``. Run with
``kedro run --pipelines decoding`` (after embedding, with the same --env)."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..encoding.pipeline import cell_namespace
from ..grid import Grid, bind, feature_layout
from . import nodes


def cell_template(subject: str, condition: str, layer: int, layout: dict) -> Pipeline:
    return Pipeline([node(bind(nodes.fit_decoding, subject=subject, condition=condition, layer=layer, layout=layout),
                          ["responses", "targets", "tr_features", "folds", "tr_grids", "params:decoding",
                           "params:encoding", "params:embedding", "params:dataset"], "decoding",
                          name="fit_decoding")])


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    if not grid.decoding:
        return Pipeline([])
    cells = []
    for s in grid.subjects:
        for c, k in grid.decoding:
            cells.append(pipeline(
                cell_template(s, c, k, feature_layout(grid, c)), namespace=cell_namespace(s, c, k),
                inputs={"responses": f"{s}.responses", "targets": f"{s}.targets",
                        "tr_features": f"{c}.{Grid.layer_name(k)}.tr_features", "folds": "folds",
                        "tr_grids": "tr_grids"},
                parameters={"params:decoding", "params:encoding", "params:embedding", "params:dataset"}))
    outputs = [f"{cell_namespace(s, c, k)}.decoding" for s in grid.subjects for c, k in grid.decoding]
    cells.append(node(nodes.collect_decoding, outputs, "decoding_scores", name="collect_decoding"))
    return Pipeline(cells, tags="decoding")
