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
    args = parser.parse_args()
    data = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))
    instances = read_instances(data / "vnncomp2021" / args.benchmark / "instances.csv")
    if args.network:
        instances = [i for i in instances if args.network in i.network.name]
    instances = instances[: args.limit]
    net_tag = f"_{args.network}" if args.network else ""
    stem = f"vnncomp_{args.benchmark}{net_tag}_{args.method}{args.tag}"
    rows = run_all(instances, args)
    write_csv(RESULTS / f"{stem}.csv", rows)
    table = summary(rows, args)
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)


def run_all(instances, args):
    options = VerifyOptions(solver=args.solver)
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
