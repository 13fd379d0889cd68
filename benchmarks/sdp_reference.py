"""sdp-ipm against external interior-point solvers on the same multiplier form.

    python benchmarks/sdp_reference.py [--instances "784-100-100-10 PGD (embedded)":0.02:1 ...]
        [--dsdp-limit 3600] [--sdpa-iterations 80] [--tag NAME]

For each instance (network of ``benchmarks/sdp.py``'s ``--ipm`` table, eps, image; the
hardest target class by CROWN) one child process builds the SDP with the triangle cuts and
stably active neurons substituted (``build(program, cuts=True, eliminate=True)``, exactly
what ``sdp-ipm`` solves), solves it with ``sdp-ipm`` (certified bound, its dual objective,
CPU seconds, iterations), then writes it in SDPA sparse format and runs DSDP 5.8
(``dsdp5``, Debian package ``dsdp``) and SDPA 7 (PyPI ``sdpa-python``) on the file.  The
external values are references, not bounds; ``rel`` is ``|ref - sdp-ipm dual| /
max(1, |sdp-ipm dual|)``.  A solver that is not installed is skipped with the reason.
Each child uses ``--threads`` torch threads (default 1); CPU seconds are the child
processes' own (DSDP) or the process's (sdp-ipm, SDPA).  Writes
``benchmarks/results/sdp_reference{tag}.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from machine import describe_machine  # noqa: E402

RESULTS = HERE / "results"
DEFAULT = ("784-100-100-10 PGD (embedded):0.02:1", "784-100-100-10 normal:0.02:1")


def _cpu_children() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _references(sdp, dsdp_limit: float, sdpa_iterations: int) -> dict:
    """DSDP and SDPA on ``sdp``'s SDPA file: values, seconds, status."""
    from solvers.backends.sdp_ipm.sdpa import dsdp_available, run_dsdp, run_sdpa, sdpa_available

    row: dict = {}
    ok, why = dsdp_available()
    if ok and dsdp_limit > 0:
        with tempfile.TemporaryDirectory() as tmp:
            cpu = _cpu_children()
            try:
                result = run_dsdp(sdp, Path(tmp), dsdp_limit)
                row.update(dsdp=result.value, dsdp_seconds=result.seconds,
                           dsdp_iterations=result.iterations,
                           dsdp_status="converged" if result.converged else "not converged")
            except Exception as exc:  # noqa: BLE001  (a timeout: the row says so)
                row.update(dsdp=math.nan, dsdp_seconds=dsdp_limit, dsdp_status=type(exc).__name__)
            row["dsdp_cpu"] = _cpu_children() - cpu
    else:
        row.update(dsdp=math.nan, dsdp_status=why or "skipped")
    ok, why = sdpa_available()
    if ok and sdpa_iterations > 0:
        with tempfile.TemporaryDirectory() as tmp:
            cpu = time.process_time()
            result = run_sdpa(sdp, Path(tmp), sdpa_iterations)
            row.update(sdpa=0.5 * (result.primal + result.dual),
                       sdpa_gap=abs(result.primal - result.dual), sdpa_seconds=result.seconds,
                       sdpa_cpu=time.process_time() - cpu, sdpa_iterations=result.iterations,
                       sdpa_status=result.phase)
    else:
        row.update(sdpa=math.nan, sdpa_status=why or "skipped")
    return row


