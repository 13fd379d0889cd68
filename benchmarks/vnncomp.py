"""Run the VNN-COMP 2021 instance lists with their time limits; write verdicts and a summary.

    python benchmarks/vnncomp.py --benchmark mnistfc --network mnist-net_256x2 --method exact

Writes ``benchmarks/results/vnncomp_<benchmark>_<method>.csv`` (one row per
instance) and ``.md`` (per network: holds, violated, unknown, time), with the
machine in the header.  Data is read from ``$RELAX_DATA`` or ``../shared/data``.
Per network the .md also lists relax's counts beside the VNN-COMP 2021 tools'
(``benchmarks/data/vnncomp2021_counts.csv``, see :mod:`vnncomp2021`), counts relax's
verdicts that contradict the 2021 tools', and draws the cactus plot (instances solved
within each time, relax and every 2021 tool) into ``..._cactus.png``.

``--compare earlier.csv`` adds solved counts against an earlier run (with the ratio)
and lists every holds/violated disagreement; ``--report-only`` rebuilds the .md
from the existing .csv without running anything.  ``--pipeline lp`` selects the
LP-based exact path instead of the torch alpha/beta-CROWN branch and bound.

    python benchmarks/vnncomp.py --network 256x4 --timeout 100 --tag _100s \
        --compare benchmarks/results/vnncomp_mnistfc_256x4_exact_60s.csv
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.instances import read_instances  # noqa: E402
from relax.protocol import VerifyOptions  # noqa: E402
from relax.runs.local import RunPlan, execute  # noqa: E402
from relax.search.exact import ExactOptions  # noqa: E402
from vnncomp2021 import read_counts, read_verdicts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benchmark", default="mnistfc", choices=["mnistfc", "eran"])
    parser.add_argument("--network", default=None, help="only instances whose network contains this")
    parser.add_argument("--method", default="exact")
    parser.add_argument("--solver", default=None)
    parser.add_argument("--timeout", type=float, default=None, help="override the competition limit")
    parser.add_argument("--limit", type=int, default=None, help="only the first N instances")
    parser.add_argument("--tag", default="", help="suffix for the output files")
    parser.add_argument("--pipeline", default=None, choices=["torch", "lp"],
                        help="exact method: torch alpha/beta-CROWN BaB (default) or the LP path")
    parser.add_argument("--tighten", default=None, choices=["auto", "off", "krelu"],
                        help="exact method: the k-ReLU stage before branch and bound (default auto)")
    parser.add_argument("--overlap", default=None, choices=["on", "off"],
                        help="exact method: the k-ReLU stage in a thread beside the first search "
                             "(default on where the machine has >= 2 cores)")
    parser.add_argument("--resume", default=None, choices=["on", "off"],
                        help="exact method: the search after the k-ReLU stage resumes from the open "
                             "domains of the search before it (default on)")
    parser.add_argument("--publish-every", default=None,
                        help="exact method: seconds between hand-overs of a layer's bounds so far to the "
                             "search beside the stage ('none': whole layers only, the default)")
    parser.add_argument("--neuron-search", default=None,
                        help="exact method: seconds of branch and bound per end of each unstable neuron "
                             "in the k-ReLU stage ('none': off; default 1)")
    parser.add_argument("--batch", type=int, default=None,
                        help="exact method: domains split per batched bound evaluation (default: 256 on one "
                             "torch thread, 1024 on more)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (1 is fastest on a shared 2-core machine; 0: "
                             "relax's default, the cores other processes leave idle)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (relax.runs)")
    parser.add_argument("--properties", default=None,
                        help="comma-separated property names (e.g. prop_0_0.03) to run only those")
    parser.add_argument("--compare", action="append", default=[],
                        help="earlier results csv to compare verdicts with (repeatable); "
                             "a holds/violated disagreement is reported as a wrong verdict")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the .md from this run's existing .csv (e.g. to add --compare)")
    parser.add_argument("--verbose", action="store_true", help="log the pipeline's steps (INFO) to stderr")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    data = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))
    instances = read_instances(data / "vnncomp2021" / args.benchmark / "instances.csv")
    if args.network:
        instances = [i for i in instances if args.network in i.network.name]
    if args.properties:
        wanted = {p if p.endswith(".vnnlib") else p + ".vnnlib" for p in args.properties.split(",")}
        instances = [i for i in instances if i.property.name in wanted]
    instances = instances[: args.limit]
    net_tag = f"_{args.network}" if args.network else ""
    stem = f"vnncomp_{args.benchmark}{net_tag}_{args.method}{args.tag}"
    if args.report_only:
        rows = read_csv(RESULTS / f"{stem}.csv")
    else:
        rows = run_all(instances, args)
        write_csv(RESULTS / f"{stem}.csv", rows)
    table = (summary(rows, args) + competition(rows, RESULTS / f"{stem}_cactus.png")
             + "".join(comparison(rows, Path(p)) for p in args.compare))
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)


def run_all(instances, args):
    """Every instance through the CLI's runner (``relax.runs``: one process or
    ``--workers``), rows back in list order."""
    chosen = {k: v for k, v in (("pipeline", args.pipeline), ("tighten", args.tighten)) if v}
    if args.overlap:
        chosen["overlap"] = args.overlap == "on"
    if args.resume:
        chosen["resume"] = args.resume == "on"
    if args.batch:
        chosen["batch"] = args.batch
    if args.publish_every:
        chosen["publish_every"] = None if args.publish_every == "none" else float(args.publish_every)
    if args.neuron_search:
        chosen["neuron_search"] = None if args.neuron_search == "none" else float(args.neuron_search)
    methods = (ExactOptions(**chosen),) if chosen else ()
    plan = RunPlan(tuple(instances), args.method,
                   VerifyOptions(solver=args.solver, methods=methods), args.timeout)
    order = {(i.network, i.property): n for n, i in enumerate(instances)}
    rows = []
    for result in tqdm(execute(plan, instances, args.workers, args.threads or None),
                       total=len(instances), unit="prop"):
        rows.append((result.instance, result, result.seconds))
        tqdm.write(f"{result.instance.network.name} {result.instance.property.name}: "
                   f"{result.verdict} bound={result.bound} {result.seconds:.1f}s {result.reason[:80]}")
    return sorted(rows, key=lambda row: order[(row[0].network, row[0].property)])


def write_csv(path: Path, rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "property", "time_limit", "verdict", "bound", "seconds", "reason"])
        for instance, result, seconds in rows:
            writer.writerow([instance.network.name, instance.property.name, instance.timeout,
                             result.verdict, result.bound, f"{seconds:.2f}", result.reason])


def _run_arguments(argv: list[str]) -> list[str]:
    """The arguments that produced the csv (without --report-only and --compare)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--compare":
            skip = True
        elif arg != "--report-only" and not arg.startswith("--compare="):
            out.append(arg)
    return out


