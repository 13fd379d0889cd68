"""sdp-ipm with stably active neurons substituted (the default with cuts): the
substitution is exact on the network's points, the solver reaches the reduced SDP's
optimum (Clarabel on the same data), the optimum is at least the full SDP's with cuts and
at most the exact margin, and the bound is the reduced form's own float64 certificate."""

from __future__ import annotations


import cvxpy as cp
import numpy as np
import pytest

from relax.sdp.encode import layered_program
from relax.sdp.method import solve_row
from relax.search.milp import milp_margin
from relax.spec import Spec
from solvers.backends.fo_sdp.problem import box_radius
from solvers.backends.sdp_ipm.problem import build
from solvers.backends.sdp_ipm.reduced import certified_bound
from tests.test_sdp_ipm import CASES, _case, _ipm, _rows

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: cases whose reduced optimum is strictly above the full SDP's with cuts (measured) and
#: a deeper one with many stably active neurons
REDUCED_CASES = CASES + [(2, (8, 12, 12, 12, 4), 0.1), (4, (10, 16, 16, 5), 0.08)]


def _program(seed, widths, eps, j=0):
    network, spec, crown = _case(seed, widths, eps)
    row, offset = _rows(spec)[j]
    return network, spec, crown, row, offset, layered_program(
        network, spec.lower, spec.upper, crown.layers, row, offset)


def _clarabel_reduced(sdp) -> float:
    """``min scale <C, P>`` over the reduced form's primal (P_00 = 1, P_ii <= d_i, the
    constraints with their signs), by Clarabel."""
    P = cp.Variable((sdp.side, sdp.side), PSD=True)
    m = sdp.m_neurons
    values = cp.sum(cp.multiply(sdp.U.T @ P, sdp.V.T), axis=1)
    sign = sdp.sign[:m]
    cons = [P[0, 0] == 1, cp.diag(P)[1:] <= sdp.b_kappa[1:]]
    if (sign > 0).any():
        cons.append(values[np.flatnonzero(sign > 0)] >= 0)
    if (sign == 0).any():
        cons.append(values[np.flatnonzero(sign == 0)] == 0)
    problem = cp.Problem(cp.Minimize(cp.trace(sdp.C @ P)), cons)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return problem.value * sdp.scale


def _points(program, rng, count: int):
    """Random network points ``x = [h_0; ...; h_L]`` from inputs in the input box."""
    lo, hi = np.asarray(program.lower[0]), np.asarray(program.upper[0])
    for _ in range(count):
        h = [rng.uniform(lo, hi)]
        for W, b in zip(program.weights, program.biases):
            h.append(np.maximum(np.asarray(W) @ h[-1] + np.asarray(b), 0.0))
        yield np.concatenate(h)


@pytest.mark.parametrize("seed, widths, eps", REDUCED_CASES)
def test_the_substitution_is_exact_on_network_points(seed, widths, eps):
    *_, program = _program(seed, widths, eps)
    sdp = build(program, cuts=True, eliminate=True)
    full = build(program, cuts=True)
    assert sdp.side < full.side          # stably active neurons left P
    ctr, rad, _ = (np.concatenate(v) for v in zip(*[
        box_radius(np.asarray(lo, float), np.asarray(hi, float))
        for lo, hi in zip(program.lower, program.upper)]))
    c = np.asarray(program.c)
    for x in _points(program, np.random.default_rng(seed), 50):
        p = np.concatenate([[1.0], ((x - ctr) / np.where(rad > 0, rad, 1.0))[sdp.kept]])
        g = (sdp.U.T @ p) * (sdp.V.T @ p)
        sign = sdp.sign[:sdp.m_neurons]
        tol = 1e-9 * (1 + np.abs(sdp.U).T @ np.abs(p) * (np.abs(sdp.V).T @ np.abs(p)))
        assert (g[sign > 0] >= -tol[sign > 0]).all()
        assert (np.abs(g[sign == 0]) <= tol[sign == 0]).all()
        objective = c @ x[-c.size:] + float(program.c0)
        assert sdp.scale * (p @ sdp.C @ p) == pytest.approx(objective, rel=1e-9, abs=1e-9)
        assert (p[1:] ** 2 <= sdp.b_kappa[1:] + 1e-12).all()


