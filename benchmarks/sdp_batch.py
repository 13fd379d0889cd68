"""fo-sdp batched vs one problem at a time: all target classes of an image (and of
several images) in one ``solve_batch`` call against the same problems solved in a loop.

Both sides run the same per-problem algorithm for the same number of evaluations
(``--iterations``, no time limit), so the ratio measures what batching the linear algebra
(one matmul per layer for the stacked problems, one batched ``eigh`` / Lanczos) saves;
the largest bound difference shows the two agree.  One thread.  Writes
``benchmarks/results/sdp_batch.md`` and ``.csv``.

    python benchmarks/sdp_batch.py [--iterations 200] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402
from sdp import mnist_problem, random_problem, trained_network  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def programs(network, specs):
    """One LayeredReluProgram per disjunct row of every spec (CROWN hidden bounds)."""
    from relax.bounds import bound_specs
    from relax.sdp.encode import layered_program

    out = []
    for spec in specs:
        layers = bound_specs(network, [spec], "crown")[0].layers
        out += [layered_program(network, spec.lower, spec.upper, layers, row, float(offset))
                for d in spec.disjuncts for row, offset in zip(d.A, d.b)]
    return out


def setups(quick: bool):
    """``(name, extra options, thunk -> (network, specs))``."""
    def random_images(count):
        def thunk():
            """The Gaussian net of ``benchmarks/sdp.py`` and ``count`` random points."""
            from relax import robustness

            network, spec = random_problem((100, 50, 20, 10), seed=0)
            rng = np.random.default_rng(1)
            specs = [spec]
            while len(specs) < count:
                x = rng.uniform(size=100)
                specs.append(robustness(x, int(np.argmax(network.forward(x))), 0.05,
                                        num_classes=10))
            return network, specs
        return thunk

    def mnist():
        network, spec = mnist_problem(trained_network((784, 50, 10)))
        return network, [spec]

    out = [("random 100-50-20-10, 1 image (9 rows)", {}, random_images(1)),
           ("random 100-50-20-10, 1 image (9 rows), Adam+Lanczos",
            {"method": "adam", "eig": "lanczos"}, random_images(1)),
           ("random 100-50-20-10, 3 images (27 rows)", {}, random_images(3))]
    if not quick:
        out.append(("mnist 784-50-10, 1 image (9 rows)", {"max_iterations": 40}, mnist))
    return out


def measure(name, extra, thunk, iterations: int) -> dict:
    import torch

    from solvers import SolveOptions, get_solver
    from solvers.backends.fo_sdp import solve_batch

    torch.set_num_threads(1)
    network, specs = thunk()
    progs = programs(network, specs)
    opts = {"max_iterations": iterations, **extra}
    options = SolveOptions(extra=tuple(opts.items()))
    backend = get_solver("fo-sdp")
    start = time.perf_counter()
    single = [backend.solve(p, options) for p in progs]
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    batched = solve_batch(progs, options)
    batch = time.perf_counter() - start
    a = np.array([s.bound for s in single])
    b = np.array([s.bound for s in batched])
    row = {"setup": name, "problems": len(progs),
           "s": 1 + sum(np.asarray(lo).size for lo in progs[0].lower),
           "evaluations": opts["max_iterations"],
           "sequential_s": round(sequential, 2), "batched_s": round(batch, 2),
           "speedup": round(sequential / batch, 2),
           "max_bound_diff": float(np.max(np.abs(a - b))),
           "mean_bound_seq": float(a.mean()), "mean_bound_batch": float(b.mean())}
    print(row, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    rows = [measure(name, extra, thunk, args.iterations)
            for name, extra, thunk in setups(args.quick)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "sdp_batch.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# fo-sdp: batched vs one problem at a time", "",
             f"Machine: {describe_machine()}. One thread; the machine's 2 cores were shared "
             "with two other jobs, so times are pessimistic and noisy. Run: "
             f"`python benchmarks/sdp_batch.py --iterations {args.iterations}"
             f"{' --quick' if args.quick else ''}`.", "",
             "Same algorithm and evaluation budget on both sides (default method: spectral "
             "L-BFGS with a dense eigh per evaluation; one row uses Adam with Lanczos); "
             "`max_bound_diff` is the largest |batched - sequential| rigorous bound "
             "(rounding differences in the batched products let the trajectories drift "
             "apart slightly).", "",
             "| setup | problems | s | evaluations | sequential (s) | batched (s) | speed-up "
             "| max bound diff |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setup']} | {r['problems']} | {r['s']} | {r['evaluations']} | "
                     f"{r['sequential_s']} | {r['batched_s']} | {r['speedup']}x | "
                     f"{r['max_bound_diff']:.2e} |")
    lines += ["", "Where the time goes (profiled on mnist 784-50-10, 10 evaluations): the "
              "dense `eigh` of each `835 x 835` matrix is ~75% of a batched and ~80% of a "
              "sequential evaluation.  On one CPU thread a batched `eigh` is a loop of the "
              "same LAPACK calls, so batching saves only the Python overhead and the small "
              "matmuls: it pays on small networks, is about even once `eigh` dominates, and "
              "the union of kept coordinates of different images makes the batched matrices "
              "slightly larger than each problem's own.  Batched `eigh` on a GPU "
              "(`device=\"cuda\"`) is where the stacked layout should pay most; not measured "
              "(no GPU here).  The Adam row: Adam stays near its CROWN-like start on this net "
              "(mean bound ~0.10 against L-BFGS's ~0.62), so it measures the per-iteration "
              "cost of batched Lanczos only."]
    (RESULTS / "sdp_batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
