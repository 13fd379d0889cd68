"""verify(): verdicts agree with sampling, counterexamples are real, errors are typed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relax import Result, Verdict, robustness, verify
from relax.search.attack import pgd_attack
from relax.errors import SpecError, UsageError
from relax.verify import FLOAT_SLACK
from tests.helpers import random_network, sample_box


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.0, 0.5),
       method=st.sampled_from(["ibp", "crown"]), activation=st.sampled_from(["relu", "tanh"]))
def test_verdicts_agree_with_sampling(seed, eps, method, activation):
    rng = np.random.default_rng(seed)
    network = random_network(rng, [4, 10, 10, 3], activation)
    x = rng.uniform(size=4)
    label = int(np.argmax(network.forward(x)))
    spec = robustness(x, label, eps, num_classes=3)
    result = verify(network, spec, method)
    worst = spec.margin(network.forward(sample_box(rng, spec.lower, spec.upper, 2000))).min()
    if result.verdict is Verdict.HOLDS:
        assert result.bound > FLOAT_SLACK and worst >= result.bound - 1e-9
    elif result.verdict is Verdict.VIOLATED:
        cex = result.counterexample
        assert spec.contains(cex) and spec.margin(network.forward(cex))[0] <= 0
    else:
        assert result.reason and result.bound <= FLOAT_SLACK


def test_a_clear_violation_is_found_and_checked():
    rng = np.random.default_rng(11)
    network = random_network(rng, [5, 20, 20, 4])
    x = rng.uniform(size=5)
    label = int(np.argsort(network.forward(x))[-2])  # the runner-up: violated at x itself
    spec = robustness(x, label, 0.01, num_classes=4)
    result = verify(network, spec, "crown")
    assert result.verdict is Verdict.VIOLATED
    assert spec.is_violated_by(result.counterexample, network.forward(result.counterexample))


def test_attack_returns_none_when_the_property_holds():
    rng = np.random.default_rng(2)
    network = random_network(rng, [3, 8, 2])
    x = rng.uniform(size=3)
    label = int(np.argmax(network.forward(x)))
    spec = robustness(x, label, 0.0, num_classes=2)  # a single point, correctly classified
    assert pgd_attack(network, spec) is None


def test_result_json_has_the_documented_fields():
    rng = np.random.default_rng(4)
    network = random_network(rng, [3, 8, 2])
    x = rng.uniform(size=3)
    label = int(np.argmax(network.forward(x)))
    payload = verify(network, robustness(x, label, 1e-4, num_classes=2), "ibp").to_json()
    assert payload["verdict"] == "holds" and payload["method"] == "ibp"
    assert set(payload) >= {"verdict", "bound", "method", "solver", "seconds"}


def test_bad_inputs_raise_typed_errors():
    network = random_network(np.random.default_rng(0), [3, 4, 2])
    spec = robustness(np.zeros(3), 0, 0.1, num_classes=2)
    with pytest.raises(UsageError, match="unknown method"):
        verify(network, spec, "magic")
    with pytest.raises(UsageError, match="timeout"):
        verify(network, spec, "crown", timeout=-1)
    with pytest.raises(SpecError):
        verify(network, robustness(np.zeros(3), 0, 0.1, num_classes=3), "crown")
    with pytest.raises(SpecError):
        robustness(np.zeros(3), 0, -0.1)


def test_several_specs_hold_only_if_all_hold():
    rng = np.random.default_rng(8)
    network = random_network(rng, [3, 8, 2])
    x = rng.uniform(size=3)
    y = network.forward(x)
    good = robustness(x, int(np.argmax(y)), 1e-4, num_classes=2)
    bad = robustness(x, int(np.argmin(y)), 1e-4, num_classes=2)
    assert verify(network, [good], "crown").verdict is Verdict.HOLDS
    combined = verify(network, [good, bad], "crown")
    assert isinstance(combined, Result) and combined.verdict is Verdict.VIOLATED
