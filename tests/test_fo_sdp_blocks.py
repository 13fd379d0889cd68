"""The block LDL^T (Cholesky) certificate of fo-sdp (``solvers.backends.fo_sdp.blocks``).

Reference: numpy's dense ``eigvalsh`` of the same matrix (formed independently by
:func:`dense_lagrangian`), on every size where both run, and the exact MILP margin.
Checks: the certified ``q`` is below the smallest eigenvalue and within 1e-8
(relative) of it, for random block data, for fo-sdp's own duals and random duals,
with fixed coordinates; the bound certified past ``dense_check_limit`` matches the
dense one and stays below the exact margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from relax.search.milp import milp_margin
from relax.spec import Spec
from solvers import SolveOptions, get_solver
from solvers.backends.fo_sdp import blocks, certificate, init, problem
from tests.test_fo_sdp_init import _case

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _dense(b: certificate.Blocks) -> np.ndarray:
    sizes = [d.size for d in b.diag]
    offsets = np.concatenate([[1], 1 + np.cumsum(sizes)]).astype(int)
    D = np.diag(np.concatenate([[b.corner]] + b.diag))
    D[0, 1:] = D[1:, 0] = np.concatenate(b.row)
    for k, o in enumerate(b.off):
        D[offsets[k + 1]:offsets[k + 2], offsets[k]:offsets[k + 1]] = o
        D[offsets[k]:offsets[k + 1], offsets[k + 1]:offsets[k + 2]] = o.T
    return D


def _check(q: float, D: np.ndarray) -> None:
    low = np.linalg.eigvalsh(D)[0]
    norm = np.linalg.norm(D)
    assert q <= low + 1e-13 * norm                      # below (eigvalsh's own error aside)
    assert q >= low - 1e-8 * max(1.0, norm)            # and tight


@pytest.mark.parametrize("sizes", [(3, 4), (5, 7, 2), (30, 20, 20, 5), (200, 60, 40, 10)])
def test_block_certificate_against_eigvalsh_on_random_blocks(sizes):
    rng = np.random.default_rng(len(sizes))
    for _ in range(3):
        b = certificate.Blocks(float(rng.normal()), [rng.normal(size=n) for n in sizes],
                               [rng.normal(size=n) * 3 for n in sizes],
                               [rng.normal(size=(m, n)) for n, m in zip(sizes, sizes[1:])])
        absolute = certificate.Blocks(abs(b.corner), [np.abs(r) for r in b.row],
                                      [np.abs(d) for d in b.diag], [np.abs(o) for o in b.off])
        _check(blocks.lower_eigenvalue(b, absolute, 4), _dense(b))


@pytest.mark.parametrize("seed, widths", [(0, (3, 6, 5, 3)), (2, (4, 8, 8, 6, 3))])
def test_block_certificate_on_fo_sdp_duals_and_random_duals(seed, widths):
    _, _, _, programs = _case(seed, widths)
    program = programs[0]
    data = problem.prepare(program, True)
    layout = problem.Layout(data)
    solution = get_solver("fo-sdp").solve(program, SolveOptions(extra=(("max_iterations", 100),)))
    rng = np.random.default_rng(seed)
    for params in (solution.warm_start.params, layout.project(rng.normal(size=layout.size)),
                   solution.warm_start.params + 0.01 * rng.normal(size=layout.size)):
        lams, kappa = problem.split_numpy(layout, data, params)
        keep = np.concatenate([[True], data.d > 0])
        D = certificate.dense_lagrangian(data, lams, kappa, False)[np.ix_(keep, keep)]
        _check(blocks.block_lower_eigenvalue(data, lams, kappa), D)


def test_bound_past_the_dense_limit_matches_the_dense_one_and_stays_below_exact():
    from tests.test_fo_sdp_batch import _image, _network, _programs

    network = _network()
    spec, bounds = _image(2, 0.15, True)                 # input 0 fixed
    for program, d in zip(_programs([(spec, bounds)]), spec.disjuncts):
        options = SolveOptions(extra=(("max_iterations", 150), ("method", "adam"),
                                      ("eig", "dense")))
        solution = get_solver("fo-sdp").solve(program, options)
        data = problem.prepare(program, True)
        layout = problem.Layout(data)
        params = solution.warm_start.params
        dense = certificate.certify(data, layout, params, 6000)
        block = certificate.certify(data, layout, params, 0)
        exact = milp_margin(network, Spec(spec.lower, spec.upper, (d,)), bounds)
        assert np.isfinite(block) and abs(block - dense) <= 1e-7 * max(1.0, abs(dense))
        assert block <= exact + 1e-9


def test_the_linear_certificate_of_any_gamma_free_duals_is_below_the_exact_margin():
    network, spec, crown, programs = _case(1, (4, 8, 8, 6, 3))
    rng = np.random.default_rng(3)
    for program, d in zip(programs, spec.disjuncts):
        exact = milp_margin(network, Spec(spec.lower, spec.upper, (d,)), crown.layers)
        data = problem.prepare(program, True)
        layout = problem.Layout(data)
        for scale in (0.1, 1.0, 10.0):
            params = layout.project(scale * rng.normal(size=layout.size))
            for k in range(len(layout.hidden)):
                layout.split(params, k)[2][:] = 0.0                  # gamma = 0: linear
            assert certificate.certify(data, layout, params, 6000) <= exact + 1e-9
        crown_start = init.box_kappa(data, layout, init.crown_duals(data, layout))
        for _ in range(5):                       # near CROWN's duals: values near the margin
            params = crown_start * (1 + 0.05 * rng.normal(size=layout.size))
            assert certificate.certify(data, layout, params, 6000) <= exact + 1e-9


# -- the elimination order, structures, refusals (blocks.block_cholesky, lower_eigenvalue) --

def _random_blocks(rng, sizes, scale=3.0, sparse=False):
    import scipy.sparse as sp

    off = [rng.normal(size=(m, n)) * (rng.uniform(size=(m, n)) < 0.3)
           for n, m in zip(sizes, sizes[1:])]
    b = certificate.Blocks(float(rng.normal()), [rng.normal(size=n) for n in sizes],
                           [rng.normal(size=n) * scale for n in sizes],
                           [sp.csr_matrix(o) for o in off] if sparse else off)
    return b, off


def _absolute(b: certificate.Blocks) -> certificate.Blocks:
    import scipy.sparse as sp

    return certificate.Blocks(abs(b.corner), [np.abs(r) for r in b.row],
                              [np.abs(d) for d in b.diag],
                              [abs(o) if sp.issparse(o) else np.abs(o) for o in b.off])


STRUCTURES = [(6,), (1, 1), (40, 3), (3, 40), (5, 60, 4), (60, 5, 60), (7, 0, 9),
              (0, 12, 5), (10, 30, 8, 25, 6), (2, 3, 50, 4, 3, 2)]


@pytest.mark.parametrize("sizes", STRUCTURES)
def test_both_elimination_orders_give_the_trace_or_refuse(sizes):
    """``||R||_F^2 = trace(R^T R) = trace(D - sI)``: either order of elimination gives
    it (to rounding) below ``lambda_min``, and refuses (None) above it."""
    rng = np.random.default_rng(sum(sizes))
    b, off = _random_blocks(rng, sizes)
    D = _dense(certificate.Blocks(b.corner, b.row, b.diag, off))
    low = np.linalg.eigvalsh(D)[0]
    for parity in (0, 1):
        for s in (low - 1.0, low - 1e-3):
            square = blocks.block_cholesky(b, s, parity)
            assert square is not None
            assert abs(square - np.trace(D - s * np.eye(len(D)))) <= 1e-8 * len(D) * (1 + abs(s))
        for s in (low + 1e-6 * max(1, abs(low)), low + 1.0):
            assert blocks.block_cholesky(b, s, parity) is None


@pytest.mark.parametrize("sizes", STRUCTURES)
@pytest.mark.parametrize("sparse", [False, True])
def test_block_certificate_on_many_layer_structures(sizes, sparse):
    rng = np.random.default_rng(7 + len(sizes))
    for scale in (0.1, 3.0, 100.0):                   # indefinite to strongly negative
        b, off = _random_blocks(rng, sizes, scale, sparse)
        D = _dense(certificate.Blocks(b.corner, b.row, b.diag, off))
        _check(blocks.lower_eigenvalue(b, _absolute(b), 4), D)


def test_a_wrong_estimate_gives_a_lower_value_or_a_refusal_never_a_higher_one():
    rng = np.random.default_rng(11)
    b, off = _random_blocks(rng, (20, 50, 10))
    D = _dense(certificate.Blocks(b.corner, b.row, b.diag, off))
    low = np.linalg.eigvalsh(D)[0]
    scale = np.linalg.norm(D)
    for estimate in (low + 1e-9 * scale, low + 1e-5 * scale, low - 0.5 * scale):
        q = blocks.lower_eigenvalue(b, _absolute(b), 4, estimate)
        assert q <= low + 1e-13 * scale
        assert q > -np.inf
    assert blocks.lower_eigenvalue(b, _absolute(b), 4, low + 0.1 * scale) == -np.inf
    assert blocks.lower_eigenvalue(b, _absolute(b), 4, float("nan")) == -np.inf
    bad = certificate.Blocks(b.corner, b.row, [b.diag[0], b.diag[1] * np.inf, b.diag[2]], b.off)
    assert blocks.lower_eigenvalue(bad, _absolute(bad), 4) == -np.inf


def test_a_singular_matrix_is_never_certified_positive_definite():
    """``D`` with a known null vector (built exactly in integers): ``q < 0 = lambda_min``
    even when the estimate is exactly 0."""
    rng = np.random.default_rng(5)
    sizes = (4, 9, 3)
    B = rng.integers(-3, 4, size=(1 + sum(sizes), 2)).astype(float)
    D = B @ B.T                                       # rank 2, exact in float64
    offsets = np.concatenate([[1], 1 + np.cumsum(sizes)]).astype(int)
    for k in range(len(sizes)):                       # keep only the block tridiagonal pattern:
        for j in range(len(sizes)):                   # zero the far blocks, within-layer
            if abs(j - k) > 1 or j == k:              # off-diagonals ...
                block = D[offsets[k]:offsets[k + 1], offsets[j]:offsets[j + 1]]
                keep = np.diag(np.diag(block)) if j == k else 0.0 * block
                D[offsets[k]:offsets[k + 1], offsets[j]:offsets[j + 1]] = keep
    low = np.linalg.eigvalsh(D)[0]
    D = D - low * np.eye(len(D))                      # ... and shift to lambda_min ~ 0
    D = np.round(D * 2 ** 20) / 2 ** 20
    b = certificate.Blocks(float(D[0, 0]), [D[0, offsets[k]:offsets[k + 1]] for k in range(3)],
                           [np.diag(D)[offsets[k]:offsets[k + 1]] for k in range(3)],
                           [D[offsets[k + 1]:offsets[k + 2], offsets[k]:offsets[k + 1]]
                            for k in range(2)])
    low = np.linalg.eigvalsh(_dense(b))[0]
    for estimate in (0.0, low, None):
        q = blocks.lower_eigenvalue(b, _absolute(b), 4, estimate)
        assert q <= low + 1e-13 * np.linalg.norm(D)


def test_a_layers_block_of_d_is_diagonal_in_the_matrix_free_operator():
    """The structure the certificate relies on, checked on the matrix-free operator
    (``D`` formed column by column by the optimiser's own products): diagonal layer
    blocks, no coupling between layers two or more apart, and equal to the blocks."""
    import torch

    from solvers.backends.fo_sdp.operator import Operator

    _, _, _, programs = _case(4, (5, 7, 6, 4))
    data = problem.prepare(programs[0], True)
    layout = problem.Layout(data)
    rng = np.random.default_rng(0)
    params = layout.project(rng.normal(size=layout.size))
    op = Operator([data], [layout], "cpu", torch.float64)
    op.set_params(torch.as_tensor(params[None]))
    D = op.dense(torch.arange(1 + data.n))[0].numpy()
    lams, kappa = problem.split_numpy(layout, data, params)
    reference = certificate.dense_lagrangian(data, lams, kappa, False)
    assert np.allclose(D, reference, atol=1e-10 * np.abs(reference).max())
    offsets = np.concatenate([[1], 1 + np.cumsum(data.sizes)]).astype(int)
    for k in range(len(data.sizes)):
        for j in range(len(data.sizes)):
            block = D[offsets[k]:offsets[k + 1], offsets[j]:offsets[j + 1]]
            if j == k:
                assert np.abs(block - np.diag(np.diag(block))).max() <= 1e-12
            elif abs(j - k) > 1:
                assert np.abs(block).max() <= 1e-12
            else:
                assert np.abs(block).max() > 0                  # coupled (a real test)


def test_the_conv_layer_is_eliminated_first_so_its_dense_block_is_never_formed():
    """784-21,632-100: eliminating the middle layer costs ~3e10 flops (a 884-row Schur
    complement), the other order a dense 21,632 x 21,632 Cholesky (> 3e12)."""
    sizes = (784, 21632, 100)
    assert blocks.first_parity(sizes) == 1
    assert blocks.block_flops(sizes) < 5e10
    assert blocks._flops(sizes, 0) > 3e12
    assert blocks.first_parity((21632, 100)) == 0 and blocks.first_parity((100, 21632)) == 1


def test_block_certificate_on_a_convolutional_network_against_eigvalsh():
    """A random Conv(1->4, 3x3, stride 2)-20-10 network on 28x28 inputs (sparse
    convolution matrix from the torch importer; 1 + 784 + 676 + 20 = 1,481 rows): the
    block certificate of CROWN's duals with random gamma, and of random duals, is below
    ``eigvalsh`` and within 1e-8 of it."""
    import torch

    from relax.bounds import bound_specs
    from relax.io.torch_import import from_torch
    from relax.sdp.encode import layered_program
    from relax.spec import robustness

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 13 * 13, 20),
                              torch.nn.ReLU(), torch.nn.Linear(20, 10)).double()
    network = from_torch(net, (1, 28, 28))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=784)
    spec = robustness(x, int(np.argmax(network.forward(x))), 0.05, num_classes=10)
    crown = bound_specs(network, [spec], "crown")[0]
    d = spec.disjuncts[0]
    program = layered_program(network, spec.lower, spec.upper, crown.layers, d.A[0],
                              float(d.b[0]))
    data = problem.prepare(program, True)
    layout = problem.Layout(data)
    start = init.box_kappa(data, layout, init.crown_duals(data, layout))
    keep = np.concatenate([[True], data.d > 0])
    for params in (start + 0.01 * np.abs(rng.normal(size=layout.size)),
                   layout.project(rng.normal(size=layout.size))):
        lams, kappa = problem.split_numpy(layout, data, params)
        D = certificate.dense_lagrangian(data, lams, kappa, False)[np.ix_(keep, keep)]
        _check(blocks.block_lower_eigenvalue(data, lams, kappa), D)


def test_the_time_reserved_for_final_checks_past_the_dense_limit_is_the_blocks():
    """A 22,517-row problem used to reserve a dense eigvalsh's time (~95 min, so a time
    limit left no iterations); past ``dense_check_limit`` it is the block factorisation's."""
    from types import SimpleNamespace

    from solvers.backends.fo_sdp import backend

    program = SimpleNamespace(lower=[np.zeros(784), np.zeros(21632), np.zeros(100)])
    assert backend._check_seconds(program, 6000) < 60
    assert backend._check_seconds(program, 10 ** 6) > 1000
