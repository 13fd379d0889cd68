"""Backends that go through cvxpy: one class per cvxpy solver, made by a factory.

:func:`make_cvxpy_backend` creates a :class:`CvxpyBackend` subclass named
``cvxpy-<solver in lower case>`` (``cvxpy-scs``, ``cvxpy-clarabel``,
``cvxpy-mosek``, ``cvxpy-highs``, and generically any other solver that
``cvxpy.installed_solvers()`` reports, see :func:`installed_cvxpy_backends`).
Its ``kinds`` come from cvxpy's capabilities (:func:`cvxpy_kinds`): LP for any
solver taking ``Zero`` and ``NonNeg`` cones (or a QP solver), MILP for cvxpy's
mixed-integer solvers, SDP for solvers taking a PSD cone.

The model is built vectorised: one ``cp.Variable(n)`` and ``A`` as a scipy sparse
matrix, with the rows split into three blocks ``A_eq x == b``, ``A_lo x >= row_lower``
(ranged rows included) and ``A_up x <= row_upper``, and the finite variable bounds as
``x[idx] >= lower[idx]``, ``x[idx] <= upper[idx]`` (``x[idx] == lower[idx]`` when fixed).

PSD constraints.  For each :class:`~solvers.program.PsdConstraint`
``S(x) = sum_j x_j F_j - F_0`` we form ``M = reshape(G x - vec(F_0), (size, size))``
(row-major, ``G`` the sparse coefficient matrix) and constrain its symmetric part
``(M + M^T) / 2 >> 0`` -- equal to ``M`` since the ``F_j`` are symmetric, and
symbolically symmetric so cvxpy accepts it without an auxiliary variable.

Duals.  cvxpy's dual values are converted to the convention ``c - A^T y - z = 0``:
for ``A_lo x >= b`` they are ``y`` itself, for ``A_up x <= b`` and ``A_eq x == b``
they are ``-y`` (checked numerically in the tests); the PSD duals ``Z_k`` enter the
Lagrangian as ``c^T x - <Z_k, S_k(x)>``.

Bounds.  LP: :func:`~solvers.safe_bound.lp_safe_bound` at the row duals.  SDP:
:func:`~solvers.safe_bound.conic_safe_bound` at the row and PSD duals (``-inf``
when a variable with non-zero reduced cost has an infinite bound); the solver's
raw dual objective, when it reports one, goes to ``Solution.dual_objective``.
MILP: cvxpy exposes no dual bound, so ``bound = -inf`` (use the ``highs``
backend for a MILP bound).  ``bound = +inf`` only on status INFEASIBLE.

cvxpy keeps no state between our calls, so ``warm_start`` is ignored here.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import scipy.sparse as sp

from solvers.backend import Backend, SolveOptions
from solvers.backends.cvxpy_options import OPTION_MAPPERS, merge_extra, no_options
from solvers.program import ConicProgram, LinearProgram, ProblemKind
from solvers.safe_bound import conic_safe_bound, lp_safe_bound
from solvers.solution import Solution, SolveStats, Status

__all__ = ["CvxpyBackend", "make_cvxpy_backend", "cvxpy_kinds", "installed_cvxpy_backends",
           "KNOWN_CVXPY_SOLVERS", "CvxpyScs", "CvxpyClarabel", "CvxpyMosek", "CvxpyHighs"]

log = logging.getLogger(__name__)

_LP, _MILP, _SDP = ProblemKind.LP, ProblemKind.MILP, ProblemKind.SDP

KNOWN_CVXPY_SOLVERS: dict[str, frozenset[ProblemKind]] = {
    "SCS": frozenset({_LP, _SDP}),
    "CLARABEL": frozenset({_LP, _SDP}),
    "MOSEK": frozenset({_LP, _MILP, _SDP}),
    "HIGHS": frozenset({_LP, _MILP}),
}

_STATUS = {
    "optimal": Status.OPTIMAL,
    "optimal_inaccurate": Status.INACCURATE,
    "infeasible": Status.INFEASIBLE,
    "infeasible_inaccurate": Status.INACCURATE,
    "unbounded": Status.UNBOUNDED,
    "unbounded_inaccurate": Status.INACCURATE,
    "infeasible_or_unbounded": Status.INACCURATE,
    "user_limit": Status.TIME_LIMIT,   # cvxpy's code for time and iteration limits
    "solver_error": Status.ERROR,
}


def cvxpy_kinds(cvxpy_name: str) -> frozenset[ProblemKind]:
    """The problem kinds cvxpy's solver ``cvxpy_name`` accepts, from its capabilities."""
    from cvxpy.reductions.solvers import defines

    kinds: set[ProblemKind] = set()
    conic = defines.SOLVER_MAP_CONIC.get(cvxpy_name)
    if conic is not None:
        cones = {c.__name__ for c in conic.SUPPORTED_CONSTRAINTS}
        if {"Zero", "NonNeg"} <= cones:
            kinds.add(_LP)
        if cones & {"PSD", "SvecPSD"}:
            kinds.add(_SDP)
    if cvxpy_name in defines.SOLVER_MAP_QP:
        kinds.add(_LP)
    if cvxpy_name in defines.MI_SOLVERS and _LP in kinds:
        kinds.add(_MILP)
    return frozenset(kinds)


