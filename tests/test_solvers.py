"""The solver layer: canonical problems on every backend, sound bounds, HiGHS
warm starts and sessions, the registry and its plug-ins."""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers import (Backend, ConicProgram, LinearProgram, ProblemKind, PsdConstraint,
                     SolveOptions, Solution, SolverUnavailable, Status, UnknownSolver,
                     UnsupportedProblem, conic_safe_bound, get_solver, list_solvers,
                     load_plugins, lp_safe_bound, register, unregister)
from solvers.backends.highs import HighsBackend, HighsSession, HighsWarmStart
from solvers import registry

INF = math.inf
SOLVERS = list_solvers()
# first-order methods are only accurate to about their (default) tolerance
TOLERANCE = {"cvxpy-scs": 2e-3, "cvxpy-osqp": 2e-3}


def tol(name: str) -> float:
    return TOLERANCE.get(name, 1e-5)


def solvers_for(kind: ProblemKind):
    return [pytest.param(info, id=info.name) for info in SOLVERS if kind in info.kinds]


def backend(info) -> Backend:
    if not info.available:
        pytest.skip(f"{info.name} unavailable: {info.reason}")
    return get_solver(info.name)


# -- canonical problems ------------------------------------------------------------------

def canonical_lp() -> LinearProgram:
    """min x1 + 2 x2 - x3 + 0.5 s.t. x1 + x2 >= 1, x1 - x2 = 0, -1 <= x1 + x3 <= 10,
    x1, x2 in [-5, 5], x3 in [0, 2].  Optimum 0 at (0.5, 0.5, 2) with row duals
    y = (1.5, -0.5, 0) and column duals z = (0, 0, -1) (nondegenerate, unique)."""
    A = sp.csr_matrix(np.array([[1.0, 1, 0], [1, -1, 0], [1, 0, 1]]))
    return LinearProgram(np.array([1.0, 2, -1]), A, [1, 0, -1], [INF, 0, 10],
                         [-5, -5, 0], [5, 5, 2], c0=0.5)


LP_X, LP_Y, LP_Z = np.array([0.5, 0.5, 2]), np.array([1.5, -0.5, 0]), np.array([0, 0, -1.0])


def canonical_milp() -> LinearProgram:
    """min -x1 - x2 - x3/2 s.t. 2 x1 + 2 x2 + x3 <= 3.5, x1, x2 in {0..5}, x3 in [0, 0.7].
    LP relaxation: -1.75; integer optimum: -1.35 (x1 + x2 = 1, x3 = 0.7)."""
    A = sp.csr_matrix(np.array([[2.0, 2, 1]]))
    return LinearProgram(np.array([-1.0, -1, -0.5]), A, [-INF], [3.5], [0, 0, 0], [5, 5, 0.7],
                         integer=[True, True, False])


def infeasible_lp() -> LinearProgram:
    """x1 + x2 >= 3 with x in [0, 1]^2."""
    return LinearProgram(np.array([1.0, 0]), sp.csr_matrix([[1.0, 1]]), [3], [INF], [0, 0], [1, 1])


def unbounded_lp() -> LinearProgram:
    """min -x1 s.t. x1 - x2 <= 1 with free variables."""
    return LinearProgram(np.array([-1.0, 0]), sp.csr_matrix([[1.0, -1]]), [-INF], [1],
                         [-INF, -INF], [INF, INF])


SDP_C = np.array([[2.0, 1.0, 0.5], [1.0, 3.0, -1.0], [0.5, -1.0, 1.5]])


