"""Batched fo-sdp (``solvers.backends.fo_sdp.solve_batch``, ``relax.sdp.method.sdp_bounds``).

References: the one-problem-at-a-time solver (same algorithm, unbatched algebra), the
per-problem operator (a batch of one) and dense ``eigh`` for the batched linear algebra,
Clarabel's SDP optimum (cvxpy, interior point: an independent solver of the same
relaxation) and the exact MILP margin.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from relax import robustness
from relax.bounds import bound_specs
from relax.search.milp import milp_margin
from relax.sdp.encode import layered_program
from relax.sdp.method import sdp_bound, sdp_bounds, solve_row
from relax.spec import Spec
from solvers import SolveOptions, get_solver
from solvers.backends import fo_sdp
from solvers.backends.fo_sdp import batching, certificate, problem
from solvers.backends.fo_sdp.operator import Operator
from solvers.linalg import lanczos
from tests.helpers import random_network

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WIDTHS = (3, 5, 5, 3)


@functools.lru_cache(maxsize=None)
def _network(seed: int = 0):
    return random_network(np.random.default_rng(seed), list(WIDTHS), "relu", scale=1.5)


@functools.lru_cache(maxsize=None)
def _image(seed: int, eps: float, fix_first: bool = False):
    """A robustness spec around a random point (optionally with input 0 fixed) and its
    CROWN hidden bounds."""
    network = _network()
    rng = np.random.default_rng(100 + seed)
    x = rng.uniform(size=WIDTHS[0])
    spec = robustness(x, int(np.argmax(network.forward(x))), eps, num_classes=WIDTHS[-1])
    if fix_first:
        upper = spec.upper.copy()
        upper[0] = spec.lower[0]
        spec = Spec(spec.lower, upper, spec.disjuncts)
    return spec, bound_specs(network, [spec], "crown")[0].layers


def _programs(images):
    network, out = _network(), []
    for spec, bounds in images:
        for d in spec.disjuncts:
            out.append(layered_program(network, spec.lower, spec.upper, bounds, d.A[0],
                                       float(d.b[0])))
    return out


def _options(**extra):
    return SolveOptions(extra=tuple(extra.items()))


IMAGES = ((0, 0.2, False), (1, 0.1, False), (2, 0.15, True))


# -- the batched algebra --------------------------------------------------------------------

@pytest.mark.parametrize("cuts", [False, True])
def test_batched_operator_matches_the_per_problem_operator(cuts):
    import torch

    programs = _programs([_image(*args) for args in IMAGES])
    datas = [problem.prepare(p, cuts) for p in programs]
    layouts = [problem.Layout(d) for d in datas]
    ops = [Operator([d], [lay], "cpu", torch.float64) for d, lay in zip(datas, layouts)]
    batch = Operator(datas, layouts, "cpu", torch.float64)
    rng = np.random.default_rng(0)
    ids = [0, 3, 5]                                        # a subset, as in a partial batch
    params = [layouts[i].project(rng.normal(size=layouts[i].size)) for i in ids]
    V = rng.normal(size=(len(ids), 4, datas[0].n + 1))
    batch.set_params(torch.as_tensor(np.stack(params)), torch.as_tensor(ids))
    applied = batch.apply(torch.as_tensor(V))
    quotients, gradients = batch.rayleigh(torch.as_tensor(V))
    dense = batch.dense(torch.arange(datas[0].n + 1))
    assert torch.allclose(batch.gradient_sum(torch.as_tensor(V)), gradients.sum(dim=1),
                          atol=1e-11)
    for j, i in enumerate(ids):
        ops[i].set_params(torch.as_tensor(params[j])[None])
        Vi = torch.as_tensor(V[j])[None]
        assert torch.allclose(applied[j], ops[i].apply(Vi)[0], atol=1e-12)
        q, g = ops[i].rayleigh(Vi)
        assert torch.allclose(quotients[j], q[0], atol=1e-12)
        assert torch.allclose(gradients[j], g[0], atol=1e-12)
        lams, kappa = problem.split_numpy(layouts[i], datas[i], params[j])
        reference = certificate.dense_lagrangian(datas[i], lams, kappa, absolute=False)
        assert np.allclose(dense[j].numpy(), reference, atol=1e-11)


def test_batched_lanczos_matches_eigh():
    import torch

    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 30, 30))
    A = A + A.transpose(0, 2, 1)
    A[2, :15, 15:] = A[2, 15:, :15] = 0.0                   # reducible: needs the restart
    start = np.ones((3, 30))
    start[2, 15:] = 0.0
    At = torch.as_tensor(A)
    values, vectors = lanczos(lambda v: (At @ v[:, :, None])[:, :, 0],
                                           torch.as_tensor(start), 30, 3)
    assert np.allclose(values.numpy(), np.linalg.eigvalsh(A)[:, :3], atol=1e-8)
    quotients = torch.einsum("bkn,bnm,bkm->bk", vectors, At, vectors)
    assert torch.allclose(quotients, values, atol=1e-8)


# -- bounds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, eig", [("lbfgs", "auto"), ("adam", "dense"),
                                         ("adam", "lanczos")])
def test_batch_equals_one_at_a_time(method, eig):
    """Several objectives (target classes) and several boxes (one with a fixed input) in
    one batch: each bound is its sequential bound, whatever the batch's order."""
    lbfgs = method == "lbfgs"
    programs = _programs([_image(*args) for args in (IMAGES if lbfgs else IMAGES[1:])])
    iterations = {"auto": 800, "dense": 250, "lanczos": 80}[eig]
    options = _options(method=method, eig=eig, max_iterations=iterations)
    backend = get_solver("fo-sdp")
    single = np.array([backend.solve(p, options).bound for p in programs])
    order = np.random.default_rng(0).permutation(len(programs))
    shuffled = fo_sdp.solve_batch([programs[i] for i in order], options)
    batched = np.empty(len(programs))
    batched[order] = [s.bound for s in shuffled]
    assert np.all(np.isfinite(batched))
    tol = 1e-6 if lbfgs else 1e-3            # Adam's soft-min amplifies rounding more
    assert np.allclose(batched, single, rtol=tol, atol=tol)
    assert np.ptp(batched) > 0.1                          # the problems really differ