# -- the model -------------------------------------------------------------------------------

@dataclass
class _Model:
    """The cvxpy problem plus the constraint handles needed to read the duals back."""

    problem: Any
    x: Any
    rows: list[tuple[np.ndarray, Any, float]]     # (row indices, constraint, sign into y)
    columns: list[tuple[np.ndarray, Any, float]]  # (column indices, constraint, sign into z)
    psd: list[Any]


def _variables(cp, integer: np.ndarray):
    """The vector ``x`` as a cvxpy expression.

    cvxpy's per-entry ``integer=[indices]`` attribute is handled inconsistently
    across its solver interfaces, so a MILP gets two variables, ``x_int``
    (``integer=True``) and ``x_cont``, and ``x = S_int x_int + S_cont x_cont`` with
    sparse 0/1 selection matrices."""
    n = integer.size
    if not integer.any() or integer.all():
        return cp.Variable(n, integer=bool(integer.any()))
    parts = []
    for mask, is_integer in ((integer, True), (~integer, False)):
        idx = np.flatnonzero(mask)
        select = sp.csr_matrix((np.ones(idx.size), (idx, np.arange(idx.size))), shape=(n, idx.size))
        parts.append(select @ cp.Variable(idx.size, integer=is_integer))
    return parts[0] + parts[1]


def _constraint_blocks(expression_of, specs) -> list:
    """``(indices, constraint, sign)`` for each non-empty ``(mask, sign, values, relation)``."""
    relations = {"==": lambda e, b: e == b, ">=": lambda e, b: e >= b,
                 "<=": lambda e, b: e <= b}
    blocks = []
    for mask, sign, values, relation in specs:
        idx = np.flatnonzero(mask)
        if idx.size:
            blocks.append((idx, relations[relation](expression_of(idx), values[idx]), sign))
    return blocks


def _row_constraints(lp: LinearProgram, x) -> list:
    """``A_eq x == b`` (sign -1 into y), ``A_lo x >= row_lower`` (+1), ``A_up x <= row_upper`` (-1)."""
    rl, ru = lp.row_lower, lp.row_upper
    eq = np.isfinite(rl) & (rl == ru)
    return _constraint_blocks(lambda idx: lp.A[idx] @ x, (
        (eq, -1.0, rl, "=="), (np.isfinite(rl) & ~eq, 1.0, rl, ">="),
        (np.isfinite(ru) & ~eq, -1.0, ru, "<=")))


def _column_constraints(lp: LinearProgram, x) -> list:
    """The finite variable bounds, with the signs that turn their duals into ``z``."""
    l, u = lp.lower, lp.upper
    fixed = np.isfinite(l) & (l == u)
    return _constraint_blocks(lambda idx: x[idx], (
        (fixed, -1.0, l, "=="), (np.isfinite(l) & ~fixed, 1.0, l, ">="),
        (np.isfinite(u) & ~fixed, -1.0, u, "<=")))


def _psd_constraints(cp, problem: ConicProgram, x) -> list:
    constraints = []
    for cone in problem.psd:
        s = cone.size
        G = sp.csr_matrix(cone.coefficients)
        M = cp.reshape(G @ x - np.asarray(cone.constant, np.float64).reshape(-1), (s, s),
                       order="C")
        constraints.append((M + M.T) / 2 >> 0)
    return constraints


