"""LP, MILP and branch and bound against independent references on tiny networks.

References: the exact MILP optimum (HiGHS) and dense sampling.  Checks: the safe
LP bound never exceeds the exact value; LP-tightened intermediate bounds are
never looser than CROWN's and still contain every sample; ``exact`` agrees with
the MILP's sign; counterexamples are real.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relax import Verdict, robustness, verify
from relax.deadline import Deadline
from relax.result import ReasonKind
from relax.search.lp_bab import branch_and_bound
from relax.bounds import bound_specs
from relax.lp.method import intermediate_bounds, lp_disjunct_bounds
from relax.search.milp import milp_margin
from relax.lp.tighten import tighten_bounds
from relax.verify import FLOAT_SLACK
from relax.protocol import VerifyOptions
from tests.helpers import random_network, sample_box


def _problem(seed, eps, widths=(3, 8, 8, 3)):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return rng, network, robustness(x, label, eps, num_classes=widths[-1])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.01, 0.4))
def test_lp_bounds_lie_below_the_exact_value(seed, eps):
    rng, network, spec = _problem(seed, eps)
    crown = bound_specs(network, [spec], "crown")[0]
    tightened = tighten_bounds(network, spec.lower, spec.upper, crown.layers)
    for k in range(len(tightened.lower)):
        assert np.all(tightened.lower[k] >= crown.layers.lower[k] - 1e-12)
        assert np.all(tightened.upper[k] <= crown.layers.upper[k] + 1e-12)
    zs = network.pre_activations(sample_box(rng, spec.lower, spec.upper, 500))
    for k in range(len(tightened.lower)):
        assert np.all(zs[k] >= tightened.lower[k] - 1e-9) and np.all(zs[k] <= tightened.upper[k] + 1e-9)
    exact = milp_margin(network, spec, tightened)
    lp_loose = lp_disjunct_bounds(network, spec, crown.layers, None).min()
    lp_tight = lp_disjunct_bounds(network, spec, tightened, None).min()
    assert exact is not None
    assert lp_loose <= lp_tight + 1e-9
    assert lp_tight <= exact + 1e-7
    sampled = spec.margin(zs[-1]).min()
    assert exact <= sampled + 1e-7


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.01, 0.5))
def test_exact_verdict_agrees_with_the_milp(seed, eps):
    _, network, spec = _problem(seed, eps)
    result = verify(network, spec, "exact", timeout=60)
    bounds = intermediate_bounds(network, spec, "lp", None)
    exact = milp_margin(network, spec, bounds)
    if result.verdict is Verdict.HOLDS:
        assert exact > 0 and result.bound <= exact + 1e-7
    elif result.verdict is Verdict.VIOLATED:
        x = result.counterexample
        assert spec.is_violated_by(x, network.forward(x)) and exact <= 1e-7
    else:  # only a margin that is numerically zero may stay undecided
        assert abs(exact) < 1e-6, result.reason


def _lp_fails_but_property_holds():
    for seed in range(200):
        _, network, spec = _problem(seed, 0.15, widths=(4, 12, 12, 3))
        bounds = intermediate_bounds(network, spec, "lp", None)
        lp = lp_disjunct_bounds(network, spec, bounds, None)
        exact = milp_margin(network, spec, bounds)
        if lp.min() < 0 < exact - 1e-3 and bound_specs(network, [spec], "crown")[0].bound < 0:
            return network, spec, bounds, lp, exact
    pytest.fail("no instance where the LP fails but the property holds")


def test_branch_and_bound_closes_what_the_lp_cannot():
    network, spec, bounds, lp, exact = _lp_fails_but_property_holds()
    j = int(np.argmin(lp))
    outcome = branch_and_bound(network, spec, spec.disjuncts[j], bounds)
    assert outcome.complete and outcome.counterexample is None
    assert 0 < outcome.bound <= exact + 1e-7
    assert outcome.nodes > 1


def test_a_time_limit_gives_unknown_with_the_reason():
    network, spec, bounds, lp, exact = _lp_fails_but_property_holds()
    j = int(np.argmin(lp))
    outcome = branch_and_bound(network, spec, spec.disjuncts[j], bounds, deadline=Deadline.after(0))
    assert not outcome.complete and outcome.reason.kind is ReasonKind.TIME_LIMIT
    assert outcome.bound <= exact + 1e-7 and outcome.counterexample is None
    result = verify(network, spec, "exact", timeout=1e-9)
    assert result.verdict is Verdict.UNKNOWN and "time limit" in result.reason
    assert ReasonKind.TIME_LIMIT in [r.kind for r in result.reasons]


def test_lp_method_reports_the_solver_and_a_valid_bound():
    rng, network, spec = _problem(3, 0.1)
    result = verify(network, spec, "lp", options=VerifyOptions(solver="highs"))
    assert result.solver == "highs"
    sampled = spec.margin(network.forward(sample_box(rng, spec.lower, spec.upper, 3000))).min()
    assert result.bound <= sampled + 1e-9
    if result.verdict is Verdict.HOLDS:
        assert result.bound > FLOAT_SLACK


@pytest.mark.parametrize("solver", ["cvxpy-clarabel", "cvxpy-highs"])
def test_lp_bound_is_the_same_through_cvxpy(solver):
    _, network, spec = _problem(5, 0.1)
    bounds = bound_specs(network, [spec], "crown")[0].layers
    direct = lp_disjunct_bounds(network, spec, bounds, "highs")
    other = lp_disjunct_bounds(network, spec, bounds, solver)
    assert np.all(other <= direct + 1e-6) and np.allclose(other, direct, atol=1e-5)


