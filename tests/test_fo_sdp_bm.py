"""fo-sdp's Burer-Monteiro path (``method="bm"``) and the Gershgorin ``kappa`` shift (#13 s.1).

References: Clarabel through cvxpy on the same SDP (cuts on), the exact margin from the
big-M MILP (``relax.search.milp.milp_margin``), sampling, and relax's CROWN.  Checks:
the shift makes ``D`` PSD (eigvalsh) and never lowers a certified bound, and so does its
matrix-free (Lanczos) version above the dense limit, whose Gershgorin rule with every
Ritz pair is the dense shift; the BM path's
bound is <= Clarabel's optimum and within 1e-3 of it on small nets, <= the exact margin
<= sampled margins, never below CROWN even when its settings are bad; its state is
explicit (``init_state`` / ``update`` / ``run``); its options are validated.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from relax import robustness
from relax.bounds import bound_specs
from relax.sdp.encode import layered_program
from relax.sdp.method import solve_row
from relax.search.milp import milp_margin
from relax.spec import Spec
from solvers import SolveOptions, get_solver
from solvers.backends.fo_sdp import burer_monteiro as bm
from solvers.backends.fo_sdp.certificate import certify, dense_lagrangian
from solvers.backends.fo_sdp.init import initial_duals
from solvers.backends.fo_sdp.options import FoSdpOptions
from solvers.backends.fo_sdp.problem import Layout, prepare, split_numpy
from solvers.backends.fo_sdp.repair import best_corner, gershgorin_shift, improve, lowrank_shift
from tests.helpers import random_network, sample_box

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@functools.cache
def _case(seed: int, widths=(3, 6, 5, 3), eps: float = 0.2):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    spec = robustness(x, int(np.argmax(network.forward(x))), eps, num_classes=widths[-1])
    crown = bound_specs(network, [spec], "crown")[0]
    d = spec.disjuncts[int(np.argmin(crown.disjunct_bounds))]
    row, offset = d.A[0], float(d.b[0])
    program = layered_program(network, spec.lower, spec.upper, crown.layers, row, offset)
    clarabel = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel",
                         cuts=True).objective
    exact = milp_margin(network, Spec(spec.lower, spec.upper, (d,)), crown.layers)
    sampled = d.margin(network.forward(sample_box(rng, spec.lower, spec.upper, 400))).min()
    return program, float(np.min(crown.disjunct_bounds)), clarabel, exact, float(sampled)


def _bm(program, **extra):
    """fo-sdp's BM path on the full SDP with cuts (Clarabel's reference here; with stably
    active neurons lifted, the default, see tests/test_fo_sdp_lift.py)."""
    extra = {"method": "bm", "max_iterations": 1500, "bm_outer": 5, "bm_inner": 100,
             "eliminate": False, **extra}
    return get_solver("fo-sdp").solve(program, SolveOptions(extra=tuple(extra.items())))


def _tol(value: float) -> float:
    return 1e-9 * max(1.0, abs(value))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_gershgorin_shift_makes_D_psd_and_never_lowers_the_bound(seed):
    program, _, clarabel, _, _ = _case(seed)
    data = prepare(program, True)
    layout = Layout(data)
    rng = np.random.default_rng(seed)
    start = initial_duals(data, layout, "crown")
    keep = np.concatenate([[True], data.d > 0])
    for scale in (0.1, 1.0):
        params = layout.project(start + scale * rng.normal(size=start.size))
        shifted = gershgorin_shift(data, layout, params)
        lams, kappa = split_numpy(layout, data, shifted)
        D = dense_lagrangian(data, lams, kappa, absolute=False)[np.ix_(keep, keep)]
        assert np.linalg.eigvalsh(D)[0] >= -1e-9 * np.linalg.norm(D)
        plain = certify(data, layout, params, 6000)
        bound, duals = improve(data, layout, params, 6000)
        assert bound >= plain and bound == certify(data, layout, duals, 6000)
        assert bound <= clarabel + 1e-7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_best_corner_makes_D_singular_whatever_kappa_0_it_got(seed):
    """After the shift ``R > 0``; the Schur complement ``kappa_0`` leaves ``D >= 0`` with a
    zero eigenvalue (so no larger ``kappa_0`` keeps it PSD), whatever ``kappa_0`` it got;
    never above Clarabel's SDP optimum; ``improve`` returns the best of the three."""
    program, _, clarabel, _, _ = _case(seed)
    data = prepare(program, True)
    layout = Layout(data)
    rng = np.random.default_rng(seed)
    start = initial_duals(data, layout, "crown")
    keep = np.concatenate([[True], data.d > 0])
    for scale in (0.1, 1.0):
        params = layout.project(start + scale * rng.normal(size=start.size))
        shifted = gershgorin_shift(data, layout, params)
        low = shifted.copy()
        low[layout.kappa_start] -= 1.0
        corner = best_corner(data, layout, low)
        lams, kappa = split_numpy(layout, data, corner)
        D = dense_lagrangian(data, lams, kappa, absolute=False)[np.ix_(keep, keep)]
        assert abs(np.linalg.eigvalsh(D)[0]) <= 1e-8 * np.linalg.norm(D)
        assert corner[layout.kappa_start] >= shifted[layout.kappa_start] - 1e-9
        assert np.allclose(corner, best_corner(data, layout, shifted), rtol=1e-9, atol=1e-9)
        assert np.array_equal(np.delete(corner, layout.kappa_start),
                              np.delete(shifted, layout.kappa_start))
        bound = certify(data, layout, corner, 6000)
        assert bound <= clarabel + 1e-7
        best, _ = improve(data, layout, params, 6000)
        assert best >= max(certify(data, layout, params, 6000),
                           certify(data, layout, shifted, 6000),
                           certify(data, layout, best_corner(data, layout, shifted), 6000))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_matrix_free_shift_makes_D_psd_and_matches_the_dense_one(seed):
    program, _, _, _, _ = _case(seed)
    data = prepare(program, True)
    layout = Layout(data)
    rng = np.random.default_rng(seed)
    start = initial_duals(data, layout, "crown")
    keep = np.concatenate([[True], data.d > 0])
    m = int(keep.sum())
    for scale in (0.1, 1.0):
        params = layout.project(start + scale * rng.normal(size=start.size))
        for rule in ("weighted", "rows"):
            shifted = lowrank_shift(data, layout, params, count=m, steps=m, rounds=1,
                                    rule=rule)
            lams, kappa = split_numpy(layout, data, shifted)
            D = dense_lagrangian(data, lams, kappa, absolute=False)[np.ix_(keep, keep)]
            assert np.linalg.eigvalsh(D)[0] >= -1e-9 * np.linalg.norm(D)
        dense = gershgorin_shift(data, layout, params)
        assert np.allclose(shifted, dense, rtol=1e-8, atol=1e-8 * np.abs(dense).max())
    with pytest.raises(ValueError):
        lowrank_shift(data, layout, params, count=m, steps=m, rule="nope")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_matrix_free_shift_never_lowers_the_block_certified_bound(seed):
    program, _, clarabel, exact, _ = _case(seed, (4, 8, 8, 6, 3))
    data = prepare(program, True)
    layout = Layout(data)
    rng = np.random.default_rng(seed)
    start = initial_duals(data, layout, "crown")
    for scale in (0.1, 1.0):
        params = layout.project(start + scale * rng.normal(size=start.size))
        plain = certify(data, layout, params, 1)            # limit 1: the block certificate
        bound, duals = improve(data, layout, params, 1, matrix_free=True)
        assert bound > plain or scale < 1                   # it helps on the far points
        assert bound >= plain and bound == certify(data, layout, duals, 1)
        assert bound <= min(clarabel + 1e-7, exact + 1e-9)
        for count in (1, 3):                                # a partial negative part
            few = lowrank_shift(data, layout, params, count=count, steps=12)
            assert certify(data, layout, few, 1) <= min(clarabel + 1e-7, exact + 1e-9)


