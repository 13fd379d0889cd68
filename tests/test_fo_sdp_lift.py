"""fo-sdp with stably active neurons lifted (``eliminate``, the default with cuts; #13 s.1).

References: linear algebra (``scipy.linalg.null_space`` and ``eigvalsh``), network points
(forward passes), Clarabel on this test's own cvxpy model of the SDP (original
coordinates: the full SDP with cuts plus ``P (a_j - z_j) = 0`` for the stably active
neurons), the exact margin from the big-M MILP, sampling and torch autograd.  Checks: the
lifted matrix is ``D`` on the reachable subspace; the lifted vectors vanish on network
points within their stated error; the certificate never falls by the lift; the best
corner makes the lifted matrix singular; the substituted primal's gradient is autograd's;
fo-sdp reaches the lifted SDP's optimum, which is at least the full SDP's, and stays
below the exact margin.
"""

from __future__ import annotations

import dataclasses
import functools

import cvxpy as cp
import numpy as np
import pytest
from scipy.linalg import null_space

from solvers import SolveOptions, get_solver
from solvers.backends.fo_sdp import burer_monteiro as bm
from solvers.backends.fo_sdp.certificate import certify
from solvers.backends.fo_sdp.init import initial_duals
from solvers.backends.fo_sdp.lift import active_vectors, chain, expand, lifted
from solvers.backends.fo_sdp.problem import Layout, prepare
from solvers.backends.fo_sdp.repair import _kept_dense, best_corner, gershgorin_shift
from tests.test_fo_sdp_bm import _case as _bm_case

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: small nets with stably active neurons (seed, widths, eps)
CASES = [(2, (8, 12, 12, 4), 0.1), (4, (10, 16, 16, 5), 0.08), (5, (10, 10, 10, 5), 0.1)]


@functools.cache
def _case(seed: int, widths, eps: float):
    """tests/test_fo_sdp_bm.py's case (program, CROWN, Clarabel's full SDP with cuts, the
    MILP margin, sampled margin) with this file's lifted SDP's optimum after the full."""
    program, crown, full, exact, sampled = _bm_case(seed, widths, eps)
    return program, crown, full, _lifted_sdp(program), exact, sampled


def _lifted_sdp(program) -> float:
    """Clarabel on the SDP with cuts in original coordinates, ``P = [1 x^T; x X]``: per
    hidden neuron ``z >= 0``, ``z >= a``, ``X_zz = X_z,a``, the triangle cut, the box
    ``X_ii <= (l_i + u_i) x_i - l_i u_i``, and for a stably active neuron (``l >= 0``)
    the lifted ``z = a``: ``P = T R T^T`` with ``R >= 0`` over the other coordinates and
    ``T`` writing ``z`` as ``W_j x_prev + b_j`` (a dead neuron, ``u <= 0``: a zero row)."""
    sizes = [np.asarray(lo).size for lo in program.lower]
    starts = np.concatenate([[1], 1 + np.cumsum(sizes)]).astype(int)
    side = int(starts[-1])
    rows = [np.eye(1, 1 + sizes[0], 0)[0]] + list(np.eye(sizes[0], 1 + sizes[0], 1))
    free = 1 + sizes[0]
    T = np.zeros((side, 0))
    for k, (W, b) in enumerate(zip(program.weights, program.biases)):
        W, b = np.asarray(W, float), np.asarray(b, float)
        pl, pu = np.asarray(program.pre_lower[k], float), np.asarray(program.pre_upper[k], float)
        for j in range(W.shape[0]):
            if pl[j] >= 0:
                rows.append(W[j] @ np.array(rows[starts[k]:starts[k + 1]]) + b[j] * rows[0])
            elif pu[j] <= 0:
                rows.append(np.zeros_like(rows[0]))
            else:
                rows = [np.concatenate([r, [0.0]]) for r in rows]
                rows.append(np.eye(1, free + 1, free)[0])
                free += 1
    T = np.array([np.concatenate([r, np.zeros(free - r.size)]) for r in rows])
    R = cp.Variable((free, free), PSD=True)
    P = T @ R @ T.T
    lo = np.concatenate([np.asarray(v, float) for v in program.lower])
    hi = np.concatenate([np.asarray(v, float) for v in program.upper])
    cons = [P[0, 0] == 1, cp.diag(P)[1:] <= cp.multiply(lo + hi, P[0, 1:]) - lo * hi]
    for k, (W, b) in enumerate(zip(program.weights, program.biases)):
        W, b = np.asarray(W, float), np.asarray(b, float)
        prev = slice(starts[k], starts[k + 1])
        pl, pu = np.asarray(program.pre_lower[k], float), np.asarray(program.pre_upper[k], float)
        for j in np.flatnonzero((pl < 0) & (pu > 0)):
            z = starts[k + 1] + j
            a_row = W[j] @ P[prev, :] + b[j] * P[0, :]
            cons += [P[0, z] >= 0, P[0, z] >= a_row[0], P[z, z] == a_row[z],
                     P[0, z] <= pu[j] / (pu[j] - pl[j]) * (a_row[0] - pl[j])]
        active = np.flatnonzero(pl >= 0)
        if active.size:
            cons.append(P[0, starts[k + 1] + active] >= 0)
    c = np.asarray(program.c, float)
    objective = c @ P[0, starts[-2]:starts[-1]] + float(program.c0)
    problem = cp.Problem(cp.Minimize(objective), cons)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return float(problem.value)


