"""Run an instance list on a distributed engine: Dask (default) or Ray.

Same rows, same results file, same resume as a local run: the engine only
replaces where :func:`relax.runs.local.run_task` executes.  Without an address a
local cluster of ``workers`` single-threaded processes is started (and stopped);
with ``address`` an existing cluster is used:

- Dask: ``dask scheduler`` on one machine, ``dask worker tcp://HOST:8786
  --nthreads 1`` on each node (with relax installed and the data at the same
  paths), then ``relax verify --instances L --cluster tcp://HOST:8786``;
- Ray: ``ray start --head`` and ``ray start --address HOST:6379`` on the nodes,
  then ``--engine ray --cluster HOST:6379``.

The engines are an optional extra: ``pip install relax[cluster]``.
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
    return UsageError(f"--engine {engine} needs the cluster extra: pip install 'relax[cluster]'")


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
        futures = client.map(run_task, [plan.task(i) for i in todo], pure=False)
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


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
    """The runner of ``engine`` (``dask`` or ``ray``; ``--cluster`` alone means Dask)."""
    execute = {"dask": dask_execute, "ray": ray_execute, "local": dask_execute}[engine]

    def runner(plan, todo, workers=2, threads=None):
        return execute(plan, todo, workers=max(workers, 1), threads=threads, address=address)

    return runner
