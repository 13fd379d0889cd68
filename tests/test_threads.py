"""The default torch thread count on a shared machine (:mod:`relax.search.threads`) and
the thread count of a sequential instance run (:func:`relax.runs.local.execute`)."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from relax.search.threads import default_threads, other_runnable, own_running_threads

linux = pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="needs Linux's /proc")


@linux
def test_a_busy_process_beside_takes_a_core_from_the_default():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert other_runnable(samples=10) >= 0.6
        assert default_threads() <= max(1, (os.cpu_count() or 1) - 1)
    finally:
        busy.kill()
        busy.wait()


@linux
def test_this_process_own_busy_threads_are_not_counted_as_others():
    stop = threading.Event()

    def work():
        a = torch.randn(400, 400)
        while not stop.is_set():
            a @ a  # releases the GIL: the thread stays runnable

    thread = threading.Thread(target=work)
    thread.start()
    try:
        time.sleep(0.3)
        assert own_running_threads() >= 2  # this thread and the worker
    finally:
        stop.set()
        thread.join()


def test_relax_threads_overrides_the_default(monkeypatch):
    monkeypatch.setenv("RELAX_THREADS", "3")
    assert default_threads() == 3


def test_a_sequential_run_sets_the_threads_it_is_given(monkeypatch, tmp_path):
    from relax.runs.local import RunPlan, execute

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    before = torch.get_num_threads()
    try:
        target = 1 if before != 1 else 2
        plan = RunPlan((), "crown")
        list(execute(plan, [], workers=1, threads=target))
        assert torch.get_num_threads() == target
        assert os.environ["OMP_NUM_THREADS"] == str(target)
    finally:
        torch.set_num_threads(before)
