r"""Sound lower bounds from *any* dual vector (weak duality, checked in float).

LP
--
For ``min c^T x + c0`` s.t. ``row_lower <= A x <= row_upper``, ``lower <= x <= upper``
and any ``y`` (one entry per row), write ``r = c - A^T y``.  For every feasible ``x``::

    c^T x = r^T x + y^T (A x)
    y_i (A x)_i >= y_i^+ row_lower_i + y_i^- row_upper_i     (y^+ = max(y, 0), y^- = min(y, 0))
    r_j x_j     >= min(r_j lower_j, r_j upper_j)

so ``c^T x + c0 >= c0 + sum_i (y_i^+ row_lower_i + y_i^- row_upper_i)
+ sum_j min(r_j lower_j, r_j upper_j)``: a lower bound on the optimum that holds
for every ``y`` -- solver accuracy only affects how *tight* it is, never whether it
is valid.  This is the Lagrangian dual function evaluated at ``y`` with the box
kept as the domain; the solver's column duals ``z`` are implied (``z = r``).

A component of ``y`` whose row bound on the needed side is infinite (``y_i > 0``
with ``row_lower_i = -inf``, ``y_i < 0`` with ``row_upper_i = +inf``) would make
the bound ``-inf``; it is clipped to 0 first (still a valid ``y``).  Non-finite
components are set to 0 too.  A variable with ``r_j > 0`` and ``lower_j = -inf``
(or ``r_j < 0`` and ``upper_j = +inf``) makes the bound ``-inf``.  (A reduced
cost that rounds to exactly 0 on a free variable is taken as 0.)

Rounding: the bound is evaluated in float64.  Each ``r_j`` is a sum of at most
``k + 1`` products (``k`` the largest column count of ``A``), so its error is at
most about ``(k + 2) eps (|c_j| + (|A|^T |y|)_j)``; each product ``r_j x_j`` and
``y_i b_i`` adds one rounding; the final sum is done with :func:`math.fsum`
(correctly rounded).  We subtract ``(1e-12 + 2 eps (k + 4)) * S`` with ``S`` the
sum of absolute values of everything summed, where ``S`` uses
``|c_j| + (|A|^T |y|)_j`` as the size of ``r_j`` and ``max(|lower_j|, |upper_j|)``
as the size of ``x_j`` (so a reduced cost whose sign was flipped by rounding is
covered too), and finally step one ulp down.

Conic (PSD) part
----------------
For PSD constraints ``S_k(x) = sum_j x_j F_{kj} - F_{k0} >= 0`` (``G_k`` the
``(size^2, n)`` matrix of the ``vec(F_{kj})``) and any symmetric ``Z_k``, let
``delta_k >= -lambda_min(Z_k)`` (computed with ``eigvalsh`` plus a margin of
``64 size eps ||Z_k||_F`` for its rounding, and ``>= 0``).  Then for feasible ``x``
``<Z_k, S_k(x)> >= -delta_k tr S_k(x) = -delta_k (t_k^T x - tr F_{k0})`` with
``t_{kj} = tr F_{kj}``, and ``x^T G_k^T vec(Z_k) = <Z_k, S_k(x)> + <Z_k, F_{k0}>``, so
with ``r = c - A^T y - sum_k (G_k^T vec(Z_k) + delta_k t_k)`` the bound is::

    c0 + sum_i (y_i^+ row_lower_i + y_i^- row_upper_i)
       + sum_k (<Z_k, F_{k0}> + delta_k tr F_{k0}) + sum_j min(r_j lower_j, r_j upper_j)

valid for any ``y`` and any symmetric ``Z_k`` (a non-PSD ``Z_k`` just costs the
shift ``delta_k``).  The same rounding allowance is subtracted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from solvers.program import ConicProgram, LinearProgram

__all__ = ["lp_safe_bound", "conic_safe_bound", "clip_row_duals"]

_EPS = np.finfo(np.float64).eps
_REL_ALLOWANCE = 1e-12


def clip_row_duals(y, row_lower: np.ndarray, row_upper: np.ndarray) -> np.ndarray:
    """``y`` with non-finite entries and entries pushing on an infinite row bound set to 0."""
    m = row_lower.size
    if y is None:
        return np.zeros(m)
    y = np.array(y, dtype=np.float64).reshape(-1)
    if y.size != m:
        raise ValueError(f"{y.size} row duals for {m} rows")
    y[~np.isfinite(y)] = 0.0
    y[(y > 0) & ~np.isfinite(row_lower)] = 0.0
    y[(y < 0) & ~np.isfinite(row_upper)] = 0.0
    return y


def _row_terms(y: np.ndarray, row_lower: np.ndarray, row_upper: np.ndarray) -> np.ndarray:
    """``y_i^+ row_lower_i + y_i^- row_upper_i`` (0 where ``y_i = 0``)."""
    bound = np.where(y > 0, row_lower, np.where(y < 0, row_upper, 0.0))
    return y * bound


def _box_terms(r: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    """``min(r_j lower_j, r_j upper_j)``, or ``None`` when some term is ``-inf``."""
    pos, neg = r > 0, r < 0
    if np.any(pos & ~np.isfinite(lower)) or np.any(neg & ~np.isfinite(upper)):
        return None
    return r * np.where(pos, lower, np.where(neg, upper, 0.0))


def _magnitude(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``max(|lower_j|, |upper_j|)`` over the finite ones (the size of ``x_j``)."""
    finite_lower = np.where(np.isfinite(lower), np.abs(lower), 0.0)
    finite_upper = np.where(np.isfinite(upper), np.abs(upper), 0.0)
    return np.maximum(finite_lower, finite_upper)


