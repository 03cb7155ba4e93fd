"""The grid on other runners gives the sequential run's score table: Dask on a LocalCluster, and
the process pool with thread limits (src/brainalign/runner.py). The MLflow run is still complete."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    from kedro_project import copy_project, run_kedro

    project = copy_project(tmp_path_factory.mktemp("seq") / "p", env="test")
    run_kedro(project, "run", "--env", "test")
    return pd.read_parquet(project / "data" / "07_model_output" / "encoding_scores.parquet")


def _same_scores(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    keys = ["subject", "condition", "layer", "target"]
    m = ref.merge(got, on=keys, suffixes=("", "_got"))
    assert len(m) == len(ref) == len(got)
    # the same alphas and p values; r and r2 to float32 precision: a worker's BLAS runs one thread and
    # the sequential run two, which sums in another order (1.1e-5 apart on the 2026-12-03 machine,
    # within 1e-6 on earlier ones; the solver's own tolerance against himalaya is 1e-4)
    for col in ("alpha", "p"):
        np.testing.assert_array_equal(m[f"{col}_got"], m[col], err_msg=col)
    for col in ("r", "r2"):
        np.testing.assert_allclose(m[f"{col}_got"], m[col], rtol=0, atol=5e-5, err_msg=col)


@pytest.mark.parametrize("runner", ["brainalign.runner.DaskRunner", "brainalign.runner.ParallelRunner"])
def test_runner_gives_the_sequential_scores(runner, sequential, tmp_path):
    import mlflow

    from kedro_project import copy_project, run_kedro

    project = copy_project(tmp_path / "p", env="test")
    res = run_kedro(project, "run", "--env", "test", "--runner", runner)
    _same_scores(pd.read_parquet(project / "data" / "07_model_output" / "encoding_scores.parquet"), sequential)
    if "Dask" in runner:
        out = " ".join((res.stdout + res.stderr).split())
        assert "DaskRunner: started a LocalCluster" in out     # the nodes ran in Dask workers
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics, "the MLflow run has no metrics"