def test_the_lifted_matrix_is_D_on_the_reachable_subspace():
    rng = np.random.default_rng(0)
    for size, count in ((12, 3), (30, 7)):
        A = rng.normal(size=(size, size))
        D = A + A.T
        Q = rng.normal(size=(size, count))
        D_lift, Y, rounding = lifted(D, Q)
        B = null_space(Q.T)                                # q^T x = 0 for x in range(B)
        restricted = np.linalg.eigvalsh(B.T @ D @ B)[0]
        assert np.allclose(B.T @ D_lift @ B, B.T @ D @ B, atol=1e-10)
        assert np.allclose(D_lift, D + Q @ Y.T + Y @ Q.T, atol=0)
        assert np.linalg.eigvalsh(D_lift)[0] == pytest.approx(restricted, abs=1e-9)
        assert restricted > np.linalg.eigvalsh(D)[0] + 1e-3   # the lift gains here
        assert 0 < rounding < 1e-10


def test_the_spectral_projection_is_the_restricted_matrix():
    import torch

    from solvers.backends.fo_sdp.spectral import _project

    rng = np.random.default_rng(1)
    A = rng.normal(size=(20, 20))
    D, Q = A + A.T, rng.normal(size=(20, 5))
    basis, _ = np.linalg.qr(Q)
    push = 100.0
    projected = _project(torch.as_tensor(D), torch.as_tensor(basis), push).numpy()
    B = null_space(Q.T)
    expected = np.concatenate([np.linalg.eigvalsh(B.T @ D @ B), np.full(5, push)])
    assert np.allclose(np.linalg.eigvalsh(projected), np.sort(expected), atol=1e-9)


@pytest.mark.parametrize("seed, widths, eps", CASES)
def test_the_lifted_vectors_vanish_on_network_points(seed, widths, eps):
    program = _case(seed, widths, eps)[0]
    data = prepare(program, True, eliminate=True)
    Q, errors = active_vectors(data)
    assert Q.shape[1] == sum(int(a.sum()) for a in data.active) > 0
    assert prepare(program, False, eliminate=True).active == ()   # cuts off: no lift
    keep = np.concatenate([[True], data.d > 0])
    ctr, rad = np.concatenate(data.ctr), np.concatenate(data.rad)
    rng = np.random.default_rng(seed)
    for _ in range(50):
        h = [rng.uniform(np.asarray(program.lower[0]), np.asarray(program.upper[0]))]
        for W, b in zip(program.weights, program.biases):
            h.append(np.maximum(np.asarray(W) @ h[-1] + np.asarray(b), 0.0))
        x = np.concatenate(h)
        p = np.concatenate([[1.0], (x - ctr) / np.where(rad > 0, rad, 1.0)])[keep]
        assert (np.abs(Q.T @ p) <= errors).all()
    assert (errors < 1e-12).all()


