r"""A strictly feasible dual start from a linear (CROWN-like) bound.

The backward pass of fo-sdp's linear initialisation: the objective's coefficient ``g_i``
on ``a_i`` goes to the previous layer through ``a >= z`` (``beta = g_i``, for ``g_i > 0``
and ``l >= 0`` or ``u >= -l``), is dropped with ``a >= 0`` (``alpha = g_i``, other
``g_i > 0``) or, for ``g_i < 0`` with cuts, goes through the triangle cut
(``theta = -g_i``).  With ``gamma = 0`` the matrix ``C - sum_c y_c A_c`` is an arrow
``[[m, g^T / 2], [g / 2, 0]]``; ``kappa_i = -|g_i| / 2 - tau``,
``kappa_0 = m - sum |g_i| / 2 - tau`` make ``Z = [[sum |g| / 2, g^T / 2], [g / 2,
diag(|g| / 2)]] + tau I >= tau I``, whose objective is the linear bound minus
``tau (1 + sum d_i)``.  Sign-constrained multipliers are moved ``delta`` inside their cone
first, so the start is strictly feasible.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from solvers.backends.sdp_ipm.problem import ALPHA, BETA, THETA, MultiplierSdp, _EPS

__all__ = ["linear_multipliers", "feasible_start"]


def linear_multipliers(problem, sdp: MultiplierSdp) -> np.ndarray:
    """The solver's neuron multipliers ``y_N`` of the backward pass (module docstring)."""
    lam = {}
    coefficient = np.asarray(problem.c, np.float64)
    for k in reversed(range(len(problem.weights))):
        pl, pu = np.asarray(problem.pre_lower[k], np.float64), np.asarray(problem.pre_upper[k], np.float64)
        unstable, active = (pl < 0) & (pu > 0), pl >= 0
        positive = coefficient > 0
        through = positive & (active | (unstable & (pu >= -pl)))
        dropped = positive & unstable & ~through
        cut = (coefficient < 0) & (unstable | active) & sdp.cuts
        slope = np.where(unstable, pu / np.where(unstable, pu - pl, 1.0) * (1 + 4 * _EPS), 1.0)
        for j in np.flatnonzero(dropped):
            lam[(k, j, ALPHA)] = coefficient[j]
        for j in np.flatnonzero(through):
            lam[(k, j, BETA)] = coefficient[j]
        for j in np.flatnonzero(cut):
            key = (k, j, BETA) if active[j] else (k, j, THETA)   # a - z = 0: free beta
            lam[key] = lam.get(key, 0.0) + (coefficient[j] if active[j] else -coefficient[j])
        passed = np.where(through, coefficient, 0.0) + np.where(cut, coefficient * slope, 0.0)
        W = problem.weights[k]
        coefficient = np.asarray((W.T @ passed) if sp.issparse(W) else W.T @ passed).ravel()
    y = np.zeros(sdp.m_neurons)
    for c, owner in enumerate(map(tuple, sdp.owner)):
        y[c] = lam.get(owner, 0.0) / (sdp.factor[c] * sdp.scale)
    return y


def feasible_start(sdp: MultiplierSdp, y_neurons: np.ndarray, tau: float,
                   delta: float, clip: bool = True) -> np.ndarray:
    """``y = [y_N; kappa]`` with ``Z >= tau I`` and signed ``y_N`` at least ``delta`` inside
    (``clip=False``: ``y_N`` as given, e.g. a negative ``beta`` of a stably active neuron,
    which :func:`~.problem.to_fo_sdp_params` maps to fo-sdp's cut multiplier)."""
    sign = sdp.sign[:sdp.m_neurons]
    y_n = np.where(sign > 0, np.maximum(y_neurons, delta), y_neurons) if clip else y_neurons
    arrow = sdp.C - 0.5 * ((sdp.U * y_n) @ sdp.V.T + (sdp.V * y_n) @ sdp.U.T)
    off = arrow[0, 1:] * 2.0                       # the arrow's g (rows 1.. of P)
    rest = arrow[1:, 1:]
    if np.abs(rest).max(initial=0.0) > 1e-12 * max(1.0, np.abs(arrow).max()):
        raise ValueError("feasible_start: gamma must be 0 (the matrix is not an arrow)")
    kappa = np.concatenate([[arrow[0, 0] - 0.5 * np.abs(off).sum() - tau],
                            -0.5 * np.abs(off) - tau])
    return np.concatenate([y_n, kappa])
