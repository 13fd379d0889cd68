"""The HiGHS backend: one fresh ``Highs`` object per :meth:`HighsBackend.solve`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from solvers.backend import Backend, SolveOptions
from solvers.backends.highs.answer import _read_solution
from solvers.backends.highs.basis import HighsWarmStart
from solvers.backends.highs.runtime import _as_linear, _new_highs, _pass_problem, _run
from solvers.program import LinearProgram, ProblemKind
from solvers.solution import Solution

if TYPE_CHECKING:
    from solvers.backends.highs.session import HighsSession

log = logging.getLogger(__name__)


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
        from solvers.backends.highs.session import (
            HighsSession,  # lazy: session imports us
        )

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