def canonical_sdp(C: np.ndarray = SDP_C, bounded: bool = True) -> ConicProgram:
    """min trace(C X) s.t. trace(X) = 1, X PSD; optimum lambda_min(C).

    Variables: the upper triangle x_ij (i <= j) of X, with X = sum_ij x_ij F_ij,
    F_ii = E_ii and F_ij = E_ij + E_ji, so trace(C X) = sum_ij C_ij x_ij (2 C_ij off
    the diagonal).  Bounds |X_ij| <= 1, 0 <= X_ii <= 1 hold on the feasible set and
    make the Lagrangian bound finite."""
    s = C.shape[0]
    pairs = [(i, j) for i in range(s) for j in range(i, s)]
    rows, cols = [], []
    for k, (i, j) in enumerate(pairs):
        rows += [i * s + j] if i == j else [i * s + j, j * s + i]
        cols += [k] if i == j else [k, k]
    G = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(s * s, len(pairs)))
    c = np.array([C[i, j] * (1 if i == j else 2) for i, j in pairs])
    trace_row = sp.csr_matrix(np.array([[1.0 if i == j else 0.0 for i, j in pairs]]))
    diagonal = np.array([i == j for i, j in pairs])
    lower = np.where(diagonal, 0.0, -1.0) if bounded else np.full(len(pairs), -INF)
    upper = np.ones(len(pairs)) if bounded else np.full(len(pairs), INF)
    lp = LinearProgram(c, trace_row, [1.0], [1.0], lower, upper)
    return ConicProgram(lp, (PsdConstraint(s, G, np.zeros(s * s)),))


def assert_dual_residual(problem: LinearProgram, solution: Solution, atol: float) -> None:
    """c - A^T y - z = 0 (the Solution convention)."""
    residual = problem.c - problem.A.T @ solution.row_duals - solution.column_duals
    np.testing.assert_allclose(residual, 0, atol=atol)


# -- every backend on the canonical problems ------------------------------------------------

@pytest.mark.parametrize("info", solvers_for(ProblemKind.LP))
def test_lp_optimum_and_duals(info):
    problem, t = canonical_lp(), tol(info.name)
    solution = backend(info).solve(problem)
    assert solution.status is Status.OPTIMAL, solution.message
    assert solution.objective == pytest.approx(0.0, abs=t)
    np.testing.assert_allclose(solution.x, LP_X, atol=10 * t)
    assert solution.row_duals is not None
    np.testing.assert_allclose(solution.row_duals, LP_Y, atol=10 * t)
    np.testing.assert_allclose(solution.column_duals, LP_Z, atol=10 * t)
    assert_dual_residual(problem, solution, 10 * t)
    assert -10 * t <= solution.bound <= 0.0  # sound, and tight up to the solver's accuracy
    assert solution.stats.seconds > 0 and solution.solver == info.name


@pytest.mark.parametrize("info", solvers_for(ProblemKind.MILP))
def test_milp_optimum(info):
    solution = backend(info).solve(canonical_milp())
    assert solution.status is Status.OPTIMAL, solution.message
    assert solution.objective == pytest.approx(-1.35, abs=1e-6)
    np.testing.assert_allclose(solution.x[:2], np.round(solution.x[:2]), atol=1e-6)
    assert solution.bound <= -1.35


@pytest.mark.parametrize("info", solvers_for(ProblemKind.LP))
def test_milp_relaxation_differs(info):
    solution = backend(info).solve(canonical_milp().relaxed())
    assert solution.status is Status.OPTIMAL, solution.message
    assert solution.objective == pytest.approx(-1.75, abs=tol(info.name))
    assert -1.75 - 10 * tol(info.name) <= solution.bound <= -1.75


@pytest.mark.parametrize("info", solvers_for(ProblemKind.LP))
def test_infeasible_lp(info):
    solution = backend(info).solve(infeasible_lp())
    assert solution.status is Status.INFEASIBLE, solution.message
    assert solution.bound == INF


@pytest.mark.parametrize("info", solvers_for(ProblemKind.LP))
def test_unbounded_lp(info):
    solution = backend(info).solve(unbounded_lp())
    assert solution.status is Status.UNBOUNDED, solution.message
    assert solution.bound == -INF


@pytest.mark.parametrize("info", solvers_for(ProblemKind.SDP))
def test_sdp_minimum_eigenvalue(info):
    optimum = float(np.linalg.eigvalsh(SDP_C)[0])
    solution = backend(info).solve(canonical_sdp())
    assert solution.status is Status.OPTIMAL, solution.message
    assert solution.objective == pytest.approx(optimum, abs=tol(info.name))
    assert optimum - 10 * tol(info.name) <= solution.bound <= optimum + 1e-12


