"""The SDP relaxation (relax.sdp) and the fo-sdp solver on tiny ReLU networks.

References: the triangle LP with the same intermediate bounds, the exact MILP
(HiGHS) per disjunct, dense sampling, and Clarabel's SDP optimum.  Checks: the
lifted inputs satisfy the encoding (index arithmetic); SDP with cuts >= LP and
every SDP bound <= exact; Clarabel's safe bound ~ its objective; fo-sdp ~ Clarabel;
every checked fo-sdp iterate (and any dual vector) gives a valid bound; warm
starts converge faster; the matrix-free operator and Lanczos agree with dense
algebra; the ``sdp`` method of ``verify``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from relax import Verdict, robustness, verify
from relax.bounds import bound_specs
from relax.errors import UsageError
from relax.lp.method import lp_disjunct_bounds
from relax.search.milp import milp_margin
from relax.network import Affine, Network
from relax.sdp.encode import encode_sdp, layered_program, triangle_index
from relax.sdp.method import SdpOptions, sdp_bound, solve_row
from relax.spec import Conjunction, Spec
from relax.protocol import VerifyOptions
from solvers import ProblemKind, SolveOptions, UnsupportedProblem, get_solver
from solvers.backends import fo_sdp
from solvers.backends.fo_sdp import certificate, operator, problem
from solvers.linalg import lanczos
from tests.helpers import random_network, sample_box

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@functools.lru_cache(maxsize=None)
def _problem(seed: int, eps: float = 0.2, widths=(3, 5, 5, 3)):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    spec = robustness(x, label, eps, num_classes=widths[-1])
    return network, spec, bound_specs(network, [spec], "crown")[0].layers


@functools.lru_cache(maxsize=None)
def _exact(seed: int, eps: float = 0.2) -> np.ndarray:
    network, spec, bounds = _problem(seed, eps)
    return np.array([milp_margin(network, Spec(spec.lower, spec.upper, (d,)), bounds)
                     for d in spec.disjuncts])


def _row(seed: int, eps: float = 0.2):
    network, spec, bounds = _problem(seed, eps)
    return network, spec, bounds, spec.disjuncts[0].A[0], float(spec.disjuncts[0].b[0])


@functools.lru_cache(maxsize=None)
def _clarabel(seed: int, eps: float = 0.2) -> float:
    network, spec, bounds, row, offset = _row(seed, eps)
    return solve_row(network, spec, bounds, row, offset, "cvxpy-clarabel").objective


def _fo(extra: dict, **kwargs):
    return SolveOptions(extra=tuple(extra.items()), **kwargs)


def _lifted(network: Network, inputs: np.ndarray) -> np.ndarray:
    """Rows ``x = [x_0, a_0, ..., a_{L-1}]`` for a batch of inputs."""
    zs = network.pre_activations(inputs)
    return np.hstack([inputs] + [np.maximum(z, 0) for z in zs[:-1]])


# -- the encoding ---------------------------------------------------------------------------

@pytest.mark.parametrize("cuts", [False, True])
def test_lifted_inputs_satisfy_the_encoding(cuts):
    network, spec, bounds = _problem(3)
    encoding = encode_sdp(network, spec.lower, spec.upper, bounds, cuts)
    lp, cone = encoding.program.linear, encoding.program.psd[0]
    rng = np.random.default_rng(0)
    xs = _lifted(network, sample_box(rng, spec.lower, spec.upper, 50))
    s = xs.shape[1] + 1
    I, J = np.triu_indices(s)
    assert np.array_equal(triangle_index(I[1:], J[1:], s), np.arange(I.size - 1))
    for x in xs:
        P = np.outer(np.r_[1.0, x], np.r_[1.0, x])
        v = P[I[1:], J[1:]]
        Av = lp.A @ v
        assert np.all(Av >= lp.row_lower - 1e-9) and np.all(Av <= lp.row_upper + 1e-9)
        assert np.all(v >= lp.lower - 1e-12) and np.all(v <= lp.upper + 1e-12)
        S = (cone.coefficients @ v - cone.constant).reshape(s, s)
        assert np.allclose(S, P)
        objective = encoding.with_objective(spec.disjuncts[0].A[0], spec.disjuncts[0].b[0]).linear
        y = network.forward(x[:network.input_size])
        assert objective.c @ v + objective.c0 == pytest.approx(spec.disjuncts[0].margin(y)[0])


# -- bounds against references --------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 2, 4])
def test_sdp_lies_between_the_lp_with_cuts_and_the_exact_value(seed):
    network, spec, bounds = _problem(seed)
    exact = _exact(seed)
    lp = lp_disjunct_bounds(network, spec, bounds, None)
    plain = sdp_bound(network, spec, bounds, "cvxpy-clarabel", cuts=False)
    cut = sdp_bound(network, spec, bounds, "cvxpy-clarabel", cuts=True)
    assert np.all(cut >= lp - 1e-6)
    assert np.all(cut >= plain - 1e-6)
    assert np.all(plain <= exact + 1e-7) and np.all(cut <= exact + 1e-7)
    rng = np.random.default_rng(seed)
    ys = network.forward(sample_box(rng, spec.lower, spec.upper, 300))
    sampled = np.array([d.margin(ys).min() for d in spec.disjuncts])
    assert np.all(exact <= sampled + 1e-7)


def test_fixed_inputs_and_multi_row_disjuncts():
    network, spec, bounds = _problem(1)
    lower, upper = spec.lower.copy(), spec.upper.copy()
    upper[0] = lower[0]                                       # one input fixed
    both = Conjunction(np.vstack([d.A for d in spec.disjuncts]), np.zeros(2))
    spec2 = Spec(lower, upper, (both,) + spec.disjuncts)
    bounds2 = bound_specs(network, [spec2], "crown")[0].layers
    exact = milp_margin(network, spec2, bounds2)
    per = sdp_bound(network, spec2, bounds2, "cvxpy-clarabel", cuts=True)
    fo = sdp_bound(network, spec2, bounds2, "fo-sdp", options=_fo({"max_iterations": 300}))
    assert per.min() <= exact + 1e-7 and fo.min() <= exact + 1e-7
    assert per[0] >= max(per[1], per[2]) - 1e-6              # max over rows is implied
    assert np.all(np.isfinite(fo))


def test_affine_network_gives_the_interval_bound():
    rng = np.random.default_rng(0)
    network = Network((Affine(rng.normal(size=(2, 3)), rng.normal(size=2)),))
    spec = robustness(rng.uniform(size=3), 0, 0.1, num_classes=2)
    bounds = bound_specs(network, [spec], "crown")[0]
    for solver in ("cvxpy-clarabel", "fo-sdp"):
        value = sdp_bound(network, spec, bounds.layers, solver)
        assert value[0] == pytest.approx(bounds.bound, abs=1e-6)
        assert value[0] <= bounds.bound + 1e-12


@pytest.mark.parametrize("cuts", [False, True])
def test_clarabel_safe_bound_matches_its_objective(cuts):
    for seed in (0, 2):
        network, spec, bounds, row, offset = _row(seed)
        solution = solve_row(network, spec, bounds, row, offset, "cvxpy-clarabel", cuts)
        assert solution.bound <= solution.objective + 1e-7
        assert solution.bound == pytest.approx(solution.objective, abs=1e-4)


# -- fo-sdp ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed, cuts", [(0, False), (4, False), (2, True)])
def test_fo_sdp_matches_clarabel(seed, cuts):
    network, spec, bounds, row, offset = _row(seed)
    reference = solve_row(network, spec, bounds, row, offset, "cvxpy-clarabel", cuts).objective
    solution = solve_row(network, spec, bounds, row, offset, "fo-sdp", cuts,
                         options=_fo({"max_iterations": 3000}))
    assert solution.bound <= reference + 1e-6
    assert (reference - solution.bound) / max(1.0, abs(reference)) < 1e-3


@pytest.mark.parametrize("init", ["interval", "zeros"])
def test_every_checked_fo_sdp_iterate_is_a_valid_bound(init):
    network, spec, bounds, row, offset = _row(2)
    exact, reference = _exact(2)[0], _clarabel(2)
    solution = solve_row(network, spec, bounds, row, offset, "fo-sdp",
                         options=_fo({"max_iterations": 300, "check_every": 15, "init": init,
                                      "method": "adam"}))
    checks = [b for _, b in solution.warm_start.checks]
    assert len(checks) == 20 and all(math.isfinite(b) for b in checks)
    assert max(checks) <= solution.bound <= reference + 1e-7 <= exact + 1e-7
    assert all(b <= reference + 1e-7 for b in checks)


def test_any_dual_vector_gives_a_valid_bound():
    network, spec, bounds, row, offset = _row(2)
    exact = _exact(2)[0]
    program = layered_program(network, spec.lower, spec.upper, bounds, row, offset)
    state = get_solver("fo-sdp").solve(program, _fo({"max_iterations": 50})).warm_start
    rng = np.random.default_rng(0)
    for scale in (0.01, 1.0, 100.0):
        params = state.params + scale * rng.normal(size=state.params.size)
        for cuts in (False, True):
            bound = fo_sdp.certified_bound(program, params, cuts)
            assert bound <= exact + 1e-9


def test_warm_start_converges_in_fewer_iterations():
    network, spec, bounds, row, offset = _row(0, 0.2)
    previous = solve_row(network, spec, bounds, row, offset, "fo-sdp",
                         options=_fo({"max_iterations": 1500, "method": "adam"})).warm_start
    network, spec, bounds, row, offset = _row(0, 0.21)
    reference = _clarabel(0, 0.21)
    target = reference - 1e-3 * max(1.0, abs(reference))
    options = _fo({"max_iterations": 1500, "target": target, "eig": "lanczos",
                   "method": "adam"})
    cold = solve_row(network, spec, bounds, row, offset, "fo-sdp", options=options)
    warm = solve_row(network, spec, bounds, row, offset, "fo-sdp", options=options,
                     warm_start=previous)
    assert warm.stats.iterations < cold.stats.iterations / 2
    for solution in (cold, warm):
        assert target - 2e-3 <= solution.bound <= reference + 1e-7


def test_float32_runs_and_its_bound_is_checked_in_float64():
    network, spec, bounds, row, offset = _row(4)
    solution = solve_row(network, spec, bounds, row, offset, "fo-sdp",
                         options=_fo({"max_iterations": 600, "dtype": "float32"}))
    reference = _clarabel(4)
    assert solution.bound <= reference + 1e-7
    assert reference - solution.bound < 2e-2 * max(1.0, abs(reference))


def _operator(program, cuts=True):
    import torch

    data = problem.prepare(program, cuts)
    layout = problem.Layout(data)
    return data, layout, operator.Operator([data], [layout], "cpu", torch.float64)


def test_matrix_free_operator_and_gradients_match_dense_algebra():
    network, spec, bounds, row, offset = _row(0)
    program = layered_program(network, spec.lower, spec.upper, bounds, row, offset)
    data, layout, op = _operator(program)
    rng = np.random.default_rng(1)
    params = layout.project(rng.normal(size=layout.size))
    lams, kappa = problem.split_numpy(layout, data, params)
    dense = certificate.dense_lagrangian(data, lams, kappa, absolute=False)
    import torch

    p = torch.as_tensor(params)[None]
    op.set_params(p)
    identity = torch.eye(data.n + 1, dtype=torch.float64)
    assert np.allclose(op.apply(identity[None])[0].numpy(), dense, atol=1e-12)
    assert np.allclose(op.dense(torch.arange(data.n + 1))[0].numpy(), dense, atol=1e-12)
    v = torch.as_tensor(rng.normal(size=(2, data.n + 1)))
    v = (v / v.norm(dim=1, keepdim=True))[None]
    q, grad = op.rayleigh(v)
    assert np.allclose(q[0].numpy(), np.einsum("ri,ij,rj->r", v[0].numpy(), dense, v[0].numpy()))
    assert np.allclose(op.gradient_sum(v)[0].numpy(), grad[0].sum(0).numpy())
    for j in rng.choice(layout.size, 25, replace=False):   # q is affine in the duals
        if not layout.free[j]:
            continue
        step = torch.zeros_like(p)
        step[0, j] = 1.0
        op.set_params(p + step)
        assert np.allclose((op.rayleigh(v)[0] - q)[0].numpy(), grad[0, :, j].numpy(), atol=1e-10)


def test_lanczos_matches_eigh_and_the_dense_path():
    import torch

    rng = np.random.default_rng(0)
    A = rng.normal(size=(40, 40))
    A = torch.as_tensor(A + A.T)
    values, vectors = lanczos(lambda v: v @ A, torch.ones((1, 40), dtype=torch.float64), 40, 3)
    assert np.allclose(values[0].numpy(), np.linalg.eigvalsh(A.numpy())[:3], atol=1e-8)
    assert torch.allclose((vectors[0] @ A @ vectors[0].T).diagonal(), values[0], atol=1e-8)
    top, _ = lanczos(lambda v: v @ A, torch.ones((1, 40), dtype=torch.float64), 40, 2,
                     largest=True)
    assert np.allclose(top[0].numpy(), np.linalg.eigvalsh(A.numpy())[::-1][:2], atol=1e-8)
    block = torch.block_diag(A[:20, :20], A[20:, 20:])   # reducible: needs the restart
    start = torch.cat([torch.ones(20), torch.zeros(20)]).double()[None]
    values, _ = lanczos(lambda v: v @ block, start, 40, 3)
    assert np.allclose(values[0].numpy(), np.linalg.eigvalsh(block.numpy())[:3], atol=1e-8)
    network, spec, bounds, row, offset = _row(0)
    program = layered_program(network, spec.lower, spec.upper, bounds, row, offset)
    data, layout, op = _operator(program)
    params = layout.project(rng.normal(size=layout.size))
    op.set_params(torch.as_tensor(params)[None])
    values, _ = lanczos(lambda v: op.apply(v[:, None])[:, 0], op.keep.clone(), data.n + 1, 3,
                        op.keep)
    dense = op.dense(torch.nonzero(op.keep[0]).ravel())[0].numpy()
    assert np.allclose(values[0].numpy(), np.linalg.eigvalsh(dense)[:3], atol=1e-8)


def test_sparse_weights_give_the_same_bounds():
    import scipy.sparse as sp

    network, spec, bounds = _problem(0)
    layers = tuple(Affine(sp.csr_matrix(a.weight), a.bias) if i < 2 else a
                   for i, a in enumerate(network.affines))
    sparse = Network((layers[0], network.activations[0], layers[1], network.activations[1],
                      layers[2]))
    assert sparse.affines[0].is_sparse
    options = _fo({"max_iterations": 100, "eig": "lanczos"})
    ours = sdp_bound(sparse, spec, bounds, "fo-sdp", options=options)
    reference = sdp_bound(network, spec, bounds, "fo-sdp", options=options)
    assert np.allclose(ours, reference, atol=1e-9) and np.all(ours <= _exact(0) + 1e-7)


# -- registry and the verification method ---------------------------------------------------

def test_fo_sdp_is_registered_for_layered_programs_only():
    backend = get_solver("fo-sdp")
    assert backend.kinds == frozenset({ProblemKind.LAYERED_QCQP})
    network, spec, bounds = _problem(0)
    program = encode_sdp(network, spec.lower, spec.upper, bounds).program
    with pytest.raises(UnsupportedProblem):
        backend.solve(program)


def test_verify_with_the_sdp_method():
    network, spec, _ = _problem(0, 0.3)            # CROWN fails, the SDP with cuts proves it
    exact = _exact(0, 0.3).min()
    assert bound_specs(network, [spec], "crown")[0].bound < 0 < exact
    cuts = VerifyOptions(methods=(SdpOptions(cuts=True),))
    result = verify(network, spec, "sdp", options=cuts)
    assert result.verdict is Verdict.HOLDS and result.solver == "sdp-ipm"
    assert 0 < result.bound <= exact + 1e-7
    tightened = verify(network, spec, "sdp", options=VerifyOptions(methods=(
        SdpOptions(cuts=True, intermediate="lp", skip_proved=False),)))
    assert result.bound - 1e-6 <= tightened.bound <= exact + 1e-7
    fo = verify(network, spec, "sdp", options=VerifyOptions(
        solver="fo-sdp", methods=(SdpOptions(cuts=True, max_iterations=1500),)))
    assert fo.verdict is Verdict.HOLDS and fo.solver == "fo-sdp"
    assert fo.bound <= exact + 1e-7
    network, spec, _ = _problem(2, 0.2)            # violated: PGD inside the method finds it
    violated = verify(network, spec, "sdp")
    assert violated.verdict is Verdict.VIOLATED
    assert spec.is_violated_by(violated.counterexample, network.forward(violated.counterexample))


def test_sdp_method_rejects_bad_input():
    rng = np.random.default_rng(0)
    sigmoid = random_network(rng, [2, 3, 2], "sigmoid")
    spec = robustness(np.zeros(2), 0, 0.1, num_classes=2)
    with pytest.raises(UsageError, match="ReLU"):
        verify(sigmoid, spec, "sdp")
    network, spec, _ = _problem(0)
    with pytest.raises(UsageError, match="intermediate"):
        verify(network, spec, "sdp", options=VerifyOptions(methods=(SdpOptions(intermediate="ibp"),)))
    with pytest.raises(UsageError, match="solver"):
        verify(network, spec, "sdp", options=VerifyOptions(solver="highs"))


# -- fo-sdp: the spectral L-BFGS method (the default below lbfgs_below rows) ----------------

@pytest.mark.parametrize("seed, cuts", [(1, False), (3, True)])
def test_lbfgs_reaches_clarabel_on_a_wider_net(seed, cuts):
    rng = np.random.default_rng(seed)
    network = random_network(rng, [6, 8, 8, 4], "relu", scale=1.5)
    x = rng.uniform(size=6)
    spec = robustness(x, int(np.argmax(network.forward(x))), 0.15, num_classes=4)
    bounds = bound_specs(network, [spec], "crown")[0].layers
    row, offset = spec.disjuncts[0].A[0], float(spec.disjuncts[0].b[0])
    reference = solve_row(network, spec, bounds, row, offset, "cvxpy-clarabel", cuts).objective
    solution = solve_row(network, spec, bounds, row, offset, "fo-sdp", cuts,
                         options=_fo({"method": "lbfgs", "max_iterations": 3000}))
    assert solution.bound <= reference + 1e-6
    assert (reference - solution.bound) / max(1.0, abs(reference)) < 1e-3


def test_lbfgs_checked_iterates_are_valid_and_improve_on_the_start():
    network, spec, bounds, row, offset = _row(2)
    exact, reference = _exact(2)[0], _clarabel(2)
    options = {"max_iterations": 120, "check_every": 10, "method": "lbfgs"}
    solution = solve_row(network, spec, bounds, row, offset, "fo-sdp", options=_fo(options))
    start = solve_row(network, spec, bounds, row, offset, "fo-sdp",
                      options=_fo({**options, "max_iterations": 1})).bound
    checks = [b for _, b in solution.warm_start.checks]
    assert len(checks) == 12 and all(math.isfinite(b) for b in checks)
    assert all(b <= reference + 1e-7 <= exact + 1e-7 for b in checks)
    assert solution.stats.iterations <= 120
    assert start < solution.bound <= reference + 1e-7


def test_lbfgs_warm_start_from_the_neighbouring_eps_needs_fewer_evaluations():
    network, spec, bounds, row, offset = _row(0, 0.2)
    options = {"method": "lbfgs", "max_iterations": 3000}
    previous = solve_row(network, spec, bounds, row, offset, "fo-sdp",
                         options=_fo(options)).warm_start
    network, spec, bounds, row, offset = _row(0, 0.21)
    reference = _clarabel(0, 0.21)
    target = reference - 1e-3 * max(1.0, abs(reference))
    options["target"] = target
    cold = solve_row(network, spec, bounds, row, offset, "fo-sdp", options=_fo(options))
    warm = solve_row(network, spec, bounds, row, offset, "fo-sdp", options=_fo(options),
                     warm_start=previous)
    assert warm.stats.iterations < cold.stats.iterations
    for solution in (cold, warm):
        assert target - 2e-3 <= solution.bound <= reference + 1e-7
