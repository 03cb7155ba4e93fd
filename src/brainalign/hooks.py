"""Project hooks: the experiment grid of the active environment, and MLflow tracking.

MLflow (docs/tracking.md): one run per ``kedro run`` (SQLite backend by default,
``sqlite:///mlflow.db`` in the project folder) that records only what that run produced:

- named ``<dataset>-<env>-<pipelines>[<namespaces>]`` (``-resume`` with ``--only-missing-outputs``),
  tagged with the git commit (and whether the tree was dirty), the grid (``grid_id``), the nodes
  that ran and the run's kind: ``full`` (every node of ``__default__`` ran), ``partial`` (a
  selection), ``resume`` (``--only-missing-outputs``) or ``no-op`` (no node ran); ``partial`` is
  ``true`` for all but ``full``;
- the resolved parameters, flattened, as MLflow params (values cut at MLflow's limit; the full
  set as the artifact ``kedro/parameters.json``);
- metrics only from nodes that ran in this run: ``tracking_metrics`` when ``report`` ran, the best
  layer per condition and the per-ROI noise ceilings when ``roi_summary`` ran, the mean r of each
  encoding cell that ran (which nodes ran: all selected ones; with ``--only-missing-outputs``
  those ``after_node_run`` saw, or, under runners without node hooks, those whose files changed);
- artifacts only from files under the reporting folder that a node of this run saved.

A run that refreshes datasets without running the nodes downstream of them (``--pipeline
encoding``, one ``--namespaces`` cell, a resume that re-fits a deleted cell) leaves those nodes'
outputs stale: the hook logs a WARNING naming them and the command that refreshes them, whether
tracking is on or not.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from .params_check import check_parameters
from .pipelines.grid import active_parameters, check_study_present, grid_from_params, set_active_parameters

log = logging.getLogger(__name__)

#: files under the reporting folder that a run attaches when one of its nodes saved them
REPORT_SUFFIXES = {".png", ".md", ".csv", ".html"}
#: MLflow 3's UI opens an experiment of this kind on its runs table (not on the Traces page)
EXPERIMENT_KIND = "custom_model_development"
#: MLflow's limit on a param value (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH)
MAX_PARAM_VALUE = 6000
#: metrics and params per MLflow batch call (below MLflow's own limits)
METRICS_PER_BATCH = 500
PARAMS_PER_BATCH = 100
_KEY_CHARS = re.compile(r"[^\w\-./]")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def mlflow_key(name: Any) -> str:
    """A metric or param name MLflow accepts: characters other than letters, digits, ``_ - . /``
    become ``_`` (ROI names with spaces or brackets, for instance)."""
    return _KEY_CHARS.sub("_", str(name))[:250]


def finite_metrics(metrics: dict) -> tuple[dict[str, float], list[str]]:
    """MLflow-ready metrics (spaces and other characters MLflow refuses in names replaced) and the
    names of those left out because their value is NaN or infinite (e.g. a mean over an empty set
    of targets)."""
    kept, dropped = {}, []
    for k, v in metrics.items():
        v = float(v)
        if math.isfinite(v):
            kept[mlflow_key(k)] = v
        else:
            dropped.append(str(k))
    return kept, dropped


def param_values(params: dict) -> dict[str, str]:
    """The flattened parameters as MLflow params: ``a.b.c`` keys, string values cut at MLflow's
    limit (the full values go to the ``kedro/parameters.json`` artifact)."""
    out = {}
    for k, v in flatten(params).items():
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        if len(text) > MAX_PARAM_VALUE:
            text = text[:MAX_PARAM_VALUE - 15] + " ...(truncated)"
        out[mlflow_key(k)] = text
    return out


def git_state(*paths: Path | str | None) -> dict[str, str]:
    """``git_commit``, ``git_dirty`` ("true"/"false", tracked files only) and ``git_root`` of the
    first path that lies in a git work tree; ``{}`` without git or outside any repository."""
    for path in paths:
        if path is None or not Path(path).exists():
            continue

        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                                  timeout=20, check=True).stdout.strip()
        try:
            commit = git("rev-parse", "HEAD")
            root = git("rev-parse", "--show-toplevel")
            dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        except (OSError, subprocess.SubprocessError):
            continue
        return {"git_commit": commit, "git_dirty": str(dirty).lower(), "git_root": root}
    return {}


def run_name(dataset: str, env: str | None, run_params: dict) -> str:
    """``<dataset>-<env>-<pipelines>``, then ``[<namespace>,...]`` (two named, then a count),
    ``+filtered`` when nodes were selected by tag or name, ``-resume`` with ``--only-missing-outputs``."""
    name = f"{dataset}-{env or 'local'}-{'+'.join(run_params.get('pipeline_names') or ['__default__'])}"
    ns = list(run_params.get("namespaces") or [])
    if ns:
        name += "[" + ",".join(ns[:2]) + (f",+{len(ns) - 2} more" if len(ns) > 2 else "") + "]"
    if any(run_params.get(k) for k in NODE_FILTERS):
        name += "+filtered"
    if run_params.get("only_missing_outputs"):
        name += "-resume"
    return name


#: run_params keys that select nodes (besides pipeline_names and namespaces)
NODE_FILTERS = ("tags", "node_names", "from_nodes", "to_nodes", "from_inputs", "to_outputs")


def grid_tags(params: dict) -> dict[str, str]:
    """The experiment grid as tags: ``grid_id`` (a short hash of dataset, subjects and
    condition x layer cells, equal for the runs of one grid), its sizes and condition names."""
    try:
        grid = grid_from_params(params)
    except Exception as exc:  # a grid that cannot be built fails elsewhere, with its own message
        log.debug("MLflow: no grid tags (%s)", exc)
        return {}
    cells = [f"{c}.{grid.layer_name(k)}" for c, k in grid.cells()]
    key = json.dumps({"dataset": params.get("dataset"), "subjects": list(grid.subjects), "cells": cells})
    return {"grid_id": hashlib.sha1(key.encode()).hexdigest()[:10],
            "grid.subjects": str(len(grid.subjects)), "grid.conditions": ",".join(grid.conditions),
            "grid.cells": str(len(cells) * len(grid.subjects))}


def runs_table_url(experiment_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """The experiment's runs table in the MLflow UI. ``workflowType=machine_learning`` makes
    MLflow 3.x UIs with the GenAI / Model training switch open the runs table rather than the
    GenAI overview and Traces pages (the switch, not the experiment's kind tag, decides there)."""
    return f"{ui}/#/experiments/{experiment_id}?workflowType=machine_learning"


def run_kind(ran: set[str], all_nodes: set[str], only_missing_outputs: bool) -> str:
    """``no-op`` (no node ran), ``full`` (every node of the whole project ran), ``resume``
    (``--only-missing-outputs`` ran some) or ``partial`` (a selection of nodes ran)."""
    if not ran:
        return "no-op"
    if all_nodes and all_nodes <= ran:
        return "full"
    return "resume" if only_missing_outputs else "partial"


def summary_metrics(summary) -> dict[str, float]:
    """Metrics from the ROI summary (``roi_summary``: condition, layer, roi, mean_r, ...,
    mean_noise_ceiling, mean_isc_loso, r_norm):

    - ``best_layer.<condition>``: the layer with the highest mean r over ROIs (the report's and
      the ROI bar plot's choice) and ``r.<condition>.best_layer.mean`` its mean r;
    - ``noise_ceiling.<roi>``: the ROI's mean noise ceiling;
    - ``isc_loso.<roi>``: the leave-one-subject-out inter-subject correlation (not a ceiling);
    - ``r_norm.<condition>.best_layer.<roi>``: r over the ceiling at the best layer.

    Values that are not finite (no ceiling where the data allow none, e.g. fewer than 3 subjects)
    are left out: the summary says why, and a warning per run would only repeat it.
    """
    out: dict[str, float] = {}
    if summary is None or not len(summary) or not {"condition", "layer", "roi", "mean_r"} <= set(summary):
        return out
    from .core.stats.summaries import best_layers

    for cond, (best, r) in best_layers(summary).items():
        out[f"best_layer.{cond}"] = float(best)
        out[f"r.{cond}.best_layer.mean"] = r
        if "r_norm" in summary:
            s = summary[(summary["condition"] == cond) & (summary["layer"] == best)]
            for row in s.itertuples():
                out[f"r_norm.{cond}.best_layer.{row.roi}"] = float(row.r_norm)
    for column, prefix in (("mean_noise_ceiling", "noise_ceiling"), ("mean_isc_loso", "isc_loso")):
        if column in summary:
            for roi, v in summary.groupby("roi")[column].mean().items():
                out[f"{prefix}.{roi}"] = float(v)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def claim_metrics(claims) -> dict[str, float]:
    """Metrics from ``tuning_claims`` (core.stats.comparison.summary_claims: nested maps of
    numbers): every finite numeric leaf as ``claims.<key>.<key>...`` (e.g.
    ``claims.encoding_r_by_method.prefix``, ``claims.method_contrast_q.prefix vs full.LPTL``; names
    made MLflow-safe by :func:`mlflow_key` when logged). Booleans become 0/1; text leaves are left
    out (they stay in the JSON artifact)."""
    out: dict[str, float] = {}
    if not isinstance(claims, dict):
        return out
    for k, v in flatten(claims, "claims.").items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def decoding_metrics(summary) -> dict[str, float]:
    """Metrics from ``decoding_summary`` (condition, layer, roi, mean_accuracy, mean_null, q, ...):
    ``decoding.<condition>.layer_<k>.<roi>.accuracy`` (mean pairwise accuracy over subjects) and
    ``.null`` (the mean of the permutation null) and ``.q`` (BH q of accuracy - null)."""
    out: dict[str, float] = {}
    if summary is None or not len(summary) or not {"condition", "layer", "roi", "mean_accuracy"} <= set(summary):
        return out
    for row in summary.itertuples():
        key = f"decoding.{row.condition}.layer_{int(row.layer)}.{row.roi}"
        for column, suffix in (("mean_accuracy", "accuracy"), ("mean_null", "null"), ("q", "q")):
            v = getattr(row, column, None)
            if v is not None and math.isfinite(float(v)):
                out[f"{key}.{suffix}"] = float(v)
    return out


def downstream_stale(nodes: list, ran: set[str], refreshed: set[str]) -> list:
    """Nodes (of ``nodes``, in order) that read, directly or through other such nodes, a dataset
    this run refreshed, but did not run themselves: their outputs are now older than their inputs."""
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)
    stale: dict[str, Any] = {}
    frontier = list(refreshed)
    while frontier:
        for n in consumers.get(frontier.pop(), []):
            if n.name not in ran and n.name not in stale:
                stale[n.name] = n
                frontier.extend(n.outputs)
    order = {n.name: i for i, n in enumerate(nodes)}
    return sorted(stale.values(), key=lambda n: order[n.name])