@pytest.mark.parametrize("seed, momentum", [(0, True), (1, True), (2, True), (3, True),
                                            (0, False), (3, False)])
def test_bm_reaches_clarabel_and_is_sound(seed, momentum):
    program, crown, clarabel, exact, sampled = _case(seed)
    solution = _bm(program, bm_momentum=momentum)
    assert crown - _tol(crown) <= solution.bound <= clarabel + 1e-7
    assert (clarabel - solution.bound) / max(1.0, abs(clarabel)) < 1e-3
    assert solution.bound <= exact + 1e-9 <= sampled + 2e-9


def test_bm_alone_above_lbfgs_below_is_sound_and_runs_no_lbfgs():
    """Above ``lbfgs_below`` rows the Burer-Monteiro stage has the whole run: every check
    is one of its outer iterations (iteration 0), no L-BFGS evaluation follows, and the
    bound still lies between CROWN's and Clarabel's."""
    program, crown, clarabel, exact, _ = _case(1, (4, 8, 8, 6, 3))
    solution = _bm(program, lbfgs_below=5, bm_outer=8)
    checks = solution.warm_start.checks
    assert len(checks) == 8 and all(i == 0 for i, _ in checks)
    assert solution.stats.iterations == 0
    assert crown - _tol(crown) <= solution.bound <= min(clarabel + 1e-7, exact + 1e-9)
    assert solution.bound > crown + 1e-3          # the SDP is tighter than CROWN here
    assert solution.message.startswith("Burer-Monteiro: 8 outer iterations")


