"""Branch-and-bound throughput of two or more relax checkouts side by side.

    python benchmarks/bab_throughput.py --code before=/tmp/relax_before --code after=. \
        --properties prop_3_0.03,prop_9_0.03 --timeout 30 --repeats 2 --tag _denormal

    python benchmarks/bab_throughput.py --code now=. --variant b256=threads=2,batch=256 \
        --variant b1024=threads=2,batch=1024 --properties prop_9_0.03,prop_8_0.05 --timeout 40

Every run is a fresh process (one torch thread, ``OMP_NUM_THREADS=1``, unless a
``--variant label=threads=T,batch=B`` says otherwise) that imports the
checkout given by ``--code label=path`` and runs only the torch branch and bound
(:func:`relax.search.beta_crown.torch_branch_and_bound`, default settings but the
variant's ``batch``) on the
disjuncts CROWN leaves open, for ``--timeout`` seconds, no attack first; it reports the
domains bounded (``nodes``), the bound at the end, the verdict, and the search's wall and
CPU seconds.  Domains per CPU second is the throughput least disturbed by a busy machine
(a process that waits for a core does not count that wait).  The checkouts are
interleaved per instance and repeat, so that they see the same machine load; the
table gives domains per second and the bound reached in the same time (the throughput
that a faster implementation of the same search buys).  Writes
``benchmarks/results/bab_throughput<tag>.{csv,md}`` with the machine, the load average
before and after, and the command.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine, run_in_checkout  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: the program each run executes (in the checkout under test)
SEARCH = """
import json, sys, time
import torch
from relax.bounds import bound_specs
from relax.deadline import Deadline
from relax.instances import _load_network
from relax.io.vnnlib import read_vnnlib
from relax.search.beta_crown import BabSettings, torch_branch_and_bound
net_path, prop_path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
threads, batch = int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
settings = BabSettings(batch=batch) if batch else BabSettings()
network = _load_network(__import__("pathlib").Path(net_path))
spec = read_vnnlib(__import__("pathlib").Path(prop_path), network.input_size, network.output_size)[0]
crown = bound_specs(network, [spec], "crown")[0]
todo = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
start, cpu = time.monotonic(), time.process_time()
out = torch_branch_and_bound(network, spec, todo, Deadline.after(timeout), settings)
seconds, cpu = time.monotonic() - start, time.process_time() - cpu
verdict = ("violated" if out.counterexample is not None
           else "holds" if out.complete and out.bound > 0 else "unknown")
print(json.dumps({"verdict": verdict, "bound": out.bound, "nodes": out.nodes, "seconds": seconds,
                  "cpu": cpu}))
"""


def run_one(code: Path, net: Path, prop: Path, timeout: float, variant: dict) -> dict:
    """One search in a fresh process: its verdict, bound, domains, wall and CPU seconds."""
    argv = [net, prop, timeout, variant.get("threads", 1), variant.get("batch", 0)]
    out = run_in_checkout(code, SEARCH, argv, timeout + 300)
    if "error" in out:
        return {"verdict": out["error"], "bound": float("nan"), "nodes": 0, "seconds": float("nan"),
                "cpu": float("nan")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", action="append", required=True, help="label=path of a checkout")
    parser.add_argument("--benchmark", default="mnistfc", choices=["mnistfc", "eran"])
    parser.add_argument("--network", default="256x4")
    parser.add_argument("--properties", required=True, help="comma-separated property names")
    parser.add_argument("--variant", action="append", default=[],
                        help="label=threads=T,batch=B: run every checkout with T torch threads and "
                             "batch B (repeatable; default one thread, the checkout's batch)")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code]
    variants = [_variant(v) for v in args.variant] or [("", {})]
    runs = [(_label(code, variant, len(codes), len(variants)), path, settings)
            for code, path in codes for variant, settings in variants]
    folder = data_root() / "vnncomp2021" / args.benchmark
    net = next(p for p in sorted(folder.glob("*.onnx")) if args.network in p.name)
    load_before = os.getloadavg()
    rows = []
    for prop in args.properties.split(","):
        for repeat in range(args.repeats):
            for label, code, settings in runs:
                out = run_one(code, net, folder / f"{prop}.vnnlib", args.timeout, settings)
                row = {"property": prop, "repeat": repeat, "code": label, **out,
                       "load": round(os.getloadavg()[0], 2)}
                rows.append(row)
                print(row, flush=True)
    write(rows, [r[0] for r in runs], args, load_before, os.getloadavg())


def _variant(text: str) -> tuple[str, dict]:
    """``label=threads=2,batch=1024`` -> ``("label", {"threads": 2, "batch": 1024})``."""
    label, _, pairs = text.partition("=")
    settings = {}
    for pair in filter(None, pairs.split(",")):
        key, _, value = pair.partition("=")
        if key not in ("threads", "batch") or not value.isdigit():
            raise SystemExit(f"--variant {text!r}: expected label=threads=T,batch=B")
        settings[key] = int(value)
    return label, settings


def _label(code: str, variant: str, codes: int, variants: int) -> str:
    """A run's column label: the checkout's, the variant's, or both."""
    if variants == 1 and not variant:
        return code
    return variant if codes == 1 else f"{code}/{variant}"


def write(rows, labels, args, load_before, load_after) -> None:
    stem = RESULTS / f"bab_throughput{args.tag}"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [(f"# torch branch and bound throughput: {', '.join(labels)} ({args.benchmark} "
              f"{args.network}, {args.timeout:g} s per run)"), "",
             (f"Machine: {describe_machine()}; shared with other jobs; load average (1 min) "
              f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.  One process per run, one "
              "torch thread unless the variant says otherwise, the runs interleaved per instance "
              "and repeat; with more threads, domains per wall second is the figure to compare."), "",
             f"Command: `python benchmarks/bab_throughput.py {' '.join(sys.argv[1:])}`", "",
             "| property | repeat | " + " | ".join(f"{l} domains/wall s | {l} bound" for l in labels) + " |",
             "|---|---|" + "---|---|" * len(labels)]
    keyed = {(r["property"], r["repeat"], r["code"]): r for r in rows}
    for prop, repeat in dict.fromkeys((r["property"], r["repeat"]) for r in rows):
        cells = []
        for l in labels:
            r = keyed[(prop, repeat, l)]
            bound = r["verdict"] if r["verdict"] != "unknown" else f"{r['bound']:.4g}"
            cells.append(f"{r['nodes'] / r['seconds']:.0f} | {bound}")
        lines.append(f"| {prop} | {repeat} | " + " | ".join(cells) + " |")
    lines += ["", ("| checkout | domains | wall s | CPU s | domains/wall s | domains/CPU s | "
                   "ratio to first (CPU) | ratio to first (wall) |"), "|---|---|---|---|---|---|---|---|"]
    rates, walls = {}, {}
    for l in labels:
        mine = [r for r in rows if r["code"] == l]
        nodes = sum(r["nodes"] for r in mine)
        wall, cpu = (float(np.nansum([r[key] for r in mine])) for key in ("seconds", "cpu"))
        rates[l], walls[l] = nodes / cpu, nodes / wall
        lines.append(f"| {l} | {nodes} | {wall:.0f} | {cpu:.0f} | {walls[l]:.0f} | {rates[l]:.0f} | "
                     f"{rates[l] / rates[labels[0]]:.2f} | {walls[l] / walls[labels[0]]:.2f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
