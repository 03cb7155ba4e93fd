"""Without KEDRO_DISABLE_TELEMETRY, the committed `.telemetry` (consent: false) keeps the telemetry
plugin from asking for consent, sending anything, or writing a project_id into pyproject.toml."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kedro_without_the_variable_leaves_tracked_files_alone(tmp_path):
    from kedro_project import copy_project

    project = copy_project(tmp_path / "p")
    shutil.copy(ROOT / ".telemetry", project / ".telemetry")
    before = (project / "pyproject.toml").read_text()
    env = {k: v for k, v in os.environ.items() if k not in ("KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    kedro = Path(sys.executable).parent / "kedro"   # the entry point, as the README runs it
    proc = subprocess.run([str(kedro), "viz", "run", "--help"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert (project / "pyproject.toml").read_text() == before
    assert "anonymous usage data" not in out and "consent" not in out.lower()
