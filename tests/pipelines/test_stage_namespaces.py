"""Every registered node sits under one of the five top-level namespaces (data_prep, task_tuning,
brain_tuning, grid, analysis) without renaming a dataset, and the analysis ends in the report index,
so kedro-viz's tree of the default grid (computed here with kedro-viz's own tree builder) has five
namespaces and a few dozen datasets at its top level, below the size at which kedro-viz refuses to
draw a graph (elements + 1.5 x edges > 1,000 in kedro-viz 12.5)."""
from __future__ import annotations

from pathlib import Path

import pytest
from kedro.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
TOPS = {"data_prep", "task_tuning", "brain_tuning", "grid", "analysis"}


@pytest.fixture(scope="module")
def default_grid():
    from kedro.config import OmegaConfigLoader

    from brainalign.pipelines.grid import grid_from_params, set_active_parameters
    from brainalign.settings import CONFIG_LOADER_ARGS

    params = OmegaConfigLoader(str(ROOT / "conf"), env="local", **CONFIG_LOADER_ARGS)["parameters"]
    set_active_parameters(params)
    try:
        from brainalign.pipeline_registry import register_pipelines

        yield grid_from_params(params), register_pipelines()
    finally:
        set_active_parameters(None)


def test_every_node_under_a_stage_and_no_dataset_renamed(default_grid):
    from brainalign.pipelines import analysis, brain_tuning, data_prep, decoding, embedding, encoding, task_tuning

    grid, pipes = default_grid
    nodes = pipes["__default__"].nodes
    assert {n.namespace.split(".")[0] for n in nodes} == TOPS
    raw = sum((m.create_pipeline(grid) for m in (data_prep, task_tuning, brain_tuning, embedding, encoding, decoding,
                                                 analysis)), Pipeline([]))
    assert pipes["__default__"].datasets() == raw.datasets()
    assert len(nodes) == len(raw.nodes)
    by_name = {n.name: n for n in nodes}
    # a cell keeps its namespace under grid; the collectors move to grid and stay in the analysis pipeline
    assert by_name["grid.sub-01.pretrained.layer_4.fit_encoding"].outputs == ["sub-01.pretrained.layer_4.scores"]
    assert "grid.collect_scores" in {n.name for n in pipes["analysis"].nodes}
    assert "analysis.report" in by_name and "data_prep.read_stimuli" in by_name
    assert "data_prep.sub-01.prepare_responses" in by_name            # not data_prep.data_prep.sub-01
    assert any(n.startswith("task_tuning.") and n.endswith(".tune") for n in by_name)
    assert "brain_tuning.pretrained-brain.brain_tune" in by_name
    one = pipes["__default__"].only_nodes_with_namespaces(["grid.sub-02.pretrained.layer_4"])
    assert sorted(n.name for n in one.nodes) == ["grid.sub-02.pretrained.layer_4.fit_decoding",
                                                 "grid.sub-02.pretrained.layer_4.fit_encoding"]


def test_viz_top_level_is_small(default_grid):
    from kedro_viz.data_access.repositories.modular_pipelines import ModularPipelinesRepository

    _, pipes = default_grid
    pipe = pipes["__default__"]
    repo = ModularPipelinesRepository()
    repo.populate_tree(pipe)
    children = repo.tree["__root__"].children
    spaces = {c.id for c in children if c.type.value == "modularPipeline"}
    assert spaces == TOPS
    params = {d for d in pipe.datasets() if d.startswith("params:") or d == "parameters"}
    data = [c for c in children if c.type.value == "data"]
    tasks = [c for c in children if c.type.value == "task"]
    assert not tasks
    # kedro-viz hashes dataset ids; count the non-parameter ones by name
    from kedro_viz.utils import _hash_input_output

    names = {_hash_input_output(d): d for d in pipe.datasets()}
    shown = sorted(names[c.id] for c in data if names.get(c.id) not in params)
    # before the stage namespaces: 198 datasets, 16 namespaces and 38 nodes (252 elements); with them
    # and the report index (2026-12-03): 35 datasets and 5 namespaces
    assert len(shown) <= 40, shown
    assert not any(d.endswith(".tr_features") or d.endswith(".scores") for d in shown), shown
    # the analysis ends in the index, the summary and the metrics: no row of report files
    ends = set(pipes["analysis"].outputs())
    assert ends == {"report_index", "summary_md", "tracking_metrics"}, ends