def test_batched_bounds_against_clarabel_and_the_exact_margin():
    network = _network()
    images = [_image(*args) for args in IMAGES[:2]]
    batched = sdp_bounds(network, [s for s, _ in images], [b for _, b in images])
    for (spec, bounds), bound in zip(images, batched):
        for j, d in enumerate(spec.disjuncts):
            clarabel = solve_row(network, spec, bounds, d.A[0], float(d.b[0]),
                                 "cvxpy-clarabel").objective
            exact = milp_margin(network, Spec(spec.lower, spec.upper, (d,)), bounds)
            assert bound[j] <= clarabel + 1e-6
            assert bound[j] >= clarabel - 1e-3 * max(1.0, abs(clarabel))
            assert bound[j] <= exact + 1e-7


def test_sdp_bound_batches_rows_and_keeps_the_per_row_path():
    network = _network()
    spec, bounds = _image(*IMAGES[2])
    options = _options(max_iterations=1500)
    batched = sdp_bound(network, spec, bounds, "fo-sdp", options=options)
    rows = sdp_bound(network, spec, bounds, "fo-sdp", options=options, batch=False)
    assert np.allclose(batched, rows, rtol=1e-4, atol=1e-4)
    other = random_network(np.random.default_rng(0), [3, 4, 3])
    other_bounds = bound_specs(other, [spec], "crown")[0].layers
    mixed = _programs([(spec, bounds)]) + [layered_program(other, spec.lower, spec.upper,
                                                           other_bounds, spec.disjuncts[0].A[0], 0.0)]
    with pytest.raises(ValueError, match="same layer sizes"):
        fo_sdp.solve_batch(mixed)


def test_a_failing_batch_evaluation_gives_no_bound_and_no_hang(monkeypatch):
    def fail(*args):
        raise FloatingPointError("injected")

    monkeypatch.setattr(batching, "spectra", fail)
    solutions = fo_sdp.solve_batch(_programs([_image(*IMAGES[0])]), _options(max_iterations=5))
    assert len(solutions) == 2
    assert all(s.bound == -np.inf and "injected" in s.message for s in solutions)
