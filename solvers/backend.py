"""The backend protocol: one class per solver, with capability attributes.

A backend is a class (cvxpy-like) with

- ``name``: the registry name (``"highs"``, ``"cvxpy-scs"``, ...);
- ``kinds``: the :class:`~solvers.program.ProblemKind` values it accepts;
- :meth:`Backend.is_available`: ``(True, "")`` or ``(False, reason)``, never raising;
- :meth:`Backend.solve`: ``problem -> Solution``;

and optional abilities with defaults, so that callers ask a backend what it can do
instead of naming it:

- :meth:`Backend.session`: a :class:`Session` for many solves of one LP with changed
  objectives or variable bounds (hot starts), or ``None`` (default: no session; the
  caller re-solves complete problems);
- :meth:`Backend.solve_many`: a batch of problems (default: one by one).

:meth:`Backend.solve` is a template method: it checks availability (raising
:class:`~solvers.errors.SolverUnavailable` with the reason) and the problem kind
(raising :class:`~solvers.errors.UnsupportedProblem`), then calls the subclass's
:meth:`Backend._solve`.  Any exception from inside the solver library becomes a
``Solution(status=ERROR, bound=-inf, message=...)``; only the solver layer's own
errors (:class:`~solvers.errors.SolverError`) propagate.  The wall time of the
whole call is written into ``Solution.stats.seconds``.

Backends import their library lazily (inside methods), so importing
:mod:`solvers` never imports highspy, cvxpy or MOSEK.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Sequence, Union

from solvers.errors import SolverError, SolverUnavailable, UnsupportedProblem
from solvers.program import ConicProgram, LayeredReluProgram, LinearProgram, ProblemKind
from solvers.solution import Solution, SolveStats, Status

__all__ = ["Backend", "Session", "SolveOptions", "Problem", "error_solution", "torch_available"]

log = logging.getLogger(__name__)

Problem = Union[LinearProgram, ConicProgram, LayeredReluProgram]


@dataclass(frozen=True)
class SolveOptions:
    """Solver-neutral options.

    ``time_limit`` in seconds (``None``: no limit); ``tolerance`` a feasibility /
    optimality tolerance mapped by each backend onto its own parameters (``None``:
    the solver's default); ``threads`` (``None``: the solver's default); ``verbose``
    turns the solver's log on; ``extra`` is a tuple of ``(key, value)`` pairs passed
    to the solver unchanged (HiGHS option names, cvxpy ``solve`` keyword arguments).
    """

    time_limit: float | None = None
    tolerance: float | None = None
    threads: int | None = None
    verbose: bool = False
    extra: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time_limit must be positive, got {self.time_limit}")
        if self.tolerance is not None and not self.tolerance > 0:
            raise ValueError(f"tolerance must be positive, got {self.tolerance}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        object.__setattr__(self, "extra", tuple((str(k), v) for k, v in dict(self.extra).items()))

    @property
    def extra_dict(self) -> dict[str, Any]:
        return dict(self.extra)


class Session(Protocol):
    """One loaded LP solved many times (see :meth:`Backend.session`); every :meth:`solve`
    returns a :class:`Solution` with a sound bound for the current costs and bounds."""

    def change_objective(self, c, c0: float = 0.0) -> None: ...

    def change_bounds(self, lower, upper, indices=None) -> None: ...

    def set_time_limit(self, seconds: float | None) -> None: ...

    def solve(self) -> Solution: ...


def torch_available() -> tuple[bool, str]:
    """``Backend.is_available`` of a backend written in torch."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return False, f"torch is not installed ({exc})"
    return True, ""


def error_solution(solver: str, message: str, seconds: float = 0.0) -> Solution:
    """The answer for a solve that failed inside the library: no bound."""
    return Solution(Status.ERROR, None, -math.inf, stats=SolveStats(seconds=seconds),
                    solver=solver, message=message)


class Backend:
    """Base class of all solver backends (see the module docstring)."""

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[ProblemKind]] = frozenset()

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """``(True, "")`` when the library (and licence) is usable, else ``(False, reason)``."""
        return True, ""

    def accepts(self, problem: Problem) -> bool:
        return problem.kind in self.kinds

    def solve(self, problem: Problem, options: SolveOptions | None = None,
              warm_start: Any = None) -> Solution:
        """Solve ``problem``; see the module docstring for the error contract."""
        available, reason = self.is_available()
        if not available:
            raise SolverUnavailable(f"solver {self.name!r} is unavailable: {reason}")
        if not self.accepts(problem):
            accepted = ", ".join(sorted(k.value for k in self.kinds)) or "nothing"
            raise UnsupportedProblem(
                f"solver {self.name!r} does not accept {problem.kind.value} problems "
                f"(it accepts: {accepted})")
        options = options or SolveOptions()
        start = time.perf_counter()
        try:
            solution = self._solve(problem, options, warm_start)
        except SolverError:
            raise
        except Exception as exc:  # the library failed: report, do not raise
            log.warning("solver %s failed: %s", self.name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            return error_solution(self.name, f"{type(exc).__name__}: {exc}",
                                  time.perf_counter() - start)
        stats = dataclasses.replace(solution.stats, seconds=time.perf_counter() - start)
        return dataclasses.replace(solution, stats=stats, solver=solution.solver or self.name)

    def _solve(self, problem: Problem, options: SolveOptions, warm_start: Any) -> Solution:
        raise NotImplementedError

    def session(self, program: LinearProgram, options: SolveOptions | None = None) -> Session | None:
        """A :class:`Session` for many solves of ``program``, or ``None`` when this backend
        has none (the default; callers then solve complete problems)."""
        return None

    def solve_many(self, problems: Sequence[Problem], options: SolveOptions | None = None
                   ) -> list[Solution]:
        """Solve a batch (default: one after the other; a backend may batch them)."""
        return [self.solve(problem, options) for problem in problems]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
