r"""The best ``kappa`` for given multipliers, matrix-free (a box-constrained BM).

For fixed multipliers ``lam`` the certificate's bound ``F(kappa)`` (:mod:`.certificate`)
is at most the value of the *inner* SDP

    min <Mt, P>  s.t.  P >= 0,  P_00 = 1,  P_ii <= d_i,                          (I)

whose dual is ``max kappa_0 + sum_i d_i min(0, kappa_i)`` s.t. ``Mt - diag(kappa) >= 0``
(``kappa_i = -mu_i``, ``mu_i >= 0`` the multiplier of ``P_ii <= d_i``).  A low-rank
``P = V V^T`` (row ``v_0`` a fixed unit vector, rows ``||v_i||^2 <= d_i``, rank ``r``)
turns (I) into a smooth problem over a product of balls, solved by projected gradient
with Nesterov momentum (one product of ``Mt`` with ``r`` columns per step: the block
operator of :mod:`.blocks`, never the dense matrix).  Its KKT conditions
``(Mt V)_i = kappa_i v_i`` give the duals:

    kappa_0 = v_0^T (Mt V)_0,   kappa_i = min(0, v_i^T (Mt V)_i / ||v_i||^2)  (rows on
    their sphere, ||v_i||^2 >= (1 - 1e-6) d_i),   kappa_i = 0  otherwise,

the dual point of (I) when ``V`` is optimal.  They are only a *choice* (floating point,
an inexact ``V``): :func:`.repair.lowrank_shift` then pays for what is left of
``D``'s negative part, and the float64 certificate proves the bound, as always.  The
multipliers ``lam`` are unchanged; only ``kappa`` is replaced (on the kept
coordinates; fixed ones, ``d_i = 0``, keep theirs: they are not in ``D``).
"""

from __future__ import annotations

import numpy as np

from solvers.backends.fo_sdp.problem import Layout, ProblemData, split_numpy

__all__ = ["inner_duals"]


def _lagrangian_operator(data: ProblemData, layout: Layout, params: np.ndarray):
    """``(apply, m)``: ``V -> Mt V`` (rows) on the kept coordinates, ``kappa = 0``."""
    from solvers.backends.fo_sdp.blocks import block_matvec, kept_blocks
    from solvers.backends.fo_sdp.certificate import lagrangian_blocks

    lams, kappa = split_numpy(layout, data, params)
    blocks = kept_blocks(data, lagrangian_blocks(data, lams, np.zeros_like(kappa),
                                                 absolute=False))
    return block_matvec(blocks)


def _project(V, radius):
    """Row 0 fixed to ``e_1``; other rows scaled into their ball ``||v_i|| <= radius_i``."""
    import torch

    norms = V.norm(dim=1).clamp(min=1e-300)
    V = V * torch.clamp(radius / norms, max=1.0)[:, None]
    V[0] = 0.0
    V[0, 0] = 1.0
    return V


def _solve_inner(apply, radius, rank: int, steps: int, seed: int):
    """Projected Nesterov gradient on ``<Mt, V V^T>`` over the balls; returns ``V``."""
    import torch

    m = radius.numel()
    generator = torch.Generator().manual_seed(seed)
    V = _project(torch.randn((m, rank), generator=generator, dtype=torch.float64)
                 * radius[:, None], radius)
    product = lambda X: apply(X.T.contiguous()).T          # Mt X, on columns
    # step 1 / (2 ||Mt||): a power-iteration estimate of the norm, with a margin
    x = torch.randn((m, 1), generator=generator, dtype=torch.float64)
    for _ in range(30):
        x = product(x)
        x = x / x.norm().clamp(min=1e-300)
    step = 1.0 / (4.0 * float(product(x).norm()) + 1e-300)
    previous, Y = V, V
    for k in range(steps):
        V = _project(Y - step * 2.0 * product(Y), radius)
        Y = V + (k / (k + 3.0)) * (V - previous)
        previous = V
    return V, product(V)


def inner_duals(data: ProblemData, layout: Layout, params: np.ndarray, rank: int = 8,
                steps: int = 300, seed: int = 0) -> np.ndarray:
    """``params`` with ``kappa`` from the low-rank solution of (I) (module docstring)."""
    import torch

    params = layout.project(np.asarray(params, np.float64))
    keep = np.concatenate([[True], data.d > 0])
    apply, _ = _lagrangian_operator(data, layout, params)
    radius = torch.as_tensor(np.sqrt(np.concatenate([[1.0], data.d[data.d > 0]])))
    V, MV = _solve_inner(apply, radius, rank, steps, seed)
    inner = (V * MV).sum(1)
    squared = (V * V).sum(1)
    on_sphere = squared >= (1 - 1e-6) * radius ** 2
    kappa = torch.where(on_sphere, torch.clamp(inner / squared.clamp(min=1e-300), max=0.0),
                        torch.zeros_like(inner)).numpy()
    kappa[0] = float(inner[0])
    out = params.copy()
    full = out[layout.kappa_start:]
    full[keep] = kappa
    return layout.project(out)
