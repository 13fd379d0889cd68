"""Batched Lanczos for the top eigenpair of many symmetric matrices given as matvecs.

For ``P`` symmetric ``D x D`` matrices ``A_p`` (only ``u -> A_p u`` is available,
batched as ``(P, D) -> (P, D)``) and start vectors ``q_1``, ``k`` Lanczos steps build
orthonormal ``Q_k = [q_1 ... q_k]`` with ``Q_k^T A Q_k = T_k`` tridiagonal
(``alpha_i = q_i^T A q_i``, ``beta_i = ||r_i||``).  The top Ritz pair
``(theta, Q_k s)`` of ``T_k`` approximates the top eigenpair of ``A`` from below
(``theta = u^T A u <= lambda_max`` for the unit Ritz vector ``u``), with error
shrinking like a Chebyshev polynomial in the relative gap; a start close to the top
eigenvector (warm start from the previous training step) needs few steps.

Full reorthogonalisation (two classical Gram-Schmidt passes against all previous
``q``) keeps ``Q_k`` orthonormal in floating point, so no spurious copies of the
top eigenvalue appear.  On breakdown (``beta`` tiny: the Krylov space is invariant)
the recursion restarts from a random vector orthogonal to ``Q`` with ``beta = 0``,
which keeps ``T_k`` exact.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["lanczos_top"]


@torch.no_grad()
def lanczos_top(matvec: Callable[[Tensor], Tensor], start: Tensor, steps: int,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(theta, u)``: top Ritz values ``(P,)`` and unit Ritz vectors ``(P, D)`` after
    ``steps`` Lanczos steps from ``start`` (``(P, D)``; a zero row starts at random).
    ``theta`` is recomputed as the Rayleigh quotient ``u^T A u`` (one extra matvec)."""
    P, D = start.shape
    k_max = max(1, min(int(steps), D))
    q = start.clone()
    empty = q.norm(dim=1) == 0
    if torch.any(empty):
        q[empty] = torch.randn(int(empty.sum()), D, dtype=q.dtype, device=q.device, generator=generator)
    q = q / q.norm(dim=1, keepdim=True)
    Q = q.new_zeros(P, k_max, D)
    alpha = q.new_zeros(P, k_max)
    beta = q.new_zeros(P, k_max)
    for k in range(k_max):
        Q[:, k] = q
        w = matvec(q)
        alpha[:, k] = (w * q).sum(1)
        basis = Q[:, :k + 1]
        for _ in range(2):  # full reorthogonalisation (covers the three-term recurrence)
            w = w - torch.einsum("pk,pkd->pd", torch.einsum("pkd,pd->pk", basis, w), basis)
        if k == k_max - 1:
            break
        b = w.norm(dim=1)
        scale = alpha[:, : k + 1].abs().amax(1).clamp_min(1e-300)
        broken = b <= 1e-10 * scale
        if torch.any(broken):  # invariant subspace found: continue from a fresh direction
            fresh = torch.randn(int(broken.sum()), D, dtype=q.dtype, device=q.device, generator=generator)
            for _ in range(2):
                fresh = fresh - torch.einsum(
                    "pk,pkd->pd", torch.einsum("pkd,pd->pk", basis[broken], fresh), basis[broken])
            w[broken] = fresh
            b = torch.where(broken, torch.zeros_like(b), b)
        beta[:, k] = b
        q = w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)
    T = torch.diag_embed(alpha) + torch.diag_embed(beta[:, :-1], 1) + torch.diag_embed(beta[:, :-1], -1)
    _, vectors = torch.linalg.eigh(T)
    u = torch.einsum("pk,pkd->pd", vectors[:, :, -1], Q)
    u = u / u.norm(dim=1, keepdim=True)
    theta = (u * matvec(u)).sum(1)
    return theta, u
