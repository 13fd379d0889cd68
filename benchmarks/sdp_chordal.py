r"""The chordal (one PSD cone per consecutive layer pair) form of the SDP: does it pay?

    python benchmarks/sdp_chordal.py [--limit 120] [--solvers cvxpy-clarabel,cvxpy-scs]
        [--only NAME,...] [--full-max 100]

Issue #12: the SDP of Raghunathan et al. lifts ``x = [x_0, a_0, ..., a_{L-1}]`` (layers
``h_0 = x_0``, ``h_{k+1} = a_k``) into ``P = [[1, x^T], [x, X]] >= 0``.  Its constraints
(:func:`relax.sdp.encode.encode_sdp`, with the triangle cuts) touch only

* the first row of ``P`` (``x``: the ReLU inequalities, the triangle cuts, the objective,
  which touches the last hidden layer only),
* the diagonal ``X_ii`` (box rows, ``diag(X_{a_k a_k})`` of the ReLU equalities),
* the block ``X_{h_k h_{k+1}}`` of consecutive layers (``diag(W_k X_{h_k a_k})``).

So the aggregate sparsity graph on the indices of ``P`` is: index 0 joined to everything,
plus a complete bipartite graph between every pair of consecutive layers.  Filling in each
layer gives a chordal graph whose maximal cliques are ``C_k = {0} u h_k u h_{k+1}``,
``k = 0 .. L-1`` (a chain: ``C_k n C_{k+1} = {0} u h_{k+1}``, the running intersection
property; adding the universal vertex 0 keeps a graph chordal).  By Grone et al. (1984),
a partial symmetric matrix on a chordal pattern whose clique blocks ``P[C_k, C_k]`` are
PSD has a PSD completion, and the entries outside the pattern appear in no constraint
except their own implied box ``|X_ij| <= m_i m_j``, which every PSD completion satisfies
(``|X_ij| <= sqrt(X_ii X_jj)``).  Hence the SDP over the full ``P`` and the one with one
PSD cone per ``C_k`` (entries between layers two or more apart dropped) have the *same
optimum* -- :func:`chordal_program` checks the pattern claim on the actual program
(every variable the rows or objective touch lies in some clique) rather than trusting it.

This benchmark builds both programs from the same :class:`~solvers.program.ConicProgram`
(:func:`encode_sdp` with cuts, CROWN bounds, the hardest CROWN margin row of Gaussian
random nets) and solves them with ``cvxpy-clarabel`` (tolerance 1e-9) and, on the deep nets,
``cvxpy-scs`` (its default accuracy), through the project's backends, so the bound is
``conic_safe_bound`` from the duals, never the raw objective.  For comparison it also
solves with Clarabel the multiplier (dual LMI) form of :func:`multiplier_program` (the
form sdp-ipm solves; dead neurons and fixed inputs eliminated), whose slack matrix has
*structural* zeros outside the aggregate pattern, so Clarabel's own chordal decomposition
(on by default since Clarabel 0.6) applies to it: ``mult`` (decomposition on) and
``mult-nodecomp`` (off); their value is the float64-certified bound of the multipliers.
Each solve runs in its own process (peak memory = its ``ru_maxrss`` minus the import
baseline; wall time = model build + cvxpy canonicalisation + solve).  ``kkt_proxy`` =
sum over the cones of ``(k(k+1)/2)^2``: the dense PSD blocks of an interior-point KKT
system.  The MNIST networks get a size table only: no cvxpy form of either kind fits.
Writes ``benchmarks/results/sdp_chordal.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import scipy.sparse as sp

RESULTS = REPO / "benchmarks" / "results"
# tight enough for the 1e-6 agreement check (Clarabel); SCS at its defaults (1e-4: at
# 1e-6 it needs its 100,000 iterations already at s = 31)
TOLERANCE = {"cvxpy-clarabel": 1e-9, "cvxpy-scs": None}


# -- the chordal conversion ------------------------------------------------------------------

def layer_cliques(offsets) -> list[np.ndarray]:
    """``C_k = {0} u h_k u h_{k+1}`` as sorted indices of ``P`` (``x_p`` is ``P``'s index
    ``p + 1``; ``offsets`` as in :class:`relax.sdp.encode.SdpEncoding`)."""
    offsets = np.asarray(offsets, np.int64)
    return [np.concatenate([[0], np.arange(offsets[k], offsets[k + 2]) + 1])
            for k in range(offsets.size - 2)]


def _layer_of(offsets, s: int) -> np.ndarray:
    """Layer number of each index of ``P`` (-1 for index 0)."""
    layer = np.full(s, -1, np.int64)
    for k in range(len(offsets) - 1):
        layer[offsets[k] + 1:offsets[k + 1] + 1] = k
    return layer


def _triangle(s: int) -> tuple[np.ndarray, np.ndarray]:
    """``(I, J)`` of the program's variables: the upper triangle of ``P`` without ``(0, 0)``."""
    I, J = np.triu_indices(s)
    return I[1:].astype(np.int64), J[1:].astype(np.int64)


