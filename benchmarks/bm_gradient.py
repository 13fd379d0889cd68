"""fo-sdp's Burer-Monteiro inner loop: the hand-written gradient against torch autograd.

One outer iteration (``--inner`` L-BFGS steps on the augmented Lagrangian, the
multiplier update) of :mod:`solvers.backends.fo_sdp.burer_monteiro` from the same
state, timed ``--repeats`` times alternately with the library's hand-written
gradient (``_augmented_and_gradient``) and with the baseline: autograd through
``_augmented``, which is how the inner loop evaluated it before.  Instances: the
embedded 784-100-100-10 PGD net and the cached 784-200-100-50-10 (``benchmarks/sdp.py``
trains it), image 0, eps 0.05, hardest target.  Prints and writes
``benchmarks/results/bm_gradient.md`` with the median seconds and their ratio.

    OMP_NUM_THREADS=1 python benchmarks/bm_gradient.py [--inner 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def autograd_gradient(problem, state, V, masks):
    """The baseline: the augmented Lagrangian's value and gradient by torch autograd."""
    import torch

    from solvers.backends.fo_sdp import burer_monteiro as bm

    with torch.enable_grad():
        leaves = [v.detach().clone().requires_grad_(True) for v in V]
        value = bm._augmented(problem, state, [v * m for v, m in zip(leaves, masks)])
        value.backward()
    return value.detach(), [leaf.grad for leaf in leaves]


def setup(net: str):
    from fo_sdp import instance

    from solvers.backends.fo_sdp import burer_monteiro as bm
    from solvers.backends.fo_sdp.batching import Batch
    from solvers.backends.fo_sdp.options import FoSdpOptions

    program, _, _ = instance(0.05, net=net)
    batch = Batch([program], FoSdpOptions(method="bm"), 1e-7, [None])
    data, layout = batch.datas[0], batch.layouts[0]
    problem = bm.BmProblem.build(data, layout, 16, batch.scale[0])
    state = bm.init_state(problem, batch.records[0].start, bm.centre_point(data), 0,
                          bm.penalty(data, FoSdpOptions().bm_mu))
    return problem, bm.update(problem, state, 50), data.n + 1


def time_one(problem, state, inner: int, gradient) -> tuple[float, float]:
    """Seconds of one outer iteration and the augmented Lagrangian it reaches."""
    from solvers.backends.fo_sdp import burer_monteiro as bm

    library = bm._augmented_and_gradient
    bm._augmented_and_gradient = gradient or library
    try:
        start = time.perf_counter()
        new = bm.update(problem, state, inner)
        seconds = time.perf_counter() - start
    finally:
        bm._augmented_and_gradient = library
    return seconds, new.dual_value


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=["pgd", "deep"])
    parser.add_argument("--inner", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for net in args.nets:
        problem, state, side = setup(net)
        hand, auto, values = [], [], []
        for _ in range(args.repeats):        # alternate, so drift hits both alike
            seconds, value = time_one(problem, state, args.inner, None)
            hand.append(seconds)
            values.append(value)
            seconds, value = time_one(problem, state, args.inner, autograd_gradient)
            auto.append(seconds)
            values.append(value)
        rows.append((net, side, statistics.median(hand), statistics.median(auto),
                     statistics.median(auto) / statistics.median(hand),
                     max(values) - min(values)))
        print(*rows[-1], flush=True)
    lines = ["# fo-sdp Burer-Monteiro: hand-written gradient vs autograd", "",
             f"Machine: {describe_machine()} (shared with other jobs: timings are noisy)", "",
             f"Command: `OMP_NUM_THREADS=1 python benchmarks/bm_gradient.py --inner {args.inner} "
             f"--repeats {args.repeats}`", "",
             f"One outer iteration ({args.inner} L-BFGS steps and the multiplier update) from "
             "the same state, the two gradients alternated; median seconds.  `spread`: the "
             "largest difference between the augmented dual values the runs reached (the "
             "same function; only rounding differs).", "",
             "| net | SDP rows | hand (s) | autograd (s) | speed-up | spread |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {s} | {h:.2f} | {a:.2f} | {r:.2f}x | {d:.1e} |"
              for n, s, h, a, r, d in rows]
    (RESULTS / "bm_gradient.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