def read_csv(path: Path):
    """Rows of an earlier run in the shape :func:`run_all` returns."""
    from types import SimpleNamespace

    with path.open(newline="") as handle:
        return [(SimpleNamespace(network=Path(r["network"]), property=Path(r["property"])),
                 SimpleNamespace(verdict=r["verdict"]), float(r["seconds"]))
                for r in csv.DictReader(handle)]


def summary(rows, args) -> str:
    per_net = defaultdict(lambda: defaultdict(int))
    times = defaultdict(float)
    for instance, result, seconds in rows:
        per_net[instance.network.name][result.verdict] += 1
        times[instance.network.name] += seconds
    lines = [f"# VNN-COMP 2021 {args.benchmark}, method `{args.method}`",
             "", f"Machine: {describe_machine()}", "",
             f"Command: `python benchmarks/vnncomp.py {' '.join(_run_arguments(sys.argv[1:]))}`", "",
             f"Time limit per instance: {args.timeout or 'competition'} s; "
             f"pipeline: {args.pipeline or 'default (torch)'}; k-ReLU stage: "
             f"{args.tighten or 'default (auto)'}; stage beside the search: "
             f"{args.overlap or 'default (on)'}; torch threads: {args.threads or 'default'}. "
             "The machine was shared with other jobs, so times are pessimistic.", "",
             "| network | instances | holds | violated | unknown | solved | total s |",
             "|---|---|---|---|---|---|---|"]
    for net, counts in per_net.items():
        total = sum(counts.values())
        solved = counts["holds"] + counts["violated"]
        lines.append(f"| {net} | {total} | {counts['holds']} | {counts['violated']} | "
                     f"{counts['unknown']} | {solved} | {times[net]:.0f} |")
    return "\n".join(lines) + "\n"


