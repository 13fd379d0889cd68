"""Solving the SDP relaxation (:mod:`relax.sdp.encode`) and the ``sdp`` verification method."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from relax.bounds import Bounds, bound_specs
from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.network import Network
from relax.spec import Spec
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason
from solvers.backend import SolveOptions
from relax.sdp.encode import SdpEncoding, _require_relu, encode_sdp, layered_program
from solvers.solution import Solution

__all__ = ["SdpOptions", "solve_row", "sdp_bound", "sdp_bounds", "sdp_method", "default_sdp_solver", "SDP_SOLVERS",
           "CLARABEL_MAX_SIZE", "SCS_MAX_SIZE"]

log = logging.getLogger(__name__)

SDP_SOLVERS = ("cvxpy-clarabel", "cvxpy-scs", "cvxpy-mosek", "fo-sdp")
CLARABEL_MAX_SIZE = 50   # largest s = 1 + n for which the sdp method picks Clarabel by default
SCS_MAX_SIZE = 200       # ... and SCS; larger networks get fo-sdp

# -- solving --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SdpOptions(MethodOptions):
    """Options of the ``sdp`` method; the last eight are passed to fo-sdp (``None``: its default)."""

    intermediate: Literal["crown", "lp"] = option("crown", "hidden-layer bounds: crown, or lp "
                                                           "(CROWN, then LP-tightened)")
    skip_proved: bool = option(True, "skip the SDP of disjuncts CROWN already proves")
    cuts: bool = option(True, "add the triangle cuts to the SDP (then it contains the LP)")
    max_iterations: int | None = option(None, "fo-sdp: iterations")
    lr: float | None = option(None, "fo-sdp: step size")
    patience: int | None = option(None, "fo-sdp: iterations without progress before stopping")
    eig: str | None = option(None, "fo-sdp: eigenvalue method")
    lanczos_steps: int | None = option(None, "fo-sdp: Lanczos steps")
    init: str | None = option(None, "fo-sdp: dual initialisation")
    dtype: Literal["float64", "float32"] | None = option(None, "fo-sdp: working precision")
    method: str | None = option(None, "fo-sdp: optimiser")


def _options_for(solver: str, options: SolveOptions | None, cuts: bool,
                 deadline: Deadline) -> SolveOptions:
    """``options`` with the deadline's time limit (and ``cuts`` for fo-sdp)."""
    options = deadline.solve_options(options)
    extra = dict(options.extra)
    if solver == "fo-sdp":
        extra["cuts"] = bool(cuts)
    return SolveOptions(options.time_limit, options.tolerance, options.threads, options.verbose,
                        tuple(extra.items()))


def solve_row(network: Network, spec: Spec, bounds: Bounds, row, offset: float,
              solver: str = "cvxpy-clarabel", cuts: bool = False,
              deadline: Deadline = NEVER, options: SolveOptions | None = None,
              warm_start=None, encoding: SdpEncoding | None = None) -> Solution:
    """Solve the SDP for the margin ``row^T y - offset``; ``Solution.bound`` is sound."""
    from solvers.registry import get_solver

    backend = get_solver(solver)
    opts = _options_for(solver, options, cuts, deadline)
    if solver == "fo-sdp":
        program = layered_program(network, spec.lower, spec.upper, bounds, row, offset)
    else:
        encoding = encoding or encode_sdp(network, spec.lower, spec.upper, bounds, cuts)
        program = encoding.with_objective(row, offset)
    return backend.solve(program, opts, warm_start)


def _sound(solution: Solution) -> float:
    """The solution's safe bound, or ``-inf`` (also for a claimed infeasibility)."""
    bound = solution.bound
    if bound is None or math.isnan(bound) or bound == math.inf:
        if bound == math.inf:
            log.warning("SDP solver %s claims infeasibility; no bound taken", solution.solver)
        return -math.inf
    return float(bound)


def sdp_bound(network: Network, spec: Spec, bounds: Bounds, solver: str = "cvxpy-clarabel",
              cuts: bool = False, deadline: Deadline = NEVER,
              options: SolveOptions | None = None, batch: bool = True) -> np.ndarray:
    """Sound lower bounds on every disjunct's margin from the SDP (max over its rows).

    With ``fo-sdp`` and ``batch`` (default) all rows are solved as one batch
    (:func:`sdp_bounds`); otherwise row by row."""
    _require_relu(network)
    if solver not in SDP_SOLVERS:
        raise UsageError(f"unknown SDP solver {solver!r}; choose from {', '.join(SDP_SOLVERS)}")
    spec.check_fits(network.input_size, network.output_size)
    if solver == "fo-sdp" and batch:
        return sdp_bounds(network, [spec], [bounds], cuts, deadline, options)[0]
    encoding = None if solver == "fo-sdp" else encode_sdp(network, spec.lower, spec.upper,
                                                          bounds, cuts)
    out = np.full(len(spec.disjuncts), -np.inf)
    for j, disjunct in enumerate(spec.disjuncts):
        for row, offset in zip(disjunct.A, disjunct.b):
            if deadline.expired:
                return out
            solution = solve_row(network, spec, bounds, row, offset, solver, cuts, deadline,
                                 options, encoding=encoding)
            log.debug("disjunct %d row: %s bound %.6g (%s)", j, solver, solution.bound,
                      solution.message)
            out[j] = max(out[j], _sound(solution))
    return out


