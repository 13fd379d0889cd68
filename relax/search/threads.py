"""Torch thread counts for the search methods on shared machines.

Torch starts one intra-op thread per core.  On a machine where other processes
already keep cores busy, those threads contend with them and with each other:
measured on a 2-core machine beside one CPU-bound process, branch and bound ran
slower with 2 threads than with 1 (``benchmarks/exact_pipeline.py --threads``).
The default is therefore the number of cores left idle by the recent load
(``os.getloadavg``), at least 1; ``RELAX_THREADS`` overrides it, and a thread count
the caller set explicitly with ``torch.set_num_threads`` is kept.
"""

from __future__ import annotations

import contextlib
import os

import torch

__all__ = ["default_threads", "torch_threads"]

_INITIAL = torch.get_num_threads()


def default_threads() -> int:
    """``RELAX_THREADS`` if set, else the cores the 1-minute load average leaves idle (>= 1)."""
    configured = os.environ.get("RELAX_THREADS")
    if configured:
        return max(1, int(configured))
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


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
