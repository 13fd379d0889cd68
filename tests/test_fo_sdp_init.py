"""fo-sdp never below the linear bounds (#12 section 1).

References: relax's CROWN (``relax.bounds``, an independent backward pass) and the
triangle LP through HiGHS (``relax.lp.method``), with the same intermediate bounds.
Checks: with cuts (the default) the start reproduces CROWN's bound to 1e-9 (``init=
"lp"``: the LP's), and the reported bound after a run -- even a deliberately bad one
-- is never below it; the same on a shared VNN-COMP network.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from relax import robustness, verify
from relax.protocol import VerifyOptions
from relax.sdp.method import SdpOptions
from relax.bounds import bound_specs
from relax.io.onnx_import import from_onnx
from relax.io.vnnlib import read_vnnlib
from relax.lp.method import lp_disjunct_bounds
from relax.sdp.encode import layered_program
from solvers import SolveOptions, get_solver
from tests.helpers import random_network

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CASES = [(seed, widths) for seed in range(4) for widths in ((3, 6, 5, 3), (4, 8, 8, 6, 3))]


@functools.lru_cache(maxsize=None)
def _case(seed: int, widths: tuple, eps: float = 0.2):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    spec = robustness(x, int(np.argmax(network.forward(x))), eps, num_classes=widths[-1])
    crown = bound_specs(network, [spec], "crown")[0]
    programs = [layered_program(network, spec.lower, spec.upper, crown.layers, d.A[0],
                                float(d.b[0])) for d in spec.disjuncts]
    return network, spec, crown, programs


def _solve(program, **extra):
    return get_solver("fo-sdp").solve(program, SolveOptions(extra=tuple(extra.items())))


def _close(a: float, b: float, tol: float = 1e-9) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


@pytest.mark.parametrize("seed, widths", CASES)
def test_the_start_reproduces_crown_to_1e9(seed, widths):
    _, _, crown, programs = _case(seed, widths)
    for program, reference in zip(programs, crown.disjunct_bounds):
        assert _close(_solve(program, max_iterations=0, init="crown").bound, reference)
        # the default start is the better of CROWN and the last layer's interval bound
        assert _solve(program, max_iterations=0).bound >= reference - 1e-9 * max(1, abs(reference))


@pytest.mark.parametrize("seed, widths", CASES[:4])
def test_the_lp_start_reproduces_the_lp(seed, widths):
    network, spec, crown, programs = _case(seed, widths)
    lp = lp_disjunct_bounds(network, spec, crown.layers, "highs")
    for program, reference, linear in zip(programs, lp, crown.disjunct_bounds):
        bound = _solve(program, max_iterations=0, init="lp").bound
        assert reference - 1e-9 * max(1.0, abs(reference)) <= bound <= reference + 1e-6
        assert bound >= linear - 1e-9 * max(1.0, abs(linear))


@pytest.mark.parametrize("method, extra", [("lbfgs", {}), ("adam", {"eig": "dense"}),
                                           ("adam", {"lr": 50.0, "eig": "lanczos"})])
def test_the_bound_after_a_run_is_never_below_the_start(method, extra):
    """Also with a learning rate that throws the iterates far off (the third case)."""
    for seed, widths in CASES[:3]:
        _, _, crown, programs = _case(seed, widths)
        for program, reference in zip(programs, crown.disjunct_bounds):
            solution = _solve(program, method=method, max_iterations=40, **extra)
            assert solution.bound >= reference - 1e-9 * max(1.0, abs(reference))
            for init in ("linear", "lp"):
                start = _solve(program, max_iterations=0, init=init).bound
                warm = _solve(program, method=method, max_iterations=20, init=init, **extra)
                assert warm.bound >= start


def test_shared_network_start_is_crown_and_never_lost(shared_data):
    root = shared_data / "vnncomp2021" / "mnistfc"
    network = from_onnx(root / "mnist-net_256x2.onnx")
    spec = read_vnnlib(root / "prop_0_0.03.vnnlib")[0]
    crown = bound_specs(network, [spec], "crown")[0]
    for j in np.argsort(crown.disjunct_bounds)[:3]:          # the hardest targets
        d = spec.disjuncts[j]
        program = layered_program(network, spec.lower, spec.upper, crown.layers, d.A[0],
                                  float(d.b[0]))
        reference = crown.disjunct_bounds[j]
        assert _close(_solve(program, max_iterations=0, init="crown").bound, reference)
        assert _solve(program, method="adam", max_iterations=3).bound >= reference - 1e-9 * max(
            1.0, abs(reference))


@pytest.mark.parametrize("seed, widths", CASES[:4])
def test_the_sdp_method_is_never_below_crown_and_with_an_lp_start_not_below_the_lp(seed, widths):
    network, spec, _, _ = _case(seed, widths)
    crown = verify(network, spec, "crown").bound
    lp = verify(network, spec, "lp").bound
    common = {"skip_proved": False, "max_iterations": 20}
    plain = verify(network, spec, "sdp", options=VerifyOptions(
        solver="fo-sdp", methods=(SdpOptions(**common),)))
    lp_start = verify(network, spec, "sdp", options=VerifyOptions(
        solver="fo-sdp", methods=(SdpOptions(intermediate="lp", init="lp", **common),)))
    assert plain.bound >= crown - 1e-9 * max(1.0, abs(crown))
    assert lp_start.bound >= lp - 1e-9 * max(1.0, abs(lp))


def test_the_low_rank_stage_keeps_the_bound_valid_and_not_below_the_start():
    from relax.sdp.method import solve_row

    network, spec, crown, programs = _case(1, (4, 8, 8, 6, 3))
    d = spec.disjuncts[0]
    reference = solve_row(network, spec, crown.layers, d.A[0], float(d.b[0]), "cvxpy-clarabel",
                          True).objective
    solution = get_solver("fo-sdp").solve(programs[0], SolveOptions(
        time_limit=2.0, extra=(("method", "bm"), ("max_iterations", 30))))
    start = _solve(programs[0], max_iterations=0).bound
    assert start <= solution.bound <= reference + 1e-7
    assert solution.warm_start.checks[0][0] == 0          # the low-rank multipliers' check


def test_a_warm_start_from_another_problem_never_lowers_the_start():
    _, _, crown, programs = _case(1, (4, 8, 8, 6, 3))
    first = _solve(programs[0], max_iterations=30)
    for program, reference in zip(programs[1:], crown.disjunct_bounds[1:]):
        options = SolveOptions(extra=(("max_iterations", 0),))
        warm = get_solver("fo-sdp").solve(program, options, first.warm_start)
        assert warm.bound >= reference - 1e-9 * max(1.0, abs(reference))
