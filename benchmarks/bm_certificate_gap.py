"""Where fo-sdp's Burer-Monteiro stage loses its last 1e-3: the ALM's dual value against the certificate.

Per outer iteration of the ALM (fo-sdp's defaults: rank 16, penalty 40 per hidden
neuron, 300 inner L-BFGS steps, Nesterov momentum on the multipliers, stably active
neurons lifted) on one instance, inline (no background thread): the primal objective
``f`` of ``V V^T``, the augmented dual value ``g_mu`` at the point the inner problem was
solved at (``min_V L_mu``: an estimate, not a bound), and the certified float64 bound
of the updated multipliers after the repairs (Gershgorin shift, best corner), each as
a gap to the interior-point optimum relative to ``max(1, |optimum|)``.  Variants
(``--variants``): ``momentum`` (the default) and ``restart`` (the momentum restarted,
``t = 1`` from the plain multipliers, whenever the certified bound falls below the best
so far).  With ``--probe K`` every K-th iteration also solves the inner problem again
at the same multipliers with 1,500 steps and certifies that (a longer inner solve).

    python benchmarks/bm_certificate_gap.py --net normal --image 4 --eps 0.05 --outer 40
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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


def trace(program, optimum: float, variant: str, outer: int, probe: int) -> list[dict]:
    """One row per outer iteration (module docstring)."""
    from solvers.backends.fo_sdp import burer_monteiro as bm
    from solvers.backends.fo_sdp.batching import Batch
    from solvers.backends.fo_sdp.options import FoSdpOptions

    opts = FoSdpOptions(method="bm")
    batch = Batch([program], opts, 1e-7, [None])
    data, layout = batch.datas[0], batch.layouts[0]
    problem = bm.BmProblem.build(data, layout, opts.rank, batch.scale[0])
    state = bm.init_state(problem, batch.records[0].start, bm.centre_point(data), opts.seed,
                          bm.penalty(data, opts.bm_mu))
    gap = lambda v: (optimum - v) / max(1.0, abs(optimum))  # noqa: E731
    rows, best, spent = [], -np.inf, 0.0
    for _ in range(outer):
        started = time.perf_counter()
        state = bm.update(problem, state, opts.bm_inner, opts.bm_growth, momentum=True)
        spent += time.perf_counter() - started
        params = bm.to_params(problem, state)
        bound, _ = batch.improve(0, params, -np.inf)
        row = {"variant": variant, "outer": state.outer, "alm_seconds": round(spent, 2),
               "primal_gap": -gap(state.objective), "violation": state.violation,
               "g_mu_gap": gap(state.dual_value), "certified_gap": gap(bound),
               "momentum_t": state.momentum, "restart": False, "probe_gap": ""}
        if probe and state.outer % probe == 0:
            longer = bm.update(problem, state, 1500, opts.bm_growth, momentum=False)
            row["probe_gap"] = gap(batch.improve(0, bm.to_params(problem, longer), -np.inf)[0])
        if variant == "restart" and bound < best and state.updated is not None:
            state = dataclasses.replace(state, lams=state.updated[0], nu=state.updated[1],
                                        updated=None, momentum=1.0)
            row["restart"] = True
        best = max(best, bound)
        rows.append(row)
        print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()},
              flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        t = [r["alm_seconds"] for r in mine]
        ax.semilogy(t, [max(r["g_mu_gap"], 1e-7) for r in mine], "--", label=f"{variant}: g_mu")
        ax.semilogy(t, [max(r["certified_gap"], 1e-7) for r in mine], label=f"{variant}: certified")
    ax.axhline(1e-3, color="black", linewidth=0.8)
    ax.set_xlabel("ALM seconds (checks not counted)")
    ax.set_ylabel("gap to the sdp-ipm optimum (relative)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", default="normal", choices=["pgd", "normal", "deep"])
    parser.add_argument("--image", type=int, default=4)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--outer", type=int, default=40)
    parser.add_argument("--variants", nargs="+", default=["momentum", "restart"],
                        choices=["momentum", "restart"])
    parser.add_argument("--probe", type=int, default=0)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    import torch

    from fo_sdp import instance, reference

    torch.set_num_threads(1)
    program, crown, target = instance(args.eps, net=args.net, image=args.image)
    optimum, ipm_seconds, status = reference(program, 300.0)
    print(f"CROWN {crown:.6f}, sdp-ipm {optimum:.6f} ({ipm_seconds:.1f} s, {status})")
    rows = [r for v in args.variants for r in trace(program, optimum, v, args.outer, args.probe)]
    stem = RESULTS / f"bm_certificate_gap{args.tag}"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, stem.with_suffix(".png"))
    lines = [f"# The ALM's dual value against the certificate ({args.net}, image {args.image}, "
             f"eps {args.eps}, target {target})", "",
             f"Machine: {describe_machine()} (shared: times are noisy).", "",
             f"Command: `python benchmarks/bm_certificate_gap.py {' '.join(sys.argv[1:])}`", "",
             f"CROWN {crown:.6f}; sdp-ipm optimum {optimum:.6f}.  Gaps relative to "
             "max(1, |optimum|); `primal` is signed (negative: below the optimum, infeasible "
             "by `violation`); `g_mu` is the ALM's estimate, `certified` the float64 bound "
             "of that iteration's multipliers; `probe` the same after a 1,500-step inner "
             "solve.", "",
             "| variant | outer | ALM s | primal | violation | g_mu | certified | best certified | probe | restart |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    best = {}
    for r in rows:
        best[r["variant"]] = min(best.get(r["variant"], np.inf), r["certified_gap"])
        probe = f"{r['probe_gap']:.1e}" if r["probe_gap"] != "" else ""
        lines.append(f"| {r['variant']} | {r['outer']} | {r['alm_seconds']:.1f} | "
                     f"{r['primal_gap']:+.1e} | {r['violation']:.1e} | {r['g_mu_gap']:.1e} | "
                     f"{r['certified_gap']:.1e} | {best[r['variant']]:.1e} | {probe} | "
                     f"{'yes' if r['restart'] else ''} |")
    lines += ["", f"![gaps against time]({stem.name}.png)", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