def refresh_command(env: str | None, registry: dict, stale: list) -> str:
    """``kedro run --env <env> --pipelines <the named pipelines that hold the stale nodes>``."""
    names = {n.name for n in stale}
    pipes = [p for p, pipe in registry.items() if p != "__default__" and names & {n.name for n in pipe.nodes}]
    return "kedro run" + (f" --env {env}" if env else "") + (f" --pipelines {','.join(pipes)}" if pipes else "")


def dataset_path(catalog, name: str) -> Path | None:
    """The file or folder a catalog dataset writes (its ``filepath`` or ``path``), if any."""
    try:
        ds = catalog.get(name)
    except Exception:  # noqa: BLE001 - an undeclared name is simply not a file
        return None
    if ds is None:
        return None
    try:
        desc = ds._describe()
    except Exception:  # noqa: BLE001
        return None
    where = desc.get("filepath") or desc.get("path")
    return Path(str(where)) if where else None


def report_files(catalog, names, report_dir: Path, project_path: Path) -> list[tuple[Path, str | None]]:
    """(file, artifact folder) for the report files among the datasets ``names``: files (or the
    files of a folder) under ``report_dir`` with a suffix in REPORT_SUFFIXES, the artifact folder
    mirroring the file's place under ``report_dir``."""
    root = (report_dir if report_dir.is_absolute() else project_path / report_dir).resolve()
    out = []
    for name in sorted(names):
        path = dataset_path(catalog, name)
        if path is None:
            continue
        path = (path if path.is_absolute() else project_path / path).resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.is_file() and f.suffix in REPORT_SUFFIXES and f.is_relative_to(root):
                folder = f.parent.relative_to(root).as_posix()
                out.append((f, None if folder == "." else folder))
    return out


