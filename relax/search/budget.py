"""How large the torch branch and bound's batches and its pool of open domains may be on
this machine: domains per batch from torch's thread count, the pool's memory from the
memory available when a search starts."""

from __future__ import annotations

__all__ = ["default_batch", "default_pool_bytes"]

#: domains per batch with one torch thread and with more: the search alone on mnistfc
#: 256x4 for 40 s (prop_9_0.03, prop_8_0.05), domains per second against 256 with two
#: threads 1024 1.45x / 1.22x, 2048 1.39x / 1.03x, with one thread 1024 1.00x / 0.87x
#: (``benchmarks/results/bab_throughput_batch.md``): larger batches amortise the
#: per-batch Python and threading overhead only when a second thread shares the work
ONE_THREAD_BATCH, THREADED_BATCH = 256, 1024


def default_batch(threads: int) -> int:
    """The domains split per batch for a search on ``threads`` torch threads."""
    return ONE_THREAD_BATCH if threads <= 1 else THREADED_BATCH


#: the open domains may take this share of the memory available when a search starts, at
#: least :data:`MIN_POOL_BYTES`, at most :data:`MAX_POOL_BYTES`.  The process takes about
#: four times its pool (the storage grows by doubling, a resumed search's pool is built
#: while the one it resumes still exists, and the batches' tensors): 5.4 GB peak resident
#: for 500k domains (1.3 GB) of mnistfc 256x4 prop_8_0.05.  The earlier fixed 1 GiB held
#: 404k of those domains, reached 65 s into the search after the k-ReLU stage; from there
#: it split the largest bounds first and its least bound stayed put to 300 s
#: (``benchmarks/results/vnncomp_notes.md``, section 15)
POOL_MEMORY_SHARE = 0.1
MIN_POOL_BYTES, MAX_POOL_BYTES = 2 ** 30, 4 * 2 ** 30


def default_pool_bytes() -> int:
    """:data:`POOL_MEMORY_SHARE` of the memory available now (``MemAvailable`` of
    ``/proc/meminfo``; :data:`MIN_POOL_BYTES` where it cannot be read), clipped to
    [:data:`MIN_POOL_BYTES`, :data:`MAX_POOL_BYTES`]."""
    try:
        with open("/proc/meminfo") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return MIN_POOL_BYTES
    return int(min(max(POOL_MEMORY_SHARE * kib * 1024, MIN_POOL_BYTES), MAX_POOL_BYTES))