def chordal_program(program, offsets):
    """``program`` (one PSD cone on the full ``P``, variables as in
    :func:`relax.sdp.encode.encode_sdp`) with that cone replaced by one cone per
    :func:`layer_cliques` block and the variables outside every clique dropped.

    Raises ``ValueError`` when some row or the objective touches a dropped variable (the
    pattern claim of the module docstring would then be false)."""
    from relax.sdp.encode import triangle_index
    from solvers.program import ConicProgram, LinearProgram, PsdConstraint

    lp = program.linear
    s = int(offsets[-1]) + 1
    I, J = _triangle(s)
    layer = _layer_of(offsets, s)
    keep = (I == 0) | (np.abs(layer[I] - layer[J]) <= 1)
    A = sp.csc_matrix(lp.A)
    touched = (np.diff(A.indptr) > 0) | (lp.c != 0)
    if np.any(touched & ~keep):
        raise ValueError(f"{int(np.sum(touched & ~keep))} constrained entries of P lie outside "
                         "the layer-pair cliques")
    new_index = np.full(I.size, -1, np.int64)
    new_index[keep] = np.arange(int(keep.sum()))
    linear = LinearProgram(lp.c[keep], sp.csr_matrix(A[:, keep]), lp.row_lower, lp.row_upper,
                           lp.lower[keep], lp.upper[keep], c0=lp.c0)
    cones = []
    for clique in layer_cliques(offsets):
        k = clique.size
        p, q = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        p, q = p.ravel()[1:], q.ravel()[1:]          # all (p, q) but (0, 0): the constant 1
        gi, gj = clique[np.minimum(p, q)], clique[np.maximum(p, q)]
        cols = new_index[triangle_index(gi, gj, s)]
        G = sp.csr_matrix((np.ones(p.size), (p * k + q, cols)), shape=(k * k, linear.num_variables))
        constant = np.zeros(k * k)
        constant[0] = -1.0
        cones.append(PsdConstraint(k, G, constant))
    return ConicProgram(linear, tuple(cones))


# -- problems ---------------------------------------------------------------------------------

# (name, widths incl. input and output); Gaussian weights as in benchmarks/sdp.py
# SCS (first order, slow to 1e-4 here) runs only on the problems named in SCS_ON
SCS_ON = ("10x6 deep", "20x4 deep", "16x8 deep")
RANDOM = [
    ("random 4-4-4-2", (4, 4, 4, 2)),
    ("random 10-10-10-5", (10, 10, 10, 5)),
    ("random 8x5 deep (8-8-8-8-8-8-4)", (8, 8, 8, 8, 8, 8, 4)),
    ("random 20-20-20-10", (20, 20, 20, 10)),
    ("random 10x6 deep (10-...-10-5)", (10,) * 7 + (5,)),
    ("random 20x4 deep (20-20-20-20-10)", (20, 20, 20, 20, 10)),
    ("random 40-20-20-10", (40, 20, 20, 10)),
    ("random 16x8 deep (16-...-16-8)", (16,) * 9 + (8,)),
    ("random 49-16-16-16-10 (7x7-input MNIST-like)", (49, 16, 16, 16, 10)),
]

# sides only (no cvxpy form of either kind fits): (name, input and hidden widths)
MNIST = [
    ("mnist 784-50-10", (784, 50)),
    ("mnist 784-100-100-10", (784, 100, 100)),
    ("mnist 784-200-100-50-10", (784, 200, 100, 50)),
    ("mnistfc 256x2", (784, 256, 256)),
    ("mnistfc 256x4", (784, 256, 256, 256, 256)),
    ("eran 9x200", (784,) + (200,) * 9),
]


def random_case(widths, seed: int = 0, eps: float = 0.05, cuts: bool = True):
    """``(network, spec, crown, j, encoding)`` for a Gaussian random net
    (benchmarks/sdp.py's ``random_problem``): CROWN bounds, the index ``j`` of the disjunct
    with the smallest CROWN margin and :func:`encode_sdp` over CROWN's bounds."""
    from sdp import hardest_row, random_problem

    from relax.sdp.encode import encode_sdp

    network, spec = random_problem(widths, seed, eps)
    crown, j, _, _ = hardest_row(network, spec)
    return network, spec, crown, j, encode_sdp(network, spec.lower, spec.upper, crown.layers, cuts)


