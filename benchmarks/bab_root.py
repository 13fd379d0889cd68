"""alpha-CROWN settings at the root of branch and bound: old against new, in one process.

    python benchmarks/bab_root.py --properties prop_3_0.03 prop_13_0.03 --reps 2

Runs :func:`relax.search.beta_crown.torch_branch_and_bound` on mnistfc properties with
the root alpha-CROWN of before this change (30 Adam steps, lr 0.1, no decay, one set
of slopes shared by the objective and every intermediate bound) and of now (20 steps,
lr 0.5, decay 0.98, own slopes per intermediate bound row, monotone intermediate
bounds), alternating in one process so both see the same load.  Writes
``benchmarks/results/bab_root<tag>.{csv,md}``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine  # noqa: E402

import relax  # noqa: E402
from relax.bounds.alpha import AlphaSettings  # noqa: E402
from relax.search import beta_crown  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = data_root() / "vnncomp2021" / "mnistfc"

ROOTS = {
    "old": AlphaSettings(30, 0.1, lr_decay=1.0, per_layer_alpha=False),
    "new": beta_crown.BabSettings().root(),
}


class _Settings(beta_crown.BabSettings):
    """BabSettings whose root alpha-CROWN is one of :data:`ROOTS`."""

    choice = "new"

    def root(self) -> AlphaSettings:
        return ROOTS[self.choice]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="mnist-net_256x2")
    parser.add_argument("--properties", nargs="+", default=["prop_3_0.03", "prop_13_0.03"])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    net = relax.from_onnx(str(DATA / f"{args.network}.onnx"))
    rows = []
    for prop in args.properties:
        spec = relax.read_vnnlib(str(DATA / f"{prop}.vnnlib"))[0]
        crown = relax.bounds.bound_specs(net, [spec])[0]
        todo = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
        for rep in range(args.reps):
            for name in ROOTS:
                _Settings.choice = name
                settings = _Settings()
                start = time.perf_counter()
                outcome = beta_crown.torch_branch_and_bound(net, spec, todo, settings=settings)
                rows.append({"property": prop, "root": name, "rep": rep, "complete": outcome.complete,
                             "domains": outcome.nodes, "seconds": time.perf_counter() - start})
                print(rows[-1], flush=True)
    write(rows, args)


def write(rows, args) -> None:
    stem = RESULTS / f"bab_root{args.tag}"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Branch and bound root: old vs new alpha-CROWN ({args.network})", "",
             f"Machine: {describe_machine()}; shared with other jobs; 1 torch thread.",
             f"Command: `python {' '.join(sys.argv)}`", "",
             "| property | root | domains | seconds (each run) | median s |", "|---|---|---|---|---|"]
    for prop in args.properties:
        for name in ROOTS:
            mine = [r for r in rows if r["property"] == prop and r["root"] == name]
            runs = ", ".join(f"{r['seconds']:.2f}" for r in mine)
            lines.append(f"| {prop} | {name} | {mine[0]['domains']} | {runs} | "
                         f"{np.median([r['seconds'] for r in mine]):.2f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
