"""Torch thread count and branch and bound speed on a busy machine.

    python benchmarks/threads.py --property prop_1_0.03 --reps 2 --busy

Runs the alpha/beta-CROWN branch and bound of one mnistfc 256x2 property (the
disjuncts CROWN leaves open) with 1 and with 2 torch threads, alternating,
``--reps`` times each, optionally beside one CPU-bound process (``--busy``), and
writes the seconds per run and their medians to
``benchmarks/results/threads<tag>.{csv,md}`` with the load average seen.  This is
the measurement behind :func:`relax.search.threads.default_threads`.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine  # noqa: E402

import relax  # noqa: E402
from relax.search.beta_crown import torch_branch_and_bound  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = data_root() / "vnncomp2021" / "mnistfc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="mnist-net_256x2")
    parser.add_argument("--property", default="prop_1_0.03")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    net = relax.from_onnx(str(DATA / f"{args.network}.onnx"))
    spec = relax.read_vnnlib(str(DATA / f"{args.property}.vnnlib"))[0]
    crown = relax.bounds.bound_specs(net, [spec])[0]
    todo = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
    torch_branch_and_bound(net, spec, todo)  # warm-up
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    rows = []
    try:
        for rep in range(args.reps):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                start = time.perf_counter()
                outcome = torch_branch_and_bound(net, spec, todo)
                rows.append({"rep": rep, "threads": threads, "seconds": time.perf_counter() - start,
                             "domains": outcome.nodes, "load": os.getloadavg()[0]})
                print(rows[-1], flush=True)
    finally:
        if busy is not None:
            busy.kill()
    write(rows, args)


def write(rows, args) -> None:
    stem = RESULTS / f"threads{args.tag}"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    median = {t: float(np.median([r["seconds"] for r in rows if r["threads"] == t])) for t in (1, 2)}
    lines = [f"# Torch threads: branch and bound on {args.network} {args.property}", "",
             f"Machine: {describe_machine()}; shared with other jobs"
             f"{', plus one CPU-bound process' if args.busy else ''}; "
             f"1-minute load average {np.mean([r['load'] for r in rows]):.1f}.",
             f"Command: `python {' '.join(sys.argv)}`", "",
             "| threads | runs (s) | median s |", "|---|---|---|"]
    for t in (1, 2):
        runs = ", ".join(f"{r['seconds']:.1f}" for r in rows if r["threads"] == t)
        lines.append(f"| {t} | {runs} | {median[t]:.1f} |")
    lines += ["", f"2 threads / 1 thread: {median[2] / median[1]:.2f}x the time."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
