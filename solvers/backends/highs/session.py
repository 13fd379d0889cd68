"""Hot starts: one ``Highs`` object kept alive for many solves of the same LP."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

import numpy as np

from solvers.backend import SolveOptions, error_solution
from solvers.backends.highs.answer import _read_solution
from solvers.backends.highs.backend import HighsBackend
from solvers.backends.highs.runtime import (
    _as_linear,
    _check,
    _new_highs,
    _pass_problem,
    _run,
    _set_option,
)
from solvers.errors import InvalidProblem, SolverUnavailable
from solvers.program import LinearProgram, ProblemKind
from solvers.solution import Solution

log = logging.getLogger(__name__)


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