def _build(cp, problem: LinearProgram | ConicProgram) -> _Model:
    conic = problem if isinstance(problem, ConicProgram) else ConicProgram(problem)
    lp = conic.linear
    x = _variables(cp, lp.integer)
    rows, columns = _row_constraints(lp, x), _column_constraints(lp, x)
    psd = _psd_constraints(cp, conic, x)
    constraints = [c for _, c, _ in rows] + [c for _, c, _ in columns] + psd
    objective = cp.Minimize(lp.c @ x + lp.c0)
    return _Model(cp.Problem(objective, constraints), x, rows, columns, psd)


def _duals(blocks, size: int) -> np.ndarray | None:
    out = np.zeros(size)
    for idx, constraint, sign in blocks:
        value = constraint.dual_value
        if value is None:
            return None
        out[idx] += sign * np.asarray(value, np.float64).reshape(-1)
    return out


def _raw_dual_objective(stats, c0: float) -> float | None:
    """The solver's own dual objective when cvxpy passes it through (SCS, Clarabel),
    plus ``c0`` (cvxpy hands the solver the objective without its constant)."""
    extra = getattr(stats, "extra_stats", None)
    try:
        if isinstance(extra, dict) and "info" in extra:
            return float(extra["info"]["dobj"]) + c0
        if extra is not None and hasattr(extra, "obj_val_dual"):
            return float(extra.obj_val_dual) + c0
    except (KeyError, TypeError, ValueError):
        pass
    return None


# -- the backend classes -------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _installed_solvers() -> frozenset[str] | str:
    """``cvxpy.installed_solvers()`` (cached), or why cvxpy cannot be imported."""
    try:
        import cvxpy
    except ImportError as exc:
        return f"cvxpy is not installed ({exc})"
    return frozenset(cvxpy.installed_solvers())


class CvxpyBackend(Backend):
    """Base of the cvxpy backends; subclasses set ``cvxpy_name`` (see the module docstring)."""

    cvxpy_name: ClassVar[str] = ""
    option_mapper: ClassVar[Callable[[SolveOptions], dict]] = staticmethod(no_options)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        installed = _installed_solvers()
        if isinstance(installed, str):
            return False, installed
        if cls.cvxpy_name not in installed:
            return False, f"{cls.cvxpy_name} is not installed (cvxpy does not list it)"
        return cls._check_licence()

    @classmethod
    def _check_licence(cls) -> tuple[bool, str]:
        return True, ""

    def accepts(self, problem) -> bool:
        if not isinstance(problem, (LinearProgram, ConicProgram)):
            return False
        lp = problem.linear if isinstance(problem, ConicProgram) else problem
        mixed_integer = lp.integer.any() and _MILP not in self.kinds
        return problem.kind in self.kinds and not mixed_integer

    def _solve(self, problem, options: SolveOptions, warm_start: Any) -> Solution:
        import cvxpy as cp

        model = _build(cp, problem)
        kwargs = merge_extra(self.option_mapper(options), options.extra_dict)
        model.problem.solve(solver=self.cvxpy_name, verbose=options.verbose, **kwargs)
        return self._read(problem, model)

    def _read(self, problem, model: _Model) -> Solution:
        status = _STATUS.get(model.problem.status, Status.ERROR)
        lp = problem.linear if isinstance(problem, ConicProgram) else problem
        x = None if model.x.value is None else np.asarray(model.x.value, np.float64)
        is_milp = lp.kind is ProblemKind.MILP
        y = None if is_milp else _duals(model.rows, lp.num_rows)
        z = None if is_milp else _duals(model.columns, lp.num_variables)
        objective = _objective(model.problem.value, status)
        bound, message = self._bound(problem, model, status, y)
        stats = model.problem.solver_stats
        solve_stats = SolveStats(iterations=getattr(stats, "num_iters", None),
                                 solver_seconds=getattr(stats, "solve_time", None))
        dual_objective = _raw_dual_objective(stats, lp.c0)
        return Solution(status, objective, bound, x, y, z, solve_stats, None, self.name,
                        message or model.problem.status, dual_objective=dual_objective)

    @staticmethod
    def _bound(problem, model: _Model, status: Status, y) -> tuple[float, str]:
        if status is Status.INFEASIBLE:
            return math.inf, ""
        if status in (Status.UNBOUNDED, Status.ERROR):
            return -math.inf, ""
        if problem.kind is ProblemKind.MILP:
            return -math.inf, f"{model.problem.status}; cvxpy reports no MILP dual bound"
        if problem.kind is ProblemKind.SDP:
            zs = [None if c.dual_value is None else np.asarray(c.dual_value) for c in model.psd]
            return conic_safe_bound(problem, y, zs), ""
        lp = problem.linear if isinstance(problem, ConicProgram) else problem
        return lp_safe_bound(lp, y), ""


