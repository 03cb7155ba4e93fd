"""Building pipelines is pure: registering them (``kedro registry list``, ``kedro viz build``, the
start of every ``kedro run``) lists folders at most, never reads a data file, never downloads.

Each command runs in a fresh copy of the project with an empty data folder, in a subprocess whose
``sitecustomize`` (its folder first on PYTHONPATH) installs an audit hook (:func:`sys.addaudithook`)
that records every ``open`` event (``open()``, ``io.open``, ``os.open``, ``pathlib``) of a file
under the watched folders, and records and refuses every socket connection or name look-up of a
non-local address. Directory listings raise other events (``os.scandir``, ``os.listdir``) and are
allowed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kedro_project import copy_project, edit_yaml, run_kedro

pytestmark = pytest.mark.slow

SITECUSTOMIZE = textwrap.dedent('''
    """Test probe (tests/pipelines/test_pure_registration.py): audit file opens and network use."""
    import os
    import sys

    _fd = os.open(os.environ["BRAINALIGN_AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _watch = []
    for _d in filter(None, os.environ.get("BRAINALIGN_AUDIT_DIRS", "").split(os.pathsep)):
        for _p in {os.path.abspath(_d), os.path.realpath(_d)}:
            _watch.append(_p.rstrip(os.sep) + os.sep)
    _LOCAL = ("localhost", "::1", "0.0.0.0", "")


    def _write(kind, what):
        os.write(_fd, f"{kind}\\t{what}\\n".encode("utf-8", "replace"))


    def _local(host):
        host = host.decode() if isinstance(host, bytes) else str(host)
        return host in _LOCAL or host.startswith("127.")


    def _hook(event, args):
        if event == "open":
            path = args[0]
            if path is None or isinstance(path, int):
                return
            try:
                full = os.path.abspath(os.fsdecode(path))
            except (TypeError, ValueError):
                return
            if any((full + os.sep).startswith(w) for w in _watch) and not os.path.isdir(full):
                _write("open", f"{full}\\t{args[1]}")
        elif event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and not _local(address[0]):
                _write("connect", repr(address))
                raise ConnectionRefusedError(f"test probe: no network ({address!r})")
        elif event == "socket.getaddrinfo":
            if not _local(args[0]):
                _write("getaddrinfo", repr(args[0]))
                raise OSError(f"test probe: no network (look-up of {args[0]!r})")


    sys.addaudithook(_hook)
''')


def _probe(tmp_path: Path, watched: list[Path]) -> tuple[dict, Path]:
    site = tmp_path / "probe"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "audit.log"
    log.write_text("")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "BRAINALIGN_AUDIT_LOG": str(log),
           "BRAINALIGN_AUDIT_DIRS": ":".join(str(p) for p in watched)}
    return env, log


def _events(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines() if line]


def test_probe_sees_opens_and_network(tmp_path):
    """The probe itself works: a file read under a watched folder and a connection are caught."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("x")
    env, log = _probe(tmp_path, [data])
    code = ("import os, pathlib, socket\n"
            f"open({str(data / 'x.txt')!r}).read(); pathlib.Path({str(data)!r}, 'x.txt').read_text()\n"
            f"os.close(os.open({str(data / 'x.txt')!r}, os.O_RDONLY)); os.listdir({str(data)!r})\n"
            "for f in (lambda: socket.create_connection(('example.org', 443), timeout=1),\n"
            "          lambda: socket.socket().connect(('192.0.2.1', 443))):\n"
            "    try:\n        f()\n    except OSError:\n        pass\n")
    subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), check=True, timeout=60)
    events = _events(log)
    assert [e[0] for e in events].count("open") == 3
    assert ["getaddrinfo", "'example.org'"] in events and ["connect", "('192.0.2.1', 443)"] in events


def test_lebel_env_with_an_empty_study_registers_and_builds_viz_offline(tmp_path):
    """A real-data env (lebel, download: true, brain maps on) on an empty study folder: the
    registry and kedro-viz build the pipelines without reading a file or touching the network;
    the subject pipelines are empty with a warning saying to run data_prep first, and data_prep
    holds the download node, ordered before the nodes that read the study."""
    study = tmp_path / "empty_study"
    study.mkdir()

    def params(p):
        p.setdefault("brain_maps", {})["enabled"] = True

    project = copy_project(tmp_path / "project", "lebel", params)
    edit_yaml(project / "conf" / "lebel" / "globals.yml", lambda g: g.update(download=True))
    env, log = _probe(tmp_path, [study, project / "data"])
    env.update(BRAINALIGN_LEBEL_DIR=str(study), KEDRO_ENV="lebel")

    listed = run_kedro(project, "registry", "list", env_vars=env, timeout=120)
    out = listed.stdout + listed.stderr
    assert "data_prep" in out
    assert "kedro run --pipeline data_prep" in " ".join(out.split())  # the warning (rich wraps it)
    run_kedro(project, "viz", "build", env_vars=env, timeout=120)

    events = _events(log)
    assert not [e for e in events if e[0] in ("connect", "getaddrinfo")], events
    assert not [e for e in events if e[0] == "open"], events
    assert not any(study.iterdir()), "the study folder was written to"
    main = json.loads((project / "build" / "api" / "main").read_text())
    names = {n["name"] for n in main["nodes"]}
    assert {"download_study", "study_download", "read_stimuli", "reference_image"} <= names
    tasks = {n["name"]: n["id"] for n in main["nodes"] if n["type"] == "task"}
    data = {n["name"]: n["id"] for n in main["nodes"] if n["type"] == "data"}
    edges = {(e["source"], e["target"]) for e in main["edges"]}
    assert (tasks["download_study"], data["study_download"]) in edges
    for reader in ("read_stimuli", "read_ground_truth", "reference_image"):
        assert (data["study_download"], tasks[reader]) in edges, reader


def test_default_env_registry_reads_no_data_file(tmp_path):
    """The default env (simulated study) with an empty data folder: ``kedro registry list``
    opens nothing under data/."""
    project = copy_project(tmp_path / "project")
    (project / "data").mkdir()
    env, log = _probe(tmp_path, [project / "data"])
    run_kedro(project, "registry", "list", env_vars=env, timeout=120)
    events = _events(log)
    assert not [e for e in events if e[0] == "open"], events
    assert not [e for e in events if e[0] in ("connect", "getaddrinfo")], events