@pytest.mark.parametrize("seed, widths, eps", REDUCED_CASES)
def test_reduced_optimum_matches_clarabel_and_lies_between_full_sdp_and_exact(
        seed, widths, eps):
    network, spec, crown, row, offset, program = _program(seed, widths, eps)
    solution = _ipm(network, spec, crown, row, offset, cuts=True, eliminate=True)
    assert solution.ok, solution.message
    reference = _clarabel_reduced(build(program, cuts=True, eliminate=True))
    assert solution.bound == pytest.approx(reference, rel=1e-6, abs=1e-6)
    full = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=True)
    exact = milp_margin(network, Spec(spec.lower, spec.upper, (spec.disjuncts[0],)),
                        crown.layers)
    assert full.objective - 1e-6 * (1 + abs(full.objective)) <= solution.bound <= exact + 1e-7
    assert solution.bound >= crown.disjunct_bounds[0] - 1e-9


def test_the_bound_is_the_reduced_certificate_and_sound_for_any_multipliers():
    network, spec, crown, row, offset, program = _program(2, (8, 12, 12, 12, 4), 0.1)
    solution = _ipm(network, spec, crown, row, offset, cuts=True, eliminate=True)
    sdp = build(program, cuts=True, eliminate=True)
    y = solution.warm_start.y
    assert solution.warm_start.reduced
    assert solution.bound == pytest.approx(certified_bound(sdp, y), abs=1e-12)
    assert solution.bound == pytest.approx(solution.dual_objective, rel=1e-7, abs=1e-7)
    exact = milp_margin(network, Spec(spec.lower, spec.upper, (spec.disjuncts[0],)),
                        crown.layers)
    rng = np.random.default_rng(0)
    for _ in range(20):           # arbitrary multipliers: still below the exact margin
        noisy = y + rng.normal(scale=0.05 * (1 + np.abs(y)))
        assert certified_bound(sdp, noisy) <= exact + 1e-9
    Ua, Va, Ca = sdp.absolute     # the absolute companions dominate the data
    assert (Ua >= np.abs(sdp.U)).all() and (Va >= np.abs(sdp.V) - 1e-15).all()
    assert (Ca >= np.abs(sdp.C)).all()


def test_the_certificate_refuses_the_full_form():
    *_, program = _program(1, (6, 8, 8, 4), 0.2)
    sdp = build(program, cuts=True)
    with pytest.raises(ValueError):
        certified_bound(sdp, np.zeros(sdp.m_neurons + sdp.side))


def test_dsdp_on_the_sdpa_file_agrees_with_sdp_ipm(tmp_path):
    from solvers.backends.sdp_ipm.sdpa import dsdp_available, run_dsdp

    ok, why = dsdp_available()
    if not ok:
        pytest.skip(why)
    network, spec, crown, row, offset, program = _program(2, (8, 12, 12, 12, 4), 0.1)
    solution = _ipm(network, spec, crown, row, offset, cuts=True, eliminate=True)
    result = run_dsdp(build(program, cuts=True, eliminate=True), tmp_path, timeout=60)
    assert result.value == pytest.approx(solution.dual_objective, rel=1e-6, abs=1e-7)


def test_sdpa_on_the_sdpa_file_agrees_with_sdp_ipm(tmp_path):
    from solvers.backends.sdp_ipm.sdpa import run_sdpa, sdpa_available

    ok, why = sdpa_available()
    if not ok:
        pytest.skip(why)
    network, spec, crown, row, offset, program = _program(2, (8, 12, 12, 12, 4), 0.1)
    solution = _ipm(network, spec, crown, row, offset, cuts=True, eliminate=True)
    result = run_sdpa(build(program, cuts=True, eliminate=True), tmp_path)
    assert result.primal == pytest.approx(solution.dual_objective, rel=1e-6, abs=1e-6)
    assert result.dual == pytest.approx(solution.dual_objective, rel=1e-6, abs=1e-6)
