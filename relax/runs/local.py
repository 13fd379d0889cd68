"""Run an instance list here: sequentially or in N worker processes.

Each row is verified with its own time limit by :func:`relax.instances.run_instance`
(which never raises), so a process pool gives the same rows as the sequential run,
only in completion order.  Workers are spawned (no fork of a torch process), each
with ``threads`` BLAS/torch threads, ``workers x threads <= cores`` by default, and
ignore SIGINT: on Ctrl-C the parent stops them and keeps every row already written.
Sequentially, ``threads`` (when given) is set in this process; when not, each method
picks its own count (:func:`relax.search.threads.default_threads`).
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import signal
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from relax.instances import Instance, InstanceResult, run_instance
from relax.protocol import VerifyOptions
from relax.runs.records import ResultsFile, options_text

__all__ = ["RunPlan", "run_plan", "default_threads", "execute"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """What to run: the instances, the method and its options, the limit override."""

    instances: tuple[Instance, ...]
    method: str
    options: VerifyOptions = VerifyOptions()
    timeout: float | None = None

    def task(self, instance: Instance) -> tuple:
        return instance, self.method, self.options, self.timeout


def default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _set_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _worker_init(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
    _set_threads(threads)


def run_task(task: tuple) -> InstanceResult:
    """One row (module-level, so a worker process can unpickle it)."""
    instance, method, options, timeout = task
    return run_instance(instance, method, options, timeout)


def execute(plan: RunPlan, todo: Sequence[Instance], workers: int,
            threads: int | None = None) -> Iterator[InstanceResult]:
    """Results of ``todo`` as they complete (one process when ``workers`` is 1)."""
    tasks = [plan.task(i) for i in todo]
    if workers <= 1:
        if threads is not None:  # else each method picks its own (relax.search.threads)
            _set_threads(threads)
        yield from (run_task(t) for t in tasks)
        return
    pool = multiprocessing.get_context("spawn").Pool(
        workers, _worker_init, (threads or default_threads(workers),))
    try:
        yield from pool.imap_unordered(run_task, tasks)
        pool.close()
    finally:
        pool.terminate()  # Ctrl-C or an error: stop the rows still running
        pool.join()


def run_plan(plan: RunPlan, results: ResultsFile, metadata: dict[str, str],
             runner: Callable[[RunPlan, Sequence[Instance]], Iterator[InstanceResult]],
             progress: Callable[[InstanceResult], None] | None = None) -> list[InstanceResult]:
    """Run the rows of ``plan`` not yet in ``results`` with ``runner`` and append each
    to the file as soon as it is done (flushed: an interrupted run keeps its rows)."""
    options = options_text(plan.options, plan.timeout)
    handle = results.open()
    done = []
    try:
        writer = csv.writer(handle)
        todo = [i for i in plan.instances
                if (str(i.network), str(i.property), plan.method, options) not in results.done]
        log.info("%d of %d instances to run", len(todo), len(plan.instances))
        for row in runner(plan, todo):
            writer.writerow(row.csv_row() + [options, row.solver or "", metadata["relax_version"],
                                             metadata["machine"], metadata["command"]])
            handle.flush()
            done.append(row)
            if progress is not None:
                progress(row)
    finally:
        handle.close()
    return done
