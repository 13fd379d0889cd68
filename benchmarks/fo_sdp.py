"""fo-sdp against the interior-point optimum: certified bound against time, and warm starts.

Instances (``--nets``): the embedded 784-100-100-10 PGD-trained network
(``relax/data/default_net.onnx``), a normally trained 784-100-100-10 and a
784-200-100-50-10 (trained and cached by ``benchmarks/sdp.py``), MNIST images
``--images``, eps ``--eps``, the hardest target class by CROWN.  Part 1: per
instance the interior-point optimum (``sdp-ipm``, cuts on, the reference, run here),
then each ``--methods`` entry of fo-sdp for ``--seconds`` (``--seconds-deep`` on
784-200-100-50-10; rigorous float64 checks every few iterations, their times
recorded): the best *certified* bound at 10/60/120/300 s, the gap to the reference
relative to ``max(1, |optimum|)`` and the share of the CROWN-optimum gap closed.
Part 2 measures warm starts one by one (10 s runs) on the embedded net: the start's
certified bound per ``init``, across target classes of the image and across
neighbouring eps.  Writes ``benchmarks/results/fo_sdp.md``, ``.csv``,
``fo_sdp_traces.csv`` (every check) and ``fo_sdp.png`` (best certified bound so far
against time, one panel per instance).

    python benchmarks/fo_sdp.py [--nets pgd normal deep] [--images 0 1] [--methods bm lbfgs]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from machine import describe_machine

RESULTS = REPO / "benchmarks" / "results"
METHODS = {"bm": {"method": "bm", "check_every": 5},
           "bm-plain": {"method": "bm", "bm_momentum": False, "check_every": 5},
           # the earlier penalty 0.2 scale on 784-200-100-50-10 (350 hidden neurons)
           "bm-mu70": {"method": "bm", "bm_mu": 70.0, "check_every": 5},
           "bm-mu20": {"method": "bm", "bm_mu": 20.0, "check_every": 5},
           "bm-grow": {"method": "bm", "bm_growth": 1.5, "check_every": 5},
           "bm-inner600": {"method": "bm", "bm_inner": 600, "check_every": 5},
           "bm-r32": {"method": "bm", "rank": 32, "check_every": 5},
           "bm-r4": {"method": "bm", "rank": 4, "check_every": 5},
           "bm-all": {"method": "bm", "bm_fraction": 1.0, "check_every": 5},
           "bm-inline": {"method": "bm", "bm_background_checks": False, "check_every": 5},
           "bm-full": {"method": "bm", "eliminate": False, "check_every": 5},
           "bm-noescape": {"method": "bm", "bm_escape": 0, "check_every": 5},
           "lbfgs": {"method": "lbfgs", "check_every": 5},
           "adam": {"method": "adam", "eig": "lanczos", "check_every": 25}}
NETS = {"pgd": "784-100-100-10 PGD (embedded)", "normal": "784-100-100-10 normal",
        "deep": "784-200-100-50-10 normal"}


def instance(eps: float, rank: int = 0, net: str = "pgd", image: int = 0):
    """``(program, CROWN bound, target)`` of the ``rank``-th hardest target class."""
    from sdp import IPM_NETS, mnist_problem

    from relax.bounds import bound_specs
    from relax.sdp.encode import layered_program

    network, spec = mnist_problem(IPM_NETS[NETS[net]](), image, eps)
    crown = bound_specs(network, [spec], "crown")[0]
    j = int(np.argsort(crown.disjunct_bounds)[rank])
    d = spec.disjuncts[j]
    program = layered_program(network, spec.lower, spec.upper, crown.layers, d.A[0],
                              float(d.b[0]))
    return program, float(crown.disjunct_bounds[j]), j


def reference(program, limit: float) -> tuple[float, float, str]:
    """The interior-point optimum: ``(certified bound, seconds, status)``."""
    from solvers import SolveOptions, get_solver

    start = time.perf_counter()
    solution = get_solver("sdp-ipm").solve(program, SolveOptions(time_limit=limit,
                                                                 extra=(("cuts", True),)))
    return float(solution.bound), time.perf_counter() - start, solution.status.value


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


CHECKPOINTS = (10, 60, 120, 300)


def curves(args):
    """Part 1: one row per (instance, method) and the traces of certified bounds."""
    rows, traces = [], {}
    for net in args.nets:
        seconds = args.seconds_deep if net == "deep" else args.seconds
        for image in args.images:
            for eps in args.eps:
                program, crown, target = instance(eps, net=net, image=image)
                optimum, ipm_seconds, status = reference(program, args.ipm_limit)
                print(f"{net} image {image} eps {eps}: CROWN {crown:.5f}, sdp-ipm {optimum:.5f} "
                      f"({ipm_seconds:.1f} s, {status})", flush=True)
                for name in args.methods:
                    rows.append(_one(program, net, image, eps, target, crown, optimum,
                                     ipm_seconds, name, seconds, traces))
    return rows, traces


def _one(program, net, image, eps, target, crown, optimum, ipm_seconds, name, seconds,
         traces) -> dict:
    start = time.perf_counter()
    solution = solve(program, seconds, **METHODS[name])
    wall = time.perf_counter() - start
    state = solution.warm_start
    traces[(net, image, eps, name)] = (
        [0.0] + list(state.check_seconds) + [solution.stats.seconds],
        [crown] + [b for _, b in state.checks] + [solution.bound], crown, optimum)
    scale = max(1.0, abs(optimum))
    row = {"net": net, "image": image, "eps": eps, "target": target, "method": name,
           "crown": crown, "sdp_ipm": optimum, "ipm_s": round(ipm_seconds, 1),
           "seconds": seconds, "bound": solution.bound, "wall_s": round(wall, 1),
           "rel_gap": (optimum - solution.bound) / scale,
           "closed": (solution.bound - crown) / (optimum - crown) if optimum > crown else math.nan,
           "iterations": solution.stats.iterations}
    row.update({f"bound_{t}s": best_by(solution, t) for t in CHECKPOINTS if t <= seconds})
    print(row, flush=True)
    return row


def warm_starts(eps: float, seconds: float):
    """Part 2: ``(what, cold bound, warm bound)`` lines on the embedded net, image 0."""
    program, crown, _ = instance(eps)
    lines = [("start, init=" + init, solve(program, 1.0, max_iterations=0, init=init).bound,
              float("nan")) for init in ("zeros", "interval", "crown", "linear", "lp")]
    first = solve(program, seconds)
    other, *_ = instance(eps, rank=1)
    lines.append((f"2nd hardest class after hardest ({seconds:.0f} s)",
                  solve(other, seconds).bound, solve(other, seconds, first.warm_start).bound))
    near, *_ = instance(eps + 0.005)
    lines.append((f"eps {eps + 0.005:g} after eps {eps:g} ({seconds:.0f} s)",
                  solve(near, seconds).bound, solve(near, seconds, first.warm_start).bound))
    return crown, lines


def plot(traces, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k[:3] for k in traces}, key=str)
    cols = min(4, len(keys))
    rows_n = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.4 * rows_n), squeeze=False)
    for ax, key in zip(axes.ravel(), keys):
        for (net, image, eps, name), (t, b, crown, optimum) in traces.items():
            if (net, image, eps) != key:
                continue
            lines = crown, optimum
            order = np.argsort(t)
            ax.step(np.asarray(t)[order], np.maximum.accumulate(np.asarray(b)[order]),
                    where="post", label=f"fo-sdp {name}")
        crown, optimum = lines
        ax.axhline(crown, linestyle="--", linewidth=0.8, color="gray", label="CROWN")
        ax.axhline(optimum, linestyle="--", linewidth=0.8, color="black", label="sdp-ipm")
        ax.set_ylim(crown - 0.1 * (optimum - crown + 0.1), optimum + 0.1 * (optimum - crown + 0.1))
        ax.set(title=f"{key[0]} img {key[1]} eps {key[2]}", xlabel="seconds",
               ylabel="certified bound")
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(keys):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def read_traces(stem: str) -> dict:
    """The traces of an earlier run, from its ``.csv`` and ``_traces.csv``."""
    with open(RESULTS / f"{stem}.csv") as f:
        marks = {(r["net"], int(r["image"]), float(r["eps"]), r["method"]):
                 (float(r["crown"]), float(r["sdp_ipm"])) for r in csv.DictReader(f)}
    traces: dict = {}
    with open(RESULTS / f"{stem}_traces.csv") as f:
        for r in csv.DictReader(f):
            key = (r["net"], int(r["image"]), float(r["eps"]), r["method"])
            t, b = traces.setdefault(key, ([], [], *marks[key]))[:2]
            t.append(float(r["seconds"]))
            b.append(float(r["certified_bound"]))
    return traces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=["pgd", "normal", "deep"], choices=NETS)
    parser.add_argument("--images", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--methods", nargs="+", default=["bm"], choices=METHODS)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seconds-deep", type=float, default=120.0)
    parser.add_argument("--ipm-limit", type=float, default=300.0)
    parser.add_argument("--warm-seconds", type=float, default=10.0)
    parser.add_argument("--no-warm", action="store_true", help="skip part 2")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the plot of --tag from its CSV files")
    args = parser.parse_args()
    if args.replot:
        plot(read_traces("fo_sdp" + args.tag), RESULTS / f"fo_sdp{args.tag}.png")
        return
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    rows, traces = curves(args)
    RESULTS.mkdir(exist_ok=True)
    stem = "fo_sdp" + args.tag
    plot(traces, RESULTS / f"{stem}.png")
    with open(RESULTS / f"{stem}_traces.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["net", "image", "eps", "method", "seconds", "certified_bound"])
        for (net, image, eps, name), (times, values, _, _) in traces.items():
            writer.writerows([net, image, eps, name, t, b] for t, b in zip(times, values))
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(RESULTS / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    warm = None if args.no_warm else warm_starts(args.eps[0], args.warm_seconds)
    write_markdown(args, rows, warm, stem, time.perf_counter() - started)


def write_markdown(args, rows, warm, stem: str, total: float) -> None:
    checkpoints = [t for t in CHECKPOINTS if any(f"bound_{t}s" in r for r in rows)]
    cell = lambda r, t: f"{r[f'bound_{t}s']:.4f}" if f"bound_{t}s" in r else ""
    lines = ["# fo-sdp against the interior-point optimum (hardest target class)", "",
             f"Machine: {describe_machine()} (shared with other jobs: timings are noisy, "
             "2-4x).", "", "Command: `python benchmarks/fo_sdp.py " + " ".join(sys.argv[1:])
             + f"` ({total / 60:.0f} min)", "",
             "`sdp-ipm`: the interior-point optimum (certified bound, cuts on) run here as the "
             "reference; fo-sdp columns: its best certified float64 bound by then; `rel gap`: "
             "(optimum - fo-sdp) / max(1, |optimum|) at the end (target 1e-3); `closed`: share "
             "of the CROWN-optimum gap.  A column's value is the best *check* taken by then "
             "(the BM stage's early checks can lie below CROWN, and nan: none yet); the "
             "reported bound also counts the start, so it is never below CROWN.", "",
             "| net | image | eps | method | CROWN | sdp-ipm (s) | "
             + " | ".join(f"{t} s" for t in checkpoints) + " | rel gap | closed | iterations |",
             "|" + "---|" * (9 + len(checkpoints))]
    for r in rows:
        lines.append(f"| {NETS[r['net']]} | {r['image']} | {r['eps']} | {r['method']} | "
                     f"{r['crown']:.4f} | {r['sdp_ipm']:.4f} ({r['ipm_s']:.0f}) | "
                     + " | ".join(cell(r, t) for t in checkpoints)
                     + f" | {r['rel_gap']:.2e} | {r['closed']:.0%} | {r['iterations']} |")
    lines += ["", f"![bound against time]({stem}.png)"]
    if warm is not None:
        crown, items = warm
        lines += ["", f"## Warm starts (embedded net, image 0, eps {args.eps[0]}; CROWN "
                  f"{crown:.4f})", "", "| what | cold | warm |", "|---|---|---|"]
        lines += [f"| {what} | {cold:.5f} | {'' if np.isnan(w) else f'{w:.5f}'} |"
                  for what, cold, w in items]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