def problem_sdp(widths, seed: int = 0, eps: float = 0.05, cuts: bool = True):
    """The full-form :class:`ConicProgram` of the hardest CROWN margin row, ``offsets`` and
    CROWN's bound on that row."""
    _, spec, crown, j, encoding = random_case(widths, seed, eps, cuts)
    d = spec.disjuncts[j]
    program = encoding.with_objective(d.A[0], float(d.b[0]))
    return program, encoding.offsets, float(crown.disjunct_bounds[j])


def sizes(offsets) -> dict:
    """Matrix sides and variable counts of the two forms."""
    s = int(offsets[-1]) + 1
    cliques = [c.size for c in layer_cliques(offsets)]
    I, J = _triangle(s)
    layer = _layer_of(offsets, s)
    kept = int(np.sum((I == 0) | (np.abs(layer[I] - layer[J]) <= 1)))
    return {"s": s, "cliques": "+".join(map(str, cliques)), "full_vars": I.size,
            "chordal_vars": kept, "full_cone": s * (s + 1) // 2,
            "chordal_cone": sum(k * (k + 1) // 2 for k in cliques)}


# -- one solve in its own process ----------------------------------------------------------------

def _build(widths, form: str):
    """The program of ``form`` and a function turning a solution into ``(value, bound)``
    (the SDP's value and a sound bound; the multiplier form's optimum is minus the SDP's)."""
    network, spec, crown, j, encoding = random_case(widths)
    d = spec.disjuncts[j]
    if form.startswith("mult"):
        from relax.sdp.encode import multiplier_program

        dual = multiplier_program(network, spec.lower, spec.upper, crown.layers, d.A[0],
                                  float(d.b[0]), cuts=True)
        # its objective lacks the constants of the elimination and scaling: report the
        # certified value of its multipliers as both value and bound
        certified = lambda sol: dual.certify(sol.x)
        return dual.program, lambda sol: (certified(sol), certified(sol))
    program = encoding.with_objective(d.A[0], float(d.b[0]))
    if form == "chordal":
        program = chordal_program(program, encoding.offsets)
    return program, lambda sol: (sol.objective, float(sol.bound))


# Clarabel's own chordal decomposition (on by default) only sees structural zeros of a
# cone's slack: none in the primal P (every entry a variable), the aggregate pattern in
# the multiplier form's LMI.  "mult-nodecomp" switches it off.
EXTRA = {"mult-nodecomp": (("chordal_decomposition_enable", False),)}


def _child(queue, widths, form: str, solver: str, limit: float):
    import resource
    import warnings

    warnings.filterwarnings("ignore")
    import cvxpy  # noqa: F401 - imported before the clock starts

    from solvers import SolveOptions, get_solver

    _, _, crown, j, _ = random_case(widths)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    program, read = _build(widths, form)
    options = SolveOptions(time_limit=limit, tolerance=TOLERANCE.get(solver),
                           extra=EXTRA.get(form, ()))
    solution = get_solver(solver).solve(program, options)
    value, bound = read(solution)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"sides": [cone.size for cone in program.psd], "objective": value,
               "bound": bound, "status": solution.status.value, "seconds": seconds,
               "solver_seconds": solution.stats.solver_seconds,
               "iterations": solution.stats.iterations, "peak_mb": peak - baseline,
               "crown": float(crown.disjunct_bounds[j])})


def run_isolated(widths, form: str, solver: str, limit: float) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, widths, form, solver, limit))
    proc.start()
    try:
        result = queue.get(timeout=limit * 3 + 120)
    except Exception:  # noqa: BLE001 - a crash or hang is reported as the row's status
        result = {"objective": None, "bound": -math.inf, "status": f"crashed ({proc.exitcode})",
                  "seconds": math.nan, "solver_seconds": None, "iterations": None,
                  "peak_mb": math.nan, "crown": math.nan, "sides": []}
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
    return result


# -- the table --------------------------------------------------------------------------------

COLUMNS = ["problem", "solver", "form", "s", "cones", "cone_entries", "kkt_proxy", "crown",
           "value", "bound", "rel_diff", "status", "iters", "wall_s", "solver_s", "peak_mb",
           "speedup"]


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.7g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def forms_for(solver: str, s: int, full_max: int) -> list[str]:
    """The forms measured with ``solver``: the full form only up to side ``full_max``; the
    multiplier form (with and without Clarabel's own decomposition) with Clarabel only."""
    forms = (["full"] if s <= full_max else []) + ["chordal"]
    return forms + (["mult", "mult-nodecomp"] if solver == "cvxpy-clarabel" else [])


