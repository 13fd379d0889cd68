"""How tight is each relaxation?  Margin lower bounds of IBP, CROWN and the triangle LP
(three sources of intermediate bounds) against the exact margin, with their times.

    python benchmarks/tightness.py [--quick] [--exact-limit 60] [--eran-exact-limit 0]
        [--lp-limit 120] [--method-limit 30] [--sdp-limit 60] [--only NET]
        [--methods IBP,CROWN,...]

Properties: the embedded 784-100-100-10 net (``relax.data``) at eps 0.05 and 0.08
on test images 0-2; mnistfc ``mnist-net_256x2`` (props 0-2, eps 0.03) and
``mnist-net_256x4`` (props 0-1, eps 0.03); eran ``mnist_relu_9_200`` (the first
two specs of its ``instances.csv``).  ``--quick``: one property per network and
eps.  Data is read from ``$RELAX_DATA`` or ``../shared/data``.

``SDP`` and ``SDP+cuts``: :func:`sdp` (fo-sdp over CROWN bounds, ``--sdp-limit``
seconds per property).

Methods are the list :data:`METHODS` of ``(name, function)``; a function takes a
:class:`Case` and returns an :class:`Outcome` (a lower bound on every disjunct's
margin, ``nan`` where it has none).  Adding a column (SDP, k-ReLU, ...) is one
more entry::

    METHODS.append(("SDP", lambda case: Outcome(my_sdp_bounds(case.network, case.spec))))

A method's time is its wall time plus the recorded time of anything it took
from the case's cache (:meth:`Case.memo`), so every column is timed as if it ran
alone (``LP(CROWN)`` includes CROWN, ``exact`` includes the LP tightening).

``exact``: the big-M MILP of :func:`relax.search.milp.milp_margin` (``encode_milp`` +
``disjunct_objective``, HiGHS; called directly here to pass a cutoff and keep the
incumbent) per disjunct, with one time budget per property, over LP-tightened
intermediate bounds.
Disjuncts are taken in increasing order of their best relaxation bound; one
whose bound is already >= the smallest exact value found cannot change the
property's minimum and is skipped, and the later MILPs get that value as HiGHS's
``objective_bound`` cutoff (a disjunct with nothing below it is ``pruned`` too:
its exact value is >= the property's).  ``-`` means not finished in the
budget (or skipped).  The exact value rests on HiGHS's MILP tolerances; it is a
reference value, not a certificate.  Every relaxation bound is checked against it.

Writes ``benchmarks/results/tightness.md`` (property margins = min over
disjuncts, then per disjunct) and ``tightness.csv`` (one row per property and
per disjunct and method).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout, even when run from elsewhere
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

import numpy as np  # noqa: E402

import relax  # noqa: E402
from relax.bounds import bound_specs  # noqa: E402
from relax.data import default_images, default_network_path  # noqa: E402
from relax.lp.encode import encode_milp, encode_triangle  # noqa: E402
from relax.lp.runner import LpRunner  # noqa: E402
from relax.lp.objectives import disjunct_objective  # noqa: E402
from relax.spec import Spec  # noqa: E402
from relax.lp.tighten import tighten_bounds  # noqa: E402
from solvers import SolveOptions, get_solver  # noqa: E402
from solvers.solution import Status  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SOLVER = "highs"
SOUNDNESS_TOL = 1e-6


@dataclass
class Outcome:
    """Lower bounds on each disjunct's margin (``nan``: none); ``margin`` overrides
    the property value (default: min over disjuncts, ``nan`` if any is ``nan``)."""

    disjuncts: np.ndarray
    margin: float | None = None
    note: str = ""
    pruned: np.ndarray | None = None  # exact only: disjuncts skipped as irrelevant
    upper: np.ndarray | None = None   # exact only: the MILP incumbents (upper bounds)

    def property_upper(self) -> float:
        """An upper bound on the property margin from the incumbents (``nan``: none)."""
        if self.upper is None or np.isnan(self.upper).all():
            return float("nan")
        return float(np.nanmin(self.upper))

    def property_margin(self) -> float:
        if self.margin is not None:
            return float(self.margin)
        values = np.asarray(self.disjuncts, dtype=float)
        return float("nan") if np.isnan(values).any() else float(values.min())


@dataclass
class Case:
    """One property of one network, with a timed cache shared by the methods."""

    network_name: str
    property_name: str
    eps: float | None
    network: object
    spec: Spec
    exact_limit: float
    lp_limit: float | None
    method_limit: float | None = None
    _cache: dict = field(default_factory=dict)
    _exclusive: dict = field(default_factory=dict)   # key -> seconds not spent in other keys
    _deps: dict = field(default_factory=dict)        # key -> keys it used
    _stack: list = field(default_factory=list)       # frames [key, deps, seconds in nested misses]
    charged: float = 0.0
    _charged_keys: set = field(default_factory=set)

    def start_method(self) -> None:
        """Reset the charge: the next method pays for what it takes from the cache."""
        self.charged, self._charged_keys = 0.0, set()

    def memo(self, key: str, compute: Callable[[], object]):
        """``compute()`` once per case.  A later hit charges the current method the time
        of ``key`` and of everything it used, each key at most once per method."""
        if self._stack:
            self._stack[-1][1].append(key)
        if key in self._cache:
            self._charge(key)
            return self._cache[key]
        frame = [key, [], 0.0]
        self._stack.append(frame)
        start = time.perf_counter()
        try:
            value = compute()
        finally:
            wall = time.perf_counter() - start
            self._stack.pop()
        if self._stack:
            self._stack[-1][2] += wall
        self._cache[key] = value
        self._exclusive[key] = wall - frame[2]
        self._deps[key] = frame[1]
        self._charged_keys.add(key)  # its time is in the caller's wall clock
        return value

    def _charge(self, key: str) -> None:
        if key in self._charged_keys:
            return
        self._charged_keys.add(key)
        self.charged += self._exclusive[key]
        for dep in self._deps[key]:
            self._charge(dep)

    @property
    def n_disjuncts(self) -> int:
        return len(self.spec.disjuncts)


# -- the methods ---------------------------------------------------------------------------

def _bound_specs(case: Case, method: str):
    return case.memo(f"bound_specs:{method}", lambda: bound_specs(case.network, [case.spec], method)[0])


def _intermediate(case: Case, source: str):
    """Hidden-layer bounds: ``ibp``, ``crown``, or ``lp`` (CROWN, LP-tightened)."""
    if source in ("ibp", "crown"):
        return _bound_specs(case, source).layers

    def tighten():
        deadline = None if case.lp_limit is None else time.monotonic() + case.lp_limit
        return tighten_bounds(case.network, case.spec.lower, case.spec.upper,
                              _bound_specs(case, "crown").layers, SOLVER, deadline)

    return case.memo("intermediate:lp", tighten)


def _lp_disjuncts(case: Case, source: str) -> np.ndarray:
    """Safe triangle-LP bounds per disjunct (as :func:`relax.lp.method.lp_disjunct_bounds`), within
    ``case.method_limit`` seconds: each LP gets the time left; ``-inf`` for disjuncts not reached."""

    def solve() -> np.ndarray:
        bounds = _intermediate(case, source)
        deadline = None if case.method_limit is None else time.monotonic() + case.method_limit
        encoding = encode_triangle(case.network, case.spec.lower, case.spec.upper, bounds)
        out = np.full(case.n_disjuncts, -np.inf)
        for j, disjunct in enumerate(case.spec.disjuncts):
            options = SolveOptions()
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0.05:
                    break
                options = SolveOptions(time_limit=remaining)
            objective = disjunct_objective(encoding, disjunct)
            out[j] = LpRunner(objective.program, SOLVER, options).lower_bound(objective.c, objective.c0)
        return out

    return case.memo(f"lp:{source}", solve)


def propagation(method: str):
    def run(case: Case) -> Outcome:
        return Outcome(np.array(_bound_specs(case, method).disjunct_bounds, dtype=float))
    return run


def triangle_lp(source: str):
    def run(case: Case) -> Outcome:
        values = np.array(_lp_disjuncts(case, source), dtype=float)
        note = "LP time limit" if np.isneginf(values).any() and case.method_limit else ""
        return Outcome(values, note=note)
    return run


def _milp(case: Case, j: int, bounds, time_limit: float, cutoff: float):
    """The big-M MILP of disjunct ``j`` (as in :func:`relax.search.milp.milp_margin`).

    ``cutoff`` (HiGHS ``objective_bound``): only values below it matter, so HiGHS prunes
    every node that cannot beat it.  Returns ``(kind, value, incumbent)`` with ``kind``
    ``"optimal"`` (``value`` is the minimum), ``"cutoff"`` (the minimum is >= ``cutoff``)
    or ``"unfinished"`` (``incumbent``: the best point found, an upper bound, or nan)."""
    encoding = encode_milp(case.network, case.spec.lower, case.spec.upper, bounds)
    objective = disjunct_objective(encoding, case.spec.disjuncts[j])
    program = objective.program.with_objective(objective.c, objective.c0)
    extra = (("objective_bound", float(cutoff)),) if math.isfinite(cutoff) else ()
    solution = get_solver(SOLVER).solve(program, SolveOptions(time_limit=time_limit, extra=extra))
    if solution.status is Status.OPTIMAL and solution.objective is not None:
        if solution.objective < cutoff:
            return "optimal", solution.objective, solution.objective
        return "cutoff", math.nan, math.nan
    if solution.status is Status.INFEASIBLE and math.isfinite(cutoff):
        return "cutoff", math.nan, math.nan  # nothing below the cutoff
    incumbent = solution.objective if solution.objective is not None else math.nan
    return "unfinished", math.nan, incumbent if math.isfinite(incumbent) else math.nan


def exact(case: Case) -> Outcome:
    n = case.n_disjuncts
    if not case.exact_limit or case.exact_limit <= 0:
        return Outcome(np.full(n, np.nan), note="skipped")
    bounds = _intermediate(case, "lp")
    known = np.maximum(_lp_disjuncts(case, "lp"), _bound_specs(case, "crown").disjunct_bounds)
    deadline = time.monotonic() + case.exact_limit
    values, upper = np.full(n, np.nan), np.full(n, np.nan)
    pruned = np.zeros(n, bool)
    best, complete = math.inf, True
    for j in np.argsort(known):
        if known[j] >= best:
            pruned[j] = True
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            complete = False
            break
        kind, value, incumbent = _milp(case, int(j), bounds, remaining, best)
        upper[j] = incumbent
        if kind == "cutoff":
            pruned[j] = True
        elif kind == "optimal":
            values[j] = value
            best = min(best, value)
        else:
            complete = False
            break
    note = "" if complete else f"not finished in {case.exact_limit:g} s"
    return Outcome(values, margin=best if complete else float("nan"), note=note, pruned=pruned,
                   upper=upper)


def sdp(cuts: bool):
    """The SDP of :mod:`relax.sdp` (with the triangle cuts when ``cuts``) over CROWN bounds,
    solved by ``fo-sdp`` (certified float64 bounds), ``SDP_LIMIT`` seconds per property
    split evenly over the disjuncts still to do (each disjunct is solved, at least its
    starting point certified, so a loaded machine can overrun), each from its own
    CROWN-like starting duals.  A disjunct's value is the SDP's own bound (not max with CROWN)."""

    def run(case: Case) -> Outcome:
        from relax.sdp.method import solve_row

        bounds = _intermediate(case, "crown")
        out = np.full(case.n_disjuncts, -np.inf)
        deadline = time.monotonic() + SDP_LIMIT
        for j, disjunct in enumerate(case.spec.disjuncts):
            for row, offset in zip(disjunct.A, disjunct.b):
                left = max((deadline - time.monotonic()) / (case.n_disjuncts - j), 1e-3)
                solution = solve_row(case.network, case.spec, bounds, row, float(offset),
                                     "fo-sdp", cuts, options=SolveOptions(time_limit=left))
                out[j] = max(out[j], solution.bound)
        return Outcome(out)

    return run


SDP_LIMIT = 60.0  # seconds per property for each SDP column (--sdp-limit)

#: The columns, in order: (name, function of a Case returning an Outcome).
METHODS: list[tuple[str, Callable[[Case], Outcome]]] = [
    ("IBP", propagation("ibp")),
    ("CROWN", propagation("crown")),
    ("LP(IBP)", triangle_lp("ibp")),
    ("LP(CROWN)", triangle_lp("crown")),
    ("LP(LP)", triangle_lp("lp")),
    ("SDP", sdp(False)),
    ("SDP+cuts", sdp(True)),
    ("exact", exact),
]
EXACT = "exact"


# -- the properties ------------------------------------------------------------------------

def data_dir() -> Path:
    return Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))


def load_cases(args) -> list[Case]:
    quick = args.quick
    cases: list[Case] = []
    embedded = relax.from_onnx(default_network_path())
    images, labels = default_images()
    for eps in (0.05, 0.08):
        for i in range(1 if quick else 3):
            spec = relax.robustness(images[i], int(labels[i]), eps)
            cases.append(Case("embedded 784-100-100-10", f"img{i}", eps, embedded, spec,
                              args.exact_limit, args.lp_limit))
    mnistfc = data_dir() / "vnncomp2021" / "mnistfc"
    for name, count in (("mnist-net_256x2", 3), ("mnist-net_256x4", 2)):
        net = relax.from_onnx(mnistfc / f"{name}.onnx")
        for i in range(1 if quick else count):
            spec = relax.read_vnnlib(mnistfc / f"prop_{i}_0.03.vnnlib")[0]
            cases.append(Case(name, f"prop_{i}", 0.03, net, spec, args.exact_limit, args.lp_limit))
    eran = data_dir() / "vnncomp2021" / "eran"
    net = relax.from_onnx(eran / "nets" / "mnist_relu_9_200.onnx")
    lines = [l.split(",") for l in (eran / "instances.csv").read_text().split("\n") if l.strip()]
    for _, spec_path, _ in lines[: 1 if quick else 2]:
        spec = relax.read_vnnlib(eran / spec_path)[0]
        stem = Path(spec_path).stem
        eps = float(stem.rsplit("_eps_", 1)[1]) if "_eps_" in stem else None
        cases.append(Case("eran mnist_relu_9_200", stem.replace("mnist_spec_", "").split("_eps")[0],
                          eps, net, spec, args.eran_exact_limit, args.lp_limit))
    return cases


# -- running and reporting -----------------------------------------------------------------

@dataclass
class Cell:
    outcome: Outcome
    seconds: float
    error: str = ""


def run_case(case: Case, methods) -> dict[str, Cell]:
    cells = {}
    for name, function in methods:
        case.start_method()
        start = time.perf_counter()
        try:
            outcome = function(case)
            error = ""
        except Exception as exc:  # one failing column must not lose the table
            outcome, error = Outcome(np.full(case.n_disjuncts, np.nan)), f"{type(exc).__name__}: {exc}"
            print(f"  {name} failed: {error}", file=sys.stderr)
        cells[name] = Cell(outcome, time.perf_counter() - start + case.charged, error)
    return cells


def soundness_problems(case: Case, cells: dict[str, Cell]) -> list[str]:
    """Relaxation bounds above the exact value (per disjunct and per property)."""
    if EXACT not in cells:
        return []
    reference = cells[EXACT].outcome
    problems = []
    for name, cell in cells.items():
        if name == EXACT:
            continue
        for j, (bound, value) in enumerate(zip(cell.outcome.disjuncts, reference.disjuncts)):
            if np.isfinite(value) and bound > value + SOUNDNESS_TOL * (1 + abs(value)):
                problems.append(f"{case.network_name} {case.property_name} disjunct {j}: "
                                f"{name} {bound:.6g} > exact {value:.6g}")
        margin, exact_margin = cell.outcome.property_margin(), reference.property_margin()
        if np.isfinite(exact_margin) and margin > exact_margin + SOUNDNESS_TOL * (1 + abs(exact_margin)):
            problems.append(f"{case.network_name} {case.property_name}: {name} margin "
                            f"{margin:.6g} > exact {exact_margin:.6g}")
    return problems


def seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 0.1 else f"{value:.2f} s"


def fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.4f}"


def _maybe(value: float) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def write_csv(path: Path, results, names) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "property", "eps", "disjunct", "method", "bound", "seconds",
                         "milp_incumbent", "note"])
        for case, cells in results:
            eps = "" if case.eps is None else case.eps
            for name in names:
                cell = cells[name]
                note = cell.error or cell.outcome.note
                writer.writerow([case.network_name, case.property_name, eps, "min",
                                 name, repr(cell.outcome.property_margin()),
                                 f"{cell.seconds:.3f}", _maybe(cell.outcome.property_upper()), note])
            for j in range(case.n_disjuncts):
                for name in names:
                    outcome = cells[name].outcome
                    pruned = outcome.pruned is not None and outcome.pruned[j]
                    upper = math.nan if outcome.upper is None else float(outcome.upper[j])
                    writer.writerow([case.network_name, case.property_name, eps, j, name,
                                     repr(float(outcome.disjuncts[j])), "", _maybe(upper),
                                     "pruned" if pruned else ""])


def markdown(results, names, problems, args, total_seconds: float) -> str:
    lines = [
        "# Tightness of the relaxations: margin lower bounds (higher is tighter)",
        "",
        f"Machine: {describe_machine()}",
        "",
        "Command: `" + " ".join(["python benchmarks/tightness.py"] + sys.argv[1:]) + "`",
        "",
        f"Exact: MILP (HiGHS) per disjunct, {args.exact_limit:g} s per property "
        + (f"({args.eran_exact_limit:g} s on eran)" if args.eran_exact_limit
           else "(skipped on eran)")
        + ", over LP-tightened intermediate bounds; `-` = not finished or skipped. "
        "LP(X) = triangle LP with intermediate bounds from X (LP = CROWN, then LP-tightened"
        + (f", at most {args.lp_limit:g} s" if args.lp_limit else "") + "). "
        "A margin > 0 proves the property. Times are per property (all disjuncts), "
        "each column timed as if run alone. `[<= u]` on an unfinished exact cell: the best "
        "MILP incumbent, an upper bound on the margin. `*`: the LP column hit its "
        + (f"{args.method_limit:g} s" if args.method_limit else "")
        + " limit and the disjuncts it did not reach count as -inf. "
        f"SDP / SDP+cuts: the SDP of Raghunathan et al. (2018) without / with the triangle "
        f"cuts over CROWN bounds, solved by fo-sdp (float64-certified dual bounds), "
        f"{args.sdp_limit:g} s per property split over the disjuncts (a time limit, not "
        "convergence: larger limits give larger SDP bounds; every disjunct gets at least its "
        "starting duals certified, so the column can overrun its limit).",
        "",
        "## Property margin (min over disjuncts): bound (seconds)",
        "",
        "| network | property | eps | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for case, cells in results:
        row = [case.network_name, case.property_name, "" if case.eps is None else f"{case.eps:g}"]
        for name in names:
            cell = cells[name]
            value = "error" if cell.error else fmt(cell.outcome.property_margin())
            if value == "-" and np.isfinite(cell.outcome.property_upper()):
                value += f" [<= {cell.outcome.property_upper():.4f}]"
            if cell.outcome.note == "LP time limit":
                value += "*"
            if cell.outcome.note == "skipped":
                row.append("skipped")
            else:
                row.append(f"{value} ({seconds(cell.seconds)})")
        lines.append("| " + " | ".join(row) + " |")
    verified = {name: sum(cells[name].outcome.property_margin() > 0 for _, cells in results)
                for name in names}
    total_time = {name: sum(cells[name].seconds for _, cells in results) for name in names}
    lines += ["", "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
              "| properties proved (margin > 0) | " + " | ".join(str(verified[n]) for n in names) + " |",
              "| total seconds | " + " | ".join(f"{total_time[n]:.1f}" for n in names) + " |"]
    lines += ["", "## Per disjunct: bound (exact: `-` = not finished, `pruned` = not needed "
              "for the minimum)", "",
              "| network | property | disjunct | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for case, cells in results:
        for j in range(case.n_disjuncts):
            row = [case.network_name, case.property_name, str(j)]
            for name in names:
                outcome = cells[name].outcome
                if outcome.pruned is not None and outcome.pruned[j]:
                    row.append("pruned")
                elif (outcome.upper is not None and np.isnan(outcome.disjuncts[j])
                      and np.isfinite(outcome.upper[j])):
                    row.append(f"- [<= {outcome.upper[j]:.4f}]")
                else:
                    row.append(fmt(float(outcome.disjuncts[j])))
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Soundness check (every bound <= exact where known): "
              + ("passed" if not problems else f"{len(problems)} VIOLATIONS")]
    lines += [f"- {p}" for p in problems]
    lines += ["", f"Total wall time: {total_seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one property per network and eps")
    parser.add_argument("--exact-limit", type=float, default=None,
                        help="MILP seconds per property (small nets; default 60, 20 with "
                             "--quick); 0 skips")
    parser.add_argument("--eran-exact-limit", type=float, default=0.0,
                        help="MILP seconds per property on eran 9x200; 0 (default) skips")
    parser.add_argument("--lp-limit", type=float, default=120.0,
                        help="seconds for LP tightening per property (0: no limit)")
    parser.add_argument("--method-limit", type=float, default=30.0,
                        help="seconds per property for the final LPs of an LP column (0: no "
                             "limit); disjuncts not reached get -inf")
    parser.add_argument("--sdp-limit", type=float, default=60.0,
                        help="seconds per property for each SDP column (fo-sdp)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated subset of " + ",".join(n for n, _ in METHODS))
    parser.add_argument("--only", default=None, help="only networks whose name contains this")
    parser.add_argument("--tag", default="", help="suffix for the output files")
    args = parser.parse_args()
    args.lp_limit = args.lp_limit or None
    if args.exact_limit is None:
        args.exact_limit = 20.0 if args.quick else 60.0
    args.method_limit = args.method_limit or None
    global SDP_LIMIT
    SDP_LIMIT = args.sdp_limit
    methods = METHODS
    if args.methods:
        wanted = args.methods.split(",")
        methods = [(n, f) for n, f in METHODS if n in wanted]
    names = [n for n, _ in methods]
    cases = load_cases(args)
    if args.only:
        cases = [c for c in cases if args.only in c.network_name]
    for case in cases:
        case.method_limit = args.method_limit
    warm = cases[0]  # untimed warm-up on a fresh copy (imports, first-call costs)
    run_case(Case(warm.network_name, warm.property_name, warm.eps, warm.network, warm.spec,
                  0.0, warm.lp_limit), [m for m in METHODS if m[0] in ("IBP", "CROWN", "LP(IBP)")])
    start = time.perf_counter()
    results, problems = [], []
    for case in cases:
        cells = run_case(case, methods)
        results.append((case, cells))
        problems += soundness_problems(case, cells)
        print(f"{case.network_name} {case.property_name} eps={case.eps}: " + ", ".join(
            f"{n}={fmt(cells[n].outcome.property_margin())} ({seconds(cells[n].seconds)})"
            for n in names), flush=True)
    total = time.perf_counter() - start
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"tightness{args.tag}"
    write_csv(RESULTS / f"{stem}.csv", results, names)
    table = markdown(results, names, problems, args, total)
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)
    for p in problems:
        print(f"WARNING: {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