def test_sdp_unbounded_variables_give_no_bound():
    solution = get_solver("clarabel").solve(canonical_sdp(bounded=False))
    assert solution.status is Status.OPTIMAL
    assert solution.objective == pytest.approx(np.linalg.eigvalsh(SDP_C)[0], abs=1e-6)
    assert solution.bound <= solution.objective  # -inf unless the reduced costs vanish exactly


# -- sound bounds ------------------------------------------------------------------------------

def random_lp(rng: np.random.Generator, m: int, n: int) -> LinearProgram:
    """A feasible bounded LP: rows around A x0 for x0 in the box, with some one-sided,
    ranged, equality and free rows."""
    A = sp.random(m, n, density=0.6, random_state=rng, data_rvs=rng.standard_normal).tocsr()
    lower = rng.uniform(-3, 0, n)
    upper = lower + rng.uniform(0.1, 3, n)
    ax0 = A @ rng.uniform(lower, upper)
    kind = rng.integers(0, 5, m)
    row_lower = np.where(kind == 0, -INF, ax0 - rng.uniform(0, 1, m) * (kind != 3))
    row_upper = np.where(kind == 1, INF, ax0 + rng.uniform(0, 1, m) * (kind != 3))
    row_lower[kind == 4], row_upper[kind == 4] = -INF, INF
    return LinearProgram(rng.standard_normal(n), A, row_lower, row_upper, lower, upper,
                         c0=rng.standard_normal())


def highs_optimum(problem: LinearProgram) -> Solution:
    solution = HighsBackend().solve(problem)
    assert solution.status is Status.OPTIMAL, solution.message
    return solution


def slack(value: float) -> float:
    """How far HiGHS's own optimum may sit from the exact one."""
    return 1e-7 * (1 + abs(value))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 12), n=st.integers(1, 10),
       scale=st.sampled_from([1e-6, 1e-2, 1.0, 100.0]))
def test_any_dual_vector_gives_a_valid_bound(seed, m, n, scale):
    rng = np.random.default_rng(seed)
    problem = random_lp(rng, m, n)
    exact = highs_optimum(problem)
    assert exact.bound == pytest.approx(exact.objective, abs=1e-6 * (1 + abs(exact.objective)))
    for y in (exact.row_duals + scale * rng.standard_normal(m), scale * rng.standard_normal(m),
              np.zeros(m), None):
        assert lp_safe_bound(problem, y) <= exact.objective + slack(exact.objective)


@pytest.mark.parametrize("name", ["highs", "clarabel"])
def test_converged_bound_is_tight(name):
    rng = np.random.default_rng(7)
    for _ in range(5):
        problem = random_lp(rng, 30, 20)
        optimum = highs_optimum(problem).objective
        solution = get_solver(name).solve(problem)
        assert solution.bound <= optimum + slack(optimum)
        assert solution.bound >= optimum - 1e-6 * (1 + abs(optimum))


def test_loose_scs_still_gives_a_valid_bound():
    rng = np.random.default_rng(11)
    for _ in range(5):
        problem = random_lp(rng, 30, 20)
        optimum = highs_optimum(problem).objective
        solution = get_solver("scs").solve(problem, SolveOptions(tolerance=1e-2))
        assert solution.status in (Status.OPTIMAL, Status.INACCURATE)
        assert solution.bound <= optimum + slack(optimum)
        assert solution.bound > optimum - 1.0  # loose, but not useless


