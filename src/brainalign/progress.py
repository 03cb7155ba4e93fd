"""Progress of the encoding grid, and plain console lines when the output is not a terminal.

:class:`GridProgress` (a Kedro hook, registered in settings.HOOKS) logs one INFO line per finished
encoding cell::

    cell 7/21 sub-02 pretrained layer 3 done in 4.1 s; elapsed 31 s, about 1 min 2 s left

``N`` counts the cells of the pipeline being run (``fit_encoding`` nodes, and ``fit_partition``
nodes, logged as ``<subject> variance partition``), so ``--namespaces`` or ``--pipeline`` runs
count only theirs; "elapsed" runs from the start of the first cell, and the estimate is the mean
time of the finished cells times the cells left (:func:`remaining_seconds`). Node hooks run where
the node runs: with the sequential and thread runners that is the ``kedro run`` process; in the
worker processes of a ParallelRunner the line names the cell and its time only (the count lives in
the parent; Kedro's "Completed N out of M tasks" gives it), and Dask workers run no node hooks.

:func:`plain_console_when_redirected` (called from settings.py) swaps the rich console handler for
a plain one when standard output is a file or a pipe, so that ``kedro run > run.log`` holds one
unwrapped line per record. docs/architecture.md, "Logs and progress".
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass

from kedro.framework.hooks import hook_impl

log = logging.getLogger(__name__)

#: short names of the nodes that are cells of the encoding grid
CELL_NODES = ("fit_encoding", "fit_partition")

#: the console line when the output is redirected (the file handler of conf/logging.yml adds the logger name)
PLAIN_CONSOLE_FORMAT = "[%(asctime)s] %(levelname)-8s %(message)s"


@dataclass(frozen=True)
class Cell:
    """One cell of the grid: subject x condition x layer (condition and layer None: the
    subject's variance partition)."""
    subject: str
    condition: str | None = None
    layer: int | None = None

    def label(self) -> str:
        if self.condition is None:
            return f"{self.subject} variance partition"
        return f"{self.subject} {self.condition} layer {self.layer}"


def cell_of(node) -> Cell | None:
    """The grid cell a Kedro node computes, or None for any other node. Subject, condition and
    layer are the keywords bound to the node's function (pipelines.grid.bind), else they are read
    from its namespace ``[grid.]<subject>.<condition>.layer_<k>`` (``[grid.]<subject>.partition``)."""
    short = str(node.name).rsplit(".", 1)[-1]
    if short not in CELL_NODES:
        return None
    kw = getattr(getattr(node, "func", None), "keywords", None) or {}
    parts = str(getattr(node, "namespace", None) or "").split(".")
    if parts[0] == "grid":   # the registered pipelines put every cell under the top-level namespace grid
        parts = parts[1:]
    if short == "fit_partition":
        subject = kw.get("subject") or ".".join(parts[:-1]) or "?"
        return Cell(str(subject))
    if {"subject", "condition", "layer"} <= set(kw):
        return Cell(str(kw["subject"]), str(kw["condition"]), int(kw["layer"]))
    if len(parts) >= 3 and parts[-1].startswith("layer_"):
        layer = parts[-1][len("layer_"):]
        return Cell(".".join(parts[:-2]), parts[-2], int(layer) if layer.isdigit() else None)
    return Cell(str(getattr(node, "namespace", None) or node.name))


def remaining_seconds(done: int, total: int, busy: float) -> float:
    """Estimated seconds left: the mean time of the ``done`` cells (``busy`` seconds in all)
    times the cells left (NaN before the first cell has finished)."""
    if done <= 0:
        return math.nan
    return busy / done * max(total - done, 0)


def format_duration(seconds: float) -> str:
    """``4.1 s`` under 10 s, ``31 s``, ``2 min 5 s``, ``1 h 2 min``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(float(seconds), 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def progress_line(k: int | None, total: int, cell: Cell, took: float, elapsed: float = math.nan,
                  left: float = math.nan) -> str:
    """The per-cell line (``k`` None: the count of the run is unknown, in a worker process of a
    ParallelRunner: only the cell and its time)."""
    if k is None:
        return f"cell {cell.label()} done in {format_duration(took)}"
    count = f"cell {k}/{total}" if total else f"cell {k}"
    rest = "none left" if total and k >= total else f"about {format_duration(left)} left"
    return (f"{count} {cell.label()} done in {format_duration(took)}; "
            f"elapsed {format_duration(elapsed)}, {rest}")


class GridProgress:
    """Kedro hook: one INFO line per finished cell of the encoding grid (cell k/N, subject,
    condition, layer, its time, the time since the first cell started and an estimate of the
    time left), and a summary line after the run. ``clock`` is injectable for tests."""

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self._lock = threading.Lock()  # the ThreadRunner calls node hooks from several threads
        self._pid: int | None = None  # the process that ran before_pipeline_run
        self._reset(0)

    def _reset(self, total: int) -> None:
        self.total = int(total)
        self.done = 0
        self.busy = 0.0
        self.first_start: float | None = None
        self.last_end: float | None = None
        self._started: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self, pipeline) -> None:
        with self._lock:
            self._reset(sum(cell_of(n) is not None for n in pipeline.nodes))
            self._pid = os.getpid()
        if self.total:
            log.info("encoding grid: %d cells to run", self.total)

    @hook_impl
    def before_node_run(self, node) -> None:
        if cell_of(node) is None:
            return
        now = self._clock()
        with self._lock:
            self._started[node.name] = now
            if self.first_start is None:
                self.first_start = now

    @hook_impl
    def after_node_run(self, node) -> None:
        cell = cell_of(node)
        if cell is None:
            return
        now = self._clock()
        with self._lock:
            start = self._started.pop(node.name, now)
            took = now - start
            if self._pid != os.getpid():  # a worker process: the run's count is not here
                line = progress_line(None, 0, cell, took)
            else:
                if self.first_start is None:
                    self.first_start = start
                self.done += 1
                self.busy += took
                self.last_end = now
                left = remaining_seconds(self.done, self.total, self.busy) if self.total else math.nan
                line = progress_line(self.done, self.total, cell, took, now - self.first_start, left)
        log.info(line, extra={"markup": False})

    @hook_impl
    def on_node_error(self, node) -> None:
        with self._lock:
            self._started.pop(node.name, None)

    @hook_impl
    def after_pipeline_run(self) -> None:
        if not self.total or not self.done:
            return
        elapsed = (self.last_end or 0.0) - (self.first_start or 0.0)
        log.info("encoding grid: %d of %d cells in %s (%s per cell)", self.done, self.total,
                 format_duration(elapsed), format_duration(self.busy / self.done))


class _ConsoleLines(logging.StreamHandler):
    """A plain StreamHandler writing to a rich console's file (looked up at each record, so a
    replaced ``sys.stdout`` is followed, as rich does)."""

    def __init__(self, console):
        self._console = console
        super().__init__()

    @property
    def stream(self):
        return self._console.file

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the console decides
        pass


def plain_console_when_redirected(logger: logging.Logger | None = None) -> int:
    """Replace each rich handler of ``logger`` (default: root) whose console is not a terminal
    (nor a notebook) by a plain handler writing whole lines (rich pads and wraps them to 80
    columns when the output is a file or a pipe). ``FORCE_COLOR=1`` keeps rich. Returns how
    many handlers were replaced."""
    try:
        from rich.logging import RichHandler
    except ImportError:  # pragma: no cover - kedro depends on rich
        return 0
    logger = logger or logging.getLogger()
    n = 0
    for h in list(logger.handlers):
        if not isinstance(h, RichHandler) or h.console.is_terminal or h.console.is_jupyter:
            continue
        plain = _ConsoleLines(h.console)
        plain.setLevel(h.level)
        plain.setFormatter(logging.Formatter(PLAIN_CONSOLE_FORMAT, "%Y-%m-%d %H:%M:%S"))
        for f in h.filters:
            plain.addFilter(f)
        logger.removeHandler(h)
        logger.addHandler(plain)
        n += 1
    return n