def _child(queue, net: str, eps: float, image: int, dsdp_limit: float, sdpa_iterations: int,
           threads: int = 1):
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(threads)
    import sdp as table
    from relax.sdp.encode import layered_program
    from solvers import SolveOptions, get_solver
    from solvers.backends.sdp_ipm.problem import build

    network, spec = table.ipm_problem(net, eps, image)
    crown, j, row, offset = table.hardest_row(network, spec)
    program = layered_program(network, spec.lower, spec.upper, crown.layers, row, offset)
    wall, cpu = time.perf_counter(), time.process_time()
    solution = get_solver("sdp-ipm").solve(program, SolveOptions(time_limit=600,
                                                                 extra=(("cuts", True),)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sdp = build(program, cuts=True, eliminate=True)
    out = dict(net=net, eps=eps, image=image, target=j, side=sdp.side, m=sdp.m_neurons,
               crown=float(crown.disjunct_bounds[j]), ipm=float(solution.bound),
               ipm_dual=float(solution.dual_objective), ipm_seconds=wall, ipm_cpu=cpu,
               ipm_iterations=solution.stats.iterations, ipm_status=solution.status.value)
    out.update(_references(sdp, dsdp_limit, sdpa_iterations))
    queue.put(out)


def _run(instance: str, dsdp_limit: float, sdpa_iterations: int, threads: int = 1) -> dict:
    net, eps, image = instance.rsplit(":", 2)
    queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(
        target=_child, args=(queue, net, float(eps), int(image), dsdp_limit, sdpa_iterations,
                             threads))
    proc.start()
    row = queue.get(timeout=dsdp_limit + 3600)
    proc.join()
    return row


def _rel(value: float, reference: float) -> float:
    return abs(value - reference) / max(1.0, abs(reference))


def write(rows: list[dict], tag: str, command: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    keys = sorted({k for r in rows for k in r})
    with open(RESULTS / f"sdp_reference{tag}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    f = lambda v, d=6: "-" if not isinstance(v, float) or not math.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
    e = lambda v: "-" if not isinstance(v, float) or not math.isfinite(v) else f"{v:.1e}"  # noqa: E731
    lines = [
        "# sdp-ipm against DSDP and SDPA on the same multiplier form", "",
        f"Machine: {describe_machine()}", "", f"Command: `{command}`", "",
        "Hardest target class; the SDP with the triangle cuts and stably active neurons "
        "substituted (what `sdp-ipm` solves). `sdp-ipm`: certified bound (float64 check) and "
        "the solver's dual objective; DSDP / SDPA: their objectives on the SDPA file (references, "
        "not bounds; SDPA: the mean of its primal and dual objectives); `rel`: distance to "
        "sdp-ipm's dual value relative to max(1, |value|). CPU seconds, one thread each.", "",
        "| net | eps | img | side | multipliers | CROWN | sdp-ipm bound | sdp-ipm dual | CPU s "
        "| iters | DSDP | rel | DSDP CPU s | DSDP status | SDPA | rel | SDPA CPU s | SDPA status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['net']} | {r['eps']} | {r['image']} | {r['side']} | {r['m']} | "
            f"{f(r['crown'], 4)} | {f(r['ipm'])} | {f(r['ipm_dual'])} | {f(r['ipm_cpu'], 1)} | "
            f"{r['ipm_iterations']} | {f(r.get('dsdp'))} | {e(_rel(r.get('dsdp', math.nan), r['ipm_dual']))} | "
            f"{f(r.get('dsdp_cpu'), 1)} | {r.get('dsdp_status', '-')} | {f(r.get('sdpa'))} | "
            f"{e(_rel(r.get('sdpa', math.nan), r['ipm_dual']))} | {f(r.get('sdpa_cpu'), 1)} | "
            f"{r.get('sdpa_status', '-')} |")
    path = RESULTS / f"sdp_reference{tag}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--instances", nargs="+", default=list(DEFAULT),
                   help="NET:EPS:IMAGE, NET as in benchmarks/sdp.py --ipm")
    p.add_argument("--dsdp-limit", type=float, default=3600.0, help="DSDP wall limit (s); 0 skips")
    p.add_argument("--sdpa-iterations", type=int, default=80, help="SDPA iteration cap; 0 skips")
    p.add_argument("--workers", type=int, default=1, help="instances solved at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each solve")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    command = "python benchmarks/sdp_reference.py " + " ".join(
        f'"{a}"' if " " in a else a for a in sys.argv[1:])
    if args.workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(args.workers) as pool:
            rows = list(pool.map(lambda i: _run(i, args.dsdp_limit, args.sdpa_iterations),
                                 args.instances))
    else:
        rows = [_run(i, args.dsdp_limit, args.sdpa_iterations, args.threads)
                for i in args.instances]
    for r in rows:
        print(r, flush=True)
    print(f"wrote {write(rows, args.tag, command)}")


if __name__ == "__main__":
    main()
