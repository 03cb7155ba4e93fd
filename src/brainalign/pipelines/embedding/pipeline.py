"""embedding wiring: per condition (namespace = condition) one extraction node for all layers,
then per layer (namespace = condition.layer_k) the resampling to the TR grid."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..grid import Grid, bind
from . import nodes


def condition_template(layers: list[int]) -> Pipeline:
    names = [Grid.layer_name(k) for k in layers]
    extract = node(bind(nodes.extract_features, layers=list(layers)),
                   ["words", "params:condition", "params:embedding"],
                   {n: f"{n}_word_features" for n in names}, name="extract_features")
    per_layer = [pipeline([node(nodes.to_tr_grid, ["word_features", "words", "tr_grids", "params:embedding"],
                                "tr_features", name="to_tr_grid")],
                          namespace=n, inputs={"words": "words", "tr_grids": "tr_grids", "word_features": f"{n}_word_features"},
                          parameters={"params:embedding"})
                 for n in names]
    return Pipeline([extract, *per_layer])


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    return Pipeline([pipeline(condition_template(list(grid.layers)), namespace=c,
                              inputs={"words", "tr_grids"},
                              parameters={"params:condition": f"params:conditions.{c}",
                                          "params:embedding": "params:embedding"})
                     for c in grid.conditions], tags="embedding")
