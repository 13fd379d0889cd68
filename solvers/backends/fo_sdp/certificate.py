r"""fo-sdp's rigorous float64 certificate: a lower bound on the SDP from any duals.

For multipliers ``lam`` (signs as in :mod:`solvers.backends.fo_sdp`) the Lagrangian
``L(x) = [1; xt]^T Mt [1; xt]`` is ``<= f(x)`` on the feasible set.  For any ``kappa``
let ``D = Mt - diag(kappa)``; a number ``q <= lambda_min(D)`` gives, for every lifted
``P`` (``P_00 = 1``, ``0 <= P_ii <= d_i``),
``f >= <Mt, P> >= kappa_0 + q + sum_{i>=1} d_i min(0, kappa_i + q) =: F``
(:func:`bound_from_eigenvalue`; ``F`` increases with ``q``).  ``q`` is proved by:

* the *linear* certificate when every ``gamma = 0``: then ``L(x) = m00 + g^T x`` is
  linear and its minimum over the box is at least
  ``m00 + g^T ctr - sum_i |g_i| rad_i sqrt(d_i)``, evaluated with a rounding
  allowance (:func:`linear_bound`); this is also the best ``F`` over ``kappa`` for
  these ``lam``, and it is how CROWN's and the LP's bounds are reproduced exactly;
* the *dense* check for ``1 + n <= dense_check_limit``:
  ``q = eigvalsh(D)[0] - 64 (1+n) eps ||D||_F - K eps ||D_abs||_F`` (LAPACK's backward
  error; the rounding in forming ``D``, with ``D_abs`` the same computation on
  absolute values and ``K`` the longest chain of roundings behind an entry); with
  stably active neurons marked (``eliminate``), ``D`` plus the best multiplier of their
  lifted equality ``(a - z) p = 0`` (:mod:`.lift`, which states its own allowances);
* above it, the block LDL^T certificate of :mod:`.blocks`, at the cost of the layer
  blocks.

Every sum is a :func:`math.fsum` minus a relative allowance, rounded one ulp down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from solvers.program import LayeredReluProgram
from solvers.backends.fo_sdp.problem import (EPS, Layout, ProblemData, prepare,
                                             split_numpy)

__all__ = ["certified_bound", "certify", "linear_bound", "dense_lagrangian", "linear_part",
           "Blocks", "lagrangian_blocks",
           "bound_from_eigenvalue", "operation_count"]


def linear_part(data: ProblemData, lams, absolute: bool):
    """``m00`` and the linear coefficients ``g_k`` of ``L(x) = m00 + g^T x + x^T H x``
    (``absolute``: the same sums over absolute values, for rounding bounds)."""
    f = np.abs if absolute else (lambda a: a)
    sg = 1.0 if absolute else -1.0
    g = [np.zeros(r.size) for r in data.rad]
    g[-1] = g[-1] + f(data.c)
    m00 = abs(data.c0) if absolute else data.c0
    for k, (alpha, beta, gamma, theta) in enumerate(lams):
        W, b, s, off = f(data.weights[k]), f(data.biases[k]), f(data.slope[k]), data.cut_offset[k]
        ts = f(theta) * s
        g[k + 1] = g[k + 1] + sg * f(alpha) + sg * f(beta) + f(gamma) * b + f(theta)
        g[k] = g[k] + np.asarray(W.T @ (f(beta) + sg * ts)).ravel()
        m00 = m00 + f(beta) @ b + sg * (ts @ (b + sg * f(off)))
    return m00, g


@dataclass(frozen=True)
class Blocks:
    """``D = Mt - diag(kappa)`` by blocks over ``[1; layer 0; ...; layer L]``: the corner
    ``D_00``, the first row's part ``row[k]`` on layer ``k``, the diagonal ``diag[k]`` of
    layer ``k``'s diagonal block (a diagonal matrix), and ``off[k]`` the block between
    layers ``k + 1`` (rows) and ``k`` (dense); every other block is zero."""

    corner: float
    row: list
    diag: list
    off: list


def lagrangian_blocks(data: ProblemData, lams, kappa: np.ndarray, absolute: bool) -> Blocks:
    """The blocks of ``D`` (or, ``absolute``, of the same computation on absolute values,
    which bounds the rounding in forming ``D``)."""
    f = np.abs if absolute else (lambda a: a)
    sg = 1.0 if absolute else -1.0
    m00, g = linear_part(data, lams, absolute)
    rad, ctr = data.rad, [f(c) for c in data.ctr]
    hc = [np.zeros(r.size) for r in rad]
    diag = [np.zeros(r.size) for r in rad]
    off = []
    for k, (_, _, gamma, _) in enumerate(lams):
        W = data.weights[k].toarray() if sp.issparse(data.weights[k]) else data.weights[k]
        block = 0.5 * f(gamma)[:, None] * f(W)
        hc[k + 1] = hc[k + 1] + sg * f(gamma) * ctr[k + 1] + block @ ctr[k]
        hc[k] = hc[k] + block.T @ ctr[k + 1]
        off.append(rad[k + 1][:, None] * block * rad[k][None, :])
        diag[k + 1] = diag[k + 1] + sg * f(gamma) * rad[k + 1] ** 2
    ctr_all, g_all, hc_all = np.concatenate(ctr), np.concatenate(g), np.concatenate(hc)
    corner = m00 + ctr_all @ g_all + ctr_all @ hc_all + sg * f(kappa[0])
    starts = np.concatenate([[0], np.cumsum(data.sizes)]).astype(int)
    kap = [f(kappa[1:])[a:b] for a, b in zip(starts[:-1], starts[1:])]
    return Blocks(float(corner), [r * (0.5 * gk + h) for r, gk, h in zip(rad, g, hc)],
                  [dk + sg * kk for dk, kk in zip(diag, kap)], off)


def dense_lagrangian(data: ProblemData, lams, kappa: np.ndarray, absolute: bool) -> np.ndarray:
    """``D`` (or its absolute companion) as a dense float64 matrix."""
    blocks = lagrangian_blocks(data, lams, kappa, absolute)
    offsets = np.concatenate([[1], 1 + np.cumsum(data.sizes)]).astype(int)
    D = np.zeros((data.n + 1, data.n + 1))
    for k, block in enumerate(blocks.off):
        rows, cols = slice(offsets[k + 1], offsets[k + 2]), slice(offsets[k], offsets[k + 1])
        D[rows, cols] = block
        D[cols, rows] = block.T
    D[0, 1:] = D[1:, 0] = np.concatenate(blocks.row)
    D[np.diag_indices(data.n + 1)] = np.concatenate([[blocks.corner]] + blocks.diag)
    return D


def operation_count(data: ProblemData) -> int:
    """A bound on the longest chain of roundings behind one entry of ``D``."""
    widest = max([1] + [max(w.shape) for w in data.weights])
    return 2 * (data.n + 1) + 2 * widest + 32


def bound_from_eigenvalue(kappa: np.ndarray, d: np.ndarray, lam_low: float) -> float:
    """``F = kappa_0 + q + sum d_i min(0, kappa_i + q)`` at ``q = lam_low`` (a lower bound
    on ``lambda_min``; ``F`` increases with ``q``), summed safely and rounded down."""
    q = lam_low
    terms = np.concatenate([[kappa[0], q], d * np.minimum(0.0, kappa[1:] + q)])
    value = math.fsum(terms) - (1e-12 + 8 * EPS) * float(np.abs(terms).sum())
    return math.nextafter(value, -math.inf) if math.isfinite(value) else -math.inf


def linear_bound(data: ProblemData, lams) -> float:
    """The rigorous minimum over the box of the *linear* Lagrangian (all ``gamma = 0``):
    ``m00 + g^T ctr - sum_i |g_i| rad_i sqrt(d_i)``, less ``K eps`` times the same sum
    over absolute values (the rounding in ``m00`` and ``g``), rounded down."""
    m00, g = linear_part(data, lams, absolute=False)
    m00_abs, g_abs = linear_part(data, lams, absolute=True)
    g, g_abs = np.concatenate(g), np.concatenate(g_abs)
    ctr, reach = np.concatenate(data.ctr), np.concatenate(data.rad) * np.sqrt(data.d)
    reach = reach * (1 + 4 * EPS)
    terms = np.concatenate([[m00], g * ctr, -np.abs(g) * reach])
    if not np.isfinite(terms).all():
        return -math.inf
    size = m00_abs + float(g_abs @ (np.abs(ctr) + reach))
    allowance = (operation_count(data) + 8) * EPS * size
    value = math.fsum(terms) - allowance - 8 * EPS * float(np.abs(terms).sum())
    return math.nextafter(value, -math.inf)


def _dense_check(data: ProblemData, lams, kappa: np.ndarray) -> tuple[float, float]:
    """``(q, a)``: ``q <= lambda_min(D')`` from a dense float64 ``eigvalsh`` (module
    docstring), ``D' = D`` or, with stably active neurons marked, ``D`` with the best
    multiplier of their lifted equality (:mod:`.lift`), and ``a`` the allowance that
    multiplier costs (0 without it)."""
    from solvers.backends.fo_sdp.lift import active_vectors, allowance, lifted

    keep = np.concatenate([[True], data.d > 0])    # fixed coordinates: zero rows, xt_i = 0
    D = dense_lagrangian(data, lams, kappa, absolute=False)[np.ix_(keep, keep)]
    if not np.isfinite(D).all():
        return -math.inf, 0.0
    D_abs = dense_lagrangian(data, lams, kappa, absolute=True)[np.ix_(keep, keep)]
    Q, errors = active_vectors(data)
    D_lift, Y, rounding = lifted(D, Q)
    if not np.isfinite(D_lift).all():
        return -math.inf, 0.0
    lam_hat = float(np.linalg.eigvalsh(D_lift)[0])
    margin = 64 * D.shape[0] * EPS * float(np.linalg.norm(D_lift)) + rounding
    margin += operation_count(data) * EPS * float(np.linalg.norm(D_abs))
    return lam_hat - 1.01 * margin, allowance(Y, errors, data.d[data.d > 0])


def certify(data: ProblemData, layout: Layout, params: np.ndarray, limit: int,
            estimate: float | None = None) -> float:
    """A rigorous lower bound from the scaled duals ``params`` (module docstring);
    ``estimate`` (an estimate of ``lambda_min(D)``) helps the block certificate."""
    lams, kappa = split_numpy(layout, data, params)
    if all(not np.any(gamma) for _, _, gamma, _ in lams):
        return linear_bound(data, lams)
    cost = 0.0
    if data.n + 1 <= limit:
        q, cost = _dense_check(data, lams, kappa)
    else:
        from solvers.backends.fo_sdp.blocks import block_lower_eigenvalue

        q = block_lower_eigenvalue(data, lams, kappa, estimate)
    if not math.isfinite(q):
        return -math.inf
    return math.nextafter(bound_from_eigenvalue(kappa, data.d, q) - cost, -math.inf)


def certified_bound(problem: LayeredReluProgram, params: np.ndarray, cuts: bool = False,
                    dense_check_limit: int = 6000) -> float:
    """The rigorous float64 bound of :class:`FoSdpState` parameters for ``problem``."""
    data = prepare(problem, cuts)
    return certify(data, Layout(data), params, dense_check_limit)