def _max_column_count(A: sp.spmatrix) -> int:
    if A.nnz == 0:
        return 0
    return int(np.bincount(A.indices if sp.isspmatrix_csr(A) else A.tocsr().indices,
                           minlength=A.shape[1]).max())


def _finish(constant_terms: list[np.ndarray], r: np.ndarray, r_scale: np.ndarray,
            lower: np.ndarray, upper: np.ndarray, num_terms: int) -> float:
    """Sum the bound's terms and subtract the rounding allowance (``num_terms``: the
    most terms summed into one ``r_j``)."""
    box = _box_terms(r, lower, upper)
    if box is None:
        return -math.inf
    constants = np.concatenate([np.atleast_1d(np.asarray(t, np.float64)) for t in constant_terms])
    value = math.fsum(np.concatenate([constants, box]))
    size = float(np.abs(constants).sum() + (_magnitude(lower, upper) * r_scale).sum())
    allowance = (_REL_ALLOWANCE + 2 * _EPS * (num_terms + 4)) * size
    result = math.nextafter(value - allowance, -math.inf)
    return result if math.isfinite(result) else -math.inf


def linear_safe_bound(c: np.ndarray, c0: float, A: sp.spmatrix, row_lower: np.ndarray,
                      row_upper: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                      row_duals) -> float:
    """:func:`lp_safe_bound` on raw arrays (used by sessions that keep their own copies)."""
    y = clip_row_duals(row_duals, row_lower, row_upper)
    r = c - A.T @ y
    r_scale = np.abs(c) + abs(A).T @ np.abs(y)
    return _finish([np.array([c0]), _row_terms(y, row_lower, row_upper)], r, r_scale,
                   lower, upper, _max_column_count(A))


def lp_safe_bound(problem: LinearProgram, row_duals) -> float:
    """A lower bound on ``min c^T x + c0`` valid for ANY ``row_duals`` (see module docstring).

    ``row_duals`` follows the convention ``c - A^T y - z = 0``; ``None`` means
    ``y = 0`` (the plain box bound).  Integrality is ignored, so for a MILP this
    bounds the LP relaxation (and hence the MILP).  Returns ``-inf`` when the
    Lagrangian is unbounded below on the box.
    """
    return linear_safe_bound(problem.c, problem.c0, problem.A, problem.row_lower,
                             problem.row_upper, problem.lower, problem.upper, row_duals)


def _psd_shift(Z: np.ndarray) -> float:
    """``delta >= max(0, -lambda_min(Z))`` including a margin for ``eigvalsh`` rounding."""
    norm = float(np.linalg.norm(Z))
    if norm == 0.0:
        return 0.0
    lam_min = float(np.linalg.eigvalsh(Z)[0])
    return max(0.0, -lam_min) + 64 * Z.shape[0] * _EPS * norm


def conic_safe_bound(problem: ConicProgram, row_duals,
                     psd_duals: Sequence[np.ndarray | None]) -> float:
    """A lower bound on the optimum of ``problem`` valid for any ``row_duals`` and any
    symmetric ``psd_duals`` (one ``(size, size)`` matrix per PSD constraint; ``None``
    means 0); see the module docstring for the derivation."""
    lp = problem.linear
    if len(psd_duals) != len(problem.psd):
        raise ValueError(f"{len(psd_duals)} PSD duals for {len(problem.psd)} PSD constraints")
    y = clip_row_duals(row_duals, lp.row_lower, lp.row_upper)
    r = lp.c - lp.A.T @ y
    r_scale = np.abs(lp.c) + abs(lp.A).T @ np.abs(y)
    constants = [np.array([lp.c0]), _row_terms(y, lp.row_lower, lp.row_upper)]
    num_terms = _max_column_count(lp.A)
    for cone, Z in zip(problem.psd, psd_duals):
        s = cone.size
        Z = np.zeros((s, s)) if Z is None else np.asarray(Z, dtype=np.float64).reshape(s, s)
        Z = np.zeros((s, s)) if not np.isfinite(Z).all() else 0.5 * (Z + Z.T)
        delta = _psd_shift(Z)
        G = sp.csr_matrix(cone.coefficients)
        diagonal = np.arange(s) * (s + 1)
        trace_coefficients = np.asarray(G[diagonal].sum(axis=0)).ravel()
        F0 = np.asarray(cone.constant, dtype=np.float64).reshape(-1)
        z = Z.reshape(-1)
        r = r - G.T @ z - delta * trace_coefficients
        r_scale = r_scale + abs(G).T @ np.abs(z) + delta * np.abs(trace_coefficients)
        constants += [z * F0, np.array([delta * F0[diagonal].sum()])]
        num_terms += _max_column_count(G) + s + 2
    return _finish(constants, r, r_scale, lp.lower, lp.upper, num_terms)