def file_mtime(catalog, name: str) -> int | None:
    """The modification time (ns) of the file or folder a dataset writes; None when it has none."""
    path = dataset_path(catalog, name)
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


def describe_datasets(catalog, names: list[str], project_path: Path, limit: int = 4) -> str:
    """``names`` as their files (relative to the project where they lie in it), ``limit`` shown."""
    shown = []
    for name in names[:limit]:
        path = dataset_path(catalog, name)
        if path is not None and path.is_absolute() and path.is_relative_to(project_path):
            path = path.relative_to(project_path)
        shown.append(str(path) if path is not None else name)
    return ", ".join(shown) + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
    """One MLflow run per ``kedro run`` holding what that run produced (module docstring,
    docs/tracking.md), and the stale-output warning after runs that skip downstream nodes."""

    #: node outputs whose values the hook keeps for metrics (the rest is only named)
    METRIC_OUTPUTS = ("tracking_metrics", "roi_summary", "tuning_claims", "decoding_summary")

    def __init__(self):
        self._cfg: dict = {}
        self._params: dict = {}
        self._env = None
        self._project_path: Path = Path.cwd()
        self._active = False
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._ran: list[str] = []            # names of the nodes that ran, in order
        self._refreshed: set[str] = set()    # datasets those nodes saved
        self._values: dict[str, Any] = {}    # tracking_metrics / roi_summary when their node ran
        self._cells: dict[str, float] = {}   # mean r of each encoding cell that ran
        self._mtimes: dict[str, int | None] = {}  # --only-missing-outputs: output files before the run
        self._run_params: dict = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.config_loader["parameters"]
        self._cfg = dict(self._params.get("tracking", {}) or {})
        self._env = context.env
        self._project_path = Path(context.project_path)

    @hook_impl(trylast=True)  # after GridHook's checks: a run refused there opens no MLflow run
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        self._reset()
        self._run_params = dict(run_params)
        if run_params.get("only_missing_outputs"):
            # for runners whose node hooks run elsewhere (_nodes_that_ran)
            self._mtimes = {o: file_mtime(catalog, o) for n in pipeline.nodes for o in n.outputs}
        if not self._cfg.get("enabled", False):
            return
        import mlflow

        mlflow.set_tracking_uri(self._cfg.get("uri", "sqlite:///mlflow.db"))
        experiment = mlflow.set_experiment(self._cfg.get("experiment", "brainalign"))
        if "mlflow.experimentKind" not in (experiment.tags or {}):
            # MLflow 3 UIs that go by this tag open a model-training experiment on its runs table,
            # not on the GenAI "Traces" page (3.17's GenAI / Model training switch ignores it: runs_table_url)
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, "mlflow.experimentKind",
                                                     EXPERIMENT_KIND)
        mlflow.start_run(run_name=run_name(self._params.get("dataset", "run"), self._env, run_params))
        self._active = True
        git = git_state(self._project_path, Path(__file__).parent)
        if not git:
            log.warning("MLflow: no git commit recorded (neither %s nor the installed package is in a "
                        "git work tree, or git is missing)", self._project_path)
        tags = {"kedro.env": str(self._env or "local"), "kedro.run_id": str(run_params.get("run_id")),
                "kedro.pipelines": ",".join(run_params.get("pipeline_names") or ["__default__"]),
                "kedro.namespaces": ",".join(run_params.get("namespaces") or []),
                "kedro.only_missing_outputs": str(bool(run_params.get("only_missing_outputs"))).lower(),
                "kedro.filters": json.dumps({k: run_params[k] for k in NODE_FILTERS if run_params.get(k)},
                                            default=str),
                "kedro.version": str(run_params.get("kedro_version")),
                "dataset": str(self._params.get("dataset")), **git, **grid_tags(self._params)}
        if git:
            tags["mlflow.source.git.commit"] = git["git_commit"]
        mlflow.set_tags(tags)
        items = list(param_values(self._params).items())
        for i in range(0, len(items), PARAMS_PER_BATCH):
            mlflow.log_params(dict(items[i:i + PARAMS_PER_BATCH]))
        mlflow.log_text(json.dumps(self._params, indent=1, default=str), "kedro/parameters.json")

    @hook_impl
    def after_node_run(self, node, catalog, inputs: dict, outputs: dict) -> None:
        with self._lock:
            self._ran.append(node.name)
            self._refreshed.update(node.outputs)
            for name, value in outputs.items():
                if name in self.METRIC_OUTPUTS:
                    self._values[name] = value
                elif name.endswith(".scores") and hasattr(value, "columns") and "r" in value.columns:
                    self._cells[name[:-len(".scores")]] = float(value["r"].mean())

    @hook_impl
    def after_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        ran_nodes = self._nodes_that_ran(run_params, pipeline, catalog)
        ran = {n.name for n in ran_nodes}
        self._refreshed = {o for n in ran_nodes for o in n.outputs}
        registry = self._registry()
        full = registry.get("__default__")
        all_nodes = list(full.nodes) if full is not None else list(pipeline.nodes)
        kind = run_kind(ran, {n.name for n in all_nodes}, bool(run_params.get("only_missing_outputs")))
        stale = downstream_stale(all_nodes, ran, self._refreshed)
        stale_outputs = [o for n in stale for o in n.outputs if dataset_path(catalog, o) is not None]
        note = ""
        if stale:
            command = refresh_command(self._env, registry, stale)
            saved = sorted(d for d in self._refreshed if any(d in n.inputs for n in stale))
            note = (f"this run saved {', '.join(saved[:3])}{' ...' if len(saved) > 3 else ''} but did not run the "
                    f"{len(stale)} node(s) downstream of {'it' if len(saved) == 1 else 'them'} "
                    f"({', '.join(n.name for n in stale[:4])}"
                    f"{' ...' if len(stale) > 4 else ''}), so their {len(stale_outputs)} output(s) are stale: "
                    f"{describe_datasets(catalog, stale_outputs, self._project_path.resolve())}. "
                    f"Refresh them with `{command}`.")
            log.warning("Stale outputs: %s", note)
        if not self._active:
            return
        import mlflow

        try:
            mlflow.set_tags({"run_kind": kind, "partial": str(kind != "full").lower(),
                             "kedro.nodes_run": str(len(ran)), "kedro.nodes_selected": str(len(pipeline.nodes)),
                             "stale_outputs": ",".join(stale_outputs)[:7900],
                             "mlflow.note.content": self._note(kind, ran, pipeline, note)})
            if ran:
                mlflow.log_dict({"nodes_run": [n.name for n in ran_nodes], "datasets_saved": sorted(self._refreshed),
                                 "stale_nodes": [n.name for n in stale], "stale_outputs": stale_outputs},
                                "kedro/run.json")
            metrics = self._metrics(catalog)
            kept, dropped = finite_metrics(metrics)
            if dropped:
                log.warning("MLflow: %d metrics are not finite and were not logged: %s", len(dropped),
                            ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
            items = list(kept.items())
            for i in range(0, len(items), METRICS_PER_BATCH):
                mlflow.log_metrics(dict(items[i:i + METRICS_PER_BATCH]))
            report_dir = Path(self._cfg.get("artifacts_dir", "data/08_reporting"))
            for f, folder in report_files(catalog, self._refreshed, report_dir, self._project_path):
                mlflow.log_artifact(str(f), folder)
            run = mlflow.active_run().info
            log.info("MLflow run %s (%s, %d metrics) logged to %s; to compare runs: mlflow ui --backend-store-uri "
                     "%s, then open %s", run.run_id, kind, len(kept), mlflow.get_tracking_uri(),
                     mlflow.get_tracking_uri(), runs_table_url(run.experiment_id))
        finally:
            mlflow.end_run()
            self._active = False

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if self._active:
            import mlflow

            try:
                mlflow.set_tags({"run_kind": "failed", "partial": "true", "kedro.nodes_run": str(len(self._ran)),
                                 "error": f"{type(error).__name__}: {error}"[:7900]})
            finally:
                mlflow.end_run(status="FAILED")
                self._active = False

    def _nodes_that_ran(self, run_params: dict, pipeline, catalog) -> list:
        """The nodes of ``pipeline`` that ran. A finished run without ``--only-missing-outputs`` ran
        all of them. With it: those ``after_node_run`` recorded; where node hooks run in other
        processes (ParallelRunner, brainalign.runner.DaskRunner) none are recorded, and a node
        counts as run when a file or folder it writes appeared or changed during the run."""
        if not run_params.get("only_missing_outputs"):
            return list(pipeline.nodes)
        if self._ran:
            names = set(self._ran)
            return [n for n in pipeline.nodes if n.name in names]
        return [n for n in pipeline.nodes
                if any(self._mtimes.get(o) != file_mtime(catalog, o) for o in n.outputs if o in self._mtimes)]

    def _registry(self) -> dict:
        """The registered pipelines (already built for this run), or ``{}`` where they cannot be read."""
        try:
            from kedro.framework.project import pipelines

            return dict(pipelines.items())
        except Exception as exc:  # noqa: BLE001 - stale detection then covers the run's own pipeline
            log.debug("MLflow: registered pipelines unavailable (%s)", exc)
            return {}

    def _metrics(self, catalog) -> dict[str, float]:
        """Metrics of the nodes that ran: their values as saved in this run (read back from the
        catalog only where node hooks run in other processes: ParallelRunner, DaskRunner)."""
        def value(name):
            if name not in self._refreshed:
                return None
            if name in self._values:
                return self._values[name]
            try:
                return catalog.load(name)
            except Exception as exc:  # noqa: BLE001
                log.warning("MLflow: %s could not be read back (%s)", name, exc)
                return None

        metrics: dict[str, float] = {}
        tracked = value("tracking_metrics")
        if tracked:
            metrics.update(tracked)
        metrics.update(summary_metrics(value("roi_summary")))
        metrics.update(claim_metrics(value("tuning_claims")))
        metrics.update(decoding_metrics(value("decoding_summary")))
        for name in sorted(self._refreshed):
            cell = name[:-len(".scores")]
            if name.endswith(".scores") and cell not in self._cells and dataset_path(catalog, name) is not None:
                scores = value(name)
                if hasattr(scores, "columns") and "r" in scores.columns:
                    self._cells[cell] = float(scores["r"].mean())
        for cell, r in self._cells.items():
            metrics[f"cell.{cell}.mean_r"] = r
        return metrics

    def _note(self, kind: str, ran: set[str], pipeline, stale_note: str) -> str:
        p = self._run_params
        lines = [f"**{kind}** run: {len(ran)} of {len(pipeline.nodes)} selected node(s) ran "
                 f"(pipelines: {', '.join(p.get('pipeline_names') or ['__default__'])}"
                 + (f"; namespaces: {', '.join(p.get('namespaces'))}" if p.get("namespaces") else "")
                 + ("; --only-missing-outputs" if p.get("only_missing_outputs") else "") + ")."]
        if kind == "no-op":
            lines.append("No node ran: every output already existed. Nothing was measured, so no metric is logged.")
        if stale_note:
            lines.append("Stale outputs: " + stale_note)
        return "\n\n".join(lines)[:7900]
