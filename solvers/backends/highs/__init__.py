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

Modules: :mod:`.runtime` (the process-wide start-up and thread pool, building and
running one model), :mod:`.basis` (:class:`HighsWarmStart`), :mod:`.answer` (status
mapping and sound bounds: a run's state as a :class:`~solvers.solution.Solution`),
:mod:`.backend` (:class:`HighsBackend`), :mod:`.session` (:class:`HighsSession`).
"""

from solvers.backends.highs.answer import MILP_BOUND_MARGIN
from solvers.backends.highs.backend import HighsBackend
from solvers.backends.highs.basis import HighsWarmStart
from solvers.backends.highs.session import HighsSession

__all__ = ["HighsBackend", "HighsSession", "HighsWarmStart", "MILP_BOUND_MARGIN"]
