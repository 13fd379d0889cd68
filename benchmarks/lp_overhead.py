"""How much our LP path costs on top of HiGHS itself, and how it compares with cvxpy.

    python benchmarks/lp_overhead.py [--repeats 3] [--quick]

For every property (mnistfc ``mnist-net_256x2`` at eps 0.03 and the embedded
784-100-100-10 net at eps 0.05) the LP is the triangle LP of the property's
*first* disjunct over CROWN intermediate bounds.  CROWN runs once, outside the
clocks; then, repeatedly and interleaved (ours, cvxpy, ours, cvxpy, ...):

(a) ``ours``: ``encode_triangle`` + ``disjunct_objective`` + ``HighsBackend().solve``
    (model pass, run, safe dual bound), wall time;
(b) ``highs``: HiGHS's own ``Highs.run()`` time of that solve
    (``Solution.stats.solver_seconds``);
(c) ``cvxpy``: the same encoding + the ``cvxpy-highs`` backend (cvxpy's model
    building and canonicalisation, HiGHS, the safe dual bound), wall time.

Medians over the repeats.  Reported: overhead = (a)/(b) (target <= 2) and cvxpy
speedup = (c)/(a) (target >= 10), per property and as medians over properties,
and whether the two safe bounds agree within 1e-6.  One untimed warm-up round
runs first (imports, first-call costs).

Writes ``benchmarks/results/lp_overhead.md`` and ``.csv``; data is read from
``$RELAX_DATA`` or ``../shared/data``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout, even when run from elsewhere
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402


import relax  # noqa: E402
from relax.data import default_images, default_network_path  # noqa: E402
from relax.lp.method import intermediate_bounds  # noqa: E402
from relax.lp.encode import encode_triangle  # noqa: E402
from relax.lp.objectives import disjunct_objective  # noqa: E402
from solvers.backends.cvxpy_backend import CvxpyHighs  # noqa: E402
from solvers.backends.highs import HighsBackend  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
AGREEMENT = 1e-6


@dataclass
class Case:
    name: str
    network: object
    spec: object
    bounds: object = None


def data_dir() -> Path:
    return Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))


def load_cases(n_mnistfc: int, n_embedded: int) -> list[Case]:
    cases = []
    mnistfc = data_dir() / "vnncomp2021" / "mnistfc"
    net = relax.from_onnx(mnistfc / "mnist-net_256x2.onnx")
    for i in range(n_mnistfc):
        spec = relax.read_vnnlib(mnistfc / f"prop_{i}_0.03.vnnlib")[0]
        cases.append(Case(f"256x2 prop_{i} eps=0.03", net, spec))
    embedded = relax.from_onnx(default_network_path())
    images, labels = default_images()
    for i in range(n_embedded):
        spec = relax.robustness(images[i], int(labels[i]), 0.05)
        cases.append(Case(f"embedded img{i} eps=0.05", embedded, spec))
    for case in cases:
        case.bounds = intermediate_bounds(case.network, case.spec, "crown", "highs")
    return cases


def encode(case: Case):
    encoding = encode_triangle(case.network, case.spec.lower, case.spec.upper, case.bounds)
    objective = disjunct_objective(encoding, case.spec.disjuncts[0])
    return objective.program.with_objective(objective.c, objective.c0)


def run_ours(case: Case) -> dict:
    start = time.perf_counter()
    program = encode(case)
    built = time.perf_counter()
    solution = HighsBackend().solve(program)
    end = time.perf_counter()
    return {"build": built - start, "total": end - start, "highs": solution.stats.solver_seconds,
            "bound": solution.bound, "objective": solution.objective,
            "status": solution.status.value, "size": (program.num_variables, program.num_rows)}


def run_cvxpy(case: Case) -> dict:
    start = time.perf_counter()
    program = encode(case)
    built = time.perf_counter()
    solution = CvxpyHighs().solve(program)
    end = time.perf_counter()
    return {"build": built - start, "total": end - start, "solve": end - built,
            "solver": solution.stats.solver_seconds, "bound": solution.bound, "objective": solution.objective,
            "status": solution.status.value}


def measure(cases: list[Case], repeats: int) -> list[dict]:
    for case in cases[:1] + cases[-1:]:  # warm-up, untimed
        run_ours(case)
        run_cvxpy(case)
    samples = {case.name: {"ours": [], "cvxpy": []} for case in cases}
    for r in range(repeats):
        for case in cases:
            samples[case.name]["ours"].append(run_ours(case))
            samples[case.name]["cvxpy"].append(run_cvxpy(case))
        print(f"round {r + 1}/{repeats} done", flush=True)
    rows = []
    for case in cases:
        ours, cvx = samples[case.name]["ours"], samples[case.name]["cvxpy"]
        med = lambda runs, key: statistics.median(run[key] for run in runs)  # noqa: E731
        a, b, c = med(ours, "total"), med(ours, "highs"), med(cvx, "total")
        c_solver = (med(cvx, "solver") if all(run["solver"] is not None for run in cvx)
                    else None)
        bounds_ours = [run["bound"] for run in ours]
        bounds_cvx = [run["bound"] for run in cvx]
        diff = max(abs(x - y) for x in bounds_ours for y in bounds_cvx)
        rows.append({
            "property": case.name,
            "variables": ours[0]["size"][0], "rows": ours[0]["size"][1],
            "build_ms": 1e3 * med(ours, "build"),
            "ours_ms": 1e3 * a, "highs_run_ms": 1e3 * b,
            "cvxpy_solve_ms": 1e3 * med(cvx, "solve"), "cvxpy_ms": 1e3 * c,
            "cvxpy_highs_ms": 1e3 * c_solver if c_solver is not None else float("nan"),
            "overhead": a / b, "cvxpy_speedup": c / a,
            "outside_solver_ratio": ((c - c_solver) / (a - b)) if c_solver is not None else float("nan"),
            "bound_highs": bounds_ours[0], "bound_cvxpy": bounds_cvx[0],
            "bound_diff": diff, "agree": diff <= AGREEMENT,
            "status": f"{ours[0]['status']}/{cvx[0]['status']}",
        })
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def markdown(rows: list[dict], repeats: int) -> str:
    overhead = statistics.median(r["overhead"] for r in rows)
    speedup = statistics.median(r["cvxpy_speedup"] for r in rows)
    max_diff = max(r["bound_diff"] for r in rows)
    outside = statistics.median(r["outside_solver_ratio"] for r in rows)
    agree = all(r["agree"] for r in rows)
    lines = [
        "# LP overhead: our HiGHS path vs HiGHS itself vs cvxpy",
        "",
        f"Machine: {describe_machine()}",
        "",
        "Command: `" + " ".join(["python benchmarks/lp_overhead.py"] + sys.argv[1:]) + "`",
        "",
        "One LP per property: the triangle LP of its first disjunct over CROWN intermediate "
        f"bounds. Median of {repeats} interleaved runs (after one untimed warm-up round). "
        "(a) ours = encode_triangle + disjunct_objective + HighsBackend.solve (wall); "
        "(b) HiGHS = Highs.run() inside that solve; (c) cvxpy = same encoding + cvxpy-highs "
        "backend (wall, canonicalisation included). The outside-solver ratio compares the time "
        "each path spends outside HiGHS's own run.",
        "",
        "| property | vars | rows | build ms | (a) ours ms | (b) HiGHS run ms | (c) cvxpy ms "
        "| HiGHS in cvxpy ms | (a)/(b) | (c)/(a) | outside-solver ratio | bound (highs) "
        "| bound (cvxpy) | abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['property']} | {r['variables']} | {r['rows']} | {r['build_ms']:.1f} | "
            f"{r['ours_ms']:.1f} | {r['highs_run_ms']:.1f} | {r['cvxpy_ms']:.1f} | "
            f"{r['cvxpy_highs_ms']:.1f} | {r['overhead']:.2f} | {r['cvxpy_speedup']:.2f} | "
            f"{r['outside_solver_ratio']:.1f} | {r['bound_highs']:.9g} | {r['bound_cvxpy']:.9g} | {r['bound_diff']:.1e} |")
    lines += [
        "",
        f"**Median overhead (a)/(b): {overhead:.2f}** (target <= 2: "
        f"{'met' if overhead <= 2 else 'NOT met'}).",
        "",
        f"**Median cvxpy speedup (c)/(a): {speedup:.2f}** (target >= 10: "
        f"{'met' if speedup >= 10 else 'NOT met'}).",
        "",
        f"Time outside the solver, cvxpy vs ours: median {outside:.1f}x "
        "((c) - HiGHS-in-cvxpy) / ((a) - (b)); HiGHS-in-cvxpy is cvxpy's reported solver time.",
        "",
        f"Bounds agree within {AGREEMENT:g}: {'yes' if agree else 'NO'} "
        f"(max abs difference {max_diff:.2e}).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 + 2 properties instead of 5 + 5")
    parser.add_argument("--tag", default="", help="suffix for the output files")
    args = parser.parse_args()
    n = 2 if args.quick else 5
    cases = load_cases(n, n)
    rows = measure(cases, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"lp_overhead{args.tag}"
    write_csv(RESULTS / f"{stem}.csv", rows)
    table = markdown(rows, args.repeats)
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)
    if not all(r["agree"] for r in rows):
        print("WARNING: HiGHS and cvxpy bounds differ by more than "
              f"{AGREEMENT:g} on some property", file=sys.stderr)


if __name__ == "__main__":
    main()
