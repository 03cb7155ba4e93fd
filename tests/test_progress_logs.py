"""Progress and logs (docs/architecture.md, "Logs and progress"): one line per finished encoding
cell with k/N, the cell and a remaining estimate; no per-dataset "Loading data" lines; no
omegaconf or nilearn warnings known to be harmless; plain whole lines when the output is redirected."""
from __future__ import annotations

import io
import logging
import math
import re
from types import SimpleNamespace

import pytest

from brainalign.progress import (Cell, GridProgress, cell_of, format_duration, plain_console_when_redirected,
                                 progress_line, remaining_seconds)
from kedro_project import copy_project, run_kedro

CELL_LINE = re.compile(r"cell (\d+)/(\d+) (\S+) (\S+) layer (\d+) done in [^;]+; elapsed [^,]+, "
                       r"(about \S+( \S+)*? left|none left)")


# --- the arithmetic, without Kedro -------------------------------------------------------------

def test_remaining_is_mean_cell_time_times_cells_left():
    assert remaining_seconds(1, 4, 3.0) == pytest.approx(9.0)
    assert remaining_seconds(3, 4, 6.0) == pytest.approx(2.0)
    assert remaining_seconds(4, 4, 8.0) == 0.0
    assert remaining_seconds(5, 4, 8.0) == 0.0  # never negative
    assert math.isnan(remaining_seconds(0, 4, 0.0))


def test_durations_read_as_seconds_minutes_hours():
    assert format_duration(4.08) == "4.1 s"
    assert format_duration(31.4) == "31 s"
    assert format_duration(125) == "2 min 5 s"
    assert format_duration(3725) == "1 h 2 min"
    assert format_duration(math.nan) == "?"


def test_progress_line_names_the_cell():
    line = progress_line(7, 21, Cell("sub-02", "pretrained", 3), 4.1, 31.0, 62.0)
    assert line == "cell 7/21 sub-02 pretrained layer 3 done in 4.1 s; elapsed 31 s, about 1 min 2 s left"
    assert progress_line(21, 21, Cell("sub-02", "pretrained", 3), 4.1, 90, 0).endswith("none left")
    assert progress_line(2, 0, Cell("s1"), 1.0, 2.0, math.nan).startswith("cell 2 s1 variance partition done")


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _node(name, namespace=None, **keywords):
    full = f"{namespace}.{name}" if namespace else name
    return SimpleNamespace(name=full, namespace=namespace, func=SimpleNamespace(keywords=keywords))


def test_hook_counts_cells_and_estimates_time_left(caplog):
    clock = _Clock()
    cells = [_node("fit_encoding", f"sub-0{s}.pretrained.layer_{k}", subject=f"sub-0{s}",
                   condition="pretrained", layer=k) for s in (1, 2) for k in (0, 4)]
    other = _node("to_tr_grid", "pretrained.layer_0")
    hook = GridProgress(clock=clock)
    with caplog.at_level(logging.INFO, logger="brainalign.progress"):
        hook.before_pipeline_run(pipeline=SimpleNamespace(nodes=[other, *cells]))
        assert hook.total == 4
        hook.before_node_run(other)
        clock.t += 50  # a non-cell node: neither counted nor timed
        hook.after_node_run(other)
        for took, node in zip((2.0, 4.0, 3.0, 3.0), cells):
            hook.before_node_run(node)
            clock.t += took
            hook.after_node_run(node)
            clock.t += 1.0  # saving outputs, loading the next inputs
        hook.after_pipeline_run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cell ")]
    assert lines == [
        "cell 1/4 sub-01 pretrained layer 0 done in 2.0 s; elapsed 2.0 s, about 6.0 s left",  # 2 x 3
        "cell 2/4 sub-01 pretrained layer 4 done in 4.0 s; elapsed 7.0 s, about 6.0 s left",  # 3 x 2
        "cell 3/4 sub-02 pretrained layer 0 done in 3.0 s; elapsed 11 s, about 3.0 s left",   # 3 x 1
        "cell 4/4 sub-02 pretrained layer 4 done in 3.0 s; elapsed 15 s, none left",
    ]
    assert "encoding grid: 4 of 4 cells in 15 s (3.0 s per cell)" in caplog.text


