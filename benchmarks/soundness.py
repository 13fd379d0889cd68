"""The soundness run at scale: every method in ``BOUND_METHODS`` on thousands of random
cases (ReLU, sigmoid, tanh, softplus networks; robustness and general properties),
each bound and verdict checked against sampling, gradient descent and, for ReLU
networks, the exact MILP (:mod:`tests.soundness_cases`).

    python benchmarks/soundness.py --cases 1000          # per activation
    python benchmarks/soundness.py --cases 50 --methods crown lp   # a quick look

Writes ``benchmarks/results/soundness.md`` and ``.csv``: per activation and method,
how many cases were refused, decided (holds / violated), left unknown, and how many
were unsound (a bound above a reference margin) or wrong (a verdict contradicted by a
reference point).  Any unsound case is also listed with its seed so it can be rerun.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe_machine  # noqa: E402
from relax.verify import BOUND_METHODS  # noqa: E402
from tests.soundness_cases import check_method, random_case, reference  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softplus")
COLUMNS = ("activation", "method", "cases", "refused", "holds", "violated", "unknown",
           "unsound", "seconds")


def run(activations, methods, cases: int, first_seed: int, timeout: float):
    counts = collections.defaultdict(collections.Counter)
    failures = []
    for activation in activations:
        for seed in range(first_seed, first_seed + cases):
            case = random_case(seed, activation)
            ref = reference(case)
            for method in methods:
                start = time.perf_counter()
                check = check_method(case, ref, method, timeout)
                row = counts[(activation, method)]
                row["cases"] += 1
                row["seconds"] += time.perf_counter() - start
                row["refused" if check.refused else check.verdict.value] += 1
                if check.problems:
                    row["unsound"] += 1
                    failures.append((activation, seed, method, "; ".join(check.problems)))
        print(f"{activation}: {cases} cases done", file=sys.stderr, flush=True)
    return counts, failures


def write(counts, failures, command: str) -> None:
    rows = [{"activation": a, "method": m, **{c: counts[(a, m)].get(c, 0) for c in COLUMNS[2:]}}
            for (a, m) in sorted(counts)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "soundness.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "seconds": f"{row['seconds']:.1f}"})
    total = sum(r["cases"] for r in rows)
    unsound = sum(r["unsound"] for r in rows)
    lines = ["# Soundness on random networks", "", f"Machine: {describe_machine()}",
             f"Command: `{command}`", "",
             f"**{total} method runs, {unsound} unsound bounds or wrong verdicts.**", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.1f}" if c == "seconds" else str(row[c])
                                       for c in COLUMNS) + " |")
    if failures:
        lines += ["", "## Unsound cases", ""] + [f"- {a} seed {s} {m}: {p}" for a, s, m, p in failures]
    (RESULTS / "soundness.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=250, help="cases per activation")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--activations", nargs="+", default=list(ACTIVATIONS))
    parser.add_argument("--methods", nargs="+", default=sorted(BOUND_METHODS))
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per method run")
    args = parser.parse_args()
    unknown = set(args.methods) - set(BOUND_METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    counts, failures = run(args.activations, args.methods, args.cases, args.seed, args.timeout)
    write(counts, failures, "python benchmarks/soundness.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
