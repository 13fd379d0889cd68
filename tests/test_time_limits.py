"""A method stopped by its time limit keeps the best sound bound it already has: never
weaker than the CROWN bound every one of them starts from (issue 11)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from relax import Verdict, robustness, verify
from relax.bounds import bound_specs
from relax.protocol import VerifyOptions
from relax.result import ReasonKind
from relax.search.attack import AttackOptions
from tests.helpers import random_network

#: methods that start from CROWN's bounds
STARTING_FROM_CROWN = ["lp", "krelu", "exact", "milp", "sdp"]


@functools.lru_cache(maxsize=1)
def _unproved_by_crown():
    """A small ReLU property that CROWN does not prove and PGD does not break."""
    for seed in range(200):
        rng = np.random.default_rng(seed)
        network = random_network(rng, [4, 8, 8, 3])
        x = rng.uniform(size=4)
        label = int(np.argmax(network.forward(x)))
        spec = robustness(x, label, 0.08, num_classes=3)
        crown = bound_specs(network, [spec], "crown")[0]
        if -1.0 < crown.bound < 0 and verify(network, spec, "exact").verdict is Verdict.HOLDS:
            return network, spec, crown.bound
    pytest.fail("no suitable instance")


@pytest.mark.parametrize("method", STARTING_FROM_CROWN)
def test_a_method_out_of_time_keeps_the_crown_bound(method):
    network, spec, crown = _unproved_by_crown()
    no_attack = VerifyOptions(attack=AttackOptions(steps=0, restarts=1))
    result = verify(network, spec, method, timeout=1e-6, options=no_attack)
    assert result.bound >= crown - 1e-9, (method, result.bound, crown)
    if result.verdict is Verdict.UNKNOWN:
        assert ReasonKind.TIME_LIMIT in [r.kind for r in result.reasons]


@pytest.mark.parametrize("method", STARTING_FROM_CROWN)
def test_with_time_a_method_is_at_least_as_tight_as_crown(method):
    network, spec, crown = _unproved_by_crown()
    result = verify(network, spec, method, timeout=60, options=VerifyOptions(bound_only=True))
    assert result.bound >= crown - 1e-9
    assert result.verdict is not Verdict.VIOLATED
