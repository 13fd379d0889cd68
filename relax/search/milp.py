"""The ``milp`` verification method and exact MILP values.

``milp``: PGD, then the big-M MILP with a MILP-capable solver (its optimal point is a
counterexample candidate, checked in float64), then ``exact`` in the remaining
time.  A MILP solver's own bound rests on its tolerances, so *holds* still comes
only from branch and bound with safe leaf bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from relax.bounds import Bounds, bound_specs
from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.lp.encode import encode_milp
from relax.lp.method import lp_disjunct_bounds
from relax.lp.objectives import disjunct_objective
from relax.lp.runner import DEFAULT_LP_SOLVER
from relax.network import Network
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.search.attack import pgd_attack
from relax.search.exact import _exact_one
from relax.spec import Spec

__all__ = ["milp_method", "milp_margin", "MilpOptions"]


@dataclass(frozen=True)
class MilpOptions(MethodOptions):
    """Options of the ``milp`` method."""

    search_share: float = option(0.5, "fraction of the time left after PGD for the MILP "
                                      "counterexample search (the rest: the exact method)")
    pipeline: Literal["torch", "lp"] = option("torch", "the exact stage's pipeline (see exact)")

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.search_share <= 1:
            raise UsageError(f"milp.search_share must be in [0, 1], got {self.search_share}")


def milp_margin(network: Network, spec: Spec, bounds: Bounds, solver: str = "highs",
                time_limit: float | None = None) -> float | None:
    """The exact minimum margin from the big-M MILP (``None`` if not solved to optimality).

    Disjuncts are solved in order of their LP bound; one whose LP bound is already
    above the best MILP value found cannot hold the minimum and is skipped.  This is
    a *value* for comparison tables, resting on the MILP solver's tolerances;
    verdicts never use it (they come from :func:`exact_method`).
    """
    from solvers import get_solver
    from solvers.solution import Status

    backend = get_solver(solver)
    deadline = Deadline.after(time_limit)
    lp_bounds = lp_disjunct_bounds(network, spec, bounds, None, deadline)
    encoding = encode_milp(network, spec.lower, spec.upper, bounds)
    best = math.inf
    for j in np.argsort(lp_bounds):
        if lp_bounds[j] >= best:
            break
        if deadline.expired:
            return None
        objective = disjunct_objective(encoding, spec.disjuncts[j])
        program = objective.program.with_objective(objective.c, objective.c0)
        solution = backend.solve(program, deadline.solve_options())
        if solution.status is not Status.OPTIMAL or solution.objective is None:
            return None
        best = min(best, solution.objective)
    return float(best)


def milp_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
                options: VerifyOptions) -> list[BoundOutcome]:
    """MILP counterexample search, then certified branch and bound (module docstring)."""
    from solvers import get_solver
    from solvers.program import ProblemKind

    solver = options.solver or DEFAULT_LP_SOLVER
    backend = get_solver(solver)
    if ProblemKind.MILP not in backend.kinds:
        accepts = ", ".join(sorted(k.value for k in backend.kinds))
        raise UsageError(f"solver {solver!r} cannot take MILP problems (it accepts: {accepts})")
    lp_solver = solver if ProblemKind.LP in backend.kinds else DEFAULT_LP_SOLVER
    settings = options.of(MilpOptions)
    outcomes = []
    for spec in specs:
        cex = pgd_attack(network, spec, options.attack, deadline)
        if cex is None:
            cex = _milp_counterexample(network, spec, solver, deadline.share(settings.search_share))
        if cex is not None:
            outcomes.append(BoundOutcome(-math.inf, solver, cex))
        else:
            outcomes.append(_exact_one(network, spec, deadline, options, lp_solver,
                                       settings.pipeline, attack=False))
    return outcomes


def _milp_counterexample(network, spec, solver, deadline: Deadline = NEVER) -> np.ndarray | None:
    """The MILP optimum of each disjunct, kept only if the float64 check confirms it."""
    from solvers import get_solver

    crown = bound_specs(network, [spec], "crown")[0]
    if crown.bound > 0:
        return None
    encoding = encode_milp(network, spec.lower, spec.upper, crown.layers)
    inputs = encoding.program.block("input").indices
    for disjunct in spec.disjuncts:
        if deadline.expired:
            break
        objective = disjunct_objective(encoding, disjunct)
        program = objective.program.with_objective(objective.c, objective.c0)
        solution = get_solver(solver).solve(program, deadline.solve_options())
        if solution.x is not None:
            x = np.clip(solution.x[inputs], spec.lower, spec.upper)
            if spec.is_violated_by(x, network.forward(x)):
                return x
    return None
