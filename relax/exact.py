"""The LP and exact verification methods.

``lp``: CROWN intermediate bounds, tightened by the LP layer by layer, then the
triangle LP of every disjunct; incomplete.

``milp``: PGD, then the big-M MILP with a MILP-capable solver (its optimal point is a
counterexample candidate, checked in float64), then ``exact`` in the remaining
time.  A MILP solver's own bound rests on its tolerances, so *holds* still comes
only from branch and bound with safe leaf bounds.

``exact``: a complete decision procedure.  PGD first (cheap counterexamples), then
CROWN; for ReLU networks then alpha-CROWN and batched beta-CROWN branch and bound
(:mod:`relax.bab_torch`, option ``pipeline="torch"``, the default).  The
``pipeline="lp"`` path (also the fallback for other activations, or when the
torch search runs out of memory for open domains) runs LP tightening and the LP per
disjunct, and finally LP branch and bound (:mod:`relax.bab`) on the disjuncts the
LP could not close.  With enough time every disjunct is either closed by safe
bounds on all leaves or yields a float64-checked counterexample.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Sequence

import numpy as np

from relax.attack import pgd_attack
from relax.errors import UsageError
from relax.bab import branch_and_bound
from relax.bab_torch import torch_branch_and_bound
from relax.bounds import Bounds, bound_specs
from relax.lp import encode_milp, encode_triangle
from relax.lp_runner import DEFAULT_LP_SOLVER, LpRunner
from relax.network import Network
from relax.objectives import disjunct_objective
from relax.spec import Spec
from relax.tighten import tighten_bounds
from relax.verify_types import BoundOutcome, VerifyOptions

__all__ = ["lp_method", "exact_method", "milp_method", "intermediate_bounds", "lp_disjunct_bounds",
           "milp_margin"]

log = logging.getLogger(__name__)


def intermediate_bounds(network: Network, spec: Spec, source: str, solver: str | None,
                        deadline: float | None) -> Bounds:
    """Hidden-layer bounds from ``ibp``, ``crown`` or ``lp`` (CROWN, then LP-tightened)."""
    base = "ibp" if source == "ibp" else "crown"
    bounds = bound_specs(network, [spec], base)[0].layers
    if source == "lp":
        bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, solver, deadline)
    return bounds


def lp_disjunct_bounds(network: Network, spec: Spec, bounds: Bounds, solver: str | None,
                       deadline: float | None = None) -> np.ndarray:
    """Safe triangle-LP lower bounds on every disjunct's margin."""
    encoding = encode_triangle(network, spec.lower, spec.upper, bounds)
    out = np.full(len(spec.disjuncts), -np.inf)
    for j, disjunct in enumerate(spec.disjuncts):
        if deadline is not None and time.monotonic() > deadline:
            break
        objective = disjunct_objective(encoding, disjunct)
        runner = LpRunner(objective.program, solver)
        out[j] = runner.lower_bound(objective.c, objective.c0)
    return out


def lp_method(network: Network, specs: Sequence[Spec], deadline, options: VerifyOptions):
    """The triangle LP with LP-tightened intermediate bounds (``intermediate`` option)."""
    source = options.get("intermediate", "lp")
    solver = options.solver or DEFAULT_LP_SOLVER
    outcomes = []
    for spec in specs:
        bounds = intermediate_bounds(network, spec, source, solver, deadline)
        per_disjunct = lp_disjunct_bounds(network, spec, bounds, solver, deadline)
        reason = "time limit reached" if np.isinf(per_disjunct).any() else None
        outcomes.append(BoundOutcome(float(per_disjunct.min()), solver, reason=reason))
    return outcomes


def exact_method(network: Network, specs: Sequence[Spec], deadline, options: VerifyOptions):
    """Attack, CROWN, LP, then branch and bound; see the module docstring."""
    solver = options.solver or DEFAULT_LP_SOLVER
    return [_exact_one(network, spec, deadline, options, solver) for spec in specs]


