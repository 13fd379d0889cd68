"""The top eigenpair of many symmetric matrices given as matvecs, for training.

A thin front of the one batched Lanczos of the project (:func:`solvers.linalg.lanczos`,
full reorthogonalisation, restarts on breakdown; its docstring states the method):
``steps`` steps from ``start`` give the top Ritz pair, which approximates the top
eigenpair from below (``theta = u^T A u <= lambda_max``).  A start close to the top
eigenvector (warm start from the previous training step) needs few steps.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from solvers.linalg import lanczos

__all__ = ["lanczos_top"]


@torch.no_grad()
def lanczos_top(matvec: Callable[[Tensor], Tensor], start: Tensor, steps: int,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(theta, u)``: top Ritz values ``(P,)`` and unit Ritz vectors ``(P, D)`` after
    ``steps`` Lanczos steps from ``start`` (``(P, D)``; a zero row starts at random).
    ``theta`` is recomputed as the Rayleigh quotient ``u^T A u`` (one extra matvec)."""
    _, vectors = lanczos(matvec, start, steps, 1, largest=True, generator=generator)
    u = vectors[:, 0]
    theta = (u * matvec(u)).sum(1)
    return theta, u
