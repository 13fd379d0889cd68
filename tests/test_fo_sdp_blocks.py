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
