"""encoding wiring: one cell per subject x condition x layer, namespace
``<subject>.<condition>.layer_<k>`` (run one with ``kedro run --namespaces sub-01.pretrained.layer_3``)."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..grid import Grid, bind
from . import nodes


def cell_template(subject: str, condition: str, layer: int) -> Pipeline:
    return Pipeline([node(bind(nodes.fit_encoding, subject=subject, condition=condition, layer=layer),
                          ["responses", "targets", "tr_features", "folds", "tr_grids", "params:encoding",
                           "params:dataset"], "scores", name="fit_encoding")])


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
    return Pipeline(cells, tags="encoding")
