"""Intermediate bounds by branch and bound per neuron (:mod:`relax.search.neuron_bounds`).

Reference: each unstable neuron's exact minimum and maximum over the box, from the big-M
MILP of the layers below (:func:`relax.lp.encode.encode_triangle` with ``integer=True``)
solved by scipy's ``milp``.  Checks: the new bounds are valid (below the exact minimum,
above the exact maximum, and around 4,000 sampled pre-activations), never looser than the
given ones, and, with time enough for every search to finish, the neurons they call
stable are exactly those the MILP proves stable (the cases are chosen so that CROWN
leaves some of those unstable: a function that tightened nothing fails).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import Bounds as VariableBounds, LinearConstraint, milp

from relax.bounds import bound_specs
from relax.deadline import NEVER
from relax.errors import UnsupportedNetworkError, UsageError
from relax.lp.encode import encode_triangle
from relax.search.neuron_bounds import search_layer_bounds
from relax.spec import robustness
from tests.helpers import random_network, sample_box
from tests.test_bab_resume import _problem


def _exact_extrema(network, spec, bounds, k: int, i: int) -> tuple[float, float]:
    """``min`` and ``max`` of ``z_{k,i}`` over the box (the MILP of layers ``< k``)."""
    encoding = encode_triangle(network, spec.lower, spec.upper, bounds, depth=k, integer=True)
    program = encoding.program
    M, g = encoding.expressions[k]
    row = M.tocsr()[i].toarray().ravel()
    integrality = np.zeros(len(program.lower)) if program.integer is None else program.integer.astype(float)
    constraints = LinearConstraint(program.A, program.row_lower, program.row_upper)
    extrema = []
    for sign in (1.0, -1.0):
        result = milp(sign * row, constraints=constraints, integrality=integrality,
                      bounds=VariableBounds(program.lower, program.upper),
                      options={"mip_rel_gap": 1e-9})
        assert result.status == 0, result.message
        extrema.append(sign * result.fun + g[i])
    return extrema[0], extrema[1]


@pytest.mark.parametrize("seed,k", [(7, 1), (7, 2), (10, 2)])
def test_layer_bounds_are_valid_and_find_every_stable_neuron(seed, k):
    network, spec = _problem(seed)
    crown = bound_specs(network, [spec], "crown")[0].layers
    tightened = search_layer_bounds(network, spec, crown, k, per_neuron=30.0, deadline=NEVER)
    l_old, u_old = crown.lower[k], crown.upper[k]
    l_new, u_new = tightened.lower[k], tightened.upper[k]
    assert np.all(l_new >= l_old) and np.all(u_new <= u_old)
    for j in range(len(network.activations)):  # later layers re-propagated, never looser
        assert np.all(tightened.lower[j] >= crown.lower[j] - 1e-12)
        assert np.all(tightened.upper[j] <= crown.upper[j] + 1e-12)
    xs = sample_box(np.random.default_rng(seed), spec.lower, spec.upper, 2000)
    z = network.pre_activations(xs)[k]
    assert np.all(z >= l_new - 1e-9) and np.all(z <= u_new + 1e-9)
    stabilised_by_milp = 0
    for i in crown.unstable(k):
        low, high = _exact_extrema(network, spec, crown, k, i)
        assert l_new[i] <= low + 1e-7 and u_new[i] >= high - 1e-7
        if abs(low) > 1e-6 and abs(high) > 1e-6:
            exact_stable = low > 0 or high < 0
            stabilised_by_milp += exact_stable
            assert (l_new[i] > 0 or u_new[i] < 0) == exact_stable, (i, low, high, l_new[i], u_new[i])
    assert stabilised_by_milp > 0  # CROWN left some stable neurons unstable: the test can fail


def test_layers_below_must_be_relu_and_layer_0_is_refused():
    rng = np.random.default_rng(0)
    network = random_network(rng, [4, 6, 6, 2], "sigmoid")
    spec = robustness(np.full(4, 0.5), 0, 0.5, num_classes=2)
    bounds = bound_specs(network, [spec], "crown")[0].layers
    with pytest.raises(UnsupportedNetworkError, match="ReLU"):
        search_layer_bounds(network, spec, bounds, 1, per_neuron=0.1, deadline=NEVER)
    relu_net, relu_spec = _problem(7)
    relu_bounds = bound_specs(relu_net, [relu_spec], "crown")[0].layers
    with pytest.raises(UsageError, match="exact over the box"):
        search_layer_bounds(relu_net, relu_spec, relu_bounds, 0, per_neuron=0.1, deadline=NEVER)
