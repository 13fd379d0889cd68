"""Simplex iterations and time of one layer's LP tightening, by how the LPs are ordered.

    python benchmarks/lp_tighten_order.py [--neurons 80] [--repeats 2]

For mnistfc 256x4 prop_9_0.03 and prop_8_0.05 (VNN-COMP 2021 data under ``$RELAX_DATA``
or ``../shared/data``) the LP is the triangle LP of the last hidden layer over CROWN's
bounds, and ``tighten_layer`` minimises and maximises its first ``--neurons`` unstable
neurons (the others are left out).  Variants, interleaved per repeat:

- ``one session``: one hot-started HiGHS model alternating min z_i and max z_i (the
  code before session 18);
- ``two sessions``: minima and maxima in two models, neurons in index order;
- ``two sessions, chained`` (the default): two models, neurons in the greedy
  nearest-neighbour order of their objective rows (``relax.lp.tighten._chained``).

Reported: simplex iterations (HiGHS's count), wall seconds and the sums of the bounds
(they must agree).  Writes ``benchmarks/results/lp_tighten_order.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

import relax.lp.tighten as tighten
from relax.bounds import Bounds, bound_specs
from relax.cli import load_property
from relax.io.onnx_import import from_onnx
from relax.lp.encode import encode_triangle
from relax.lp.runner import LpRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PROPERTIES = ("prop_9_0.03", "prop_8_0.05")


class _OneSession:
    """Stands in for ``LpRunner`` so that both of ``tighten_layer``'s runners are one model."""

    shared: LpRunner | None = None

    def __new__(cls, *args, **kwargs):
        if cls.shared is None:
            cls.shared = LpRunner(*args, **kwargs)
        return cls.shared


def _layer_problem(network, spec, neurons: int):
    crown = bound_specs(network, [spec], "crown")[0].layers
    k = len(network.activations) - 1
    keep = crown.unstable(k)[:neurons]
    lower, upper = list(crown.lower), list(crown.upper)
    left_out = np.ones(lower[k].size, bool)
    left_out[keep] = False
    lower[k] = np.where(left_out, np.maximum(lower[k], 0.0), lower[k])
    upper[k] = np.maximum(upper[k], lower[k])
    encoding = encode_triangle(network, spec.lower, spec.upper, crown, depth=k)
    return encoding, k, Bounds(tuple(lower), tuple(upper), "crown"), keep


def _run(variant: str, encoding, k: int, bounds: Bounds, iterations: list[int]):
    chained, runner = tighten._chained, tighten.LpRunner
    if variant != "two sessions, chained":
        tighten._chained = lambda M, neurons: neurons
    if variant == "one session":
        _OneSession.shared = None
        tighten.LpRunner = _OneSession
    try:
        iterations.clear()
        start = time.perf_counter()
        result = tighten.tighten_layer(encoding, k, bounds, "highs")
        return result, time.perf_counter() - start, sum(iterations)
    finally:
        tighten._chained, tighten.LpRunner = chained, runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = data_root() / "vnncomp2021" / "mnistfc"
    network = from_onnx(folder / "mnist-net_256x4.onnx")
    iterations: list[int] = []
    minimize = LpRunner.minimize

    def counted(self, c, c0=0.0):
        solution = minimize(self, c, c0)
        iterations.append(solution.stats.iterations or 0)
        return solution

    LpRunner.minimize = counted
    rows = []
    for name in PROPERTIES:
        spec = load_property(network, str(folder / f"{name}.vnnlib"))[0]
        encoding, k, bounds, keep = _layer_problem(network, spec, args.neurons)
        for repeat in range(args.repeats):
            for variant in ("one session", "two sessions", "two sessions, chained"):
                result, seconds, count = _run(variant, encoding, k, bounds, iterations)
                rows.append(dict(property=name, repeat=repeat, variant=variant, neurons=keep.size,
                                 iterations=count, seconds=round(seconds, 3),
                                 sum_lower=round(float(result.lower[k][keep].sum()), 6),
                                 sum_upper=round(float(result.upper[k][keep].sum()), 6)))
                print(rows[-1], flush=True)
    _write(rows, args)


def _write(rows, args) -> None:
    with open(RESULTS / "lp_tighten_order.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# One layer's LP tightening by the order of its LPs", "",
             f"Machine: {describe_machine()}", "",
             f"Command: `python benchmarks/lp_tighten_order.py --neurons {args.neurons} "
             f"--repeats {args.repeats}`", "",
             "mnistfc 256x4, triangle LP of layer 3 over CROWN's bounds, its first "
             f"{args.neurons} unstable neurons (min and max each).", "",
             "| property | repeat | variant | iterations | s | iterations vs one session "
             "| sum of lower bounds | sum of upper bounds |", "|---|---|---|---|---|---|---|---|"]
    base = {}
    for row in rows:
        key = (row["property"], row["repeat"])
        base.setdefault(key, row["iterations"])
        lines.append(f"| {row['property']} | {row['repeat']} | {row['variant']} | {row['iterations']} "
                     f"| {row['seconds']} | {base[key] / max(row['iterations'], 1):.2f}x fewer "
                     f"| {row['sum_lower']} | {row['sum_upper']} |")
    (RESULTS / "lp_tighten_order.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
