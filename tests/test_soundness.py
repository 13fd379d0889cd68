"""Every method in ``BOUND_METHODS`` is sound on every network it accepts.

Random small ReLU, sigmoid, tanh and softplus networks, random boxes and random
VNNLIB-style properties (:mod:`tests.soundness_cases`); each method's bound must not
exceed the smallest margin found by dense sampling and gradient descent (nor the exact
MILP minimum on ReLU networks), *holds* must not coexist with a violating point, and
*violated* needs a float64-checked counterexample.  A method may refuse a network
with a typed error.  ``benchmarks/soundness.py`` runs the same checks on thousands
of cases.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relax.verify import BOUND_METHODS
from tests.soundness_cases import check_method, random_case, reference

ACTIVATIONS = ["relu", "sigmoid", "tanh", "softplus"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_every_method_is_sound_on_random_networks(activation, seed):
    case = random_case(seed, activation)
    ref = reference(case)
    problems = []
    for method in sorted(BOUND_METHODS):
        check = check_method(case, ref, method)
        problems += [f"{method}: {p}" for p in check.problems]
    assert not problems, f"seed {seed}, {activation}: " + "; ".join(problems)


def test_krelu_on_the_tanh_case_of_the_issue_is_sound():
    """The tanh case of the issue that exposed krelu relaxing tanh as a ReLU.  krelu now
    relaxes tanh layers by the LP's
    tangent/chord rows (groups only on ReLU layers): its bound must stay below the least
    sampled/attacked margin, and its branch and bound, which splits ReLU phases, refuses."""
    import numpy as np

    from relax.errors import UnsupportedNetworkError
    from relax.krelu import KreluOptions
    from relax.spec import robustness
    from relax.verify import VerifyOptions, verify
    from tests.helpers import least_sampled_margin, random_network

    network = random_network(np.random.default_rng(3), [4, 4, 5, 2], "tanh")
    spec = robustness(np.array([0.8411, 0.0046, 0.0817, 0.6459]), 1, 0.1, num_classes=2)
    result = verify(network, spec, "krelu", timeout=10, options=VerifyOptions(bound_only=True))
    assert result.bound <= least_sampled_margin(np.random.default_rng(0), network, spec) + 1e-9
    with pytest.raises(UnsupportedNetworkError, match="ReLU"):
        verify(network, spec, "krelu", timeout=10, options=VerifyOptions(methods=(KreluOptions(bab="lp"),)))
