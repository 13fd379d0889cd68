"""HiGHS through its own Python API (``highspy``), for LPs and MILPs.

The problem goes in with one ``passModel`` call from the CSC arrays of ``A`` and
the integrality mask (numpy arrays, no Python loops).

Duals.  For a minimisation HiGHS reports ``row_dual`` and ``col_dual`` with
``c - A^T row_dual - col_dual = 0`` -- the convention of :class:`~solvers.solution.Solution`
(checked numerically in ``tests/test_solvers.py``), so they pass through unchanged.

Bounds.  For an LP, ``Solution.bound`` is :func:`~solvers.safe_bound.lp_safe_bound`
at HiGHS's row duals: valid whatever their accuracy.  For a MILP no dual vector
certifies the branch-and-bound result; ``Solution.dual_objective`` carries HiGHS's
``mip_dual_bound`` and ``Solution.bound`` is that value minus the margin
``MILP_BOUND_MARGIN * max(mip_feasibility_tolerance, dual_feasibility_tolerance)
* (1 + |mip_dual_bound|)`` -- it absorbs the tolerance-level errors of the node
LPs but it is *not* independently checkable (the message says so); callers that
need certainty must check MILP claims themselves.  An infeasible answer gives
``bound = +inf`` only when HiGHS itself declares the model infeasible.

Warm start.  ``Solution.warm_start`` is a :class:`HighsWarmStart` (the final
basis: column and row statuses).  Passing it to :meth:`HighsBackend.solve` for a
problem with the same shape installs it with ``setBasis`` before the run (with a
valid basis HiGHS skips presolve and starts the simplex from it); a basis of the
wrong shape is ignored with a log message.  :class:`HighsSession` keeps one
``Highs`` object alive for repeated solves with changed costs or bounds.
"""

from __future__ import annotations

import logging
import os
import sys
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from solvers.backend import Backend, SolveOptions, error_solution
from solvers.errors import InvalidProblem, SolverUnavailable, UnsupportedProblem
from solvers.program import ConicProgram, LinearProgram, ProblemKind
from solvers.safe_bound import lp_safe_bound
from solvers.solution import Solution, SolveStats, Status

__all__ = ["HighsBackend", "HighsSession", "HighsWarmStart", "MILP_BOUND_MARGIN"]

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


def _highspy():
    """The ``highspy`` module, after its one-time start-up (see :func:`_start_quietly`)."""
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - highspy is a dependency
        raise SolverUnavailable(f"highspy is not installed ({exc})") from exc
    _start_quietly(highspy)
    return highspy


_STARTED: dict[str, Any] = {}


def _start_quietly(highspy) -> None:
    """Create the process's first ``Highs`` object with file descriptor 1 sent to
    ``/dev/null``: HiGHS's C++ core prints its copyright banner on the process's standard
    output when the first instance is built, before any option can switch it off, and a
    library must never write to its caller's stdout (``relax verify --json`` prints one
    JSON object there)."""
    if _STARTED:
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            _STARTED["first"] = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


#: HiGHS's thread pool is global to the process and fixed by the first ``run``; setting
#: ``threads`` to another value afterwards makes every later ``run`` fail ("Not Set").
#: So the first request (or HiGHS's default) wins for the whole process.
_THREADS: dict[str, int] = {}


@dataclass(frozen=True, eq=False)
class HighsWarmStart:
    """A HiGHS basis: ``HighsBasisStatus`` codes per column and per row (int8 arrays)."""

    col_status: np.ndarray
    row_status: np.ndarray

    @classmethod
    def from_basis(cls, basis) -> "HighsWarmStart | None":
        if not basis.valid:
            return None
        return cls(np.array([int(s) for s in basis.col_status], np.int8),
                   np.array([int(s) for s in basis.row_status], np.int8))

    def to_basis(self):
        highspy = _highspy()
        basis = highspy.HighsBasis()
        status = highspy.HighsBasisStatus
        basis.col_status = [status(int(s)) for s in self.col_status]
        basis.row_status = [status(int(s)) for s in self.row_status]
        basis.valid = True
        return basis

    def fits(self, problem: LinearProgram) -> bool:
        return (self.col_status.size, self.row_status.size) == (problem.num_variables,
                                                                 problem.num_rows)


# -- building the model ----------------------------------------------------------------