def _objective(value, status: Status) -> float | None:
    if status is Status.INFEASIBLE:
        return math.inf
    if status is Status.UNBOUNDED:
        return -math.inf
    if value is None or not np.isfinite(value):
        return None
    return float(value)


class _MosekBase(CvxpyBackend):
    """MOSEK needs a licence: :meth:`is_available` checks one out."""

    _licence: ClassVar[tuple[bool, str] | None] = None

    @classmethod
    def _check_licence(cls) -> tuple[bool, str]:
        if _MosekBase._licence is None:
            _MosekBase._licence = _mosek_licence()
        return _MosekBase._licence


def _mosek_licence() -> tuple[bool, str]:
    try:
        import mosek
    except ImportError as exc:
        return False, f"the mosek package is not installed ({exc})"
    try:
        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
    except Exception as exc:  # mosek.Error, but be robust to any failure
        return False, (f"MOSEK is installed but no licence was found ({exc}); put mosek.lic "
                       "in ~/mosek or set MOSEKLM_LICENSE_FILE")
    return True, ""


def make_cvxpy_backend(cvxpy_name: str, kinds: frozenset[ProblemKind] | None = None,
                       name: str | None = None) -> type[CvxpyBackend]:
    """A :class:`CvxpyBackend` subclass for cvxpy's solver ``cvxpy_name``.

    ``kinds`` defaults to :data:`KNOWN_CVXPY_SOLVERS` or else to :func:`cvxpy_kinds`
    (which imports cvxpy); ``name`` to ``cvxpy-<cvxpy_name lower case>``.
    """
    cvxpy_name = cvxpy_name.upper()
    if kinds is None:
        kinds = KNOWN_CVXPY_SOLVERS.get(cvxpy_name) or cvxpy_kinds(cvxpy_name)
    base = _MosekBase if cvxpy_name == "MOSEK" else CvxpyBackend
    attrs = {
        "name": name or f"cvxpy-{cvxpy_name.lower()}",
        "kinds": frozenset(kinds),
        "cvxpy_name": cvxpy_name,
        "option_mapper": staticmethod(OPTION_MAPPERS.get(cvxpy_name, no_options)),
        "__doc__": f"cvxpy with the {cvxpy_name} solver.",
        "__module__": __name__,
    }
    class_name = "Cvxpy" + "".join(part.capitalize() for part in cvxpy_name.split("_"))
    return type(class_name, (base,), attrs)


CvxpyScs = make_cvxpy_backend("SCS")
CvxpyClarabel = make_cvxpy_backend("CLARABEL")
CvxpyMosek = make_cvxpy_backend("MOSEK")
CvxpyHighs = make_cvxpy_backend("HIGHS")


def installed_cvxpy_backends() -> list[type[CvxpyBackend]]:
    """A backend class for every solver cvxpy reports installed and that takes an LP,
    MILP or SDP, other than the four above (imports cvxpy; ``[]`` without it)."""
    installed = _installed_solvers()
    if isinstance(installed, str):
        return []
    classes = []
    for solver in sorted(installed):
        if solver in KNOWN_CVXPY_SOLVERS:
            continue
        try:
            kinds = cvxpy_kinds(solver)
        except Exception as exc:  # an odd solver entry: skip it
            log.info("cvxpy solver %s skipped: %s", solver, exc)
            continue
        if kinds:
            classes.append(make_cvxpy_backend(solver, kinds))
    return classes
