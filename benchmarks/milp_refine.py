"""What MILP refinement of intermediate bounds would buy on 2 cores with HiGHS.

    python benchmarks/milp_refine.py --benchmark mnistfc --network 256x4 --property prop_3_0.03 \
        --layers 1 --per-neuron 5

alpha-beta-CROWN's 2021 configuration for mnistfc and eran refined the intermediate
bounds of the unstable neurons with Gurobi MILPs (32 solvers in parallel, up to 80 % of
the time) before branch and bound.  This script measures that route here, on one
property: alpha-CROWN layer bounds (20 steps), LP tightening of every layer (triangle
LP), then, for each layer of ``--layers`` in turn, the big-M MILP of the layers below
(HiGHS, ``--per-neuron`` seconds per solve) maximises and minimises every unstable
neuron, and alpha-CROWN (20 steps) is rerun from the refined bounds.  It reports the
seconds spent and the root bound after each step.

The MILP bounds come from HiGHS's ``mip_dual_bound`` minus a tolerance margin
(:mod:`solvers.backends.highs`): a solver-reported number, not a bound relax can check
independently, so this is a measurement of the route (what it would gain at what cost),
not a verification step.  Writes ``benchmarks/results/milp_refine<tag>.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine  # noqa: E402

from relax.bounds import Bounds, bound_specs, refine_bounds  # noqa: E402
from relax.io.onnx_import import from_onnx  # noqa: E402
from relax.io.vnnlib import read_vnnlib  # noqa: E402
from relax.krelu.method import alpha_layer_bounds  # noqa: E402
from relax.lp.encode import encode_triangle  # noqa: E402
from relax.lp.tighten import tighten_bounds  # noqa: E402
from solvers.backend import SolveOptions  # noqa: E402
from solvers.registry import get_solver  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def milp_layer(network, spec, bounds: Bounds, k: int, seconds: float) -> tuple[Bounds, int]:
    """Layer ``k``'s unstable neurons re-bounded by the MILP of the layers below
    (upper end first; the lower end while the neuron is still unstable)."""
    encoding = encode_triangle(network, spec.lower, spec.upper, bounds, depth=k, integer=True)
    M, g = encoding.expressions[k]
    M = M.tocsr()
    highs, options = get_solver("highs"), SolveOptions(time_limit=seconds)
    lower, upper = np.array(bounds.lower[k]), np.array(bounds.upper[k])
    unstable = bounds.unstable(k)
    for i in unstable:
        row = M[i].toarray().ravel()
        upper[i] = min(upper[i], -highs.solve(encoding.program.with_objective(-row, -g[i]), options).bound)
        if upper[i] > 0:
            lower[i] = max(lower[i], highs.solve(encoding.program.with_objective(row, g[i]), options).bound)
    lowers, uppers = list(bounds.lower), list(bounds.upper)
    lowers[k], uppers[k] = lower, upper
    return refine_bounds(network, spec.lower, spec.upper, Bounds(tuple(lowers), tuple(uppers), "milp")), len(unstable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benchmark", default="mnistfc", choices=["mnistfc", "eran"])
    parser.add_argument("--network", default="256x4", help="mnistfc: 256x2 or 256x4")
    parser.add_argument("--property", required=True, help="e.g. prop_3_0.03 or mnist_spec_idx_5520_eps_0.01500")
    parser.add_argument("--layers", default="1", help="comma-separated hidden layers to refine, in order")
    parser.add_argument("--per-neuron", type=float, default=5.0, help="HiGHS seconds per MILP")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    folder = data_root() / "vnncomp2021" / args.benchmark
    net_path = (folder / "nets" / "mnist_relu_9_200.onnx" if args.benchmark == "eran"
                else folder / f"mnist-net_{args.network}.onnx")
    spec_path = (folder / "specs" if args.benchmark == "eran" else folder) / f"{args.property}.vnnlib"
    network = from_onnx(net_path)
    spec = read_vnnlib(spec_path, network.input_size, network.output_size)[0]
    crown = bound_specs(network, [spec], "crown")[0]
    disjuncts = np.flatnonzero(np.asarray(crown.disjunct_bounds) <= 0)
    rows = []

    def step(label, started, bounds, note=""):
        _, values = alpha_layer_bounds(network, spec, bounds, disjuncts, 20, use_prior=True)
        unstable = [len(bounds.unstable(k)) for k in range(len(network.activations))]
        rows.append((label, time.monotonic() - started, float(values[disjuncts].min()), unstable, note))
        print(rows[-1], flush=True)

    started = time.monotonic()
    bounds, _ = alpha_layer_bounds(network, spec, crown.layers, disjuncts, 20)
    step("alpha-CROWN (20 steps)", started, bounds)
    started = time.monotonic()
    bounds = tighten_bounds(network, spec.lower, spec.upper, bounds)
    step("+ LP tightening, every layer", started, bounds)
    for k in (int(x) for x in args.layers.split(",")):
        started = time.monotonic()
        bounds, count = milp_layer(network, spec, bounds, k, args.per_neuron)
        step(f"+ MILP, layer {k}", started, bounds, f"{count} unstable neurons, {args.per_neuron:g} s per MILP")
    lines = [f"# MILP refinement of intermediate bounds: {net_path.name} {args.property}", "",
             f"Machine: {describe_machine()}", "",
             f"Command: `python benchmarks/milp_refine.py {' '.join(sys.argv[1:])}`", "",
             "Root bound: alpha-CROWN (20 steps) from the bounds so far, least over the open "
             "disjuncts.  MILP bounds are HiGHS's dual bounds (not independently checked).", "",
             "| step | seconds | root bound | unstable per layer | note |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {seconds:.1f} | {bound:.4f} | {unstable} | {note} |"
              for label, seconds, bound, unstable, note in rows]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"milp_refine{args.tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