def test_safe_bound_edge_cases():
    problem = canonical_lp()
    # a dual pushing on an infinite row bound is clipped: y1 < 0 on x1 + x2 >= 1 (no upper)
    assert lp_safe_bound(problem, [-3.0, -0.5, 0]) == lp_safe_bound(problem, [0.0, -0.5, 0])
    assert lp_safe_bound(problem, [np.nan, -0.5, np.inf]) == lp_safe_bound(problem, [0, -0.5, 0])
    # y = 0: the box bound  0.5 + (-5) + 2 (-5) + (-1) 2
    assert lp_safe_bound(problem, None) == pytest.approx(0.5 - 5 - 10 - 2)
    assert lp_safe_bound(problem, None) < 0.5 - 5 - 10 - 2  # the rounding allowance
    # a free variable with a non-zero reduced cost: no bound
    assert lp_safe_bound(unbounded_lp(), [0.0]) == -INF
    assert lp_safe_bound(unbounded_lp(), [-1.0]) == -INF  # r = (0, -1) on free x2
    with pytest.raises(ValueError):
        lp_safe_bound(problem, [1.0])


def test_conic_bound_holds_for_perturbed_duals():
    rng = np.random.default_rng(3)
    problem = canonical_sdp()
    optimum = float(np.linalg.eigvalsh(SDP_C)[0])
    solution = get_solver("clarabel").solve(problem)
    assert solution.bound == pytest.approx(optimum, abs=1e-6)
    # the exact dual: y = lambda_min, Z = C - lambda_min I
    exact = conic_safe_bound(problem, [optimum], [SDP_C - optimum * np.eye(3)])
    assert optimum - 1e-9 <= exact <= optimum
    for scale in (1e-8, 1e-3, 1.0):
        y = optimum + scale * rng.standard_normal(1)
        Z = SDP_C - optimum * np.eye(3) + scale * rng.standard_normal((3, 3))
        assert conic_safe_bound(problem, y, [Z]) <= optimum + 1e-12


# -- HiGHS specifics ---------------------------------------------------------------------------

def test_highs_dual_sign_convention():
    """Raw highspy: for a minimisation HiGHS already has c - A^T row_dual - col_dual = 0."""
    import highspy

    problem = canonical_lp()
    A = problem.A.tocsc()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_, lp.offset_ = 3, 3, problem.c0
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = problem.c, problem.lower, problem.upper
    lp.row_lower_, lp.row_upper_ = problem.row_lower, problem.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    raw = h.getSolution()
    np.testing.assert_allclose(raw.row_dual, LP_Y, atol=1e-9)
    np.testing.assert_allclose(raw.col_dual, LP_Z, atol=1e-9)
    solution = HighsBackend().solve(problem)
    np.testing.assert_allclose(solution.row_duals, raw.row_dual)
    assert_dual_residual(problem, solution, 1e-12)


def warm_start_lp(rng: np.random.Generator, m: int = 120, n: int = 90) -> LinearProgram:
    """max sum x s.t. A x <= b, 0 <= x <= 10 with positive A: many simplex pivots."""
    A = sp.csr_matrix(rng.uniform(0, 1, (m, n)) * (rng.random((m, n)) < 0.5))
    return LinearProgram(-rng.uniform(0.5, 1.5, n), A, np.full(m, -INF),
                         rng.uniform(5, 10, m), np.zeros(n), np.full(n, 10.0))


def test_highs_warm_start_saves_iterations():
    rng = np.random.default_rng(5)
    problem = warm_start_lp(rng)
    first = HighsBackend().solve(problem)
    assert isinstance(first.warm_start, HighsWarmStart)
    active = np.flatnonzero(first.x > 1e-6)
    upper = np.array(problem.upper)
    upper[active[:3]] = first.x[active[:3]] * 0.9  # cut off the old optimum a little
    changed = problem.with_bounds(problem.lower, upper)
    cold = HighsBackend().solve(changed)
    warm = HighsBackend().solve(changed, warm_start=first.warm_start)
    assert warm.status is cold.status is Status.OPTIMAL
    assert warm.objective == pytest.approx(cold.objective, abs=1e-7)
    assert cold.stats.iterations > 10
    assert warm.stats.iterations < cold.stats.iterations
    # a basis of the wrong shape is ignored, not an error
    assert HighsBackend().solve(canonical_lp(), warm_start=first.warm_start).ok


