"""Smooth-network bounding speed of two or more relax checkouts side by side.

    python benchmarks/smooth_throughput.py --code before=/tmp/relax_before --code after=. \
        --images 29 7 23 --eps 0.02 --steps 30 --timeout 60 --tag _envelope

Every run is a fresh process (one torch thread, ``OMP_NUM_THREADS=1``) that imports the
checkout given by ``--code label=path`` and, on the robustness property of one MNIST
test image at ``--eps`` for a smooth network (``--net``; default the cached
784-200x6-10 sigmoid net of ``benchmarks/smooth_nets.py``):

1. runs the root alpha-CROWN of ``exact``'s smooth path (:data:`relax.search.exact.SMOOTH_ALPHA`,
   float32 steps) for exactly ``--steps`` Adam steps on the disjuncts CROWN leaves open,
   and reports CPU seconds per step and the bound reached;
2. runs ``exact`` with a ``--timeout`` limit and reports its verdict, bound and seconds.

The checkouts are interleaved per image, so they see the same machine load.  Writes
``benchmarks/results/smooth_throughput<tag>.{csv,md}`` with the machine, the load
average before and after, and the command.
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
DEFAULT_NET = REPO / "benchmarks" / ".cache" / "mnist_sigmoid_200x6_e5.onnx"

#: the program each run executes (in the checkout under test)
PROGRAM = """
import json, sys, time
from dataclasses import replace
import torch
torch.set_num_threads(1)
import relax
from relax.bounds import bound_specs
from relax.bounds.torch_network import TorchNetwork
from relax.io.mnist import load_mnist
from relax.search.beta_crown import root_alpha_bounds
from relax.search.exact import SMOOTH_ALPHA
net_path, mnist, image, eps, steps, timeout = sys.argv[1:7]
network = relax.from_onnx(net_path)
X, y = load_mnist(mnist, "test", limit=int(image) + 1)
spec = relax.robustness(X[int(image)], int(y[int(image)]), float(eps))
crown = bound_specs(network, [spec], "crown")[0]
todo = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
out = {"open": len(todo), "step_cpu": float("nan"), "alpha_bound": crown.bound}
if todo:
    settings = replace(SMOOTH_ALPHA, iterations=int(steps), stop_when_positive=False)
    fast = TorchNetwork.from_network(network, dtype=torch.float32)
    cpu = time.process_time()
    root, _, _ = root_alpha_bounds(network, spec, todo, alpha_settings=settings, fast_net=fast)
    out["step_cpu"] = (time.process_time() - cpu) / int(steps)
    out["alpha_bound"] = float(root.bound.min())
start, cpu = time.monotonic(), time.process_time()
result = relax.verify(network, spec, "exact", timeout=float(timeout))
out.update(verdict=result.verdict.value, bound=result.bound, seconds=time.monotonic() - start,
           cpu=time.process_time() - cpu)
print(json.dumps(out))
"""


def run_one(code: Path, net: Path, image: int, args) -> dict:
    argv = [net, data_root() / "mnist", image, args.eps, args.steps, args.timeout]
    out = run_in_checkout(code, PROGRAM, argv, args.timeout + 600)
    if "error" in out:
        return {"open": 0, "step_cpu": float("nan"), "alpha_bound": float("nan"), "verdict": out["error"],
                "bound": float("nan"), "seconds": float("nan"), "cpu": float("nan")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", action="append", required=True, help="label=path of a checkout")
    parser.add_argument("--net", type=Path, default=DEFAULT_NET, help="a smooth MNIST network (ONNX)")
    parser.add_argument("--images", type=int, nargs="+", required=True, help="MNIST test image indices")
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--steps", type=int, default=30, help="alpha-CROWN steps timed per run")
    parser.add_argument("--timeout", type=float, default=60, help="exact's limit per run")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    if not args.net.exists():
        parser.error(f"{args.net} not found: run benchmarks/smooth_nets.py --hidden 200 200 200 200 200 200 "
                     "--activations sigmoid --epochs 5 first, or pass --net")
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code]
    load_before = os.getloadavg()
    rows = []
    for image in args.images:
        for label, code in codes:
            row = {"image": image, "code": label, **run_one(code, args.net, image, args),
                   "load": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(row, flush=True)
    write(rows, [c[0] for c in codes], args, load_before, os.getloadavg())


def write(rows, labels, args, load_before, load_after) -> None:
    stem = RESULTS / f"smooth_throughput{args.tag}"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Smooth-network bounding speed: {', '.join(labels)} ({args.net.name}, eps {args.eps:g})", "",
             (f"Machine: {describe_machine()}; shared with other jobs; load average (1 min) "
              f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.  One process per run, one "
              "torch thread, the checkouts interleaved per image."), "",
             f"Command: `python benchmarks/smooth_throughput.py {' '.join(sys.argv[1:])}`", "",
             (f"Per checkout: CPU seconds per root alpha-CROWN step ({args.steps} steps, the disjuncts "
              f"CROWN leaves open), the bound after them, and `exact` at {args.timeout:g} s "
              "(verdict or bound, wall seconds)."), "",
             "| image | open | " + " | ".join(f"{l} s/step | {l} alpha bound | {l} exact | {l} s" for l in labels)
             + " |", "|---|---|" + "---|---|---|---|" * len(labels)]
    keyed = {(r["image"], r["code"]): r for r in rows}
    for image in dict.fromkeys(r["image"] for r in rows):
        cells = []
        for l in labels:
            r = keyed[(image, l)]
            exact = r["verdict"] if r["verdict"] != "unknown" else f"{r['bound']:.4g}"
            cells.append(f"{r['step_cpu']:.3f} | {r['alpha_bound']:.4g} | {exact} | {r['seconds']:.1f}")
        lines.append(f"| {image} | {keyed[(image, labels[0])]['open']} | " + " | ".join(cells) + " |")
    lines += ["", "| checkout | mean s/step | ratio to first | decided | exact wall s in all |", "|---|---|---|---|---|"]
    first = None
    for l in labels:
        mine = [r for r in rows if r["code"] == l]
        per_step = float(np.nanmean([r["step_cpu"] for r in mine]))
        first = first or per_step
        decided = sum(r["verdict"] in ("holds", "violated") for r in mine)
        lines.append(f"| {l} | {per_step:.3f} | {first / per_step:.2f}x faster | {decided}/{len(mine)} | "
                     f"{sum(r['seconds'] for r in mine):.0f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
