r"""Starting duals whose bound ``F`` equals a linear bound (``gamma = 0``).

With ``gamma = 0`` the Lagrangian ``m00 + g^T x`` is linear; the box multipliers
``kappa_i = -|ct_i| / 2``, ``kappa_0 = m00 + g^T ctr - sum |ct_i| / 2`` (``ct = rad * g``)
make ``D = [[sum |ct| / 2, ct^T / 2], [ct / 2, diag(|ct| / 2)]] >= 0`` with ``q = 0``, so
``F = m00 + g^T ctr - sum_i |ct_i|``: the minimum of the linear Lagrangian over the box
(:func:`box_kappa`).  Three sources of ``(alpha, beta, theta)``:

* interval: all 0 (the interval bound of the last layer);
* CROWN (:func:`crown_duals`): a backward pass with CROWN's adaptive slopes -- the
  objective's coefficient ``g_i`` on ``a_i`` moves to the previous layer through
  ``a >= z`` (``beta = g_i``; ``g_i > 0`` and ``l >= 0`` or ``u >= -l``), is dropped with
  ``a >= 0`` (``alpha = g_i``, other ``g_i > 0``), or, for ``g_i < 0`` with cuts, moves
  through the triangle cut (``theta = -g_i``).  With cuts and the same intermediate
  bounds ``F`` is CROWN's bound (up to rounding, ~1e-13 relative);
* the triangle LP (:func:`lp_duals`): HiGHS (through scipy) on the LP with the same
  box and cuts; its row duals are ``beta`` and ``theta``, so ``F`` is the LP's optimum
  (a dual bound: tolerances can only lower it).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from solvers.backends.fo_sdp.certificate import linear_part
from solvers.backends.fo_sdp.problem import Layout, ProblemData, split_numpy

__all__ = ["initial_duals", "crown_duals", "lp_duals", "box_kappa", "start_value"]

log = logging.getLogger(__name__)


def box_kappa(data: ProblemData, layout: Layout, p: np.ndarray) -> np.ndarray:
    """``p`` with the closed-form box multipliers of its (linear) Lagrangian."""
    p = layout.project(p)
    lams, _ = split_numpy(layout, data, p)
    m00, g = linear_part(data, lams, absolute=False)
    g, rad, ctr = np.concatenate(g), np.concatenate(data.rad), np.concatenate(data.ctr)
    ct = rad * g
    p[layout.kappa_start + 1:] = np.where(layout.free[layout.kappa_start + 1:],
                                          -0.5 * np.abs(ct), 0.0)
    p[layout.kappa_start] = m00 + g @ ctr - 0.5 * np.abs(ct).sum()
    return p


def crown_duals(data: ProblemData, layout: Layout) -> np.ndarray:
    """``alpha, beta, theta`` of the CROWN backward pass (module docstring)."""
    p = np.zeros(layout.size)
    coefficient = np.asarray(data.c, np.float64)
    for k in reversed(range(len(layout.hidden))):
        pl, pu = data.pre_lower[k], data.pre_upper[k]
        positive = coefficient > 0
        through = positive & ((pl >= 0) | ((pl < 0) & (pu > 0) & (pu >= -pl)))
        dropped = positive & (pl < 0) & (pu > 0) & ~through
        cut = (coefficient < 0) & data.cut_mask[k]
        alpha, beta, _, theta = layout.split(p, k)
        alpha[:] = np.where(dropped, coefficient, 0.0) * data.rho[k]
        beta[:] = np.where(through, coefficient, 0.0) * data.rho[k]
        theta[:] = np.where(cut, -coefficient, 0.0) * data.rho[k]
        passed = np.where(through, coefficient, 0.0)
        passed = passed + np.where(cut, coefficient, 0.0) * data.slope[k]
        coefficient = np.asarray(data.weights[k].T @ passed).ravel()
    return p


def _lp_rows(data: ProblemData):
    """``A_ub x <= b_ub`` of the triangle LP over ``x = [h_0; ...; h_L]``: per hidden layer
    ``W h_k - h_{k+1} <= -b`` (``a >= z``), then the cuts ``-s W h_k + h_{k+1} <= s (b - l')``."""
    offsets = np.concatenate([[0], np.cumsum(data.sizes)]).astype(int)
    blocks, rhs = [], []
    for k, W in enumerate(data.weights):
        W = sp.csr_matrix(W)
        h, n = W.shape[0], data.n
        left = sp.csr_matrix((W.data, W.indices + offsets[k], W.indptr), shape=(h, n))
        right = sp.csr_matrix((np.ones(h), offsets[k + 1] + np.arange(h), np.arange(h + 1)),
                              shape=(h, n))
        blocks.append(left - right)
        rhs.append(-data.biases[k])
        m = np.flatnonzero(data.cut_mask[k])
        s = data.slope[k][m]
        blocks.append(right[m] - sp.diags(s) @ left[m])
        rhs.append(s * (data.biases[k][m] - data.cut_offset[k][m]))
    return sp.vstack(blocks).tocsr(), np.concatenate(rhs)


def lp_duals(data: ProblemData, layout: Layout) -> np.ndarray | None:
    """``beta, theta`` from the triangle LP's optimal row duals (None if HiGHS fails)."""
    from scipy.optimize import linprog

    A, b = _lp_rows(data)
    ctr, rad = np.concatenate(data.ctr), np.concatenate(data.rad)
    cost = np.zeros(data.n)
    cost[data.n - data.sizes[-1]:] = data.c
    result = linprog(cost, A_ub=A, b_ub=b, bounds=np.stack([ctr - rad, ctr + rad], 1),
                     method="highs")
    if result.status != 0:
        log.info("fo-sdp: LP init failed (%s); using CROWN's duals", result.message)
        return None
    y = np.maximum(-np.asarray(result.ineqlin.marginals), 0.0)
    p, at = np.zeros(layout.size), 0
    for k, h in enumerate(layout.hidden):
        _, beta, _, theta = layout.split(p, k)
        beta[:] = y[at:at + h] * data.rho[k]
        m = np.flatnonzero(data.cut_mask[k])
        theta[m] = y[at + h:at + h + m.size] * data.rho[k][m]
        at += h + m.size
    return p


def start_value(data: ProblemData, layout: Layout, p: np.ndarray) -> float:
    """``F`` of a start from :func:`box_kappa` (``q = 0``): ``kappa_0 + sum d_i kappa_i``."""
    return float(p[layout.kappa_start] + p[layout.kappa_start + 1:] @ data.d)


def initial_duals(data: ProblemData, layout: Layout, init: str) -> np.ndarray:
    """``"zeros"``, ``"interval"``, ``"crown"``, ``"linear"`` (the better of interval and
    CROWN; on deep nets the last layer's interval bound can beat CROWN) or ``"lp"`` (the
    best of those and the LP's duals), each completed by :func:`box_kappa`."""
    if init == "zeros":
        return np.zeros(layout.size)
    candidates = [] if init == "crown" else [np.zeros(layout.size)]
    if init in ("linear", "lp", "crown"):
        candidates.append(crown_duals(data, layout))
    if init == "lp":
        lp = lp_duals(data, layout)
        candidates += [] if lp is None else [lp]
    starts = [box_kappa(data, layout, p) for p in candidates]
    return max(starts, key=lambda p: start_value(data, layout, p))
