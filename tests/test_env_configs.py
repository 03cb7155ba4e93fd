"""Every shipped environment resolves (base + env, soft merge) into an experiment grid, and the
tuning comparison env scores its tuned models where every method's tuning can show.

These are configuration checks only: building a grid lists folders at most and reads no data, so
the whole module runs in a few seconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from brainalign.core.representations.text import MODELS
from brainalign.pipelines.grid import grid_from_params
from brainalign.settings import CONFIG_LOADER_ARGS

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted(p.name for p in (ROOT / "conf").iterdir()
              if p.is_dir() and p.name not in {"base", "local"} and (p / "parameters.yml").exists())


def _params(env: str) -> dict:
    return OmegaConfigLoader(str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)["parameters"]


@pytest.mark.parametrize("env", ENVS)
def test_env_builds_a_grid(env, monkeypatch):
    monkeypatch.chdir(ROOT)  # study roots are relative to the project
    grid = grid_from_params(_params(env))
    assert grid.conditions, f"env {env}: no conditions"
    for condition, layer in grid.cells():
        assert layer >= 0, f"env {env}: {condition} scores layer {layer}"


def test_alice_tuning_scores_above_the_partially_tuned_blocks(monkeypatch):
    """Partial tuning changes only the top ``top_layers`` blocks: a layer below them is the
    pretrained model bit for bit, so every tuned condition must be scored (and decoded) at a layer
    inside the tuned blocks. The backbone's depth is read from the packaged model's config."""
    monkeypatch.chdir(ROOT)
    params = _params("alice_tuning")
    tuning = params["task_tuning"]
    assert set(tuning["methods"]) >= {"full", "partial", "prefix"} and len(tuning["tasks"]) >= 6
    model = params["conditions"]["pretrained"]["model"]
    depth = json.loads((Path(MODELS[model]()) / "config.json").read_text())["num_hidden_layers"]
    top = params["task_tuning"]["method_params"]["partial"]["top_layers"]
    lowest_tuned = depth - top + 1  # layer k is the output of block k (layer 0: the embeddings)
    grid = grid_from_params(params)
    tuned = [s for s in grid.specs if s.kind == "tuned"]
    assert len(tuned) == len(tuning["tasks"]) * len(tuning["methods"])
    for spec in tuned:
        assert min(spec.layers) >= lowest_tuned, (spec.name, spec.layers, lowest_tuned)
    decoded = {c for c, _ in grid.decoding}
    assert {s.name for s in tuned} <= decoded
    assert all(k >= lowest_tuned for _, k in grid.decoding)
