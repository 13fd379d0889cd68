"""LP tightening of one layer (:func:`relax.lp.tighten.tighten_layer`) against fresh solves.

``tighten_layer`` hot-starts every minimum and every maximum of a layer's neurons from the
previous solve of the same direction (two HiGHS sessions).  Reference: each neuron's
minimum and maximum of the same triangle LP solved from scratch by scipy's ``linprog``
with HiGHS's interior-point method (no basis is shared).  Checks: every tightened bound is
a valid bound (below the reference minimum, above the reference maximum, within 1e-9) and
as tight as the reference (within 1e-6), and sampled pre-activations lie inside.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from relax.bounds import bound_specs
from relax.lp.encode import encode_triangle
from relax.lp.tighten import tighten_layer
from tests.helpers import sample_box
from tests.test_bab_resume import _problem


def _reference_extrema(program, row: np.ndarray, offset: float) -> tuple[float, float]:
    """``min`` and ``max`` of ``row @ v + offset`` over ``program``'s feasible set."""
    A = program.A.toarray()
    finite_upper, finite_lower = np.isfinite(program.row_upper), np.isfinite(program.row_lower)
    A_ub = np.vstack([A[finite_upper], -A[finite_lower]])
    b_ub = np.concatenate([program.row_upper[finite_upper], -program.row_lower[finite_lower]])
    box = list(zip(program.lower, program.upper))
    extrema = []
    for sign in (1.0, -1.0):
        result = linprog(sign * row, A_ub=A_ub, b_ub=b_ub, bounds=box, method="highs-ipm")
        assert result.status == 0, result.message
        extrema.append(sign * result.fun + offset)
    return extrema[0], extrema[1]


@pytest.mark.parametrize("seed", [7, 10, 16])
def test_tightened_bounds_match_fresh_solves_and_contain_samples(seed):
    network, spec = _problem(seed)
    crown = bound_specs(network, [spec], "crown")[0].layers
    k = len(network.activations) - 1
    encoding = encode_triangle(network, spec.lower, spec.upper, crown, depth=k)
    tight = tighten_layer(encoding, k, crown, "highs")

    unstable = crown.unstable(k)
    assert unstable.size >= 5  # the check below must see several hot-started solves
    M, g = encoding.expressions[k]
    M = M.tocsr()
    moved = 0
    for i in unstable:
        low, high = _reference_extrema(encoding.program, M[i].toarray().ravel(), g[i])
        assert low - 1e-6 <= tight.lower[k][i] <= low + 1e-9
        moved += tight.lower[k][i] > crown.lower[k][i] + 1e-6
        if tight.lower[k][i] < 0:
            assert high - 1e-9 <= tight.upper[k][i] <= high + 1e-6
    assert moved > 0  # the LP is tighter than CROWN somewhere

    xs = sample_box(np.random.default_rng(seed), spec.lower, spec.upper, 2000)
    z = np.stack([network.pre_activations(x)[k] for x in xs])
    assert np.all(z >= tight.lower[k] - 1e-9) and np.all(z <= tight.upper[k] + 1e-9)
