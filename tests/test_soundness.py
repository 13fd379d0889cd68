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


def test_krelu_refuses_smooth_networks():
    """The case of the issue: a tanh net where krelu answered 'holds' against a
    counterexample; it must refuse (or be sound)."""
    import numpy as np

    from relax.errors import UnsupportedNetworkError
    from relax.spec import robustness
    from relax.verify import verify
    from tests.helpers import random_network

    network = random_network(np.random.default_rng(3), [4, 4, 5, 2], "tanh")
    spec = robustness(np.array([0.8411, 0.0046, 0.0817, 0.6459]), 1, 0.1, num_classes=2)
    with pytest.raises(UnsupportedNetworkError, match="ReLU"):
        verify(network, spec, "krelu", timeout=10)
