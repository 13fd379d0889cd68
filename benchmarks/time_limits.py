"""Is a time limit a promise?  Wall time of ``relax verify --timeout T`` per method.

    python benchmarks/time_limits.py [--limit 5] [--sample 3] [--methods lp krelu ...]
                                     [--benchmarks mnistfc eran]

For a sample of each VNN-COMP 2021 instance list (``--sample`` instances, evenly spaced
over the list) and every method, runs ``relax verify NET PROP --method M --timeout T
--json`` in a fresh process, as a user does (``python -c "from relax.cli import main"``,
this checkout first on the path), and measures its wall time: interpreter start,
imports, loading, the method and the verdict.  The promise (issue 11) is
``wall - T <= 2 s``.  Reported per method: count, median, and maximum of ``wall - T``,
and how many runs broke the promise; per run also the library's own ``seconds``.  With
``ibp`` among the methods (it ignores the limit and takes well under a second inside
the library) its wall time on the same instance is the fixed cost of a run (interpreter,
imports, reading the network and property), and ``wall - ibp wall - T`` is what the
method itself took beyond its limit.  ``--report-only`` rewrites the tables from the CSV.

Writes ``benchmarks/results/time_limits.md`` and ``.csv`` (with the machine and the
command); data is read from ``$RELAX_DATA`` or ``../shared/data``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
METHODS = ["ibp", "crown", "lp", "exact", "milp", "sdp", "krelu"]
PROMISE = 2.0  # seconds over the limit a run may take


def data_dir() -> Path:
    return Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))


def sample(benchmark: str, count: int) -> list[tuple[Path, Path]]:
    """``count`` instances evenly spaced over the benchmark's instance list."""
    root = data_dir() / "vnncomp2021" / benchmark
    with open(root / "instances.csv") as handle:
        rows = [r for r in csv.reader(handle) if r]
    step = max(len(rows) // max(count, 1), 1)
    return [(root / r[0].strip(), root / r[1].strip()) for r in rows[::step][:count]]


def run_one(network: Path, prop: Path, method: str, limit: float) -> dict:
    """One ``relax verify`` process; its wall time and its JSON answer."""
    command = [sys.executable, "-c", "import sys; from relax.cli import main; sys.exit(main())",
               "verify", str(network), str(prop), "--method", method, "--timeout", str(limit),
               "--json"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=limit * 10 + 120)
    wall = time.monotonic() - start
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        answer = {"verdict": f"error (exit {done.returncode}): {last[:80]}"}
    return {"method": method, "network": network.name, "property": prop.name, "limit": limit,
            "wall": round(wall, 3), "seconds": answer.get("seconds"),
            "over": round(wall - limit, 3), "verdict": answer.get("verdict")}


def summary(rows: list[dict], command: str) -> str:
    lines = ["# Time limits: wall seconds of `relax verify --timeout T` minus T", "",
             f"Command: `{command}`", "", f"Machine: {describe_machine()} (shared with other "
             "jobs: timings are noisy).", "",
             f"A run keeps the promise when wall - T <= {PROMISE:g} s (process start and imports "
             "included).", "",
             "| method | runs | median wall-T (s) | max wall-T (s) | runs over the promise | "
             "max wall - ibp wall - T (s) | max library seconds - T |",
             "|---|---|---|---|---|---|---|"]
    fixed = {(r["network"], r["property"]): r["wall"] for r in rows if r["method"] == "ibp"}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        over = [r["over"] for r in mine]
        inner = [r["seconds"] - r["limit"] for r in mine if isinstance(r["seconds"], (int, float))]
        own = [r["over"] - fixed[(r["network"], r["property"])] for r in mine
               if (r["network"], r["property"]) in fixed]
        lines.append(f"| {method} | {len(mine)} | {statistics.median(over):.2f} | {max(over):.2f} "
                     f"| {sum(o > PROMISE for o in over)} | {max(own) if own else float('nan'):.2f} "
                     f"| {max(inner) if inner else float('nan'):.2f} |")
    return "\n".join(lines) + "\n"


def _read_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("limit", "wall", "over"):
            row[key] = float(row[key])
        row["seconds"] = float(row["seconds"]) if row["seconds"] not in ("", "None") else None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=5.0, help="--timeout of every run")
    parser.add_argument("--sample", type=int, default=3, help="instances per benchmark")
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--benchmarks", nargs="+", default=["mnistfc", "eran"])
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--report-only", action="store_true", help="tables from the existing CSV")
    args = parser.parse_args()
    stem = RESULTS / f"time_limits{args.tag}"
    if args.report_only:
        rows = _read_rows(stem.with_suffix(".csv"))
        command = (stem.with_suffix(".md").read_text().split("Command: `")[1].split("`")[0]
                   if stem.with_suffix(".md").exists() else "unknown")
        table = summary(rows, command)
        stem.with_suffix(".md").write_text(table)
        print(table)
        return
    rows = []
    for benchmark in args.benchmarks:
        for network, prop in sample(benchmark, args.sample):
            for method in args.methods:
                row = {"benchmark": benchmark, **run_one(network, prop, method, args.limit)}
                print(f"{benchmark} {prop.name} {method}: wall {row['wall']:.2f} s "
                      f"(over {row['over']:+.2f}) {row['verdict']}", flush=True)
                rows.append(row)
    command = "python benchmarks/time_limits.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = summary(rows, command)
    stem.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