def test_highs_session_matches_fresh_solves():
    rng = np.random.default_rng(9)
    problem = random_lp(rng, 25, 15)
    session = HighsSession(problem=problem)
    total = 0
    for j in range(6):  # tighten x_j both ways, as bound tightening does
        for sign in (1.0, -1.0):
            c = np.zeros(problem.num_variables)
            c[j] = sign
            session.change_objective(c, 0.25)
            got = session.solve()
            want = HighsBackend().solve(problem.with_objective(c, 0.25))
            assert got.status is want.status is Status.OPTIMAL
            assert got.objective == pytest.approx(want.objective, abs=1e-7)
            assert got.bound == pytest.approx(want.bound, abs=1e-6)
            assert got.bound <= want.objective + slack(want.objective)
            total += got.stats.iterations
    lower, upper = np.array(problem.lower), np.array(problem.upper)
    middle = (lower + upper) / 2
    session.change_bounds(lower[:3], middle[:3], indices=[0, 1, 2])
    fresh_problem = problem.with_objective(c, 0.25).with_bounds(
        lower, np.concatenate([middle[:3], upper[3:]]))
    got, want = session.solve(), HighsBackend().solve(fresh_problem)
    assert got.status is want.status
    if want.ok:
        assert got.objective == pytest.approx(want.objective, abs=1e-7)
    session.change_bounds(lower, upper)
    assert session.solve().objective == pytest.approx(
        HighsBackend().solve(problem.with_objective(c, 0.25)).objective, abs=1e-7)


def test_highs_milp_bound_and_options():
    solution = HighsBackend().solve(canonical_milp(), SolveOptions(time_limit=10, tolerance=1e-8,
                                                                   threads=1))
    assert solution.ok and solution.dual_objective == pytest.approx(-1.35, abs=1e-6)
    assert solution.bound < solution.dual_objective and "not independently" in solution.message
    bad = HighsBackend().solve(canonical_lp(), SolveOptions(extra=(("no_such_option", 1),)))
    assert bad.status is Status.ERROR and bad.bound == -INF and "no_such_option" in bad.message


# -- registry, errors and plug-ins ------------------------------------------------------------

def test_errors_and_availability():
    with pytest.raises(UnsupportedProblem):
        get_solver("scs").solve(canonical_milp())
    with pytest.raises(UnsupportedProblem):
        get_solver("highs").solve(canonical_sdp())
    with pytest.raises(UnknownSolver, match="highs"):
        get_solver("no-such-solver")
    bad = get_solver("scs").solve(canonical_lp(), SolveOptions(extra=(("no_such_option", 1),)))
    assert bad.status is Status.ERROR and bad.bound == -INF and bad.message
    names = [info.name for info in SOLVERS]
    assert names[:5] == ["highs", "cvxpy-clarabel", "cvxpy-scs", "cvxpy-mosek", "cvxpy-highs"]
    assert registry.default_solver(ProblemKind.LP).name == "highs"
    assert registry.default_solver(ProblemKind.SDP).name == "cvxpy-clarabel"


def test_mosek_without_licence_is_unavailable():
    info = next(info for info in SOLVERS if info.name == "cvxpy-mosek")
    if info.available:
        pytest.skip("a MOSEK licence is installed here")
    assert "licen" in info.reason.lower() or "not installed" in info.reason
    with pytest.raises(SolverUnavailable, match="licen|not installed"):
        get_solver("mosek").solve(canonical_lp())


class LinprogBackend(Backend):
    """A plug-in: scipy.optimize.linprog(method='highs') for LPs."""

    name = "test-linprog"
    kinds = frozenset({ProblemKind.LP})

    def _solve(self, problem, options, warm_start):
        from scipy.optimize import linprog

        A, rl, ru = problem.A, problem.row_lower, problem.row_upper
        eq = np.isfinite(rl) & (rl == ru)
        lo, up = np.isfinite(rl) & ~eq, np.isfinite(ru) & ~eq
        A_ub = sp.vstack([A[up], -A[lo]]).tocsr()
        bounds = [(None if math.isinf(l) else l, None if math.isinf(u) else u)
                  for l, u in zip(problem.lower, problem.upper)]
        result = linprog(problem.c, A_ub=A_ub, b_ub=np.concatenate([ru[up], -rl[lo]]),
                         A_eq=A[eq], b_eq=rl[eq], bounds=bounds, method="highs")
        if result.status != 0:
            return Solution(Status.ERROR, None, -INF, message=result.message)
        y = np.zeros(problem.num_rows)  # marginals are d objective / d rhs
        n_up = int(up.sum())
        y[up], y[lo] = result.ineqlin.marginals[:n_up], -result.ineqlin.marginals[n_up:]
        y[eq] = result.eqlin.marginals
        z = problem.c - problem.A.T @ y
        return Solution(Status.OPTIMAL, result.fun + problem.c0, lp_safe_bound(problem, y),
                        result.x, y, z)


