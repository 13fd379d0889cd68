"""k-ReLU benchmark: holds counts and times for LP, k-ReLU (k = 2, 3, 4) and exact,
plus a micro-benchmark of the hull computations (rows produced, milliseconds).

    # one method per run (runs can go in parallel), results in benchmarks/results/krelu_runs/
    python benchmarks/krelu.py run --benchmark eran --method krelu3 --timeout 60
    python benchmarks/krelu.py run --benchmark eran --method lp --timeout 60
    # merge every run of a benchmark into one table (ratios against LP)
    python benchmarks/krelu.py report --benchmark eran
    # hull micro-benchmark
    python benchmarks/krelu.py hulls

Methods: ``lp`` (triangle LP, LP-tightened bounds), ``kreluK`` (k-ReLU, group size K,
fast template hull), ``kreluK-exact`` (Qhull hull), ``kreluK-norefine`` (k-ReLU rows
only in the final LP), ``-gN`` (at most N groups per layer), ``-nsN`` (window N),
``-alpha`` (alpha-CROWN intermediate bounds, ``krelu_bounds=alpha``), ``-tN`` (with
``-alpha``: LP-tighten only the last N hidden layers; default all), ``-fbN`` (with
``-alpha``: N alpha-CROWN steps over the LP-tightened bounds after each layer,
``krelu_feedback``), ``-shNN`` (LP tightening gets NN % of the time, default 80),
``-babt`` / ``-bablp`` (alpha/beta-CROWN branch and bound from the LP-tightened bounds /
LP branch and bound with the rows, on the disjuncts left open), ``exact`` (the complete
method), ``crown``.  A ``kreluK`` name without ``-alpha`` runs with ``krelu_bounds=lp``
(LP-tightened bounds on every layer), so earlier rows keep their meaning.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.instances import read_instances, run_instance  # noqa: E402
from relax.krelu import KreluOptions  # noqa: E402
from relax.protocol import VerifyOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RUNS = RESULTS / "krelu_runs"


def method_options(name: str) -> tuple[str, VerifyOptions]:
    """``krelu3-exact`` -> ("krelu", options with ``KreluOptions(k=3, hull="exact")``)."""
    if not name.startswith("krelu"):
        return name, VerifyOptions()
    head, *flags = name.split("-")
    fields = {"k": int(head[5:] or 3), "bounds": "alpha" if "alpha" in flags else "lp",
              "feedback": 0}  # names without -fbN keep their earlier meaning
    for flag in flags:
        if flag != "alpha":
            fields.update(_flag_fields(flag))
    return "krelu", VerifyOptions(methods=(KreluOptions(**fields),))


def _flag_fields(flag: str) -> dict:
    """One ``-flag`` of a k-ReLU method name as :class:`KreluOptions` fields."""
    numbered = {"t": "lp_layers", "g": "max_groups", "ns": "ns", "fb": "feedback", "sh": "tighten_share"}
    for prefix, field in sorted(numbered.items(), key=lambda p: -len(p[0])):
        if flag.startswith(prefix) and flag[len(prefix):].isdigit():
            value = int(flag[len(prefix):])
            return {field: value / 100 if prefix == "sh" else value}
    named = {"exact": {"hull": "exact"}, "fast": {"hull": "fast"}, "auto": {"hull": "auto"},
             "norefine": {"refine": False}, "nofirst": {"first_layer": False},
             "babt": {"bab": "torch"}, "bablp": {"bab": "lp"}}
    if flag not in named:
        raise SystemExit(f"unknown k-ReLU flag {flag!r}")
    return named[flag]


def instances_for(benchmark: str, network: str | None, indices: str | None):
    data = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))
    instances = read_instances(data / "vnncomp2021" / benchmark / "instances.csv")
    if network:
        instances = [i for i in instances if network in i.network.name]
    if indices:
        instances = [instances[int(i)] for i in indices.split(",")]
    return instances


def run(args) -> None:
    torch.set_num_threads(1)
    if args.verbose:
        import logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    method, options = method_options(args.method)
    instances = instances_for(args.benchmark, args.network, args.indices)
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{args.benchmark}{args.network and '_' + args.network or ''}_{args.method}_{args.timeout:g}s.csv"
    names = {i.property.name for i in instances}
    kept = []  # rows of earlier runs of this method and limit on other instances are kept
    if path.exists():
        with path.open(newline="") as handle:
            kept = [r for r in csv.reader(handle)][1:]
        kept = [r for r in kept if r and r[1] not in names]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "property", "method", "time_limit", "verdict", "bound", "seconds", "reason"])
        writer.writerows(kept)
        for instance in instances:
            start = time.monotonic()
            result = run_instance(instance, method, options, args.timeout)
            seconds = time.monotonic() - start
            writer.writerow([instance.network.name, instance.property.name, args.method, args.timeout,
                             result.verdict, result.bound, f"{seconds:.2f}", result.reason])
            handle.flush()
            print(f"{args.method} {instance.property.name}: {result.verdict} bound={result.bound} "
                  f"{seconds:.1f}s {result.reason[:70]}", flush=True)
    print(f"wrote {path}")


def report(args) -> None:
    prefix = f"{args.benchmark}{args.network and '_' + args.network or ''}_"
    rows = []
    for path in sorted(RUNS.glob(prefix + "*.csv")):
        with path.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    by_method = defaultdict(list)
    for r in rows:
        by_method[(r["method"], r["time_limit"])].append(r)
    base = {r["property"]: r for (m, _), rs in by_method.items() if m == "lp" for r in rs}
    lines = [f"# k-ReLU on VNN-COMP 2021 {args.benchmark}{' ' + args.network if args.network else ''}",
             "", f"Machine: {describe_machine()}", "",
             "Commands: `python benchmarks/krelu.py run --benchmark "
             f"{args.benchmark} --method M --timeout T [--indices ...]`, then "
             f"`python benchmarks/krelu.py report --benchmark {args.benchmark}`.", "",
             "Time limits are per instance (the competition limit is 300 s; some runs use less, "
             "see the column). One torch thread per run; two runs shared the 2-core machine "
             "with other jobs, so times are pessimistic. `lp` is the baseline: the ratio columns "
             "compare holds and seconds on the same instances.", "",
             "k-ReLU configuration (defaults): windows of ns = 20 unstable neurons ranked by -l*u, "
             "overlap s = 1, fast template hull with sound right-hand sides, CROWN octahedra over "
             "LP-tightened bounds, rows used while LP-tightening every later layer (80 % of the "
             "time), then the final LP per disjunct (weakest first, stop at the first that stays "
             "<= 0). `lp` has no CROWN shortcut, so it spends ~25 s even on CROWN-easy instances. "
             "A run may overshoot its limit by about a second (the LP in flight finishes).", "",
             "`kreluK` rows without `-alpha` use `krelu_bounds=lp` (CROWN, then LP tightening of "
             "every layer). `kreluK-alpha` (`krelu_bounds=alpha`, the method's default since this "
             "change): CROWN, then alpha-CROWN (20 Adam steps, float64-sound, intermediate bounds "
             "recomputed under the slopes, at most 30 % of the time) for the open disjuncts; its "
             "layer bounds, intersected over the disjuncts and with CROWN's, start the same LP "
             "tightening (`-tN`: only the last N layers; default all) and its disjunct bounds join "
             "CROWN's. Every holds is a float64 (alpha-)CROWN bound or a safe LP dual bound.", "",
             "`-fbN` (`krelu_feedback=N`, the method's default with N = 5 since this change; rows "
             "without `-fbN` ran with it off): after each LP-tightened layer, N more alpha-CROWN Adam "
             "steps (warm slopes) *from* the tightened bounds, for the disjuncts still open; they "
             "tighten every later layer and the disjunct bounds, and stop the tightening once all "
             "disjuncts are proved. `-babt`: alpha/beta-CROWN branch and bound from the LP-tightened "
             "bounds on what the final LP leaves open (in the `-fb5-babt` rows every proof came before "
             "it; it ran only on the two unknowns).", "",
             "| method | limit s | instances | holds | violated | unknown | total s | "
             "lp holds (same instances) | lp total s (same) | time ratio vs lp |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    csv_rows = []
    for (method, limit), rs in sorted(by_method.items()):
        count = defaultdict(int)
        for r in rs:
            count[r["verdict"]] += 1
        total = sum(float(r["seconds"]) for r in rs)
        same = [base[r["property"]] for r in rs if r["property"] in base]
        lp_holds = sum(b["verdict"] == "holds" for b in same) if len(same) == len(rs) else None
        lp_total = sum(float(b["seconds"]) for b in same) if len(same) == len(rs) else None
        ratio = f"{total / lp_total:.2f}" if lp_total else "-"
        lines.append(f"| {method} | {limit} | {len(rs)} | {count['holds']} | {count['violated']} | "
                     f"{count['unknown']} | {total:.0f} | {'-' if lp_holds is None else lp_holds} | "
                     f"{'-' if lp_total is None else f'{lp_total:.0f}'} | {ratio} |")
        csv_rows.append([method, limit, len(rs), count["holds"], count["violated"], count["unknown"],
                         f"{total:.1f}", lp_holds, lp_total, ratio])
    lines += ["", "## Per instance: verdict (bound, seconds)", ""]
    methods = sorted(by_method)
    lines.append("| property | " + " | ".join(f"{m} ({t} s)" for m, t in methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    props = sorted({r["property"] for r in rows})
    index = {(r["method"], r["time_limit"], r["property"]): r for r in rows}
    for p in props:
        cells = []
        for m, t in methods:
            r = index.get((m, t, p))
            cells.append("" if r is None else
                         f"{r['verdict']} ({float(r['bound'] or 'nan'):.3g}, {float(r['seconds']):.0f})")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    stem = RESULTS / f"krelu_{prefix.rstrip('_')}"
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    with stem.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "time_limit", "instances", "holds", "violated", "unknown",
                         "total_seconds", "lp_holds_same", "lp_seconds_same", "time_ratio_vs_lp"])
        writer.writerows(csv_rows)
    print("\n".join(lines))


def hulls(args) -> None:
    """Rows and milliseconds of the exact and fast hulls on random octahedra."""
    from relax.krelu import directions, exact_hull, fast_hull, graph_points

    rng = np.random.default_rng(0)
    lines = ["# k-ReLU hulls: rows kept (not implied by the triangles) and time per group", "",
             f"Machine: {describe_machine()}", "",
             "Command: `python benchmarks/krelu.py hulls`. Random bounds, octahedron = octahedral "
             "hull of 30 random points; means over the trials. Baseline: the fast template hull.", "",
             "| k | trials | graph points | exact rows | exact ms | fast rows | fast ms | exact/fast time |",
             "|---|---|---|---|---|---|---|---|"]
    out = []
    for k, trials in ((2, 20), (3, 20), (4, 3)):
        stats = defaultdict(list)
        for _ in range(trials):
            lo, up = -rng.uniform(0.3, 2, k), rng.uniform(0.3, 2, k)
            C = directions(k)
            d = (rng.uniform(lo, up, (30, k)) @ C.T).min(axis=0)
            t = time.perf_counter()
            points = graph_points(-C, -d)
            stats["points"].append(len(points))
            base = time.perf_counter() - t
            for name, hull in (("exact", exact_hull), ("fast", fast_hull)):
                t = time.perf_counter()
                rows = hull(-C, -d, lo, up, points)
                stats[name + "_ms"].append(1e3 * (time.perf_counter() - t + base))
                stats[name + "_rows"].append(rows.count)
        m = {key: float(np.mean(v)) for key, v in stats.items()}
        lines.append(f"| {k} | {trials} | {m['points']:.0f} | {m['exact_rows']:.0f} | {m['exact_ms']:.1f} | "
                     f"{m['fast_rows']:.0f} | {m['fast_ms']:.1f} | {m['exact_ms'] / m['fast_ms']:.1f} |")
        out.append([k, trials, m["points"], m["exact_rows"], m["exact_ms"], m["fast_rows"], m["fast_ms"]])
    lines += ["", "For k = 4 the 8-dimensional Qhull hull usually fails (precision) after seconds and the "
              "exact method falls back to the template rows; use the fast hull for k >= 4."]
    (RESULTS / "krelu_hulls.md").write_text("\n".join(lines) + "\n")
    with (RESULTS / "krelu_hulls.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["k", "trials", "points", "exact_rows", "exact_ms", "fast_rows", "fast_ms"])
        writer.writerows(out)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--benchmark", default="eran", choices=["eran", "mnistfc"])
        p.add_argument("--network", default=None, help="only instances whose network contains this")
        if name == "run":
            p.add_argument("--method", default="krelu3")
            p.add_argument("--timeout", type=float, default=60.0)
            p.add_argument("--indices", default=None, help="comma-separated instance indices")
            p.add_argument("--verbose", action="store_true", help="log the library's INFO messages")
    sub.add_parser("hulls")
    args = parser.parse_args()
    {"run": run, "report": report, "hulls": hulls}[args.command](args)


if __name__ == "__main__":
    main()
