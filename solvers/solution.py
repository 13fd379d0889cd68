"""The one answer type of every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

__all__ = ["Status", "SolveStats", "Solution"]


class Status(str, Enum):
    """Solver outcome, the same for every backend (each backend maps its own codes)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    ITERATION_LIMIT = "iteration_limit"
    INACCURATE = "inaccurate"   # finished but with a loose or suspect solution
    ERROR = "error"             # the solver failed


@dataclass(frozen=True)
class SolveStats:
    seconds: float = 0.0
    iterations: int | None = None
    peak_memory_bytes: int | None = None
    solver_seconds: float | None = None  # the backend's own solve time, when it reports it


@dataclass(frozen=True, eq=False)
class Solution:
    """``objective`` is the solver's value (of ``c^T x + c0``); ``bound`` is a *sound*
    lower bound on the optimum (``-inf`` when none could be certified), recomputed
    from the dual where the problem allows; ``x`` primal values; ``row_duals`` and
    ``column_duals`` in the convention ``c - A^T y - z = 0`` (``y = row_duals``,
    ``z = column_duals``) for a minimisation; ``warm_start`` is opaque and goes
    back to the same backend.  ``dual_objective`` is the solver's own (unverified)
    dual objective or dual bound when it reports one, for diagnostics only: it is
    not a sound bound (``bound`` is)."""

    status: Status
    objective: float | None
    bound: float
    x: np.ndarray | None = None
    row_duals: np.ndarray | None = None
    column_duals: np.ndarray | None = None
    stats: SolveStats = field(default_factory=SolveStats)
    warm_start: Any = None
    solver: str = ""
    message: str = ""
    dual_objective: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OPTIMAL