def measure(name, widths, solver: str, limit: float, full_max: int) -> list[dict]:
    """One row per form; ``rel_diff`` = |value - full value| / max(1, |full value|)."""
    _, offsets, _ = problem_sdp(widths)
    s = int(offsets[-1]) + 1
    rows = []
    for form in forms_for(solver, s, full_max):
        r = run_isolated(widths, form, solver, limit)
        sides = r.get("sides", [])
        rows.append({"problem": name, "solver": solver, "form": form, "s": s,
                     "cones": "+".join(map(str, sides)),
                     "cone_entries": sum(k * (k + 1) // 2 for k in sides),
                     "kkt_proxy": float(sum((k * (k + 1) // 2) ** 2 for k in sides)),
                     "crown": r["crown"], "value": r["objective"], "bound": r["bound"],
                     "status": r["status"], "iters": r["iterations"], "wall_s": r["seconds"],
                     "solver_s": r["solver_seconds"], "peak_mb": r["peak_mb"]})
    full = next((row for row in rows if row["form"] == "full"), None)
    for row in rows:
        if full is not None and full["value"] is not None and row["value"] is not None:
            row["rel_diff"] = abs(row["value"] - full["value"]) / max(1.0, abs(full["value"]))
            row["speedup"] = full["wall_s"] / row["wall_s"]
    return rows


def size_lines() -> list[str]:
    """Markdown table of both forms' sizes on the MNIST networks (nothing solved)."""
    head = ["network", "s", "cliques", "full_cone", "chordal_cone", "cone ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, widths in MNIST:
        z = sizes(np.concatenate([[0], np.cumsum(widths)]))
        lines.append(f"| {name} | {z['s']} | {z['cliques']} | {z['full_cone']} | "
                     f"{z['chordal_cone']} | {z['chordal_cone'] / z['full_cone']:.3f} |")
    return lines


def write(rows: list[dict], command: str) -> None:
    from machine import describe_machine

    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "sdp_chordal.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    show = [c for c in COLUMNS if c not in ("cone_entries",)]
    lines = [f"Machine: {describe_machine()} (shared with other jobs; timings noisy 2-4x)",
             f"Command: `{command}`", "",
             "| " + " | ".join(show) + " |", "|" + "---|" * len(show)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in show) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    with open(RESULTS / "sdp_chordal.md", "w") as handle:
        handle.write("# SDP: full PSD cone vs one cone per layer pair (chordal)\n\n"
                     "See the docstring of benchmarks/sdp_chordal.py for the encoding and "
                     "the equivalence argument.  `s`: side of the full `P`; `cones`: sides "
                     "of the PSD cones passed to the solver (for `mult*`: after eliminating "
                     "dead neurons and fixed inputs, before Clarabel's own decomposition); "
                     "`kkt_proxy`: sum of (k(k+1)/2)^2 over them; `value`: solver objective "
                     "(`mult*`: the certified bound); `bound`: conic_safe_bound from the "
                     "duals (`mult*`: float64 check of the multipliers); `rel_diff`: |value "
                     "- full value| / max(1, |full value|); times are wall seconds (model "
                     "build + cvxpy + solve) in a fresh process; `speedup` = full wall / "
                     "this wall; peak MB = ru_maxrss minus the import baseline.\n\n")
        handle.write(text + "\n\n## Sizes on MNIST networks (not solved)\n\n"
                     "`full_cone` / `chordal_cone`: entries of the PSD cone(s), sum of "
                     "k(k+1)/2 over the cones.\n\n" + "\n".join(size_lines()) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=120.0)
    parser.add_argument("--solvers", default="cvxpy-clarabel,cvxpy-scs")
    parser.add_argument("--only", default="", help="comma-separated problem names (substrings)")
    parser.add_argument("--full-max", type=int, default=100,
                        help="largest full side solved in the full form")
    args = parser.parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    rows = []
    for name, widths in RANDOM:
        if wanted and not any(w in name for w in wanted):
            continue
        for solver in args.solvers.split(","):
            if solver == "cvxpy-scs" and not any(key in name for key in SCS_ON):
                continue
            for row in measure(name, widths, solver, args.limit, args.full_max):
                rows.append(row)
                print({k: _fmt(v) for k, v in row.items()}, flush=True)
    write(rows, "python benchmarks/sdp_chordal.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
