"""Project pipelines, built for the experiment grid of the active environment."""
from __future__ import annotations

from kedro.pipeline import Pipeline

from .pipelines import analysis, brain_tuning, data_prep, decoding, embedding, encoding, task_tuning
from .pipelines.grid import active_parameters, grid_from_params


def register_pipelines() -> dict[str, Pipeline]:
    """data_prep, task_tuning, brain_tuning, embedding, encoding, decoding, analysis and
    ``__default__`` (all of them; task_tuning, brain_tuning and decoding are empty unless enabled)."""
    grid = grid_from_params(active_parameters())
    pipes = {
        "data_prep": data_prep.create_pipeline(grid),
        "task_tuning": task_tuning.create_pipeline(grid),
        "brain_tuning": brain_tuning.create_pipeline(grid),
        "embedding": embedding.create_pipeline(grid),
        "encoding": encoding.create_pipeline(grid),
        "decoding": decoding.create_pipeline(grid),
        "analysis": analysis.create_pipeline(grid),
    }
    pipes["__default__"] = sum(pipes.values(), Pipeline([]))
    return pipes
