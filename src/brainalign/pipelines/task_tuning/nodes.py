"""Thin adapters from catalog entries to brainalign.core.tasks (task_tuning)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def nlu_root(params: dict) -> Path:
    """The folder of the NLU task sets: ``task_tuning.nlu_root`` (default the environment variable
    ``BRAINALIGN_NLU_DIR``, else ``../shared/data/nlu``)."""
    root = params.get("nlu_root") or os.environ.get("BRAINALIGN_NLU_DIR") or "../shared/data/nlu"
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"task_tuning: the NLU task folder {path.resolve()} does not exist; set "
                                "task_tuning.nlu_root or BRAINALIGN_NLU_DIR (docs/methods.md, 'Task tuning')")
    return path


def _mlflow_epoch_logger(prefix: str):
    """Per-epoch metrics to the active MLflow run (the project hook starts one per kedro run)."""
    try:
        import mlflow
    except ImportError:  # pragma: no cover
        return None

    def log_epoch(epoch: int, entry: dict) -> None:
        if mlflow.active_run() is None:
            return
        mlflow.log_metrics({f"{prefix}.{k}": float(v) for k, v in entry.items()
                            if isinstance(v, (int, float)) and k != "epoch"}, step=int(epoch))

    return log_epoch


def tune_cell(params: dict, *, task: str, method: str):
    """Tune ``params['base_model']`` on ``task`` with ``method`` (a registered method or a variant of
    ``task_tuning.variants``; budgets from ``params``; the learning rate of the variant, else of its
    method).

    Returns
    -------
    tuned : a directory for the ``<condition>.tuned_model`` dataset; result : dict, one row of
    ``task_tuning_results.csv`` (core.tasks.run.RESULT_COLUMNS).
    """
    from ...core.tasks.readers import load_task
    from ...core.tasks.run import condition_name, tune
    from ..grid import tuning_method

    base = params.get("base_model", "all-MiniLM-L6-v2")
    registered, method_params = tuning_method(params, method)
    data = load_task(task, nlu_root(params), max_examples=params.get("max_examples"), seed=int(params.get("seed", 0)))
    lr = params.get("lr", {})
    lr = (float(lr.get(method, lr.get(registered, lr.get("default", 5e-5)))) if isinstance(lr, dict) else float(lr))
    tuned, result, _ = tune(
        data, base, registered, method_params=method_params, epochs=int(params.get("epochs", 3)),
        batch_size=int(params.get("batch_size", 16)), lr=lr, max_length=int(params.get("max_length", 128)),
        patience=params.get("patience", 2), seed=int(params.get("seed", 0)), device=params.get("device", "auto"),
        on_epoch=_mlflow_epoch_logger(f"tuning.{condition_name(base, method, task)}"), name=method)
    return tuned, result


def collect_results(*results: dict) -> pd.DataFrame:
    """``task_tuning_results.csv``: one row per task x method (core.tasks.run.RESULT_COLUMNS)."""
    from ...core.tasks.run import RESULT_COLUMNS

    if not results:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.DataFrame(list(results))[RESULT_COLUMNS]
