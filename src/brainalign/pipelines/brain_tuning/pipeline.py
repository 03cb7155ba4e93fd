"""brain_tuning wiring: one node per brain-tuning cell (namespace = the condition
``<source>-<method>``) reading the stimulus (words or audio), the TR grids, the encoding folds and
the tuned subjects' responses and targets; outputs ``<condition>.tuned_model`` (one model per
fold, data/06_models) and ``<condition>.brain_tuning_history``; then ``brain_tuning_history``
(all cells, data/08_reporting) and its figure."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node

from ..grid import Grid, bind
from . import nodes


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    if not grid.brain:
        return Pipeline([])
    subjects = list(grid.brain_subjects)
    parts = []
    for cond, source, method in grid.brain:
        src = grid.spec(source)
        stim = ["stimulus_audio"] if src.kind == "speech" else ["words"]
        parts.append(node(
            bind(nodes.brain_tune_cell, condition=cond, method=method, source_params=dict(src.params),
                 subjects=subjects, speech=src.kind == "speech"),
            [*stim, "tr_grids", "folds", *[f"{s}.responses" for s in subjects], *[f"{s}.targets" for s in subjects],
             "params:brain_tuning", "params:embedding"],
            [f"{cond}.tuned_model", f"{cond}.brain_tuning_history"], name="brain_tune", namespace=cond))
    # (c) downstream probes: every untuned source and every brain condition
    sources = list(dict.fromkeys(src for _, src, _ in grid.brain))
    for source in sources:
        parts.append(node(bind(nodes.downstream_cell, condition=source, source_params=dict(grid.spec(source).params)),
                          ["params:brain_tuning"], f"{source}.downstream", name="downstream_probe", namespace=source))
    for cond, source, _ in grid.brain:
        parts.append(node(bind(nodes.downstream_cell, condition=cond, source_params=dict(grid.spec(source).params)),
                          [f"{cond}.tuned_model", "params:brain_tuning"], f"{cond}.downstream",
                          name="downstream_probe", namespace=cond))
    parts.append(node(nodes.collect_tables, [f"{c}.downstream" for c in [*sources, *[c for c, _, _ in grid.brain]]],
                      "brain_tuning_downstream", name="collect_brain_tuning_downstream"))
    parts.append(node(nodes.collect_tables, [f"{c}.brain_tuning_history" for c, _, _ in grid.brain],
                      "brain_tuning_history", name="collect_brain_tuning_history"))
    parts.append(node(nodes.history_plot, "brain_tuning_history", "brain_tuning_plot", name="plot_brain_tuning_history"))
    return Pipeline(parts, tags="brain_tuning")
