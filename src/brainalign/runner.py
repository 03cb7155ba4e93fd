"""Runners for the experiment grid: Dask (a local or remote cluster) and a process pool whose workers
never oversubscribe the cores.

``kedro run --runner brainalign.runner.DaskRunner``
    Kedro 1.x runs a pipeline through a ``concurrent.futures`` executor; this runner hands it the
    executor of a ``distributed.Client``. With no scheduler configured it starts a
    ``LocalCluster`` of worker processes, one thread each; with ``DASK_SCHEDULER_ADDRESS`` (Dask's
    own setting, ``scheduler-address``) it connects to that scheduler instead (e.g. a SLURM cluster
    started with dask-jobqueue: docs/architecture.md, "Running the grid on a cluster"). Nodes run
    in the workers; pipeline hooks (the MLflow run) run in the ``kedro run`` process as usual;
    node and dataset hooks do not run, as with Kedro's ``ParallelRunner``. Datasets Kedro keeps in
    memory are shared through the runner's manager process, which only workers on the same
    machine reach: on a multi-machine cluster every dataset a node passes to another must be
    saved (the project's catalog saves all of them under ``data/``, which must then be shared
    storage).
``kedro run --runner brainalign.runner.ParallelRunner``
    Kedro's ``ParallelRunner`` with each worker process's BLAS, OpenMP and torch thread pools
    limited to ``cores / workers`` (threadpoolctl), so that n workers never start n x cores threads.

Thread pools: a Dask worker gets the same limit (``BRAINALIGN_THREADS_PER_WORKER``, default
``cores / workers``, at least 1).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing import get_context

from kedro.runner import ParallelRunner as _KedroParallelRunner

log = logging.getLogger(__name__)


def limit_threads(n_threads: int) -> None:
    """Limit this process's BLAS/OpenMP pools (threadpoolctl) and torch to ``n_threads``."""
    n_threads = max(1, int(n_threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n_threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n_threads)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    try:
        import torch

        torch.set_num_threads(n_threads)
    except ImportError:  # pragma: no cover
        pass


def _threads_per_worker(max_workers: int) -> int:
    env = os.environ.get("BRAINALIGN_THREADS_PER_WORKER")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 1) // max(1, max_workers))


def _worker_setup(n_threads: int, authkey: bytes) -> None:
    """Run in each worker: thread limits, and the runner manager's key so that the proxies of
    in-memory datasets connect (multiprocessing checks the process's authkey)."""
    multiprocessing.current_process().authkey = authkey
    limit_threads(n_threads)


class ParallelRunner(_KedroParallelRunner):
    """Kedro's ParallelRunner, with each worker's thread pools sized to its share of the cores."""

    def _get_executor(self, max_workers: int) -> Executor:
        context = os.environ.get("KEDRO_MP_CONTEXT")
        if context and context not in {"fork", "spawn", "forkserver"}:
            context = None
        n = _threads_per_worker(max_workers)
        log.info("ParallelRunner: %d worker processes, %d thread(s) each", max_workers, n)
        return ProcessPoolExecutor(max_workers=max_workers, mp_context=get_context(context),
                                   initializer=_worker_setup,
                                   initargs=(n, bytes(multiprocessing.current_process().authkey)))


class _ClientExecutor(Executor):
    """A ``distributed`` client's executor that closes the client (and a cluster it started) on exit."""

    def __init__(self, client, cluster=None):
        self._client, self._cluster = client, cluster
        self._executor = client.get_executor()

    def submit(self, fn, /, *args, **kwargs):
        from kedro.runner.task import Task

        if isinstance(fn, Task):
            # as in a process pool: the worker builds its own hook manager (a PluginManager cannot
            # be pickled) and the node runs without node hooks
            fn.parallel, fn.hook_manager = True, None
        # pure=False: every node runs, even two with equal inputs
        return self._executor.submit(fn, *args, pure=False, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


class DaskRunner(_KedroParallelRunner):
    """Runs the nodes on a Dask cluster: a ``LocalCluster`` (one process per worker, one thread
    each) unless ``DASK_SCHEDULER_ADDRESS`` names a scheduler (module docstring)."""

    def _get_executor(self, max_workers: int) -> Executor:
        import dask
        from distributed import Client, LocalCluster

        address = dask.config.get("scheduler-address", None)
        n = _threads_per_worker(max_workers)
        if address:
            client, cluster = Client(address), None
            log.info("DaskRunner: connected to the scheduler at %s", address)
        else:
            cluster = LocalCluster(n_workers=max_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
            log.info("DaskRunner: started a LocalCluster of %d worker processes", max_workers)
        client.run(_worker_setup, n, bytes(multiprocessing.current_process().authkey))
        return _ClientExecutor(client, cluster)
