"""sdp-ipm, the structured interior-point SDP solver: against Clarabel on the primal
encoding, below the exact MILP margin, above CROWN, bounds only from the float64 check;
the sdp method's encoding chosen by the backend's kinds (an outside SDP plug-in), and
``bound_only``."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from relax import robustness, verify
from relax.bounds import bound_specs
from relax.protocol import VerifyOptions
from relax.sdp.encode import layered_program
from relax.deadline import NEVER
from relax.sdp.method import SdpOptions, default_sdp_solver, sdp_bound, sdp_method, solve_row
from relax.search.milp import milp_margin
from relax.spec import Spec
from solvers import ProblemKind, SolveOptions, get_solver, list_solvers
from solvers.backend import Backend
from solvers.backends.sdp_ipm import IpmOptions
from solvers.backends.sdp_ipm.problem import build, to_fo_sdp_params
from solvers.registry import register, unregister
from tests.helpers import random_network

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CASES = [(0, (3, 5, 5, 3), 0.2), (1, (6, 8, 8, 4), 0.2), (3, (6, 8, 8, 4), 0.2),
         (5, (10, 10, 10, 5), 0.1), (7, (4, 6, 6, 6, 3), 0.3)]


@functools.lru_cache(maxsize=None)
def _case(seed: int, widths, eps: float, fixed: int = 0):
    """A random ReLU net, a robustness spec (its first ``fixed`` inputs fixed) and CROWN."""
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    spec = robustness(x, label, eps, num_classes=widths[-1])
    if fixed:
        lower, upper = spec.lower.copy(), spec.upper.copy()
        lower[:fixed] = upper[:fixed] = x[:fixed]
        spec = Spec(lower, upper, spec.disjuncts)
    return network, spec, bound_specs(network, [spec], "crown")[0]


def _rows(spec):
    return [(d.A[0], float(d.b[0])) for d in spec.disjuncts]


def _ipm(network, spec, crown, row, offset, cuts, **kwargs):
    kwargs.setdefault("active_cut", True)     # exactly the primal encoding's relaxation
    kwargs.setdefault("eliminate", False)     # (substituted: tests/test_sdp_ipm_reduced.py)
    program = layered_program(network, spec.lower, spec.upper, crown.layers, row, offset)
    options = SolveOptions(extra=(("cuts", cuts), ("ipm", IpmOptions(**kwargs))))
    return get_solver("sdp-ipm").solve(program, options)


@pytest.mark.parametrize("seed, widths, eps", CASES)
@pytest.mark.parametrize("cuts", [False, True])
def test_ipm_matches_clarabel_on_the_primal_encoding(seed, widths, eps, cuts):
    network, spec, crown = _case(seed, widths, eps)
    row, offset = _rows(spec)[0]
    reference = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=cuts)
    solution = _ipm(network, spec, crown, row, offset, cuts)
    assert solution.ok, solution.message
    assert solution.bound == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
    assert solution.bound <= reference.objective + 1e-6     # a bound never above the optimum


@pytest.mark.parametrize("seed, widths, eps", CASES[:4])
def test_ipm_bound_lies_between_crown_and_the_exact_margin(seed, widths, eps):
    network, spec, crown = _case(seed, widths, eps)
    for j, (row, offset) in enumerate(_rows(spec)):
        solution = _ipm(network, spec, crown, row, offset, cuts=True)
        exact = milp_margin(network, Spec(spec.lower, spec.upper, (spec.disjuncts[j],)),
                            crown.layers)
        assert crown.disjunct_bounds[j] - 1e-9 <= solution.bound <= exact + 1e-7


def test_fixed_inputs_and_dead_neurons_are_eliminated():
    network, spec, crown = _case(11, (6, 12, 12, 4), 0.15, fixed=3)
    row, offset = _rows(spec)[0]
    program = layered_program(network, spec.lower, spec.upper, crown.layers, row, offset)
    sdp = build(program, cuts=True)
    dead = sum(int((u <= 0).sum()) for u in crown.layers.upper)
    assert dead > 0 and sdp.side == 1 + 3 + 24 - dead
    reference = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=True)
    solution = _ipm(network, spec, crown, row, offset, cuts=True)
    assert solution.bound == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)


def test_the_bound_is_the_float64_check_of_the_multipliers(monkeypatch):
    from solvers.backends import fo_sdp

    network, spec, crown = _case(1, (6, 8, 8, 4), 0.2)
    row, offset = _rows(spec)[0]
    program = layered_program(network, spec.lower, spec.upper, crown.layers, row, offset)
    solution = _ipm(network, spec, crown, row, offset, cuts=True)
    state = solution.warm_start
    params = to_fo_sdp_params(build(program, True), state.y)
    assert solution.bound >= fo_sdp.certified_bound(program, params, True)
    assert solution.bound == pytest.approx(solution.dual_objective, abs=1e-6)
    calls = []
    monkeypatch.setattr(fo_sdp, "certified_bound",
                        lambda *args, **kwargs: calls.append(args) or -123.0)
    assert _ipm(network, spec, crown, row, offset, cuts=True).bound == -123.0 and calls


def test_a_short_run_still_gives_a_certified_bound():
    network, spec, crown = _case(5, (10, 10, 10, 5), 0.1)
    row, offset = _rows(spec)[0]
    reference = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=True)
    short = _ipm(network, spec, crown, row, offset, cuts=True, max_iterations=3)
    assert not short.ok and math.isfinite(short.bound)
    assert short.bound <= reference.objective + 1e-7


def test_sdp_ipm_is_registered_and_the_default_for_small_networks():
    backend = get_solver("sdp-ipm")
    assert backend.kinds == frozenset({ProblemKind.LAYERED_QCQP})
    info = {i.name: i for i in list_solvers()}["sdp-ipm"]
    assert info.available
    network, _, _ = _case(0, (3, 5, 5, 3), 0.2)
    assert default_sdp_solver(network) == "sdp-ipm"


class _OutsideSdp(Backend):
    """A plug-in that takes conic SDPs (it delegates to Clarabel) and counts its calls."""

    name = "outside-sdp"
    kinds = frozenset({ProblemKind.SDP})
    calls = 0

    def _solve(self, problem, options, warm_start):
        type(self).calls += 1
        return get_solver("cvxpy-clarabel").solve(problem, options, warm_start)


def test_an_outside_sdp_backend_is_used_through_the_registry():
    network, spec, crown = _case(0, (3, 5, 5, 3), 0.3)
    register(_OutsideSdp)
    try:
        calls = _OutsideSdp.calls
        options = VerifyOptions(solver="outside-sdp", bound_only=True,
                                methods=(SdpOptions(cuts=True),))
        outside = verify(network, spec, "sdp", options=options)
    finally:
        unregister("outside-sdp")
    assert _OutsideSdp.calls - calls == len(spec.disjuncts)
    assert outside.solver == "outside-sdp"
    primal = sdp_bound(network, spec, crown.layers, "cvxpy-clarabel", cuts=True)
    expected = np.maximum(primal, crown.disjunct_bounds).min()
    assert outside.bound == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_bound_only_computes_the_sdp_where_crown_already_proves():
    network, spec, crown = _case(3, (10, 10, 10, 5), 0.15)
    assert crown.bound > 0
    quick = sdp_method(network, [spec], NEVER, VerifyOptions(solver="sdp-ipm"))[0]
    own = sdp_method(network, [spec], NEVER,
                     VerifyOptions(solver="sdp-ipm", bound_only=True))[0]
    assert quick.bound == crown.bound
    exact = min(milp_margin(network, Spec(spec.lower, spec.upper, (d,)), crown.layers)
                for d in spec.disjuncts)
    assert crown.bound + 0.1 < own.bound <= exact + 1e-7


@pytest.mark.parametrize("seed, widths, eps", [CASES[0], CASES[3]])
def test_multiplier_form_through_clarabel_matches_the_primal(seed, widths, eps):
    network, spec, crown = _case(seed, widths, eps)
    row, offset = _rows(spec)[0]
    primal = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=True)
    dual = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=True,
                     form="multiplier")
    assert dual.objective is None                  # its objective is not the margin's
    assert dual.bound == pytest.approx(primal.objective, rel=1e-6, abs=1e-6)
    assert dual.bound <= primal.objective + 1e-6
    via_method = verify(network, spec, "sdp", options=VerifyOptions(
        solver="cvxpy-clarabel", bound_only=True, methods=(SdpOptions(form="multiplier"),)))
    expected = np.maximum(sdp_bound(network, spec, crown.layers, "cvxpy-clarabel", cuts=True),
                          crown.disjunct_bounds).min()
    assert via_method.bound == pytest.approx(expected, rel=1e-6, abs=1e-6)


def _write_small_instance(folder, network, spec):
    """A torch copy of ``network`` as ONNX and ``spec`` (one-row disjuncts) as VNNLIB."""
    import torch
    from torch import nn

    from relax.train.export import export_onnx

    layers = []
    for affine in network.affines:
        linear = nn.Linear(affine.weight.shape[1], affine.weight.shape[0]).double()
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(np.asarray(affine.weight)))
            linear.bias.copy_(torch.as_tensor(affine.bias))
        layers += [linear, nn.ReLU()]
    onnx_path = export_onnx(nn.Sequential(*layers[:-1]).float(), folder / "net.onnx")
    n, k = network.input_size, network.output_size
    text = [f"(declare-const X_{i} Real)" for i in range(n)]
    text += [f"(declare-const Y_{i} Real)" for i in range(k)]
    text += [f"(assert (>= X_{i} {float(lo)!r}))\n(assert (<= X_{i} {float(hi)!r}))"
             for i, (lo, hi) in enumerate(zip(spec.lower, spec.upper))]
    terms = []
    for d in spec.disjuncts:                 # unsafe: y_label - y_j <= 0
        a = d.A[0]
        j, label = int(np.argmin(a)), int(np.argmax(a))
        terms.append(f"(and (>= Y_{j} Y_{label}))")
    text.append(f"(assert (or {' '.join(terms)}))")
    vnnlib_path = folder / "prop.vnnlib"
    vnnlib_path.write_text("\n".join(text) + "\n")
    return str(onnx_path), str(vnnlib_path)


def test_cli_sdp_method_uses_an_outside_solver(tmp_path, capsys):
    import json

    from relax.cli import main

    network, spec, _ = _case(0, (3, 5, 5, 3), 0.3)
    paths = _write_small_instance(tmp_path, network, spec)
    register(_OutsideSdp)
    try:
        calls = _OutsideSdp.calls
        assert main(["verify", *paths, "--method", "sdp", "--solver", "outside-sdp",
                     "--json"]) == 0
    finally:
        unregister("outside-sdp")
    payload = json.loads(capsys.readouterr().out)
    assert payload["solver"] == "outside-sdp" and _OutsideSdp.calls > calls
    register(_OutsideSdp)
    try:                                     # the same, in process, on the float64 network
        same = verify(network, spec, "sdp", options=VerifyOptions(solver="outside-sdp"))
    finally:
        unregister("outside-sdp")
    assert payload["verdict"] == same.verdict.value
    assert payload["bound"] == pytest.approx(same.bound, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("seed, widths, eps", CASES)
def test_default_without_the_active_cut_lies_between_the_sdp_without_and_with_cuts(
        seed, widths, eps):
    network, spec, crown = _case(seed, widths, eps)
    row, offset = _rows(spec)[0]
    default = _ipm(network, spec, crown, row, offset, True, active_cut=False)
    plain = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=False)
    full = solve_row(network, spec, crown.layers, row, offset, "cvxpy-clarabel", cuts=True)
    assert default.ok
    assert plain.objective - 1e-6 <= default.bound <= full.objective + 1e-6
    assert default.bound >= crown.disjunct_bounds[0] - 1e-9


def test_auto_mode_falls_back_to_the_sdp_without_the_active_cut():
    network, spec, crown = _case(7, (4, 6, 6, 6, 3), 0.3)
    row, offset = _rows(spec)[0]
    off = _ipm(network, spec, crown, row, offset, True, active_cut=False)
    hurried = _ipm(network, spec, crown, row, offset, True, active_cut=None,
                   probe=(1, 1e-30))            # gives up with the cut after one iteration
    assert "active cut on: 1 iterations" in hurried.message and "active cut off" in hurried.message
    assert hurried.bound >= off.bound - 1e-7 and hurried.ok