def sdp_bounds(network: Network, specs: Sequence[Spec], bounds: Sequence[Bounds],
               cuts: bool = False, deadline: Deadline = NEVER,
               options: SolveOptions | None = None) -> list[np.ndarray]:
    """:func:`sdp_bound` with ``fo-sdp`` for several specs (e.g. images) at once: every row of
    every spec's disjuncts (with that spec's box and hidden ``bounds``) is one problem of
    a single :func:`solvers.backends.fo_sdp.solve_batch` call (the time limit applies to
    each problem; they run side by side).  One array of disjunct bounds per spec."""
    from solvers.backends.fo_sdp import solve_batch

    _require_relu(network)
    if len(specs) != len(bounds):
        raise UsageError(f"sdp_bounds: {len(specs)} specs but {len(bounds)} bound sets")
    programs, owners = [], []
    for i, (spec, layers) in enumerate(zip(specs, bounds)):
        spec.check_fits(network.input_size, network.output_size)
        for j, disjunct in enumerate(spec.disjuncts):
            for row, offset in zip(disjunct.A, disjunct.b):
                programs.append(layered_program(network, spec.lower, spec.upper, layers, row,
                                                offset))
                owners.append((i, j))
    out = [np.full(len(spec.disjuncts), -np.inf) for spec in specs]
    if not programs or deadline.expired:
        return out
    solutions = solve_batch(programs, _options_for("fo-sdp", options, cuts, deadline))
    for (i, j), solution in zip(owners, solutions):
        log.debug("spec %d disjunct %d row: fo-sdp bound %.6g (%s)", i, j, solution.bound,
                  solution.message)
        out[i][j] = max(out[i][j], _sound(solution))
    return out


# -- the verification method ----------------------------------------------------------------

def default_sdp_solver(network: Network) -> str:
    """By the size ``s = 1 + n`` of ``P`` (see the measurements in the module docstring):
    Clarabel up to :data:`CLARABEL_MAX_SIZE`, SCS up to :data:`SCS_MAX_SIZE`, else ``fo-sdp``."""
    s = 1 + network.input_size + sum(network.hidden_sizes)
    if s <= CLARABEL_MAX_SIZE:
        return "cvxpy-clarabel"
    return "cvxpy-scs" if s <= SCS_MAX_SIZE else "fo-sdp"


_FO_SDP_KEYS = ("max_iterations", "lr", "patience", "eig", "lanczos_steps", "init", "dtype",
                "method")


def _method_options(solver: str, options: VerifyOptions) -> SolveOptions:
    """fo-sdp gets ``options.device`` and the :data:`_FO_SDP_KEYS` fields of :class:`SdpOptions`
    that are set."""
    extra = {}
    if solver == "fo-sdp":
        settings = options.of(SdpOptions)
        extra["device"] = options.device
        extra.update({k: getattr(settings, k) for k in _FO_SDP_KEYS
                      if getattr(settings, k) is not None})
    return SolveOptions(extra=tuple(extra.items()))


def sdp_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
               options: VerifyOptions) -> list[BoundOutcome]:
    """The ``sdp`` verification method.

    Per spec: CROWN bounds (hidden layers and disjuncts); if CROWN does not prove the
    spec, PGD first (a checked counterexample ends the spec: bound = CROWN's); then
    the SDP of every disjunct that CROWN did not prove (every disjunct with option
    ``skip_proved=False``), with hidden bounds from option ``intermediate`` (``crown``,
    default, or ``lp``: LP-tightened), solver ``options.solver`` (default
    :func:`default_sdp_solver`) and option ``cuts`` (True: the triangle cuts, so the
    SDP contains the LP).  A disjunct's bound is the
    max of the SDP's and CROWN's (both sound).  For fo-sdp, ``options.device`` and the
    options ``max_iterations``, ``lr``, ``patience``, ``eig``, ``lanczos_steps``, ``init``,
    ``dtype`` are passed on."""
    _require_relu(network)
    source = options.of(SdpOptions).intermediate
    solver = options.solver or default_sdp_solver(network)
    if solver not in SDP_SOLVERS:
        raise UsageError(f"solver {solver!r} cannot solve the SDP; "
                         f"choose from {', '.join(SDP_SOLVERS)}")
    return [_sdp_one(network, spec, deadline, options, source, solver) for spec in specs]


def _sdp_one(network, spec, deadline, options, source, solver) -> BoundOutcome:
    from relax.search.attack import pgd_attack

    settings = options.of(SdpOptions)
    skip_proved = settings.skip_proved and not options.bound_only
    crown = bound_specs(network, [spec], "crown", device=options.device)[0]
    if crown.bound > 0 and skip_proved:
        return BoundOutcome(crown.bound, solver)
    attack = crown.bound <= 0 and not options.bound_only
    cex = pgd_attack(network, spec, options.attack, deadline) if attack else None
    if cex is not None:
        return BoundOutcome(crown.bound, solver, cex)
    bounds = crown.layers
    if source == "lp":
        from relax.lp.runner import DEFAULT_LP_SOLVER
        from relax.lp.tighten import tighten_bounds

        bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, DEFAULT_LP_SOLVER,
                                deadline)
    todo = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0 or not skip_proved]
    per = np.array(crown.disjunct_bounds, dtype=np.float64)
    if todo:
        sub = Spec(spec.lower, spec.upper, tuple(spec.disjuncts[j] for j in todo))
        sdp = sdp_bound(network, sub, bounds, solver, settings.cuts, deadline,
                        _method_options(solver, options))
        per[todo] = np.maximum(per[todo], sdp)
    return BoundOutcome(float(per.min()), solver,
                        reason=Reason.time_limit() if deadline.expired else None)
