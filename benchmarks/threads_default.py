"""The default torch thread count after relax's own work, idle and beside a busy process.

    python benchmarks/threads_default.py --seconds 70

This process first keeps two torch threads busy for ``--seconds`` (as a run of instances
one after the other does), then reads the 1-minute load average, the thread count that
the load-average rule (relax's default before commit 4b3c3b9) gives from it, and
:func:`relax.search.threads.default_threads` (other processes' runnable tasks).  Then the
same beside one CPU-bound process.  Writes ``benchmarks/results/threads_default<tag>.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.search.threads import default_threads, other_runnable  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def load_average_rule(load: float) -> int:
    """The thread count of the earlier default: the cores the 1-minute load leaves idle."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, int(cores - load + 0.5)))


def own_work(seconds: float) -> None:
    torch.set_num_threads(2)
    a = torch.randn(800, 800)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        a @ a


def measure(label: str, seconds: float) -> str:
    own_work(seconds)
    load = os.getloadavg()[0]
    others = other_runnable()
    return (f"| {label} | {load:.2f} | {load_average_rule(load)} | "
            f"{'n/a' if others is None else f'{others:.1f}'} | {default_threads()} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=70)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    rows = [measure("idle apart from this process", args.seconds)]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        rows.append(measure("beside one CPU-bound process", args.seconds))
    finally:
        busy.kill()
        busy.wait()
    table = "\n".join([
        "# Default torch threads after this process's own work", "",
        f"Machine: {describe_machine()}.", "",
        f"Command: `python benchmarks/threads_default.py {' '.join(sys.argv[1:])}`.  Each row: "
        f"{args.seconds:.0f} s of this process's own work on two torch threads first.", "",
        "| machine | 1-min load | load-average rule (before 4b3c3b9) | other runnable tasks | default now |",
        "|---|---|---|---|---|", *rows, ""])
    (RESULTS / f"threads_default{args.tag}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
