"""The direct HiGHS path against cvxpy on the workload LP tightening runs: one LP,
many objectives.  Our path keeps the model loaded in HiGHS and hot-starts every
solve (``relax.lp.runner.LpRunner`` with ``highs``); the cvxpy path builds and
canonicalises the problem for every objective (``cvxpy-highs``).

    python benchmarks/lp_paths.py [--neurons 30]

Writes ``benchmarks/results/lp_paths.md`` with the machine and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax import from_onnx, read_vnnlib  # noqa: E402
from relax.bounds import bound_specs  # noqa: E402
from relax.lp.encode import encode_triangle  # noqa: E402
from relax.lp.runner import LpRunner  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data")) / "vnncomp2021" / "mnistfc"


def tighten_objectives(prop: str, count: int):
    """The LP of layer 0 and the objectives ``+-z_{1,i}`` of the first unstable neurons of layer 1."""
    network = from_onnx(DATA / "mnist-net_256x2.onnx")
    spec = read_vnnlib(DATA / prop)[0]
    bounds = bound_specs(network, [spec], "crown")[0].layers
    encoding = encode_triangle(network, spec.lower, spec.upper, bounds, depth=1)
    M, g = encoding.expressions[1]
    M = M.tocsr()
    rows = []
    for i in bounds.unstable(1)[:count]:
        row = M[i].toarray().ravel()
        rows += [(row, g[i]), (-row, -g[i])]
    return encoding.program, rows


def timed(program, rows, solver: str):
    start = time.perf_counter()
    runner = LpRunner(program, solver)
    bounds = [runner.lower_bound(c, c0) for c, c0 in rows]
    return time.perf_counter() - start, np.array(bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--neurons", type=int, default=30)
    args = parser.parse_args()
    lines = ["# One LP, many objectives: direct HiGHS (hot starts) vs cvxpy", "",
             f"Machine: {describe_machine()}", "",
             f"Command: `python benchmarks/lp_paths.py --neurons {args.neurons}`", "",
             "| property | LPs | direct HiGHS s | cvxpy-highs s | cvxpy / direct | max bound diff |",
             "|---|---|---|---|---|---|"]
    ratios = []
    for prop in ("prop_0_0.03.vnnlib", "prop_1_0.03.vnnlib", "prop_3_0.03.vnnlib"):
        program, rows = tighten_objectives(prop, args.neurons)
        direct, b_direct = timed(program, rows, "highs")
        cvx, b_cvx = timed(program, rows, "cvxpy-highs")
        ratios.append(cvx / direct)
        lines.append(f"| 256x2 {prop} | {len(rows)} | {direct:.2f} | {cvx:.2f} | {cvx / direct:.1f} | "
                     f"{np.max(np.abs(b_direct - b_cvx)):.1e} |")
    lines += ["", f"**Median cvxpy / direct: {np.median(ratios):.1f}x**"]
    text = "\n".join(lines) + "\n"
    (REPO / "benchmarks" / "results" / "lp_paths.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