@pytest.mark.parametrize("seed, widths, eps", CASES)
def test_the_lift_never_lowers_a_certificate(seed, widths, eps):
    program = _case(seed, widths, eps)[0]
    plain, lift = prepare(program, True), prepare(program, True, eliminate=True)
    layout = Layout(plain)
    rng = np.random.default_rng(seed)
    start = initial_duals(plain, layout, "crown")
    gained = False
    for scale in (0.0, 0.05, 0.3):
        params = layout.project(start + scale * rng.random(start.size))
        before, after = certify(plain, layout, params, 10_000), certify(lift, layout, params,
                                                                        10_000)
        assert after >= before - 1e-9 * max(1.0, abs(before))
        gained |= after > before + 1e-6
    assert gained


@pytest.mark.parametrize("seed, widths, eps", CASES)
def test_the_best_corner_makes_the_lifted_matrix_singular(seed, widths, eps):
    program, *_, lifted_optimum, _, _ = _case(seed, widths, eps)
    data = prepare(program, True, eliminate=True)
    layout = Layout(data)
    rng = np.random.default_rng(seed)
    start = initial_duals(data, layout, "crown")
    params = layout.project(start + 0.2 * rng.random(start.size))
    shifted = gershgorin_shift(data, layout, params)
    assert np.linalg.eigvalsh(_kept_dense(data, layout, shifted)[2])[0] >= -1e-9
    for push in (-1.0, 0.0, 3.0):                 # whatever kappa_0 it starts from
        moved = shifted.copy()
        moved[layout.kappa_start] += push
        corner = best_corner(data, layout, moved)
        D_lift = _kept_dense(data, layout, corner)[2]
        assert abs(np.linalg.eigvalsh(D_lift)[0]) <= 1e-8 * np.abs(D_lift).max()
        assert certify(data, layout, corner, 10_000) <= lifted_optimum + 1e-7


def test_the_substituted_primal_gradient_is_autograds():
    """The chained gradient with respect to the free rows (substituted rows passed to the
    layer before) equals autograd's through the substitution, and the substituted rows
    satisfy ``z = a`` (their beta, gamma and cut constraints vanish)."""
    import torch

    program = _case(*CASES[1])[0]
    data = prepare(program, True, eliminate=True)
    layout = Layout(data)
    problem = bm.BmProblem.build(data, layout, 3, 1.0)
    assert any(s is not None for s in problem.substitution)
    state = bm.init_state(problem, initial_duals(data, layout, "crown"), bm.centre_point(data))
    state = dataclasses.replace(state, mu=0.7)
    masks = [(d > 0)[:, None].to(v) for d, v in zip(problem.d, state.V)]
    generator = torch.Generator().manual_seed(0)
    V = [(0.5 * torch.randn(v.shape, generator=generator, dtype=torch.float64))
         .requires_grad_(True) for v in state.V]
    value = bm._augmented(problem, state, [v * m for v, m in zip(expand(problem.substitution, V), masks)])
    value.backward()
    with torch.no_grad():
        expanded = expand(problem.substitution, V)
        _, grads = bm._augmented_and_gradient(problem, state, expanded, masks)
        chained = chain(problem.substitution, grads)
        for v, g in zip(V, chained):
            assert torch.allclose(g, v.grad, rtol=1e-10, atol=1e-12)
        cons, _, _ = bm._constraints(problem, [e * m for e, m in zip(expanded, masks)])
    for (_, g_beta, h, g_cut), sub in zip(cons, problem.substitution):
        if sub is not None:
            rows = sub[0]
            for values in (g_beta, h, g_cut):
                assert values[rows].abs().max() <= 1e-10


@pytest.mark.parametrize("seed, widths, eps", CASES)
def test_fo_sdp_reaches_the_lifted_sdp_and_is_sound(seed, widths, eps):
    program, crown, full, lifted_optimum, exact, sampled = _case(seed, widths, eps)
    assert full - 1e-6 * max(1.0, abs(full)) <= lifted_optimum <= exact + 1e-7
    extra = {"method": "bm", "max_iterations": 1500, "bm_outer": 8, "bm_inner": 100}
    solution = get_solver("fo-sdp").solve(program, SolveOptions(extra=tuple(extra.items())))
    assert crown - 1e-9 <= solution.bound <= lifted_optimum + 1e-6
    assert (lifted_optimum - solution.bound) / max(1.0, abs(lifted_optimum)) < 1e-3
    assert solution.bound <= exact + 1e-9 <= sampled + 2e-9


