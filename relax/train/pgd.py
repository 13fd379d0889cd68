"""PGD adversarial training (Madry et al. 2018), L-inf.

``CE(z(x_adv), y)`` where ``x_adv`` maximises the cross-entropy over the ball
``|x' - x|_inf <= eps`` intersected with [0, 1], found by ``steps`` signed-gradient
ascent steps of size ``2.5 eps / steps`` from a random start.  ``eps`` ramps
from 0 to its target over ``[ramp_begin, ramp_finish]`` of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from relax.train.schedule import Ramp

__all__ = ["PGDLoss", "pgd_linf"]


def pgd_linf(model: torch.nn.Module, x: Tensor, y: Tensor, eps: float, steps: int,
             random_start: bool = True, domain: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Untargeted L-inf PGD on the cross-entropy; returns detached adversarial inputs."""
    if eps <= 0 or steps <= 0:
        return x.detach()
    was_training = model.training
    model.eval()
    step = 2.5 * eps / steps
    lower, upper = (x - eps).clamp(*domain), (x + eps).clamp(*domain)
    x_adv = x.detach().clone()
    if random_start:
        x_adv = torch.minimum(torch.maximum(x_adv + (torch.rand_like(x) * 2 - 1) * eps, lower), upper)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + step * grad.sign(), lower), upper)
    model.train(was_training)
    return x_adv.detach()


@dataclass
class PGDLoss:
    """Cross-entropy at PGD adversarial examples, with an eps ramp."""

    eps: float
    steps: int = 10
    ramp_begin: float = 0.0
    ramp_finish: float = 0.2
    weight: float = 1.0
    name: str = "pgd"

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        eps = Ramp(0.0, self.eps, self.ramp_begin, self.ramp_finish)(progress)
        x_adv = pgd_linf(model, x, y, eps, self.steps)
        return self.weight * F.cross_entropy(model(x_adv), y)
