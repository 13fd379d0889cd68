"""Projected Adam for the slope searches (alpha-CROWN), written out.

Adam (Kingma & Ba, 2015) with ``beta1 = 0.9``, ``beta2 = 0.999``, ``eps = 1e-8``:

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

__all__ = ["AdamGroup", "ProjectedAdam"]

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


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
        correct1, correct2 = 1 - BETA1 ** self.t, 1 - BETA2 ** self.t
        for group in self.groups:
            for p, m, v in zip(group.params, group.m, group.v):
                if p.grad is None:
                    continue
                m.mul_(BETA1).add_(p.grad, alpha=1 - BETA1)
                v.mul_(BETA2).addcmul_(p.grad, p.grad, value=1 - BETA2)
                p.sub_(group.lr * (m / correct1) / ((v / correct2).sqrt() + EPS))
                if group.low is not None or group.high is not None:
                    p.clamp_(group.low, group.high)
            group.lr *= self.decay
