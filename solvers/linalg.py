r"""Shared linear algebra: ONE batched Lanczos and a batched symmetric ``eigh``.

Lanczos (:func:`lanczos`).  For ``b`` symmetric ``n x n`` operators ``A_p`` (only
``V -> A V`` is available, batched as ``(b, n) -> (b, n)``) and start vectors
``q_1``, ``k`` steps build orthonormal ``Q_k = [q_1 ... q_k]`` with
``Q_k^T A Q_k = T_k`` tridiagonal (``alpha_i = q_i^T A q_i``, ``beta_i = ||r_i||``).
The Ritz pairs ``(theta, Q_k s)`` of ``T_k`` approximate the extreme eigenpairs:
by Cauchy interlacing the ``j``-th smallest Ritz value is ``>= lambda_j(A)`` (and
the ``j``-th largest ``<= lambda_{n-j+1}(A)``), so Ritz values are *estimates*,
never rigorous bounds.  Full reorthogonalisation (two classical Gram-Schmidt passes
against all previous ``q``) keeps ``Q_k`` orthonormal in floating point, so no
spurious copies of an extreme eigenvalue appear.  On breakdown (``beta`` tiny: the
Krylov space is invariant) the recursion continues from a random vector orthogonal
to ``Q`` (restricted to ``mask``) with ``beta = 0``, which keeps ``T_k`` exact; with
``steps = n`` it recovers the whole spectrum.  A single operator is a batch of one.

``eigh`` (:func:`eigh_batch`): ascending eigenvalues and eigenvectors of a stack of
symmetric matrices; numpy's LAPACK on CPU (about twice as fast as torch's there),
torch on other devices.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["lanczos", "eigh_batch"]


def _orthogonalise(w, basis):
    """``w`` (b, n) minus its projection on the rows of ``basis`` (b, j, n), twice."""
    for _ in range(2):
        w = w - ((basis @ w[:, :, None]).transpose(1, 2) @ basis)[:, 0]
    return w


def _random(shape, like, generator, mask):
    import torch

    fresh = torch.randn(shape, generator=generator, dtype=torch.float64).to(like)
    return fresh if mask is None else fresh * mask


def lanczos(matvec: Callable, start, steps: int, count: int = 1, mask=None,
            largest: bool = False, generator=None):
    """The ``count`` smallest (``largest``: largest) Ritz pairs after at most ``steps``
    Lanczos steps from ``start`` (b, n), for ``matvec`` mapping (b, n) to (b, n).

    ``mask`` (b, n) or (n,) restricts random restarts (and a zero start) to its
    support.  Returns Ritz values (b, count), ascending (``largest``: descending), and
    unit Ritz vectors (b, count, n)."""
    import torch

    b, n = start.shape
    limit = n if mask is None else int(torch.as_tensor(mask).reshape(-1, n).sum(dim=1).min())
    k = max(1, min(int(steps), limit))
    generator = generator or torch.Generator().manual_seed(n)
    norms = start.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        start = torch.where(norms == 0, _random((b, n), start, generator, mask), start)
    q = start / start.norm(dim=1, keepdim=True).clamp(min=1e-300)
    Q = start.new_zeros((b, k, n))
    alphas, betas, scale = [], [], start.new_zeros(b)
    for j in range(k):
        Q[:, j] = q
        w = matvec(q)
        alphas.append((q * w).sum(1))
        w = _orthogonalise(w, Q[:, :j + 1])
        beta = w.norm(dim=1)
        scale = torch.maximum(scale, torch.maximum(alphas[-1].abs(), beta))
        if j == k - 1:
            break
        broken = beta <= 1e-10 * scale.clamp(min=1e-300)
        q = w / beta.clamp(min=1e-300)[:, None]
        if bool(broken.any()):
            fresh = _orthogonalise(_random((b, n), start, generator, mask), Q[:, :j + 1])
            fresh = fresh / fresh.norm(dim=1, keepdim=True).clamp(min=1e-300)
            q = torch.where(broken[:, None], fresh, q)
            beta = torch.where(broken, torch.zeros_like(beta), beta)
        betas.append(beta)
    return _ritz(alphas, betas, Q, count, largest)


def _ritz(alphas, betas, Q, count: int, largest: bool):
    """Ritz pairs of the tridiagonal ``T`` built from ``alphas``, ``betas``."""
    import torch

    m = len(alphas)
    T = torch.diag_embed(torch.stack(alphas, dim=1))
    if m > 1:
        off = torch.stack(betas[:m - 1], dim=1)
        T = T + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    values, vectors = torch.linalg.eigh(T)
    if largest:
        values, vectors = values.flip(-1), vectors.flip(-1)
    count = min(count, m)
    ritz = vectors[:, :, :count].transpose(1, 2) @ Q[:, :m]
    return values[:, :count], ritz / ritz.norm(dim=2, keepdim=True).clamp(min=1e-300)


def eigh_batch(D):
    """Ascending eigenvalues (b, m) and eigenvectors (b, m, m; columns) of a symmetric
    stack ``D`` (b, m, m) (numpy's LAPACK on CPU, torch elsewhere)."""
    import torch

    if D.device.type == "cpu":
        values, vectors = np.linalg.eigh(D.numpy())
        return torch.from_numpy(values).to(D), torch.from_numpy(vectors).to(D)
    return torch.linalg.eigh(D)
