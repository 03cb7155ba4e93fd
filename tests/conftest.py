"""Shared fixtures of the brainalign test suite.

Environment: Kedro telemetry is disabled and the Hugging Face hub is put in offline mode before
anything imports ``transformers`` (the machines that run the tests have no internet; a hub look-up
would otherwise retry for a minute before failing).

Fixtures
--------
repo_root             (session) Path of the repository root (the folder holding pyproject.toml).
shared_data           (session) Path of the public real data, ``<repo_root>/../shared/data``;
                      the test is skipped with a clear reason when it is absent.
alice_dir             (session) ``shared_data / "alice2016"`` (skip when absent).
tiny_study_config     (session) dict of the parameters the tiny simulated study is built with
                      (subjects, stories, words per story, volume shape, TR, trims, seed, ...).
tiny_simulated_study  (session) the in-memory :class:`brainalign.core.synthetic.study.SimulatedStudy`
                      (2 subjects x 2 packaged stories, 100 words each, 6x6x5 volume, TR 2 s).
                      Word features are seeded Gaussian vectors (no language model needed), so
                      the planted signal is random but exactly reproducible. Shared by all tests:
                      do not mutate its arrays.
tiny_study            (function) Path of a fresh copy of that study written with
                      :func:`brainalign.core.synthetic.study.write_study` under ``tmp_path / "study"``
                      (BIDS-derivative layout read by the ``bids_volume`` reader); tests may
                      modify or delete its files.
minilm                (session) ``(tokenizer, model)`` of the packaged all-MiniLM-L6-v2 model
                      loaded with :func:`brainalign.core.representations.text.load_model` on CPU.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_STUDY_CONFIG = {
    "n_subjects": 2,
    "stories": ["lighthouse", "orchard"],
    "max_words_per_story": 100,
    "volume_shape": (6, 6, 5),
    "tr": 2.0,
    "trim_start": 2,
    "trim_end": 2,
    "feature_dim": 12,
    "seed": 7,
}


def _find_repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return here.parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (first parent of this file holding pyproject.toml)."""
    return _find_repo_root()


@pytest.fixture(scope="session")
def shared_data(repo_root) -> Path:
    """``<repo_root>/../shared/data`` (the public real data); skips when it is absent."""
    path = (repo_root / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"real public data not found at {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def alice_dir(shared_data) -> Path:
    """The Brennan et al. 2016 Alice folder of the shared data; skips when it is absent."""
    path = shared_data / "alice2016"
    if not (path / "timecourses_6mm").is_dir() or not (path / "stimulus").is_dir():
        pytest.skip(f"Alice data (timecourses_6mm/, stimulus/) not found under {path}")
    return path


@pytest.fixture(scope="session")
def tiny_study_config() -> dict:
    """Parameters of the tiny simulated study (a copy; edit freely)."""
    return dict(TINY_STUDY_CONFIG)


@pytest.fixture(scope="session")
def tiny_simulated_study():
    """A tiny SimulatedStudy (see module docstring). Read-only: shared by all tests."""
    from brainalign.core.synthetic.study import simulate_study, story_texts, time_words

    cfg = TINY_STUDY_CONFIG
    rng = np.random.default_rng(cfg["seed"])
    texts = story_texts(cfg["stories"])
    words = {s: time_words(t, rng, max_words=cfg["max_words_per_story"]) for s, t in texts.items()}
    feats = {s: rng.standard_normal((len(w), cfg["feature_dim"])) for s, w in words.items()}
    return simulate_study(feats, words, n_subjects=cfg["n_subjects"], tr=cfg["tr"],
                          volume_shape=cfg["volume_shape"], trim_start=cfg["trim_start"],
                          trim_end=cfg["trim_end"], seed=cfg["seed"])


@pytest.fixture
def tiny_study(tiny_simulated_study, tmp_path) -> Path:
    """Root of a freshly written copy of the tiny study (bids_volume layout) under tmp_path."""
    from brainalign.core.synthetic.study import write_study

    return write_study(tiny_simulated_study, tmp_path / "study")


@pytest.fixture(scope="session")
def minilm():
    """(tokenizer, model) of the packaged all-MiniLM-L6-v2, loaded offline on CPU."""
    from brainalign.core.representations.text import load_model

    return load_model("all-MiniLM-L6-v2", device="cpu")
