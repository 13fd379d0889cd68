"""Solve one LP many times with different objectives or variable bounds.

LP bound tightening asks the same program for hundreds of minima, and branch and
bound re-solves it with changed variable bounds.  A backend that offers a
session (:meth:`solvers.backend.Backend.session`, e.g. HiGHS) keeps the model
loaded and every solve is a hot start from the previous basis; any other LP
backend gets a fresh, complete problem each time.  Every returned bound is the backend's *safe*
bound (recomputed from the dual vector), never the raw objective.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from solvers.backend import SolveOptions
from solvers.program import LinearProgram, ProblemKind
from solvers.solution import Solution, Status

__all__ = ["LpRunner", "DEFAULT_LP_SOLVER"]

log = logging.getLogger(__name__)

DEFAULT_LP_SOLVER = "highs"


class LpRunner:
    """Minimise ``c^T v + c0`` over a fixed constraint set, repeatedly; every solve gets
    ``options`` with its time limit cut to what is left before ``deadline``."""

    def __init__(self, program: LinearProgram, solver: str | None = None,
                 options: SolveOptions | None = None, deadline: Deadline = NEVER):
        self.name = solver or DEFAULT_LP_SOLVER
        self.options = options or SolveOptions()
        self.deadline = deadline
        self.program = program.relaxed() if program.kind is ProblemKind.MILP else program
        from solvers.registry import get_solver

        backend = get_solver(self.name)
        if ProblemKind.LP not in backend.kinds:
            raise UsageError(f"solver {self.name!r} cannot solve LPs")
        self._backend = backend
        self._session = backend.session(self.program, self.options)

    def set_bounds(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.program = self.program.with_bounds(lower, upper)
        if self._session is not None:
            self._session.change_bounds(lower, upper)

    def minimize(self, c: np.ndarray, c0: float = 0.0) -> Solution:
        """Solve with objective ``c^T v + c0``; ``bound`` of the result is sound."""
        options = self.deadline.solve_options(self.options)
        if self._session is not None:
            self._session.change_objective(c, c0)
            self._session.set_time_limit(options.time_limit)
            solution = self._session.solve()
        else:
            solution = self._backend.solve(self.program.with_objective(c, c0), options)
        if solution.status is Status.ERROR:
            log.warning("%s failed on an LP: %s", self.name, solution.message)
        return solution

    def lower_bound(self, c: np.ndarray, c0: float = 0.0) -> float:
        """A sound lower bound on ``min c^T v + c0`` (``-inf`` if the solve failed)."""
        bound = self.minimize(c, c0).bound
        return bound if not math.isnan(bound) else -math.inf
