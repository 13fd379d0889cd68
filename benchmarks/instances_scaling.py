"""Wall time of an instance list at 1 and 2 worker processes and on local Dask/Ray clusters.

    python benchmarks/instances_scaling.py --network 256x2 --method exact

Runs the VNN-COMP 2021 mnistfc list (30 instances for one network) through the CLI's
runner (:mod:`relax.runs`) once per engine, each into its own results CSV, checks that
every run gives the same verdicts as the sequential one, and writes
``benchmarks/results/instances_scaling.{md,csv}`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.instances import read_instances  # noqa: E402
from relax.runs.cluster import dask_execute, ray_execute  # noqa: E402
from relax.runs.local import RunPlan, execute, run_plan  # noqa: E402
from relax.runs.records import ResultsFile, run_metadata  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
ENGINES = {
    "1 process": partial(execute, workers=1),
    "2 processes": partial(execute, workers=2, threads=1),
    "dask local cluster, 2 workers": partial(dask_execute, workers=2, threads=1),
    "ray local cluster, 2 workers": partial(ray_execute, workers=2, threads=1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="256x2")
    parser.add_argument("--method", default="exact")
    parser.add_argument("--timeout", type=float, default=None, help="override the list's limits")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--workdir", default="/tmp/relax_instances_scaling")
    args = parser.parse_args()
    data = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))
    instances = [i for i in read_instances(data / "vnncomp2021" / "mnistfc" / "instances.csv")
                 if args.network in i.network.name]
    plan = RunPlan(tuple(instances), args.method, timeout=args.timeout)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    table = []
    for name in args.engines:
        out = work / (name.replace(" ", "_").replace(",", "") + ".csv")
        out.unlink(missing_ok=True)
        results = ResultsFile(out)
        results.prepare()
        start = time.monotonic()
        rows = run_plan(plan, results, run_metadata(sys.argv[1:]), ENGINES[name])
        seconds = time.monotonic() - start
        verdicts = {str(r.instance.property): r.verdict for r in rows}
        table.append((name, seconds, verdicts))
        print(f"{name}: {seconds:.1f} s, {sum(v != 'unknown' for v in verdicts.values())} solved",
              flush=True)
    write(table, args)


def write(table, args) -> None:
    base_name, base_seconds, base = table[0]
    lines = [f"# Instance runs: mnistfc {args.network}, method `{args.method}`, "
             f"{len(base)} instances", "", f"Machine: {describe_machine()} (shared with other jobs)",
             "", f"Command: `python benchmarks/instances_scaling.py {shlex.join(sys.argv[1:])}`", "",
             f"Time limits: {args.timeout or 'the list'}'s. Wall time includes starting the "
             "workers / cluster.", "",
             "| engine | wall s | vs 1 process | solved | verdicts = sequential |", "|---|---|---|---|---|"]
    with (RESULTS / "instances_scaling.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["engine", "wall_seconds", "ratio_to_first", "solved", "same_verdicts"])
        for name, seconds, verdicts in table:
            solved = sum(v != "unknown" for v in verdicts.values())
            same = verdicts == base
            writer.writerow([name, f"{seconds:.1f}", f"{base_seconds / seconds:.2f}", solved, same])
            lines.append(f"| {name} | {seconds:.1f} | {base_seconds / seconds:.2f}x | {solved} | "
                         f"{'yes' if same else 'NO'} |")
    (RESULTS / "instances_scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
