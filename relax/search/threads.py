"""Torch thread counts for the search methods on shared machines.

Torch starts one intra-op thread per core.  On a machine where other processes
already keep cores busy, those threads contend with them and with each other:
measured on a 2-core machine beside one CPU-bound process, branch and bound ran
slower with 2 threads than with 1 (``benchmarks/exact_pipeline.py --threads``).
The default is therefore the number of cores that *other* processes leave idle, at
least 1; ``RELAX_THREADS`` overrides it, and a thread count the caller set explicitly
with ``torch.set_num_threads`` is kept.

How busy the others are: on Linux, the runnable tasks of ``/proc/loadavg`` less this
process's own running threads, averaged over a few samples (:data:`SAMPLES`, a few
hundredths of a second in all).  The 1-minute load average, used elsewhere, also counts
this process's own recent work and that of a run that just ended: after 70 s of its own
work on an otherwise idle 2-core machine it was 1.65 (``benchmarks/threads_default.py``),
so in a run of instances every search after the first got one thread instead of two (two threads do 1.41-1.47x
the domains; ``benchmarks/results/vnncomp_notes.md``, sections 9 and 10).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import torch

__all__ = ["default_threads", "other_runnable", "torch_threads"]

log = logging.getLogger(__name__)

_INITIAL = torch.get_num_threads()

#: samples of the runnable count and the pause between them (seconds)
SAMPLES = 5
SAMPLE_PAUSE = 0.01


def default_threads() -> int:
    """``RELAX_THREADS`` if set, else the cores other processes leave idle (>= 1)."""
    configured = os.environ.get("RELAX_THREADS")
    if configured:
        return max(1, int(configured))
    cores = os.cpu_count() or 1
    busy = other_runnable()
    if busy is None:  # no /proc: the load average (this process's own work included)
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
    threads = max(1, min(cores, int(cores - busy + 0.5)))
    log.info("torch threads: %d (%d cores, other processes keep %.1f busy)", threads, cores, busy)
    return threads


def other_runnable(samples: int = SAMPLES, pause: float = SAMPLE_PAUSE) -> float | None:
    """The mean number of runnable tasks (running or waiting for a core) that are not
    threads of this process, or ``None`` where ``/proc`` does not give it."""
    counts = []
    try:
        for i in range(samples):
            if i:
                time.sleep(pause)
            runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            counts.append(max(0, runnable - own_running_threads()))
    except (OSError, ValueError, IndexError):
        return None
    return sum(counts) / len(counts)


def own_running_threads() -> int:
    """This process's threads in state ``R`` (running or runnable), from ``/proc/self/task``."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        count += stat.rsplit(")", 1)[1].split()[0] == "R"
    return count


@contextlib.contextmanager
def torch_threads():
    """Run the body with :func:`default_threads` torch threads, unless the caller changed
    the count from torch's start-up value (then theirs is kept); restores it after."""
    before = torch.get_num_threads()
    if before == _INITIAL:
        torch.set_num_threads(default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)