class _EntryPoints(list):
    """What importlib.metadata.entry_points(group=...) returns, for the test."""


@pytest.fixture
def clean_registry():
    yield
    for name in ("test-linprog", "broken-plugin"):
        unregister(name)


def check_linprog_solver(name: str) -> None:
    solution = get_solver(name).solve(canonical_lp())
    assert solution.status is Status.OPTIMAL and solution.solver == "test-linprog"
    assert solution.objective == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(solution.row_duals, LP_Y, atol=1e-9)
    assert -1e-9 <= solution.bound <= 0.0


def test_plugin_registered_directly(clean_registry):
    register(LinprogBackend)
    check_linprog_solver("test-linprog")
    assert any(info.name == "test-linprog" and info.available for info in list_solvers())


def test_plugin_from_entry_point(monkeypatch, clean_registry):
    group = registry.ENTRY_POINT_GROUP
    points = _EntryPoints([
        importlib.metadata.EntryPoint("linprog", f"{__name__}:LinprogBackend", group),
        importlib.metadata.EntryPoint("broken-plugin", "no_such_module_xyz:Backend", group),
    ])
    calls = []

    def fake_entry_points(**kwargs):
        calls.append(kwargs)
        return points if kwargs.get("group") == group else _EntryPoints()

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    load_plugins(force=True)
    assert calls == [{"group": group}]
    check_linprog_solver("test-linprog")
    check_linprog_solver("linprog")  # the entry point's name is an alias
    infos = {info.name: info for info in list_solvers()}
    assert infos["test-linprog"].available and "linprog" in infos["test-linprog"].aliases
    assert not infos["broken-plugin"].available
    assert "no_such_module_xyz" in infos["broken-plugin"].reason
    with pytest.raises(SolverUnavailable, match="no_such_module_xyz"):
        get_solver("broken-plugin")


def test_layered_relu_program_validates_its_shapes():
    """Shape checks live in solvers/program.py, for every backend (not only fo-sdp)."""
    from solvers.errors import InvalidProblem
    from solvers.program import LayeredReluProgram

    W = [np.ones((3, 2)), np.ones((2, 3))]
    b = [np.zeros(3), np.zeros(2)]
    boxes = ([-np.ones(2), np.zeros(3), np.zeros(2)], [np.ones(2), np.ones(3), np.ones(2)])
    pre = ([-np.ones(3), -np.ones(2)], [np.ones(3), np.ones(2)])
    good = LayeredReluProgram(tuple(W), tuple(b), *map(tuple, boxes), *map(tuple, pre), np.ones(2))
    assert good.kind is ProblemKind.LAYERED_QCQP
    bad_weight = (np.ones((3, 2)), np.ones((2, 4)))
    bad_c = np.ones(3)
    nan_bias = (np.zeros(3), np.array([0.0, np.nan]))
    for weights, biases, c, message in [(bad_weight, tuple(b), np.ones(2), "weight 1"),
                                        (tuple(W), tuple(b), bad_c, "c has 3 entries"),
                                        (tuple(W), nan_bias, np.ones(2), "NaN"),
                                        (tuple(W[:1]), tuple(b), np.ones(2), "need L weights")]:
        with pytest.raises(InvalidProblem, match=message):
            LayeredReluProgram(weights, biases, *map(tuple, boxes), *map(tuple, pre), c)
