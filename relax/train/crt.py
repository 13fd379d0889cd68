"""CRT: curvature-based robust training (Singla & Feizi, ICML 2020) as loss terms.

* :class:`CurvaturePenalty`: ``gamma * mean_{y != t} K_yt`` where
  ``K_yt = ||diag(sqrt p) W||_2^2`` bounds the Hessian eigenvalues of ``f_t - f_y``
  everywhere (``p_k = max(v_k s_lo, v_k s_hi)``, ``v = V_t - V_y``; see
  :mod:`relax.certificates.crc`).  The spectral norm is tracked by warm-started power iteration
  (batched over pairs) and differentiated through its singular vector:
  ``K ~= ||diag(sqrt p) W w||^2`` for the top right singular vector ``w``.
* :class:`L2PGDLoss`: cross-entropy on l2 PGD adversarial examples (radius ``eps``,
  normalised-gradient steps, projection onto the ball and the ``[0, 1]`` box).
* :func:`pgd_l2`: the attack itself (also used by the benchmarks).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from relax.bounds.activations import RULES, SMOOTH
from relax.certificates.crc import SECOND_DERIVATIVE_RANGE
from relax.errors import UsageError

__all__ = ["CurvaturePenalty", "L2PGDLoss", "pgd_l2", "smooth_two_layer_module"]

_NAMES = {RULES[name].torch_module: name for name in SMOOTH}


def smooth_two_layer_module(model: nn.Module) -> tuple[nn.Linear, nn.Linear, str]:
    """``(first Linear, last Linear, activation name)`` of a Linear-act-Linear model."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    acts = [m for m in model.modules() if type(m) in _NAMES]
    if len(linears) != 2 or len(acts) != 1:
        raise UsageError("CRT needs a Linear-(sigmoid|tanh|softplus)-Linear model")
    return linears[0], linears[1], _NAMES[type(acts[0])]


def pgd_l2(model: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int = 10,
           step_size: float | None = None, random_start: bool = True) -> Tensor:
    """Untargeted l2 PGD within ``||x' - x||_2 <= eps`` and ``[0, 1]``."""
    step_size = 2.5 * eps / steps if step_size is None else step_size
    was_training = model.training
    model.eval()
    delta = torch.zeros_like(x)
    if random_start:
        delta = torch.randn_like(x)
        delta = delta / delta.norm(dim=1, keepdim=True) * eps * torch.rand(len(x), 1)
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model((x + delta).clamp(0, 1)), y)
            (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + step_size * grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-12)
            norm = delta.norm(dim=1, keepdim=True)
            delta = delta * torch.clamp(eps / norm.clamp(min=1e-12), max=1.0)
            delta = (x + delta).clamp(0, 1) - x
    model.train(was_training)
    return (x + delta).detach()


class CurvaturePenalty:
    """``gamma * mean`` over ordered class pairs of the curvature bound ``K_yt``."""

    name = "curvature"

    def __init__(self, gamma: float, power_steps: int = 2):
        self.gamma, self.power_steps = float(gamma), int(power_steps)
        self._w: Tensor | None = None

    def bounds(self, model: nn.Module) -> Tensor:
        """Differentiable estimates of ``K`` for all ordered pairs (vector)."""
        first, last, act = smooth_two_layer_module(model)
        lo, hi = SECOND_DERIVATIVE_RANGE[act]
        W, V = first.weight, last.weight
        n = V.shape[0]
        ys, ts = torch.triu_indices(n, n, 1)
        ys, ts = torch.cat([ys, ts]), torch.cat([ts, ys])
        v = V[ts] - V[ys]
        p = torch.maximum(v * lo, v * hi).clamp(min=0)  # (P, m)
        # ||diag(sqrt p) W w||^2 = sum_k p_k (W w)_k^2: no sqrt (its gradient is infinite at
        # p_k = 0, which made training produce NaN)
        with torch.no_grad():
            if self._w is None or self._w.shape != (len(v), W.shape[1]):
                self._w = torch.randn(len(v), W.shape[1])
                steps = 30
            else:
                steps = self.power_steps
            w = self._w
            Wd, pd = W.detach(), p.detach()
            for _ in range(steps):
                w = (pd * (w @ Wd.T)) @ Wd
                w = w / w.norm(dim=1, keepdim=True).clamp(min=1e-30)
            self._w = w
        return (p * (w @ W.T) ** 2).sum(1)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        return self.gamma * self.bounds(model).mean()


class L2PGDLoss:
    """``weight * CE(model(pgd_l2(x)))``."""

    name = "pgd-l2"

    def __init__(self, eps: float, steps: int = 5, weight: float = 1.0):
        self.eps, self.steps, self.weight = float(eps), int(steps), float(weight)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        x_adv = pgd_l2(model, x, y, self.eps, self.steps)
        return self.weight * nn.functional.cross_entropy(model(x_adv), y)