def _exact_one(network, spec, deadline, options, solver) -> BoundOutcome:
    cex = pgd_attack(network, spec, options.attack, deadline)
    if cex is not None:
        return BoundOutcome(-math.inf, solver, cex)
    crown = bound_specs(network, [spec], "crown")[0]
    if crown.bound > 0:
        return BoundOutcome(crown.bound, solver)
    relu = all(a.name == "relu" for a in network.activations)
    if relu and options.get("pipeline", "torch") == "torch":
        open_disjuncts = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
        outcome = torch_branch_and_bound(network, spec, open_disjuncts, deadline)
        log.info("torch branch and bound: bound %.4g after %d domains", outcome.bound, outcome.nodes)
        if outcome.complete or "time limit" in outcome.reason:
            closed = [float(b) for b in crown.disjunct_bounds if b > 0]
            bound = min([outcome.bound] + closed)
            return BoundOutcome(bound, "torch-bab", outcome.counterexample,
                                reason=outcome.reason or None)
        log.info("torch branch and bound gave up (%s); LP path next", outcome.reason)
    bounds = tighten_bounds(network, spec.lower, spec.upper, crown.layers, solver, deadline)
    per_disjunct = np.maximum(lp_disjunct_bounds(network, spec, bounds, solver, deadline),
                              crown.disjunct_bounds)
    reasons = []
    for j in np.argsort(per_disjunct):
        if per_disjunct[j] > 0:
            continue
        if deadline is not None and time.monotonic() > deadline:
            reasons.append("time limit reached")
            break
        outcome = branch_and_bound(network, spec, spec.disjuncts[j], bounds, solver, deadline)
        log.info("disjunct %d: bound %.4g after %d nodes", j, outcome.bound, outcome.nodes)
        if outcome.counterexample is not None:
            return BoundOutcome(outcome.bound, solver, outcome.counterexample)
        per_disjunct[j] = max(per_disjunct[j], outcome.bound)
        if outcome.reason:
            reasons.append(outcome.reason)
    return BoundOutcome(float(per_disjunct.min()), solver, reason="; ".join(reasons) or None)


def milp_margin(network: Network, spec: Spec, bounds: Bounds, solver: str = "highs",
                time_limit: float | None = None) -> float | None:
    """The exact minimum margin from the big-M MILP (``None`` if not solved to optimality).

    Disjuncts are solved in order of their LP bound; one whose LP bound is already
    above the best MILP value found cannot hold the minimum and is skipped.  This is
    a *value* for comparison tables, resting on the MILP solver's tolerances;
    verdicts never use it (they come from :func:`exact_method`).
    """
    from solvers import SolveOptions, get_solver
    from solvers.solution import Status

    backend = get_solver(solver)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    lp_bounds = lp_disjunct_bounds(network, spec, bounds, None, deadline)
    encoding = encode_milp(network, spec.lower, spec.upper, bounds)
    best = math.inf
    for j in np.argsort(lp_bounds):
        if lp_bounds[j] >= best:
            break
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        objective = disjunct_objective(encoding, spec.disjuncts[j])
        program = objective.program.with_objective(objective.c, objective.c0)
        solution = backend.solve(program, SolveOptions(time_limit=remaining))
        if solution.status is not Status.OPTIMAL or solution.objective is None:
            return None
        best = min(best, solution.objective)
    return float(best)


def milp_method(network: Network, specs: Sequence[Spec], deadline, options: VerifyOptions):
    """MILP counterexample search, then certified branch and bound (module docstring)."""
    from solvers import get_solver
    from solvers.program import ProblemKind

    solver = options.solver or DEFAULT_LP_SOLVER
    backend = get_solver(solver)
    if ProblemKind.MILP not in backend.kinds:
        accepts = ", ".join(sorted(k.value for k in backend.kinds))
        raise UsageError(f"solver {solver!r} cannot take MILP problems (it accepts: {accepts})")
    lp_solver = solver if ProblemKind.LP in backend.kinds else DEFAULT_LP_SOLVER
    outcomes = []
    for spec in specs:
        cex = pgd_attack(network, spec, options.attack, deadline)
        if cex is None:
            cex = _milp_counterexample(network, spec, solver, _halfway(deadline))
        if cex is not None:
            outcomes.append(BoundOutcome(-math.inf, solver, cex))
        else:
            outcomes.append(_exact_one(network, spec, deadline, options, lp_solver))
    return outcomes


def _halfway(deadline: float | None) -> float | None:
    return None if deadline is None else time.monotonic() + (deadline - time.monotonic()) / 2


def _milp_counterexample(network, spec, solver, deadline) -> np.ndarray | None:
    """The MILP optimum of each disjunct, kept only if the float64 check confirms it."""
    from solvers import SolveOptions, get_solver

    crown = bound_specs(network, [spec], "crown")[0]
    if crown.bound > 0:
        return None
    encoding = encode_milp(network, spec.lower, spec.upper, crown.layers)
    inputs = encoding.program.block("input").indices
    for disjunct in spec.disjuncts:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        objective = disjunct_objective(encoding, disjunct)
        program = objective.program.with_objective(objective.c, objective.c0)
        solution = get_solver(solver).solve(program, SolveOptions(time_limit=remaining))
        if solution.x is not None:
            x = np.clip(solution.x[inputs], spec.lower, spec.upper)
            if spec.is_violated_by(x, network.forward(x)):
                return x
    return None
