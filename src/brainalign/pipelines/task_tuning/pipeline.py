"""task_tuning wiring: one cell per (task, method) of ``task_tuning.tasks`` x ``task_tuning.methods``,
namespace = the tuned condition's name ``<base>-<method>-<task>`` (outputs ``<condition>.tuned_model``
under data/06_models and ``<condition>.tuning_result``), then ``task_tuning_results``. Cells that
already wrote their outputs are skipped with ``kedro run --pipeline task_tuning --only-missing-outputs``."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..grid import Grid, bind
from . import nodes


def cell_template(task: str, method: str) -> Pipeline:
    return Pipeline([node(bind(nodes.tune_cell, task=task, method=method), "params:task_tuning",
                          ["tuned_model", "tuning_result"], name="tune")])


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    cells = [pipeline(cell_template(task, method), namespace=cond, parameters={"params:task_tuning"})
             for cond, task, method in grid.tuning]
    if not cells:
        return Pipeline([])
    cells.append(node(nodes.collect_results, [f"{cond}.tuning_result" for cond, _, _ in grid.tuning],
                      "task_tuning_results", name="collect_task_tuning_results"))
    return Pipeline(cells, tags="task_tuning")
