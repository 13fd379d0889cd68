"""IBP training (Gowal et al. 2018).

Loss ``kappa * CE(z(x), y) + (1 - kappa) * CE(-m_IBP(x, eps), y)`` where
``m_IBP`` are interval lower bounds on the margins ``z_y - z_j`` over the
L-inf ball of radius ``eps``.  ``eps`` ramps from 0 to its target and ``kappa``
from 1 to ``kappa_end`` over the first part of training (Gowal et al.'s
schedule; the fraction is ``ramp_finish``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from relax.train.bounds import ibp_margin, input_box, layers_of, margin_matrix
from relax.train.robust_loss import robust_ce
from relax.train.schedule import Ramp

__all__ = ["IBPLoss"]


@dataclass
class IBPLoss:
    """Gowal et al.'s IBP loss with eps and kappa ramps."""

    eps: float
    kappa_end: float = 0.5
    ramp_begin: float = 0.0
    ramp_finish: float = 0.5
    weight: float = 1.0
    name: str = "ibp"

    def eps_at(self, progress: float) -> float:
        return Ramp(0.0, self.eps, self.ramp_begin, self.ramp_finish)(progress)

    def kappa_at(self, progress: float) -> float:
        return Ramp(1.0, self.kappa_end, self.ramp_begin, self.ramp_finish)(progress)

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        logits = model(x)
        kappa = self.kappa_at(progress)
        layers = layers_of(model)
        lower, upper = input_box(x, self.eps_at(progress))
        margins = ibp_margin(layers, lower, upper, margin_matrix(y, logits.shape[-1], x.dtype))
        loss = kappa * F.cross_entropy(logits, y) + (1 - kappa) * robust_ce(margins, y)
        return self.weight * loss
