"""The ``exact`` pipeline of two relax checkouts side by side, instance by instance.

    python benchmarks/exact_pipeline.py --code base=/tmp/relax_base --code new=. \
        --benchmark mnistfc --network 256x2 --timeout 30 --busy

Every instance runs ``relax verify NET PROP --method M --timeout T --json`` in a fresh
process (as a user runs it), once per checkout, the checkouts interleaved per
instance so that both see the same machine load.  ``--busy`` keeps one CPU-bound
process (``while True: pass``) running beside the whole measurement, as on a shared
machine; ``--threads N`` sets ``RELAX_THREADS`` (default: relax's own choice);
``--one-thread`` forces one thread everywhere (``OMP_NUM_THREADS=1``), else the thread
variables are removed so each checkout runs with its own default, as a user's would.
Reports relax's own seconds (the JSON ``seconds``: no interpreter start-up) and
the wall seconds of the process.  Writes
``benchmarks/results/exact_pipeline<tag>.{csv,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = data_root()
CLI = "import sys; from relax.cli import main; sys.exit(main(sys.argv[1:]))"


def instances(benchmark: str, network: str | None, count: int | None):
    folder = DATA / "vnncomp2021" / benchmark
    rows = []
    with open(folder / "instances.csv") as handle:
        for net, prop, _ in csv.reader(handle):
            if network is None or network in net:
                rows.append((folder / net.strip(), folder / prop.strip()))
    return rows[:count] if count else rows


def run_one(code: Path, net: Path, prop: Path, method: str, timeout: float, threads: str | None,
            one_thread: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = str(code)
    if one_thread:  # force every checkout to one thread (else each makes its own choice)
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if threads:
        env["RELAX_THREADS"] = threads
    command = [sys.executable, "-c", CLI, "verify", str(net), str(prop), "--method", method,
               "--timeout", str(timeout), "--json"]
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout + 120)
    wall = time.monotonic() - start
    try:
        payload = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"verdict": f"error {done.returncode}", "seconds": float("nan"), "wall": wall,
                "detail": done.stderr.strip().splitlines()[-1:] or [""]}
    return {"verdict": payload["verdict"], "seconds": payload["seconds"], "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", action="append", required=True, help="label=path of a checkout")
    parser.add_argument("--benchmark", default="mnistfc", choices=["mnistfc", "eran"])
    parser.add_argument("--network", default=None)
    parser.add_argument("--method", default="exact")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--threads", default=None, help="RELAX_THREADS for the runs")
    parser.add_argument("--one-thread", action="store_true",
                        help="OMP/MKL/OPENBLAS_NUM_THREADS=1 for every run (default: the user's environment "
                             "without them, so each checkout picks its own thread count)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    rows = []
    try:
        for net, prop in instances(args.benchmark, args.network, args.count):
            row = {"network": net.stem, "property": prop.stem}
            for label, code in codes:
                out = run_one(code, net, prop, args.method, args.timeout, args.threads, args.one_thread)
                row.update({f"{label}_verdict": out["verdict"], f"{label}_s": out["seconds"],
                            f"{label}_wall": out["wall"]})
            rows.append(row)
            print(row, flush=True)
    finally:
        if busy is not None:
            busy.kill()
    write(rows, [c[0] for c in codes], args)


def write(rows, labels, args) -> None:
    stem = RESULTS / f"exact_pipeline{args.tag}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    load = "beside one CPU-bound process" if args.busy else "no extra load added"
    lines = [f"# exact pipeline: {', '.join(labels)} ({args.benchmark} {args.network or ''}, "
             f"timeout {args.timeout:g} s)", "",
             f"Machine: {describe_machine()}; shared with other jobs, {load}; "
             f"RELAX_THREADS={args.threads or 'default'}; "
             f"{'OMP_NUM_THREADS=1 forced' if args.one_thread else 'thread variables unset (torch default unless relax picks)'}.",
             f"Command: `python {' '.join(sys.argv)}`", "",
             "| instance | " + " | ".join(f"{l} verdict | {l} s" for l in labels) + " |",
             "|---|" + "---|---|" * len(labels)]
    for r in rows:
        cells = [f"{r[l + '_verdict']} | {r[l + '_s']:.2f}" for l in labels]
        lines.append(f"| {r['network']} {r['property']} | " + " | ".join(cells) + " |")
    lines += ["", "| checkout | holds | violated | unknown | median s | total s |", "|---|---|---|---|---|---|"]
    for l in labels:
        verdicts = [r[f"{l}_verdict"] for r in rows]
        seconds = np.array([r[f"{l}_s"] for r in rows], float)
        lines.append(f"| {l} | {verdicts.count('holds')} | {verdicts.count('violated')} | "
                     f"{verdicts.count('unknown')} | {np.nanmedian(seconds):.2f} | {np.nansum(seconds):.1f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
