"""fo-sdp's best ``kappa`` for given multipliers (:mod:`solvers.backends.fo_sdp.kappa`).

Reference: the inner SDP ``min <Mt, P>`` s.t. ``P >= 0``, ``P_00 = 1``, ``P_ii <= d_i``
solved by Clarabel through cvxpy on the dense ``Mt``: no ``kappa`` can certify more than
its value for these multipliers, and the low-rank solution's duals should reach it.
Also: the certified bound is below the full SDP's optimum and the exact (MILP) margin,
and the dense and block certificates agree on it.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from solvers.backends.fo_sdp.certificate import certify, dense_lagrangian
from solvers.backends.fo_sdp.init import initial_duals
from solvers.backends.fo_sdp.kappa import inner_duals
from solvers.backends.fo_sdp.problem import Layout, prepare, split_numpy
from solvers.backends.fo_sdp.repair import improve, lowrank_shift
from tests.test_fo_sdp_bm import _case

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _inner_sdp(data, layout, params) -> float:
    lams, kappa = split_numpy(layout, data, params)
    keep = np.concatenate([[True], data.d > 0])
    M = dense_lagrangian(data, lams, np.zeros_like(kappa), absolute=False)[np.ix_(keep, keep)]
    P = cp.Variable(M.shape, PSD=True)
    problem = cp.Problem(cp.Minimize(cp.trace(M @ P)),
                         [P[0, 0] == 1, cp.diag(P)[1:] <= data.d[data.d > 0]])
    problem.solve(solver="CLARABEL")
    return float(problem.value)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inner_duals_reach_the_inner_sdp_and_stay_sound(seed):
    program, _, clarabel, exact, _ = _case(seed, (4, 8, 8, 6, 3))
    data = prepare(program, True)
    layout = Layout(data)
    rng = np.random.default_rng(seed)
    start = initial_duals(data, layout, "crown")
    for scale in (0.1, 1.0):
        params = layout.project(start + scale * rng.normal(size=start.size))
        reference = _inner_sdp(data, layout, params)
        duals = inner_duals(data, layout, params, steps=600)
        assert np.array_equal(duals[:layout.kappa_start], params[:layout.kappa_start])
        dense, block = certify(data, layout, duals, 6000), certify(data, layout, duals, 1)
        tol = 1e-3 * max(1.0, abs(reference))
        assert reference - tol <= block <= reference + 1e-6 * max(1.0, abs(reference))
        assert abs(dense - block) <= tol
        assert block > certify(data, layout, lowrank_shift(data, layout, params), 1)
        assert improve(data, layout, params, 1, matrix_free=True)[0] >= block - tol
        assert max(dense, block) <= min(clarabel + 1e-7, exact + 1e-9)
