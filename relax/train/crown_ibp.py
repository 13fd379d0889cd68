"""CROWN-IBP training (Zhang et al. 2020).

Margin lower bound ``m = beta * m_CROWN-IBP + (1 - beta) * m_IBP`` where
``m_CROWN-IBP`` is CROWN's backward linear bound on the last layer with IBP's
pre-activation bounds for the hidden layers.  Loss
``kappa * CE(z(x), y) + (1 - kappa) * CE(-m, y)``.  ``eps`` ramps 0 -> eps,
``beta`` from ``beta_start`` (1) to ``beta_end`` (0) and ``kappa`` 1 ->
``kappa_end``, all over the same ramp (Zhang et al. decrease beta from 1 to 0
during the eps ramp-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from relax.train.bounds import ibp_bounds, ibp_margin, input_box, layers_of, linear_margin, margin_matrix
from relax.train.robust_loss import robust_ce
from relax.train.schedule import Ramp

__all__ = ["CrownIBPLoss", "crown_ibp_margin"]


def crown_ibp_margin(model: torch.nn.Module, x: Tensor, y: Tensor, eps: float, beta: float,
                     num_classes: int) -> Tensor:
    """``beta * CROWN-IBP + (1 - beta) * IBP`` lower bound (B, K) on the margins."""
    layers = layers_of(model)
    lower, upper = input_box(x, eps)
    C = margin_matrix(y, num_classes, x.dtype)
    bounds = ibp_bounds(layers, lower, upper)
    parts = []
    if beta < 1:
        parts.append((1 - beta) * ibp_margin(layers, lower, upper, C, bounds))
    if beta > 0:
        parts.append(beta * linear_margin(layers, lower, upper, C, bounds[:-1]).bound)
    return sum(parts)


@dataclass
class CrownIBPLoss:
    """Zhang et al.'s CROWN-IBP loss with eps, beta and kappa ramps."""

    eps: float
    beta_start: float = 1.0
    beta_end: float = 0.0
    kappa_end: float = 0.0
    ramp_begin: float = 0.0
    ramp_finish: float = 0.5
    weight: float = 1.0
    name: str = "crown-ibp"

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        ramp = lambda a, b: Ramp(a, b, self.ramp_begin, self.ramp_finish)(progress)  # noqa: E731
        eps, kappa = ramp(0.0, self.eps), ramp(1.0, self.kappa_end)
        beta = ramp(self.beta_start, self.beta_end)
        logits = model(x)
        margins = crown_ibp_margin(model, x, y, eps, beta, logits.shape[-1])
        loss = kappa * F.cross_entropy(logits, y) + (1 - kappa) * robust_ce(margins, y)
        return self.weight * loss
