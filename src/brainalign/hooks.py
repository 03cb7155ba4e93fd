"""Project hooks: the experiment grid of the active environment, and MLflow tracking.

MLflow: one run per ``kedro run`` (SQLite backend by default, ``sqlite:///mlflow.db`` in the
project folder) with the flattened parameters, the metrics of the ``tracking_metrics``
dataset (per layer and ROI), and the files under the reporting folder as artifacts.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from .params_check import check_parameters
from .pipelines.grid import active_parameters, check_study_present, set_active_parameters

log = logging.getLogger(__name__)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def finite_metrics(metrics: dict) -> tuple[dict[str, float], list[str]]:
    """MLflow-ready metrics (spaces in names replaced) and the names of those left out because
    their value is NaN or infinite (e.g. a mean over an empty set of targets)."""
    kept, dropped = {}, []
    for k, v in metrics.items():
        v = float(v)
        if math.isfinite(v):
            kept[str(k).replace(" ", "_")] = v
        else:
            dropped.append(str(k))
    return kept, dropped


class GridHook:
    """Hands the active parameters to the pipeline registry before pipelines are built."""

    @hook_impl
    def after_context_created(self, context) -> None:
        # the config loader, not context.params: the latter validates parameters against the
        # pipelines, which would build them before the grid is known
        params = context.config_loader["parameters"]
        # unknown keys and bad values fail here, before any data is read (params_check)
        check_parameters(params, context.config_loader.conf_source)
        set_active_parameters(params)

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        # a real study that is missing fails here, before any node runs (outputs untouched)
        check_study_present(active_parameters())


class MlflowHook:
    def __init__(self):
        self._cfg: dict = {}
        self._params: dict = {}
        self._env = None
        self._active = False

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.config_loader["parameters"]
        self._cfg = dict(self._params.get("tracking", {}) or {})
        self._env = context.env

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        if not self._cfg.get("enabled", False):
            return
        import mlflow

        mlflow.set_tracking_uri(self._cfg.get("uri", "sqlite:///mlflow.db"))
        mlflow.set_experiment(self._cfg.get("experiment", "brainalign"))
        names = run_params.get("pipeline_names") or ["__default__"]
        mlflow.start_run(run_name=f"{self._params.get('dataset', 'run')}-{'+'.join(names)}")
        self._active = True
        mlflow.set_tags({"kedro.env": str(self._env or "local"), "kedro.run_id": run_params.get("run_id"),
                         "kedro.pipelines": ",".join(names),
                         "kedro.namespaces": ",".join(run_params.get("namespaces") or [])})
        params = {k: str(v)[:500] for k, v in flatten(self._params).items()}
        items = list(params.items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i:i + 100]))

    @hook_impl
    def after_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        if not self._active:
            return
        import mlflow

        try:
            if "tracking_metrics" in pipeline.all_outputs() and catalog.exists("tracking_metrics"):
                metrics = catalog.load("tracking_metrics")
                kept, dropped = finite_metrics(metrics)
                if dropped:
                    log.warning("MLflow: %d metrics are not finite and were not logged: %s", len(dropped),
                                ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
                mlflow.log_metrics(kept)
            report_dir = Path(self._cfg.get("artifacts_dir", "data/08_reporting"))
            for f in sorted(report_dir.glob("*")):
                if f.is_file() and f.suffix in {".png", ".md", ".csv", ".html"}:
                    mlflow.log_artifact(str(f))
            log.info("MLflow run %s logged to %s", mlflow.active_run().info.run_id, mlflow.get_tracking_uri())
        finally:
            mlflow.end_run()
            self._active = False

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if self._active:
            import mlflow

            mlflow.end_run(status="FAILED")
            self._active = False