def competition(rows, plot: Path) -> str:
    """Per network: relax's counts beside the VNN-COMP 2021 tools' (best first), and the
    cactus plot (instances solved within each time) of all of them into ``plot``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tools, consensus = read_counts(), read_verdicts()
    nets = sorted({Path(i.network.name).stem for i, _, _ in rows})
    lines = ["", "## Beside the VNN-COMP 2021 tools", "",
             "2021 counts from `benchmarks/data/vnncomp2021_counts.csv` (the competition's scoring "
             "output; its tools ran on AWS machines, several on a GPU, at the same limits).  "
             "*wrong*: verdicts the competition penalised; relax's: its holds/violated verdicts that "
             "contradict the 2021 tools' (`benchmarks/data/vnncomp2021_verdicts.csv`).  The "
             "competition's times are after its per-tool overhead subtraction (floored at 1 s).", ""]
    figure, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.5), squeeze=False)
    for net, ax in zip(nets, axes[0]):
        mine = [(r.verdict, s) for i, r, s in rows if Path(i.network.name).stem == net]
        wrong = wrong_against(rows, net, consensus)
        solved = sorted(s for v, s in mine if v in ("holds", "violated"))
        theirs = sorted((t for t in tools if t["network"] == net),
                        key=lambda t: -(t["holds"] + t["violated"]))
        lines += [f"### {net} ({len(mine)} instances here)", "",
                  "| tool | holds | violated | solved | wrong |", "|---|---|---|---|---|",
                  f"| **relax** | {sum(v == 'holds' for v, _ in mine)} | "
                  f"{sum(v == 'violated' for v, _ in mine)} | {len(solved)} | {len(wrong)} |"]
        lines += [f"| {t['tool']} | {t['holds']} | {t['violated']} | {t['holds'] + t['violated']} | "
                  f"{t['wrong']} |" for t in theirs]
        lines += ["", f"relax against the 2021 verdicts: {len(wrong)} contradicted"
                  + (": " + ", ".join(wrong) if wrong else "") + ".", ""]
        ax.step(solved, range(1, len(solved) + 1), where="post", color="black", linewidth=2.5, label="relax")
        for t in theirs:
            if t["seconds"]:
                ax.step(t["seconds"], range(1, len(t["seconds"]) + 1), where="post", label=t["tool"],
                        alpha=0.8)
        ax.set(xscale="log", xlabel="seconds", ylabel="instances solved", title=net)
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(plot, dpi=110)
    lines.append(f"Cactus plot: `{plot.relative_to(REPO)}`.\n")
    return "\n".join(lines)


def wrong_against(rows, net: str, consensus: dict) -> list[str]:
    """The instances of ``net`` where relax's holds/violated contradicts the 2021 tools'."""
    out = []
    for instance, result, _ in rows:
        key = (Path(instance.network.name).stem, Path(instance.property.name).stem)
        theirs = consensus.get(key, "unknown")
        if key[0] == net and "unknown" not in (theirs, result.verdict) and theirs != result.verdict:
            out.append(key[1])
    return out


def comparison(rows, path: Path) -> str:
    """Solved counts against an earlier csv and every holds/violated disagreement."""
    with path.open(newline="") as handle:
        earlier = {(r["network"], r["property"]): r for r in csv.DictReader(handle)}
    solved_now = solved_then = both = 0
    conflicts, gained, lost = [], [], []
    for instance, result, seconds in rows:
        old = earlier.get((instance.network.name, instance.property.name))
        if old is None:
            continue
        both += 1
        now_solved = result.verdict in ("holds", "violated")
        then_solved = old["verdict"] in ("holds", "violated")
        solved_now += now_solved
        solved_then += then_solved
        if now_solved and then_solved and result.verdict != old["verdict"]:
            conflicts.append(f"{instance.property.name}: {result.verdict} now, {old['verdict']} then")
        elif now_solved and not then_solved:
            gained.append(f"{instance.property.name} ({result.verdict}, {seconds:.0f} s)")
        elif then_solved and not now_solved:
            lost.append(instance.property.name)
    ratio = f"{solved_now / solved_then:.2f}x" if solved_then else "n/a"
    try:
        shown = path.relative_to(REPO)
    except ValueError:
        shown = path
    return "\n".join([
        "", f"## Against `{shown}` ({both} common instances)", "",
        f"Solved: {solved_now} now vs {solved_then} then ({ratio}).  "
        f"Holds/violated disagreements (wrong verdicts): {len(conflicts)}.", "",
        "Newly solved: " + (", ".join(gained) or "none"), "",
        "No longer solved: " + (", ".join(lost) or "none"), "",
        *(f"- CONFLICT {c}" for c in conflicts), ""])


if __name__ == "__main__":
    main()