def test_worker_process_names_the_cell_without_a_count(caplog):
    """In a ParallelRunner worker (another process than the one that saw the pipeline start) the
    count is not known: the line names the cell and its time only."""
    clock = _Clock()
    node = _node("fit_encoding", "s1.pretrained.layer_2", subject="s1", condition="pretrained", layer=2)
    hook = GridProgress(clock=clock)
    hook.before_pipeline_run(pipeline=SimpleNamespace(nodes=[node]))
    hook._pid = -1  # as in a worker process
    with caplog.at_level(logging.INFO, logger="brainalign.progress"):
        hook.before_node_run(node)
        clock.t += 12.0
        hook.after_node_run(node)
    assert "cell s1 pretrained layer 2 done in 12 s" in caplog.text
    assert hook.done == 0


def test_cells_of_the_real_encoding_pipeline():
    from brainalign.pipelines.encoding.pipeline import create_pipeline
    from brainalign.pipelines.grid import Grid

    pipe = create_pipeline(Grid(("sub-01", "sub-02"), ("pretrained",), (0, 3),
                                partition=(("model", "pretrained", 3),)))
    cells = {cell_of(n) for n in pipe.nodes} - {None}
    assert cells == {Cell("sub-01", "pretrained", 0), Cell("sub-01", "pretrained", 3),
                     Cell("sub-02", "pretrained", 0), Cell("sub-02", "pretrained", 3),
                     Cell("sub-01"), Cell("sub-02")}
    # without the bound keywords, the namespace says the same
    bare = _node("fit_encoding", "sub-01.pretrained.layer_3")
    assert cell_of(bare) == Cell("sub-01", "pretrained", 3)


def test_redirected_console_gets_plain_whole_lines():
    from rich.console import Console
    from rich.logging import RichHandler

    out = io.StringIO()
    logger = logging.getLogger("brainalign.test_progress_logs")
    logger.propagate = False
    rich = RichHandler(console=Console(file=out, width=80))
    logger.addHandler(rich)
    try:
        assert plain_console_when_redirected(logger) == 1
        assert rich not in logger.handlers
        long = " ".join(["sub-01.pretrained.layer_0.scores"] * 8)
        logger.warning(long)
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith(long) and "WARNING" in lines[0]


# --- one tiny kedro run --------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_run_logs_cells_and_no_noise(tmp_path):
    project = copy_project(tmp_path / "project", "test")
    # warnings shown (run_kedro hides them by default), so that only our filters keep them out
    proc = run_kedro(project, "run", "--env", "test", env_vars={"PYTHONWARNINGS": "default"})
    log = proc.stdout + proc.stderr

    completed = set(re.findall(r"Completed node: grid\.(\S+)\.(\S+)\.layer_(\d+)\.fit_encoding", log))
    assert completed, log[-3000:]
    found = [m.groups() for m in CELL_LINE.finditer(log)]
    assert {(s, c, k) for _, _, s, c, k, *_ in found} == completed
    assert sorted(int(k) for k, *_ in found) == list(range(1, len(completed) + 1))
    assert {int(n) for _, n, *_ in found} == {len(completed)}
    assert all(rest.endswith("left") for *_, rest, _ in found)

    assert "register_new_resolver" not in log
    assert "Loading data from" not in log and "Saving data to" not in log
    assert "nilearn" not in log and "Mean of empty slice" not in log and "Threshold given was" not in log
    assert "Running node:" in log  # Kedro's own progress is kept

    # the file log: plain whole lines (the cell lines unbroken), written next to conf/
    info = (project / "info.log").read_text()
    assert len(CELL_LINE.findall(info)) == len(completed)
    assert "Loading data from" not in info
