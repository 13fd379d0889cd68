"""fo-sdp at MNIST scale: certified bound against time per optimiser, and warm starts.

Instances: the embedded 784-100-100-10 PGD-trained network (``relax/data/default_net.onnx``),
image 0, eps 0.02 and 0.05, the hardest target class by CROWN (matrix side ~940 after
fixed coordinates).  Part 1 runs each optimiser once with ``--seconds`` (60; 300 with
``--long``) and reports the best *certified* bound (rigorous float64 checks every few
iterations, their times recorded) at 10/60/300 s, beside CROWN, the triangle LP and a
reference value for the SDP optimum (``--reference EPS=VALUE``; see the table note).
Part 2 measures warm starts one by one (10 s runs): the start's certified bound per
``init``, across target classes of the image and across neighbouring eps.  Writes
``benchmarks/results/fo_sdp.md``, ``.csv``, ``fo_sdp_traces.csv`` (every check) and
``fo_sdp.png`` (best certified bound so far against time).

    python benchmarks/fo_sdp.py [--seconds 60] [--long] [--reference 0.02=8.604]
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

import numpy as np  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
METHODS = (("lbfgs", {"method": "lbfgs", "check_every": 5}),
           ("adam (Lanczos)", {"method": "adam", "eig": "lanczos", "check_every": 25}),
           ("bm (rank 4) + lbfgs", {"method": "bm", "check_every": 5}))


def instance(eps: float, rank: int = 0):
    """``(program, CROWN bound, LP bound, row)`` of the ``rank``-th hardest target."""
    from relax import robustness
    from relax.bounds import bound_specs
    from relax.data import default_images, default_network_path
    from relax.io.onnx_import import from_onnx
    from relax.lp.method import lp_disjunct_bounds
    from relax.sdp.encode import layered_program
    from relax.spec import Spec

    network = from_onnx(default_network_path())
    X, Y = default_images()
    spec = robustness(X[0], int(Y[0]), eps, num_classes=10)
    crown = bound_specs(network, [spec], "crown")[0]
    j = int(np.argsort(crown.disjunct_bounds)[rank])
    d = spec.disjuncts[j]
    lp = lp_disjunct_bounds(network, Spec(spec.lower, spec.upper, (d,)), crown.layers, "highs")
    program = layered_program(network, spec.lower, spec.upper, crown.layers, d.A[0],
                              float(d.b[0]))
    return program, float(crown.disjunct_bounds[j]), float(lp[0])


def solve(program, seconds: float, warm=None, **extra):
    from solvers import SolveOptions, get_solver

    options = SolveOptions(time_limit=seconds, extra=tuple(extra.items()))
    return get_solver("fo-sdp").solve(program, options, warm)


def best_by(solution, limit: float) -> float:
    """The best certified bound among the checks taken within ``limit`` seconds."""
    state = solution.warm_start
    values = [b for (_, b), t in zip(state.checks, state.check_seconds) if t <= limit]
    if solution.stats.seconds <= limit:
        values.append(solution.bound)
    return max(values, default=float("nan"))


def curves(eps_values, seconds: float, checkpoints):
    rows, traces = [], {}
    for eps in eps_values:
        program, crown, lp = instance(eps)
        start_bound = solve(program, 10.0, max_iterations=0).bound
        for name, extra in METHODS:
            start = time.perf_counter()
            solution = solve(program, seconds, **extra)
            wall = time.perf_counter() - start
            state = solution.warm_start
            traces[(eps, name)] = ([0.0] + list(state.check_seconds) + [solution.stats.seconds],
                                   [start_bound] + [b for _, b in state.checks]
                                   + [solution.bound])
            row = {"eps": eps, "method": name, "crown": crown, "lp": lp,
                   "iterations": solution.stats.iterations, "wall_s": round(wall, 1)}
            row.update({f"bound_{t}s": best_by(solution, t) for t in checkpoints})
            rows.append(row)
            print(row, flush=True)
    return rows, traces


def warm_starts(eps: float, seconds: float):
    """Part 2: ``(what, cold bound, warm bound)`` lines."""
    program, crown, lp = instance(eps)
    lines = [("start, init=" + init, solve(program, 1.0, max_iterations=0, init=init).bound,
              float("nan")) for init in ("zeros", "interval", "crown", "linear", "lp")]
    first = solve(program, seconds)
    other, *_ = instance(eps, rank=1)
    lines.append((f"2nd hardest class after hardest ({seconds:.0f} s)",
                  solve(other, seconds).bound, solve(other, seconds, first.warm_start).bound))
    near, *_ = instance(eps + 0.005)
    lines.append((f"eps {eps + 0.005:g} after eps {eps:g} ({seconds:.0f} s)",
                  solve(near, seconds).bound, solve(near, seconds, first.warm_start).bound))
    return crown, lp, lines


def plot(traces, references, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps_values = sorted({e for e, _ in traces})
    fig, axes = plt.subplots(1, len(eps_values), figsize=(6 * len(eps_values), 4))
    for ax, eps in zip(np.atleast_1d(axes), eps_values):
        for (e, name), (t, b) in traces.items():
            if e == eps:
                order = np.argsort(t)
                ax.step(np.asarray(t)[order], np.maximum.accumulate(np.asarray(b)[order]),
                        where="post", label=name)
        marks = references.get(eps, ())
        for (label, value), color in zip(marks, ("gray", "black", "red")):
            ax.axhline(value, linestyle="--", linewidth=0.8, color=color, label=label)
        values = [v for _, v in marks]
        ax.set_ylim(min(values) - 0.2, max(values) + 0.2)
        ax.set(title=f"eps {eps}", xlabel="seconds", ylabel="certified bound")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--long", action="store_true", help="300 s per run")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--reference", nargs="*", default=[],
                        help="EPS=VALUE: a reference value of the SDP optimum")
    parser.add_argument("--warm-seconds", type=float, default=10.0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    seconds = 300.0 if args.long else args.seconds
    checkpoints = [t for t in (10, 60, 300) if t <= seconds]
    rows, traces = curves(args.eps, seconds, checkpoints)
    reference = {float(k): float(v) for k, v in (r.split("=") for r in args.reference)}
    crown_lp = {r["eps"]: (r["crown"], r["lp"]) for r in rows}
    marks = {e: [("CROWN", c), ("LP", lp)] + ([("reference", reference[e])]
                                              if e in reference else [])
             for e, (c, lp) in crown_lp.items()}
    RESULTS.mkdir(exist_ok=True)
    plot(traces, marks, RESULTS / "fo_sdp.png")
    with open(RESULTS / "fo_sdp_traces.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["eps", "method", "seconds", "certified_bound"])
        for (eps, name), (times, values) in traces.items():
            writer.writerows([eps, name, t, b] for t, b in zip(times, values))
    with open(RESULTS / "fo_sdp.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    warm = warm_starts(args.eps[0], args.warm_seconds)
    write_markdown(args, rows, checkpoints, reference, warm)


def write_markdown(args, rows, checkpoints, reference, warm) -> None:
    head = "| eps | method | CROWN | LP | " + " | ".join(f"{t} s" for t in checkpoints)
    lines = ["# fo-sdp: certified bound against time (784-100-100-10 PGD-trained, image 0, "
             "hardest target)", "", f"Machine: {describe_machine()} (shared with other jobs: "
             "timings are noisy, 2-4x).", "", "Command: `python benchmarks/fo_sdp.py "
             + " ".join(sys.argv[1:]) + "`", "", head + " | reference | iterations |",
             "|" + "---|" * (6 + len(checkpoints))]
    for r in rows:
        cells = " | ".join(f"{r[f'bound_{t}s']:.4f}" for t in checkpoints)
        ref = reference.get(r["eps"])
        lines.append(f"| {r['eps']} | {r['method']} | {r['crown']:.4f} | {r['lp']:.4f} | "
                     f"{cells} | {'' if ref is None else f'{ref:.4f}'} | {r['iterations']} |")
    crown, lp, items = warm
    lines += ["", "Reference: a certified lower bound on the SDP optimum from another solver "
              "(see the report); the target is within 1e-3 of the optimum.", "",
              "![bound against time](fo_sdp.png)", "",
              f"## Warm starts (eps {args.eps[0]}; CROWN {crown:.4f}, LP {lp:.4f})", "",
              "| what | cold | warm |", "|---|---|---|"]
    lines += [f"| {what} | {cold:.5f} | {'' if np.isnan(w) else f'{w:.5f}'} |"
              for what, cold, w in items]
    (RESULTS / "fo_sdp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
