"""Run the VNN-COMP 2021 instance lists with their time limits; write verdicts and a summary.

    python benchmarks/vnncomp.py --benchmark mnistfc --network mnist-net_256x2 --method exact

Writes ``benchmarks/results/vnncomp_<benchmark>_<method>.csv`` (one row per
instance) and ``.md`` (per network: holds, violated, unknown, time), with the
machine in the header.  Data is read from ``$RELAX_DATA`` or ``../shared/data``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.instances import read_instances, run_instance  # noqa: E402
from relax.verify_types import VerifyOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benchmark", default="mnistfc", choices=["mnistfc", "eran"])
    parser.add_argument("--network", default=None, help="only instances whose network contains this")
    parser.add_argument("--method", default="exact")
    parser.add_argument("--solver", default=None)
    parser.add_argument("--timeout", type=float, default=None, help="override the competition limit")
    parser.add_argument("--limit", type=int, default=None, help="only the first N instances")
    parser.add_argument("--tag", default="", help="suffix for the output files")
    parser.add_argument("--pipeline", default=None, choices=["torch", "lp"],
                        help="exact method: torch alpha/beta-CROWN BaB (default) or the LP path")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--properties", default=None,
                        help="comma-separated property names (e.g. prop_0_0.03) to run only those")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))
    instances = read_instances(data / "vnncomp2021" / args.benchmark / "instances.csv")
    if args.network:
        instances = [i for i in instances if args.network in i.network.name]
    if args.properties:
        wanted = {p if p.endswith(".vnnlib") else p + ".vnnlib" for p in args.properties.split(",")}
        instances = [i for i in instances if i.property.name in wanted]
    instances = instances[: args.limit]
    net_tag = f"_{args.network}" if args.network else ""
    stem = f"vnncomp_{args.benchmark}{net_tag}_{args.method}{args.tag}"
    rows = run_all(instances, args)
    write_csv(RESULTS / f"{stem}.csv", rows)
    table = summary(rows, args)
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)


def run_all(instances, args):
    extra = (("pipeline", args.pipeline),) if args.pipeline else ()
    options = VerifyOptions(solver=args.solver, extra=extra)
    rows = []
    for instance in tqdm(instances, unit="prop"):
        start = time.monotonic()
        result = run_instance(instance, args.method, options, args.timeout)
        rows.append((instance, result, time.monotonic() - start))
        tqdm.write(f"{instance.network.name} {instance.property.name}: {result.verdict} "
                   f"bound={result.bound} {time.monotonic() - start:.1f}s {result.reason[:80]}")
    return rows


def write_csv(path: Path, rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "property", "time_limit", "verdict", "bound", "seconds", "reason"])
        for instance, result, seconds in rows:
            writer.writerow([instance.network.name, instance.property.name, instance.timeout,
                             result.verdict, result.bound, f"{seconds:.2f}", result.reason])


def summary(rows, args) -> str:
    per_net = defaultdict(lambda: defaultdict(int))
    times = defaultdict(float)
    for instance, result, seconds in rows:
        per_net[instance.network.name][result.verdict] += 1
        times[instance.network.name] += seconds
    lines = [f"# VNN-COMP 2021 {args.benchmark}, method `{args.method}`",
             "", f"Machine: {describe_machine()}", "",
             f"Command: `python benchmarks/vnncomp.py {' '.join(sys.argv[1:])}`", "",
             f"Time limit per instance: {args.timeout or 'competition'} s; "
             f"pipeline: {args.pipeline or 'default (torch)'}; torch threads: {args.threads}. "
             "The machine was shared with other jobs, so times are pessimistic.", "",
             "| network | instances | holds | violated | unknown | solved | total s |",
             "|---|---|---|---|---|---|---|"]
    for net, counts in per_net.items():
        total = sum(counts.values())
        solved = counts["holds"] + counts["violated"]
        lines.append(f"| {net} | {total} | {counts['holds']} | {counts['violated']} | "
                     f"{counts['unknown']} | {solved} | {times[net]:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
