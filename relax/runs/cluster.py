"""Run an instance list on a distributed engine: Ray (the ``relax[cluster]`` extra) or Dask.

Same rows, same results file, same resume as a local run: the engine only
replaces where :func:`relax.runs.local.run_task` executes.  Without an address a
local cluster of ``workers`` single-threaded processes is started (and stopped);
with ``address`` an existing cluster is used:

- Ray: ``ray start --head`` on one machine and ``ray start --address HOST:6379``
  on the others (relax installed, the data at the same paths), then
  ``relax verify --instances L --cluster HOST:6379``;
- Dask: ``dask scheduler`` on one machine, ``dask worker tcp://HOST:8786
  --nthreads 1`` on the others, then ``--engine dask --cluster tcp://HOST:8786``.

Ray is the extra (``pip install 'relax[cluster]'``): measured on the 30-instance
mnistfc 256x2 list with local 2-worker clusters it was 1.3-1.8x faster than Dask
in three runs (``benchmarks/results/instances_scaling.md``); Dask stays usable
where ``dask[distributed]`` is installed.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Sequence

from relax.errors import UsageError
from relax.instances import Instance, InstanceResult
from relax.runs.local import RunPlan, _set_threads, run_task

__all__ = ["cluster_runner", "dask_execute", "ray_execute"]

log = logging.getLogger(__name__)

Runner = Callable[..., Iterator[InstanceResult]]


def _missing(engine: str) -> UsageError:
    install = "pip install 'relax[cluster]'" if engine == "ray" else "pip install 'dask[distributed]'"
    return UsageError(f"--engine {engine} is not installed here: {install}")


def dask_execute(plan: RunPlan, todo: Sequence[Instance], workers: int = 2,
                 threads: int | None = None, address: str | None = None
                 ) -> Iterator[InstanceResult]:
    """Rows of ``todo`` from Dask workers, as they complete."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise _missing("dask") from None
    cluster = None if address else LocalCluster(n_workers=workers, threads_per_worker=1,
                                                processes=True, dashboard_address=None,
                                                silence_logs=logging.ERROR)
    client = Client(address or cluster)
    try:
        client.run(_set_threads, threads or 1)
        yield from _as_workers_free(client, [plan.task(i) for i in todo], as_completed)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _as_workers_free(client, tasks: list, as_completed) -> Iterator[InstanceResult]:
    """Submit one task per worker thread (plus one) and the next whenever one finishes:
    rows take from 0.1 s to their whole time limit, so tasks handed out up front could
    leave one worker with the long ones."""
    slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) + 1
    queue = iter(tasks)
    running = as_completed([client.submit(run_task, t, pure=False)
                            for t in (next(queue, None) for _ in range(slots)) if t is not None])
    for future in running:
        yield future.result()
        task = next(queue, None)
        if task is not None:
            running.add(client.submit(run_task, task, pure=False))


def ray_execute(plan: RunPlan, todo: Sequence[Instance], workers: int = 2,
                threads: int | None = None, address: str | None = None
                ) -> Iterator[InstanceResult]:
    """Rows of ``todo`` from Ray workers, as they complete."""
    try:
        import ray
    except ImportError:
        raise _missing("ray") from None
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_ray_task)
        pending = [remote.remote(plan.task(i), threads or 1) for i in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        ray.shutdown()


def _ray_task(task: tuple, threads: int) -> InstanceResult:
    _set_threads(threads)
    return run_task(task)


def cluster_runner(engine: str, address: str | None) -> Runner:
    """The runner of ``engine`` (``ray`` or ``dask``; ``--cluster`` alone means Ray)."""
    execute = {"dask": dask_execute, "ray": ray_execute, "local": ray_execute}[engine]

    def runner(plan, todo, workers=2, threads=None):
        return execute(plan, todo, workers=max(workers, 1), threads=threads, address=address)

    return runner
