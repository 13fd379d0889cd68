"""Reading a HiGHS run: status mapping and sound bounds (see :mod:`solvers.backends.highs`,
"Bounds")."""

from __future__ import annotations

import logging
import math

import numpy as np

from solvers.backends.highs.basis import HighsWarmStart
from solvers.backends.highs.runtime import _option
from solvers.program import LinearProgram, ProblemKind
from solvers.safe_bound import lp_safe_bound
from solvers.solution import Solution, SolveStats, Status

log = logging.getLogger(__name__)

MILP_BOUND_MARGIN = 10.0

_STATUS = {  # HighsModelStatus name -> Status
    "kOptimal": Status.OPTIMAL,
    "kInfeasible": Status.INFEASIBLE,
    "kUnbounded": Status.UNBOUNDED,
    "kUnboundedOrInfeasible": Status.INACCURATE,
    "kTimeLimit": Status.TIME_LIMIT,
    "kIterationLimit": Status.ITERATION_LIMIT,
    "kSolutionLimit": Status.ITERATION_LIMIT,
    "kObjectiveBound": Status.INACCURATE,
    "kObjectiveTarget": Status.INACCURATE,
    "kInterrupt": Status.TIME_LIMIT,
    "kHighsInterrupt": Status.TIME_LIMIT,
    "kUnknown": Status.INACCURATE,
    "kModelEmpty": Status.OPTIMAL,
}


def _iterations(info) -> int | None:
    counts = [info.simplex_iteration_count, info.ipm_iteration_count, info.pdlp_iteration_count]
    counts = [int(c) for c in counts if c is not None and c > 0]
    return sum(counts) if counts else 0


def _milp_bound(h, status: Status) -> tuple[float, float | None, str]:
    """``(bound, dual_objective, message)`` of a MILP (see the package docstring)."""
    if status is Status.INFEASIBLE:
        return math.inf, math.inf, ""
    if status is Status.UNBOUNDED:
        return -math.inf, -math.inf, ""
    dual_bound = float(h.getInfo().mip_dual_bound)
    if not math.isfinite(dual_bound) or abs(dual_bound) >= 1e30:
        return -math.inf, None, ""
    tol = max(_option(h, "mip_feasibility_tolerance"), _option(h, "dual_feasibility_tolerance"))
    margin = MILP_BOUND_MARGIN * tol * (1.0 + abs(dual_bound))
    message = (f"MILP bound = HiGHS mip_dual_bound {dual_bound!r} minus margin {margin:.3g}; "
               "not independently certified")
    return dual_bound - margin, dual_bound, message


def _infeasibility_bound(h, problem: LinearProgram) -> float:
    """``+inf`` only when HiGHS's dual (Farkas) ray is checked to prove infeasibility.

    For a ray ``y``, :func:`lp_safe_bound` of the zero-objective problem is a lower
    bound on ``0`` over the feasible set; a positive value means the set is empty.
    Both signs are tried (any ``y`` gives a valid bound, so this stays sound).
    Otherwise the bound is ``-inf``: an unchecked infeasibility claim proves nothing.
    """
    try:
        _, has_ray, ray = h.getDualRay()
    except Exception:  # noqa: BLE001 - an old highspy without rays
        has_ray = False
    if has_ray:
        zero = problem.with_objective(np.zeros(problem.num_variables), 0.0)
        ray = np.asarray(ray, dtype=np.float64)
        if max(lp_safe_bound(zero, ray), lp_safe_bound(zero, -ray)) > 0:
            return math.inf
    log.info("HiGHS reported infeasibility without a checkable dual ray")
    return -math.inf


def _read_solution(h, problem: LinearProgram, run_seconds: float, name: str) -> Solution:
    """Turn the state of ``h`` after a run into a :class:`Solution`."""
    model_status = h.getModelStatus()
    status = _STATUS.get(model_status.name, Status.ERROR)
    info, sol = h.getInfo(), h.getSolution()
    x = np.array(sol.col_value) if sol.value_valid else None
    y = np.array(sol.row_dual) if sol.dual_valid else None
    z = np.array(sol.col_dual) if sol.dual_valid else None
    objective = float(info.objective_function_value) if x is not None else None
    message = h.modelStatusToString(model_status)
    dual_objective = None
    if problem.kind is ProblemKind.MILP:
        bound, dual_objective, note = _milp_bound(h, status)
        message = f"{message}; {note}" if note else message
    elif status is Status.INFEASIBLE:
        bound = _infeasibility_bound(h, problem)
    elif status in (Status.UNBOUNDED, Status.ERROR):
        bound = -math.inf
    else:
        bound = lp_safe_bound(problem, y)
    if status is Status.INFEASIBLE or status is Status.UNBOUNDED:
        objective = math.inf if status is Status.INFEASIBLE else -math.inf
    warm = HighsWarmStart.from_basis(h.getBasis()) if problem.kind is ProblemKind.LP else None
    stats = SolveStats(iterations=_iterations(info), solver_seconds=run_seconds)
    return Solution(status, objective, float(bound), x, y, z, stats, warm, name, message,
                    dual_objective=dual_objective)
