"""Projected Adam for the slope searches (alpha-CROWN), written out.

Adam (Kingma & Ba, 2015; the moment update of :func:`solvers.optim.adam_moments_`, in place) with
``eps = 1e-8``:

    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps),

then every group's ``lr`` is multiplied by ``decay`` and its parameters are clamped to
their box (``[0, 1]`` for slopes, ``[0, inf)`` for split multipliers).  The state
(``m``, ``v``, ``t``) is explicit.  Not ``torch.optim.Adam``: its first use imports
``torch._dynamo``, which costs seconds per process (more than a whole alpha-CROWN run
on mnistfc), and a verifier process usually runs one property.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from solvers.optim import adam_moments_

__all__ = ["AdamGroup", "ProjectedAdam"]

EPS = 1e-8


@dataclass
class AdamGroup:
    """Parameters sharing a step size and a box ``[low, high]`` (``None``: unbounded)."""

    params: list
    lr: float
    low: float | None = None
    high: float | None = None
    m: list = field(default_factory=list)
    v: list = field(default_factory=list)


class ProjectedAdam:
    """``step()`` after ``backward()``: one Adam step per group, step-size decay, projection."""

    def __init__(self, groups: list[AdamGroup], decay: float = 1.0):
        self.groups, self.decay, self.t = groups, decay, 0
        for group in groups:
            group.m = [torch.zeros_like(p) for p in group.params]
            group.v = [torch.zeros_like(p) for p in group.params]

    def zero_grad(self) -> None:
        for group in self.groups:
            for p in group.params:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        for group in self.groups:
            for p, m, v in zip(group.params, group.m, group.v):
                if p.grad is None:
                    continue
                p.sub_(adam_moments_(m, v, p.grad, self.t, EPS), alpha=group.lr)
                if group.low is not None or group.high is not None:
                    p.clamp_(group.low, group.high)
            group.lr *= self.decay
