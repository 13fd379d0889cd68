r"""A better ``kappa`` for given multipliers: the Gershgorin shift of ``D``'s negative part.

The certificate (:mod:`.certificate`) pays for a negative ``q = lambda_min(D)`` with a
*uniform* shift: ``F = kappa_0 + q + sum_i d_i min(0, kappa_i + q)`` loses about
``T |q|`` (``T = 1 + sum d_i``, ~950 on MNIST).  Near the optimum the negative
eigenvectors of ``D`` live on a few hundred hidden coordinates, not on the 784 inputs,
so a shift placed where they live is far cheaper.  With ``D = sum_j w_j u_j u_j^T``
let ``N = sum_{w_j < 0} |w_j| u_j u_j^T`` (PSD, and ``D + N >= 0``) and
``r_i = sum_k |N_ik|``.  ``diag(r) - N`` is symmetric and diagonally dominant with a
nonnegative diagonal, hence PSD (Gershgorin), so ``D + diag(r) >= D + N >= 0``:
the duals with ``kappa' = kappa - r`` have ``lambda_min(D') ~ 0`` and
``F(kappa') ~ kappa_0 - r_0 + sum_i d_i min(0, kappa_i - r_i)``, which costs about
``sum_i d_i r_i`` instead of ``T |q|``.

This is only a *choice* of duals (eigenpairs in floating point); the bound of the new
duals is proved, as every bound, by the float64 certificate.  :func:`improve` keeps
whichever of the two duals certifies higher.  It needs the dense ``D`` and is used
for ``1 + n <= dense_check_limit`` only (above it the duals are returned unchanged).
"""

from __future__ import annotations

import numpy as np

from solvers.backends.fo_sdp.certificate import certify, dense_lagrangian
from solvers.backends.fo_sdp.problem import Layout, ProblemData, split_numpy

__all__ = ["gershgorin_shift", "improve"]


def gershgorin_shift(data: ProblemData, layout: Layout, params: np.ndarray) -> np.ndarray:
    """``params`` with ``kappa - r`` (module docstring); unchanged when ``D`` is PSD in
    floating point or not finite."""
    params = layout.project(np.asarray(params, np.float64))
    lams, kappa = split_numpy(layout, data, params)
    keep = np.concatenate([[True], data.d > 0])
    D = dense_lagrangian(data, lams, kappa, absolute=False)[np.ix_(keep, keep)]
    if not np.isfinite(D).all():
        return params
    values, vectors = np.linalg.eigh(D)
    negative = values < 0
    if not negative.any():
        return params
    part = vectors[:, negative]
    N = (part * -values[negative]) @ part.T
    shift = np.zeros(1 + data.n)
    shift[keep] = np.abs(N).sum(axis=1)
    out = params.copy()
    out[layout.kappa_start:] -= shift
    return layout.project(out)


def improve(data: ProblemData, layout: Layout, params: np.ndarray, limit: int,
            bound: float | None = None) -> tuple[float, np.ndarray]:
    """``(bound, duals)``: the better-certified of ``params`` (whose certified bound may
    be given as ``bound``) and its :func:`gershgorin_shift`."""
    params = layout.project(np.asarray(params, np.float64))
    if bound is None:
        bound = certify(data, layout, params, limit)
    if data.n + 1 > limit:
        return bound, params
    shifted = gershgorin_shift(data, layout, params)
    other = certify(data, layout, shifted, limit)
    return (other, shifted) if other > bound else (bound, params)