@pytest.mark.parametrize("seed, widths, eps", CASES)
def test_the_spectral_lbfgs_alone_reaches_the_lifted_sdp(seed, widths, eps):
    """Without the lift in its eigenvalue problems the L-BFGS would stall at the full
    SDP's optimum, more than 1e-3 below the lifted one in one case."""
    program, crown, full, lifted_optimum, exact, sampled = _case(seed, widths, eps)
    extra = {"method": "lbfgs", "max_iterations": 3000}
    solution = get_solver("fo-sdp").solve(program, SolveOptions(extra=tuple(extra.items())))
    assert crown - 1e-9 <= solution.bound <= lifted_optimum + 1e-6
    assert (lifted_optimum - solution.bound) / max(1.0, abs(lifted_optimum)) < 1e-3
    assert solution.bound <= exact + 1e-9


def test_the_lift_is_strictly_tighter_somewhere():
    gaps = [_case(*case)[3] - _case(*case)[2] for case in CASES]
    assert max(gaps) > 1e-3


def _updated_multipliers(problem, state, V):
    """``state`` with the multipliers updated at ``V`` by the ALM rule restated here:
    ``lam+ = max(0, lam - mu g(V))``, ``gamma+ = gamma - mu h(V)``."""
    import torch

    with torch.no_grad():
        cons, box, f = bm._constraints(problem, V)
        mu = state.mu
        lams = [((la - mu * ga).clamp(min=0), (lb - mu * gb).clamp(min=0), lg - mu * h,
                 (lt - mu * gt).clamp(min=0))
                for (ga, gb, h, gt), (la, lb, lg, lt) in zip(cons, state.lams)]
        nu = [(lam - mu * g).clamp(min=0) for g, lam in zip(box, state.nu)]
    return dataclasses.replace(state, V=V, lams=lams, nu=nu, objective=float(f))


def test_escape_directions_are_the_augmented_lagrangians_curvature():
    """``bm.escape``'s docstring: with ``D'`` of the multipliers updated at ``V``, a spare
    column ``t w`` (substituted rows following) changes the augmented Lagrangian by
    ``t^2 u^T D' u`` to O(t^4), ``u`` the expanded column; so ``D'``'s negative
    eigenvectors are descent directions, and escape puts exactly them, as unit columns,
    in the smallest columns (never the first)."""
    import torch

    from solvers.backends.fo_sdp.repair import _kept_dense, negative_directions

    program = _case(*CASES[1])[0]
    data = prepare(program, True, True)
    layout = Layout(data)
    problem = bm.BmProblem.build(data, layout, 4, 1.0)
    state = bm.init_state(problem, initial_duals(data, layout, "crown"), bm.centre_point(data),
                          mu=0.5)
    state = bm.update(problem, state, inner=40)
    vectors = negative_directions(data, layout, bm.to_params(problem, state), 2)
    assert vectors.shape[1] == 2 and np.allclose(np.linalg.norm(vectors, axis=0), 1.0)
    smallest = torch.argsort(torch.cat(state.V).norm(dim=0)[1:])[:2] + 1
    moved = torch.cat(bm.escape(problem, state, vectors).V)
    for column, w in zip(smallest.tolist(), vectors.T):
        assert np.allclose(moved[:, column].numpy(), w[1:] * (data.d > 0))
    assert torch.equal(moved[:, 0], torch.cat(state.V)[:, 0])
    zero = bm.escape(problem, state, np.zeros((1 + data.n, 1)))        # a spare column: 0
    spare = int(smallest[0])
    V0 = expand(problem.substitution, zero.V)
    base = _updated_multipliers(problem, state, V0)
    _, keep, D, _ = _kept_dense(data, layout, bm.to_params(problem, base))
    for w in np.random.default_rng(0).normal(size=(3, 1 + data.n)):
        w[0] = 0.0
        for t in (1e-2, 1e-3):
            Vt = expand(problem.substitution, bm.escape(problem, zero, t * w[:, None]).V)
            u = np.concatenate([[0.0], torch.cat(Vt)[:, spare].numpy()]) / t
            with torch.no_grad():
                change = float(bm._augmented(problem, state, Vt)
                               - bm._augmented(problem, state, V0))
            expected = float(u[keep] @ D @ u[keep])
            assert abs(expected) > 1e-2
            assert change / t ** 2 == pytest.approx(expected, rel=1e-3, abs=10 * t ** 2)
