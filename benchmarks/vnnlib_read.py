"""How long reading the VNN-COMP 2021 VNNLIB files takes (the speed the tests used to assert).

    python benchmarks/vnnlib_read.py [--repeats 3]

Reads every ``.vnnlib`` file of the mnistfc and eran benchmarks (784 inputs, 10 outputs)
``--repeats`` times and reports, per benchmark, the median and the maximum over files of
the per-file median seconds (target: under 1 s per file).  Writes
``benchmarks/results/vnnlib_read.md`` and ``.csv``; data from ``$RELAX_DATA`` or
``../shared/data``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.io.vnnlib import read_vnnlib  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data")) / "vnncomp2021"
    files = {"mnistfc": sorted((root / "mnistfc").glob("*.vnnlib")),
             "eran": sorted((root / "eran" / "specs").glob("*.vnnlib"))}
    rows = []
    for benchmark, paths in files.items():
        for path in paths:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                read_vnnlib(path, num_inputs=784, num_outputs=10)
                times.append(time.perf_counter() - start)
            rows.append({"benchmark": benchmark, "file": path.name,
                         "seconds": round(statistics.median(times), 4)})
    lines = ["# Reading VNNLIB files", "", f"Command: `python benchmarks/vnnlib_read.py "
             f"{' '.join(sys.argv[1:])}`", "", f"Machine: {describe_machine()}", "",
             "| benchmark | files | median s/file | max s/file | files over 1 s |", "|---|---|---|---|---|"]
    for benchmark in files:
        secs = [r["seconds"] for r in rows if r["benchmark"] == benchmark]
        lines.append(f"| {benchmark} | {len(secs)} | {statistics.median(secs):.3f} | {max(secs):.3f} "
                     f"| {sum(s > 1.0 for s in secs)} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "vnnlib_read.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (RESULTS / "vnnlib_read.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