@pytest.mark.parametrize("seed", [0, 1])
def test_the_hand_gradient_is_autograds(seed):
    """The augmented Lagrangian's hand-written gradient (used by the inner L-BFGS) equals
    torch autograd's of :func:`_augmented` at random factors and multipliers, including
    masked (fixed) rows, active and inactive inequality terms."""
    import torch

    program, *_ = _case(seed, (4, 8, 8, 6, 3))
    data = prepare(program, True)
    layout = Layout(data)
    problem = bm.BmProblem.build(data, layout, 3, 1.0)
    state = bm.init_state(problem, initial_duals(data, layout, "crown"), bm.centre_point(data))
    generator = torch.Generator().manual_seed(seed)
    noisy = lambda x: x + 0.3 * torch.rand(x.shape, generator=generator, dtype=x.dtype)  # noqa: E731
    state = dataclasses.replace(state, lams=[tuple(noisy(x) for x in lam) for lam in state.lams],
                                nu=[noisy(x) for x in state.nu], mu=0.7)
    masks = [(d > 0)[:, None].to(v) for d, v in zip(problem.d, state.V)]
    for scale in (0.2, 1.5):
        V = [(scale * torch.randn(v.shape, generator=generator, dtype=torch.float64))
             .requires_grad_(True) for v in state.V]
        value = bm._augmented(problem, state, [v * m for v, m in zip(V, masks)])
        value.backward()
        with torch.no_grad():
            hand, grads = bm._augmented_and_gradient(problem, state, V, masks)
        assert abs(float(hand) - float(value)) <= 1e-12 * max(1.0, abs(float(value)))
        for v, g in zip(V, grads):
            assert torch.allclose(g, v.grad, rtol=1e-10, atol=1e-12)


def test_background_checks_certify_exactly_what_inline_checks_do():
    """The checks feed back into the iterations only through the escape, which reads
    the previous iteration's check either way, so running them in a worker thread gives
    the same checks, in order, and the same bound as running them inline."""
    program, *_ = _case(2, (4, 8, 8, 6, 3))
    runs = [_bm(program, bm_outer=4, max_iterations=200,
                bm_background_checks=flag) for flag in (True, False)]
    assert runs[0].warm_start.checks == runs[1].warm_start.checks
    assert len([c for c in runs[0].warm_start.checks if c[0] == 0]) >= 4
    assert runs[0].bound == runs[1].bound


def test_momentum_certifies_the_plain_update_not_the_extrapolated_point():
    program, *_ = _case(0)
    data = prepare(program, True)
    layout = Layout(data)
    problem = bm.BmProblem.build(data, layout, 3, 1.0)
    state = bm.init_state(problem, initial_duals(data, layout, "crown"), bm.centre_point(data))
    moved = False
    for _ in range(4):
        state = bm.update(problem, state, inner=30, momentum=True)
        plain = dataclasses.replace(state, lams=state.updated[0], nu=state.updated[1],
                                    updated=None)
        assert np.array_equal(bm.to_params(problem, state), bm.to_params(problem, plain))
        moved |= state.momentum > 1.0 and any(
            not np.array_equal(a.numpy(), b.numpy())
            for now, upd in zip(state.lams, state.updated[0]) for a, b in zip(now, upd))
    assert moved                              # some step was extrapolated


def test_bm_is_never_below_crown_with_bad_settings():
    for seed in range(3):
        program, crown, clarabel, _, _ = _case(seed, (4, 8, 8, 6, 3))
        for extra in ({"bm_mu": 1e7, "bm_inner": 1}, {"bm_mu": 1e-3, "rank": 1}):
            bound = _bm(program, max_iterations=10, **extra).bound
            assert crown - _tol(crown) <= bound <= clarabel + 1e-7


def test_bm_state_is_explicit():
    program, *_ = _case(0)
    data = prepare(program, True)
    layout = Layout(data)
    problem = bm.BmProblem.build(data, layout, 3, 1.0)
    state = bm.init_state(problem, initial_duals(data, layout, "crown"), bm.centre_point(data))
    before = [v.clone() for v in state.V]
    after = bm.update(problem, state, inner=20)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(before, state.V))
    assert after.outer == 1 and state.outer == 0
    assert bm.run(problem, state, None, outer=3, inner=20).outer == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.mu = 1.0


def test_bm_options_are_validated():
    with pytest.raises(ValueError, match="unknown option"):
        FoSdpOptions.from_solve_options(SolveOptions(extra=(("bm_rank", 3),)))
    for bad in ({"bm_mu": 0.0}, {"rank": 0}, {"bm_growth": 0.5}, {"bm_fraction": 1.5},
                {"bm_outer": 0}, {"bm_keep": -1.0}, {"bm_shift_every": 0}):
        with pytest.raises(ValueError):
            FoSdpOptions(**bad)
