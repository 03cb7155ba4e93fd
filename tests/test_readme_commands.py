"""Every `kedro ...` command in the fenced shell blocks of README.md and docs/*.md works as written:
its options parse with the project's own `kedro run` (brainalign.cli), the pipelines, namespaces,
env and runner it names exist, and any other kedro subcommand exists (`--help` succeeds). The
commands themselves are run elsewhere (the default run by CI's README command 1; envs in
tests/pipelines)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[tuple[str, str]]:
    out = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", md.read_text(), flags=re.S):
            for line in block.splitlines():
                line = line.split(" # ")[0].strip()
                if re.match(r"^([A-Z_]+=\S+ )*(\.venv/bin/)?kedro ", line):
                    out.append((md.name, line))
    return out


COMMANDS = _commands()


def test_commands_found():
    assert len(COMMANDS) >= 6, COMMANDS


def _registry(env: str | None):
    from kedro.config import OmegaConfigLoader

    from brainalign.pipeline_registry import register_pipelines
    from brainalign.pipelines.grid import set_active_parameters
    from brainalign.settings import CONFIG_LOADER_ARGS

    params = OmegaConfigLoader(str(ROOT / "conf"), env=env or "local", **CONFIG_LOADER_ARGS)["parameters"]
    set_active_parameters(params)
    return register_pipelines()


@pytest.mark.parametrize("source,line", COMMANDS, ids=[c[1][:60] for c in COMMANDS])
def test_command_works_as_written(source, line):
    from brainalign.cli import run

    args = shlex.split(line)
    while "=" in args[0] and not args[0].startswith("-"):   # VAR=value prefixes
        args.pop(0)
    args.pop(0)                                              # kedro
    if args[0] != "run":
        kedro = Path(sys.executable).parent / "kedro"
        proc = subprocess.run([str(kedro), *args, "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env={"KEDRO_DISABLE_TELEMETRY": "1", "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, f"{source}: {line}\n{proc.stderr[-1500:]}"
        return
    ctx = run.make_context("run", args[1:])                 # parses every option, --params included
    p = ctx.params
    env = p.get("env")
    if env:
        assert (ROOT / "conf" / env).is_dir(), f"{source}: {line}: no env {env!r}"
    if p.get("runner"):
        from kedro.utils import load_obj

        load_obj(p["runner"], "kedro.runner")
    pipes = _registry(env if env in (None, "test") else None)
    names = [*(p.get("pipelines") or []), *([p["pipeline"]] if p.get("pipeline") else [])]
    for name in names:
        assert name in pipes, f"{source}: {line}: no pipeline {name!r} (have {sorted(pipes)})"
    if p.get("namespaces") and env is None:
        spaces = {n.namespace for n in pipes["__default__"].nodes if n.namespace}
        for ns in p["namespaces"]:
            assert any(s == ns or s.startswith(ns + ".") for s in spaces), f"{source}: {line}: no namespace {ns!r}"
