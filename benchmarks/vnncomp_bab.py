"""Branch-and-bound settings of ``exact`` side by side on VNN-COMP 2021 instances.

    python benchmarks/vnncomp_bab.py --network 256x4 --timeout 30 \
        --variant babsr=babsr:256 --variant fsb=fsb:256 --tag _branching

Every instance runs once per variant (``label=branching:batch``, the options
:class:`relax.search.exact.ExactOptions` ``branching`` and ``batch``), the variants
interleaved per instance so that they see the same machine load, all with the same
fixed per-instance limit (``--timeout``), in this one process (one torch thread).
``--only-unsolved earlier.csv`` keeps the instances an earlier run left unknown.
``--search-only`` runs only the branch and bound
(:func:`relax.search.beta_crown.torch_branch_and_bound` on the disjuncts CROWN leaves
open, no attack first) and also records its domain count, which does not depend on
the machine's load: domains to a verdict compare branching rules fairly.
Writes ``benchmarks/results/vnncomp_bab<tag>.{csv,md}`` with the machine, the load
average before and after, and the command.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine  # noqa: E402

from relax.bounds import bound_specs  # noqa: E402
from relax.deadline import Deadline  # noqa: E402
from relax.instances import _load_network, read_instances, run_instance  # noqa: E402
from relax.io.vnnlib import read_vnnlib  # noqa: E402
from relax.search.beta_crown import torch_branch_and_bound  # noqa: E402
from relax.protocol import VerifyOptions  # noqa: E402
from relax.search.exact import ExactOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def variant(text: str) -> tuple[str, ExactOptions]:
    label, spec = text.split("=", 1)
    branching, batch = spec.split(":")
    return label, ExactOptions(branching=branching, batch=int(batch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benchmark", default="mnistfc", choices=["mnistfc", "eran"])
    parser.add_argument("--network", default=None)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--variant", action="append", required=True, help="label=branching:batch")
    parser.add_argument("--only-unsolved", default=None, help="earlier vnncomp csv")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--properties", default=None, help="comma-separated property names")
    parser.add_argument("--search-only", action="store_true", help="branch and bound alone, with domain counts")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = [variant(v) for v in args.variant]
    instances = read_instances(data_root() / "vnncomp2021" / args.benchmark / "instances.csv")
    instances = [i for i in instances if args.network is None or args.network in i.network.name]
    if args.only_unsolved:
        with open(args.only_unsolved, newline="") as handle:
            unknown = {r["property"] for r in csv.DictReader(handle) if r["verdict"] == "unknown"}
        instances = [i for i in instances if i.property.name in unknown]
    if args.properties:
        wanted = set(args.properties.split(","))
        instances = [i for i in instances if i.property.stem in wanted]
    instances = instances[: args.limit]
    load_before = os.getloadavg()
    rows = []
    for instance in instances:
        row = {"network": instance.network.name, "property": instance.property.name}
        for label, exact in variants:
            if args.search_only:
                verdict, seconds, nodes = search_only(instance, exact, args.timeout)
                row[f"{label}_nodes"] = nodes
            else:
                result = run_instance(instance, "exact", VerifyOptions(methods=(exact,)), args.timeout)
                verdict, seconds = result.verdict, result.seconds
            row[f"{label}_verdict"], row[f"{label}_s"] = verdict, round(seconds, 2)
        rows.append(row)
        print(row, flush=True)
    write(rows, [label for label, _ in variants], args, load_before, os.getloadavg())


def search_only(instance, exact: ExactOptions, timeout: float):
    """(verdict, seconds, domains) of the torch branch and bound on the first spec's
    CROWN-open disjuncts (``crown`` when CROWN alone decides)."""
    network = _load_network(instance.network)
    spec = read_vnnlib(instance.property, network.input_size, network.output_size)[0]
    start = time.monotonic()
    crown = bound_specs(network, [spec], "crown")[0]
    todo = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
    if not todo:
        return "holds", time.monotonic() - start, 0
    outcome = torch_branch_and_bound(network, spec, todo, Deadline.after(timeout), exact.bab())
    verdict = ("violated" if outcome.counterexample is not None
               else "holds" if outcome.complete and outcome.bound > 0 else "unknown")
    return verdict, time.monotonic() - start, outcome.nodes


def write(rows, labels, args, load_before, load_after) -> None:
    stem = RESULTS / f"vnncomp_bab{args.tag}"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# exact: branch-and-bound variants ({args.benchmark} {args.network or ''}, "
             f"{args.timeout:g} s per instance)", "",
             f"Machine: {describe_machine()}; shared with other helpers' jobs; load average "
             f"(1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after.  One process, one "
             "torch thread, the variants interleaved per instance.", "",
             f"Command: `python benchmarks/vnncomp_bab.py {' '.join(sys.argv[1:])}`", "",
             "| instance | " + " | ".join(f"{l} | {l} s" for l in labels) + " |",
             "|---|" + "---|---|" * len(labels)]
    nodes = args.search_only
    if nodes:
        lines[-2:] = ["| instance | " + " | ".join(f"{l} | {l} s | {l} domains" for l in labels) + " |",
                      "|---|" + "---|---|---|" * len(labels)]
    for r in rows:
        cells = [f"{r[l + '_verdict']} | {r[l + '_s']:.1f}" + (f" | {r[l + '_nodes']}" if nodes else "")
                 for l in labels]
        lines.append(f"| {r['network']} {r['property']} | " + " | ".join(cells) + " |")
    lines += ["", "| variant | holds | violated | unknown | solved | total s |", "|---|---|---|---|---|---|"]
    for l in labels:
        verdicts = [r[f"{l}_verdict"] for r in rows]
        solved = verdicts.count("holds") + verdicts.count("violated")
        lines.append(f"| {l} | {verdicts.count('holds')} | {verdicts.count('violated')} | "
                     f"{verdicts.count('unknown')} | {solved} | {sum(r[l + '_s'] for r in rows):.0f} |")
    if nodes:
        common = [r for r in rows if r[labels[0] + "_nodes"] and all(
            r[f"{l}_verdict"] != "unknown" for l in labels)]
        lines += ["", f"Domains on the {len(common)} instances every variant decided by search: "
                  + ", ".join(f"{l} {sum(r[l + '_nodes'] for r in common)}" for l in labels) + "."]
    conflicts = [r["property"] for r in rows
                 if {"holds", "violated"} <= {r[f"{l}_verdict"] for l in labels}]
    lines += ["", f"Holds/violated disagreements between variants: {len(conflicts)} "
              f"{', '.join(conflicts)}"]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
