r"""How much tighter is the SDP with stably active neurons lifted (``z = a``)?

    python benchmarks/sdp_lift_gap.py [--nets normal pgd] [--images 0 1 2 3 4]
        [--eps 0.02 0.05] [--limit 300] [--tag ""]

Issue #13: fo-sdp's relaxation was the full SDP with cuts (a stably active neuron,
``l >= 0``, keeps its own coordinate with ``a >= z`` and ``z >= a``), while sdp-ipm's
default substitutes ``z = a``, which adds the lifted constraint ``(a - z) p = 0`` (see
``solvers/backends/sdp_ipm/reduced.py`` and ``solvers/backends/fo_sdp/lift.py``).  Per
MNIST instance (hardest target class by CROWN) this solves both with sdp-ipm (certified
bounds): ``IpmOptions(eliminate=True)`` (the default, the reference of
``benchmarks/fo_sdp.py``) and ``IpmOptions(eliminate=False, active_cut=True)`` (exactly
the full SDP with cuts), and reports the difference relative to ``max(1, |reduced|)``.
Writes ``benchmarks/results/sdp_lift_gap{tag}.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from fo_sdp import NETS, instance  # noqa: E402
from machine import describe_machine  # noqa: E402


def _solve(program, limit: float, **ipm) -> tuple[float, float, str]:
    from solvers import SolveOptions, get_solver
    from solvers.backends.sdp_ipm.backend import IpmOptions

    options = SolveOptions(time_limit=limit, extra=(("cuts", True), ("ipm", IpmOptions(**ipm))))
    start = time.perf_counter()
    solution = get_solver("sdp-ipm").solve(program, options)
    return float(solution.bound), time.perf_counter() - start, solution.status.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["normal", "pgd"], choices=NETS)
    parser.add_argument("--images", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--limit", type=float, default=300.0)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    started, rows = time.perf_counter(), []
    for net in args.nets:
        for image in args.images:
            for eps in args.eps:
                program, crown, target = instance(eps, net=net, image=image)
                reduced = _solve(program, args.limit)
                full = _solve(program, args.limit, eliminate=False, active_cut=True,
                              max_iterations=300)
                row = {"net": NETS[net], "image": image, "eps": eps, "target": target,
                       "crown": crown, "reduced": reduced[0], "reduced_s": reduced[1],
                       "reduced_status": reduced[2], "full": full[0], "full_s": full[1],
                       "full_status": full[2],
                       "rel_diff": (reduced[0] - full[0]) / max(1.0, abs(reduced[0]))}
                rows.append(row)
                print(row, flush=True)
    _write(rows, args, time.perf_counter() - started)


def _write(rows, args, seconds: float) -> None:
    out = HERE / "results" / f"sdp_lift_gap{args.tag}"
    with open(out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = "python benchmarks/sdp_lift_gap.py " + " ".join(sys.argv[1:])
    lines = ["# The SDP with stably active neurons lifted against the full SDP (cuts on)", "",
             f"Machine: {describe_machine()}. Command: `{command}` ({seconds / 60:.0f} min).",
             "", "Both certified by sdp-ipm: `reduced` substitutes `z = a` (its default, the "
             "reference of `benchmarks/fo_sdp.py`, and fo-sdp's relaxation with `eliminate`); "
             "`full` keeps the neuron's coordinate (`eliminate=False, active_cut=True`: "
             "fo-sdp's relaxation before `eliminate`).  `rel diff` = (reduced - full) / "
             "max(1, |reduced|).", "",
             "| net | image | eps | CROWN | full (s) | reduced (s) | rel diff |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['image']} | {r['eps']} | {r['crown']:.4f} | "
                     f"{r['full']:.5f} ({r['full_s']:.0f}, {r['full_status']}) | "
                     f"{r['reduced']:.5f} ({r['reduced_s']:.0f}, {r['reduced_status']}) | "
                     f"{r['rel_diff']:.2e} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
