"""Shared by the end-to-end tests: a throw-away copy of the project and ``kedro run`` in it.

``copy_project(dest, env, update)`` copies pyproject.toml, conf/ (without conf/local) and src/
to ``dest`` and lets ``update(params)`` edit ``conf/<env>/parameters.yml`` in place (``edit_yaml`` does
the same for any other YAML file);
``run_kedro(project, *args, env_vars=...)`` runs ``python -m kedro`` there with telemetry off, a
SQLite MLflow store inside the copy and wide log lines, and fails the test with the log's tail.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path, env: str | None = None, update: Callable[[dict], None] | None = None) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", dest)
    shutil.copytree(ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir()
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if update is not None:
        edit_yaml(dest / "conf" / (env or "base") / "parameters.yml", update)
    return dest


def edit_yaml(path: Path, update: Callable[[dict], None]) -> None:
    """Lets ``update(data)`` edit the YAML file at ``path`` (``{}`` where it is missing) in place."""
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    update(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def run_kedro(project: Path, *args: str, env_vars: dict | None = None,
              timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m kedro *args`` in ``project``; with ``check`` a non-zero exit fails the test."""
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", COLUMNS="400", PYTHONWARNINGS="ignore",
               MLFLOW_TRACKING_URI=f"sqlite:///{project}/mlflow.db")
    env.pop("KEDRO_ENV", None)
    env.update(env_vars or {})
    proc = subprocess.run([sys.executable, "-m", "kedro", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0 or not check, f"kedro {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def only_conditions(params: dict, **conditions) -> None:
    """Let an env's parameters score exactly ``conditions``: every condition of conf/base is set to
    None (dropped: envs inherit base's conditions key by key) unless given here. The variance
    partition is turned off unless its bands' conditions are all kept."""
    base = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())
    params["conditions"] = {**{name: None for name in base.get("conditions") or {}}, **conditions}
    vp = params.get("variance_partition") or base.get("variance_partition") or {}
    if any(b.get("condition") not in conditions for b in vp.get("bands") or []):
        params["variance_partition"] = {"enabled": False}
