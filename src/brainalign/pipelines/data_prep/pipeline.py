"""data_prep wiring: (simulate ->) raw_study -> words, tr_grids, folds, ground_truth;
per subject (namespace = subject id): responses, targets, exclusions; then noise_ceiling."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..grid import Grid, bind
from . import nodes


def subject_template(subject: str) -> Pipeline:
    """Template for one subject; wrapped in the subject's namespace."""
    return Pipeline([node(bind(nodes.prepare_responses, subject=subject),
                          ["raw_study", "tr_grids", "params:study"],
                          ["responses", "targets", "exclusions"], name="prepare_responses")])


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    common = []
    if grid.simulate:
        common.append(node(nodes.simulate, ["params:synthetic", "params:study"], "raw_study", name="simulate_study"))
    common += [
        node(nodes.read_stimuli, ["raw_study", "params:study"], ["words", "tr_grids"], name="read_stimuli"),
        node(nodes.read_ground_truth, "raw_study", "ground_truth", name="read_ground_truth"),
        node(nodes.make_folds, ["tr_grids", "params:cv"], "folds", name="make_folds"),
    ]
    subjects = [pipeline(subject_template(s), namespace=s, inputs={"raw_study", "tr_grids"},
                         parameters={"params:study"}) for s in grid.subjects]
    nc_inputs = ["raw_study", "tr_grids", "params:study"] + [f"{s}.{d}" for s in grid.subjects for d in ("responses", "targets")]
    nc = [node(bind(nodes.noise_ceiling, subjects=list(grid.subjects)), nc_inputs, "noise_ceiling",
               name="noise_ceiling")]
    return Pipeline(common + subjects + nc, tags="data_prep")