def _check(status, what: str) -> None:
    if status.name == "kError":
        raise RuntimeError(f"HiGHS {what} failed")


def _pass_problem(h, problem: LinearProgram) -> None:
    """One bulk ``passModel`` from the CSC arrays of ``A`` (the positional overload,
    which takes numpy arrays without per-element conversion)."""
    highspy = _highspy()
    A = sp.csc_matrix(problem.A)
    A.sort_indices()
    integrality = problem.integer.astype(np.int32) * int(highspy.HighsVarType.kInteger)
    status = h.passModel(problem.num_variables, problem.num_rows, A.nnz,
                         int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize),
                         problem.c0, problem.c, problem.lower, problem.upper,
                         problem.row_lower, problem.row_upper, A.indptr.astype(np.int32),
                         A.indices.astype(np.int32), A.data.astype(np.float64), integrality)
    _check(status, "passModel")


def _set_option(h, key: str, value: Any) -> None:
    if h.setOptionValue(key, value).name == "kError":
        raise ValueError(f"HiGHS rejected option {key}={value!r}")


def _apply_options(h, options: SolveOptions, is_mip: bool) -> None:
    """Map :class:`SolveOptions` onto HiGHS options (``extra`` last, so it wins)."""
    _set_option(h, "output_flag", bool(options.verbose))
    if options.time_limit is not None:
        _set_option(h, "time_limit", float(options.time_limit))
    if options.tolerance is not None:
        tol = float(options.tolerance)
        for key in ("primal_feasibility_tolerance", "dual_feasibility_tolerance",
                    "ipm_optimality_tolerance"):
            _set_option(h, key, tol)
        if is_mip:
            _set_option(h, "mip_feasibility_tolerance", tol)
    if options.threads is not None:
        _request_threads(h, int(options.threads))
    for key, value in options.extra:
        _set_option(h, key, value)


def _request_threads(h, threads: int) -> None:
    """Set ``threads`` only while HiGHS's global pool has not started (see :data:`_THREADS`)."""
    fixed = _THREADS.get("pool")
    if fixed is None:
        _set_option(h, "threads", threads)
    elif fixed != threads:
        log.debug("HiGHS keeps its process-wide pool of %d threads (asked for %d)", fixed, threads)


def _option(h, key: str) -> Any:
    value = h.getOptionValue(key)
    return value[1] if isinstance(value, tuple) else value


def _run(h) -> float:
    """``h.run()``; an 'unbounded or infeasible' verdict of presolve is re-checked
    without presolve.  Returns the seconds spent inside ``run``."""
    start = time.perf_counter()
    _THREADS.setdefault("pool", int(_option(h, "threads")))
    h.run()
    if h.getModelStatus().name == "kUnboundedOrInfeasible" and _option(h, "presolve") != "off":
        presolve = _option(h, "presolve")
        _set_option(h, "presolve", "off")
        try:
            h.run()
        finally:
            _set_option(h, "presolve", presolve)
    return time.perf_counter() - start


# -- reading the answer ----------------------------------------------------------------

def _iterations(info) -> int | None:
    counts = [info.simplex_iteration_count, info.ipm_iteration_count, info.pdlp_iteration_count]
    counts = [int(c) for c in counts if c is not None and c > 0]
    return sum(counts) if counts else 0


def _milp_bound(h, status: Status) -> tuple[float, float | None, str]:
    """``(bound, dual_objective, message)`` of a MILP (see the module docstring)."""
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


def _as_linear(problem) -> LinearProgram:
    if isinstance(problem, ConicProgram):
        if problem.psd:
            raise UnsupportedProblem("HiGHS does not take PSD constraints")
        return problem.linear
    if not isinstance(problem, LinearProgram):
        raise UnsupportedProblem(f"HiGHS does not take {type(problem).__name__}")
    return problem


def _new_highs(options: SolveOptions, is_mip: bool):
    h = _highspy().Highs()
    h.setOptionValue("output_flag", False)
    _apply_options(h, options, is_mip)
    return h


# -- the backend ---------------------------------------------------------------------------

