"""The exact margins beside the SDP optimum: how much of CROWN's gap the SDP closes.

    python benchmarks/sdp_exact.py [--nets "784-100-100-10"] [--eps 0.02] [--limit 240]

Reads ``benchmarks/results/sdp_ipm.csv`` (written by ``benchmarks/sdp.py --ipm``) and, for
each of its MNIST rows selected by ``--nets`` / ``--eps``, solves the big-M MILP of the
same hardest target class over the same CROWN bounds (``relax.search.milp.milp_margin``,
HiGHS, ``--limit`` seconds; a value resting on the MILP solver's tolerances, used for this
comparison only).  ``closed`` is ``(sdp - crown) / (exact - crown)``.  Writes
``benchmarks/results/sdp_exact.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from machine import describe_machine  # noqa: E402

RESULTS = HERE / "results"


def exact_row(row: dict, limit: float) -> dict:
    """The MILP's exact margin of one ``sdp_ipm.csv`` row (nan when not solved in time)."""
    import sdp as table
    from relax.search.milp import milp_margin
    from relax.spec import Spec

    network, spec = table.ipm_problem(row["net"], float(row["eps"]), int(row["image"]))
    crown, j, _, _ = table.hardest_row(network, spec)
    assert j == int(row["target"]), "the hardest target changed since sdp_ipm.csv was written"
    one = Spec(spec.lower, spec.upper, (spec.disjuncts[j],))
    started = time.perf_counter()
    value = milp_margin(network, one, crown.layers, time_limit=limit)
    seconds = time.perf_counter() - started
    exact = math.nan if value is None else float(value)
    crown_value, sdp_value = float(row["crown"]), float(row["sdp"])
    closed = (sdp_value - crown_value) / (exact - crown_value) if exact > crown_value else math.nan
    return dict(net=row["net"], eps=row["eps"], image=row["image"], target=j,
                crown=crown_value, lp=float(row["lp"]), sdp=sdp_value, exact=exact,
                milp_seconds=seconds, closed=closed)


def write(rows: list[dict], command: str) -> Path:
    with open(RESULTS / "sdp_exact.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    f = lambda v, d=4: "-" if not math.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
    lines = ["# The SDP optimum against the exact margin", "",
             f"Machine: {describe_machine()}", "", f"Command: `{command}`", "",
             "Hardest target class; CROWN, LP and `sdp-ipm` (certified) from "
             "`sdp_ipm.csv`; exact: the big-M MILP over the same CROWN bounds (HiGHS); "
             "`closed`: the share of CROWN's gap to the exact margin the SDP closes.", "",
             "| net | eps | img | CROWN | LP | sdp-ipm | exact | closed | MILP s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        closed = "-" if not math.isfinite(r["closed"]) else f"{100 * r['closed']:.1f}%"
        lines.append(f"| {r['net']} | {r['eps']} | {r['image']} | {f(r['crown'])} | "
                     f"{f(r['lp'])} | {f(r['sdp'], 6)} | {f(r['exact'], 6)} | {closed} | "
                     f"{f(r['milp_seconds'], 1)} |")
    path = RESULTS / "sdp_exact.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="784-100-100-10")
    p.add_argument("--eps", default="0.02")
    p.add_argument("--limit", type=float, default=240.0, help="MILP seconds per row")
    args = p.parse_args()
    command = "python benchmarks/sdp_exact.py " + " ".join(
        f'"{a}"' if " " in a else a for a in sys.argv[1:])
    eps = {float(e) for e in args.eps.split(",")}
    with open(RESULTS / "sdp_ipm.csv") as handle:
        wanted = [r for r in csv.DictReader(handle)
                  if any(n.strip() in r["net"] for n in args.nets.split(","))
                  and float(r["eps"]) in eps]
    rows = []
    for row in wanted:
        rows.append(exact_row(row, args.limit))
        print(rows[-1], flush=True)
    print(f"wrote {write(rows, command)}")


if __name__ == "__main__":
    main()