class HighsBackend(Backend):
    """HiGHS (``highspy``): LP and MILP, basis warm start, sound LP bounds."""

    name = "highs"
    kinds = frozenset({ProblemKind.LP, ProblemKind.MILP})

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import highspy  # noqa: F401
        except ImportError as exc:
            return False, f"highspy is not installed ({exc})"
        return True, ""

    def _solve(self, problem, options: SolveOptions, warm_start: Any) -> Solution:
        lp = _as_linear(problem)
        h = _new_highs(options, lp.kind is ProblemKind.MILP)
        _pass_problem(h, lp)
        self._install_warm_start(h, lp, warm_start)
        seconds = _run(h)
        return _read_solution(h, lp, seconds, self.name)

    def session(self, program: LinearProgram, options: SolveOptions | None = None) -> HighsSession:
        """A :class:`HighsSession` (hot starts) for LP ``program``."""
        return HighsSession(options, program)

    @staticmethod
    def _install_warm_start(h, lp: LinearProgram, warm_start: Any) -> None:
        if warm_start is None:
            return
        if not isinstance(warm_start, HighsWarmStart) or not warm_start.fits(lp):
            log.info("HiGHS: ignoring a warm start that does not fit the problem")
            return
        if h.setBasis(warm_start.to_basis()).name == "kError":
            log.info("HiGHS: the warm-start basis was rejected")


class HighsSession:
    """One ``Highs`` object for many solves of the same LP with changed costs/bounds.

    ``load`` passes the model once; ``change_objective`` and ``change_bounds`` use the
    bulk ``changeColsCost`` / ``changeColsBounds`` calls, so HiGHS keeps its basis and
    the next :meth:`solve` is a hot start.  Each :meth:`solve` returns a full
    :class:`Solution` with a sound bound for the *current* costs and bounds.
    """

    def __init__(self, options: SolveOptions | None = None,
                 problem: LinearProgram | None = None) -> None:
        available, reason = HighsBackend.is_available()
        if not available:
            raise SolverUnavailable(reason)
        self._options = options or SolveOptions()
        self._h = None
        self._problem: LinearProgram | None = None
        if problem is not None:
            self.load(problem)

    @property
    def problem(self) -> LinearProgram:
        """The program as currently modified."""
        if self._problem is None:
            raise InvalidProblem("no problem loaded; call load() first")
        return self._problem

    def load(self, problem: LinearProgram) -> None:
        problem = _as_linear(problem)
        self._h = _new_highs(self._options, problem.kind is ProblemKind.MILP)
        _pass_problem(self._h, problem)
        self._problem = problem

    def change_objective(self, c, c0: float = 0.0) -> None:
        """Replace the whole objective by ``c^T x + c0``."""
        problem = self.problem.with_objective(c, c0)
        n = problem.num_variables
        _check(self._h.changeColsCost(n, np.arange(n, dtype=np.int32), problem.c), "changeColsCost")
        _check(self._h.changeObjectiveOffset(problem.c0), "changeObjectiveOffset")
        self._problem = problem

    def change_bounds(self, lower, upper, indices=None) -> None:
        """Set ``lower <= x <= upper`` (all variables, or just ``x[indices]``)."""
        old = self.problem
        if indices is None:
            indices = np.arange(old.num_variables)
            new_lower, new_upper = lower, upper
        else:
            indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            new_lower, new_upper = np.array(old.lower), np.array(old.upper)
            new_lower[indices], new_upper[indices] = lower, upper
        problem = old.with_bounds(new_lower, new_upper)
        idx = indices.astype(np.int32)
        _check(self._h.changeColsBounds(idx.size, idx, problem.lower[idx], problem.upper[idx]),
               "changeColsBounds")
        self._problem = problem

    def set_time_limit(self, seconds: float | None) -> None:
        """``seconds`` for the next solve (``None``: no limit).  HiGHS compares its
        ``time_limit`` with the run time accumulated over *all* solves of this object
        (highspy 1.16), so the limit set is that run time plus ``seconds``."""
        limit = math.inf if seconds is None else self._h.getRunTime() + float(seconds)
        _set_option(self._h, "time_limit", limit)

    def solve(self) -> Solution:
        problem = self.problem
        start = time.perf_counter()
        try:
            seconds = _run(self._h)
            solution = _read_solution(self._h, problem, seconds, HighsBackend.name)
        except Exception as exc:
            log.warning("HiGHS session solve failed: %s", exc)
            return error_solution(HighsBackend.name, f"{type(exc).__name__}: {exc}",
                                  time.perf_counter() - start)
        return replace(solution, stats=replace(solution.stats,
                                               seconds=time.perf_counter() - start))
