"""SingleProp (Boopathy et al. 2021): a one-extra-forward-pass robustness estimate.

Our reading of the idea: carry, alongside the clean forward pass ``c_k``, a
deviation radius ``r_k`` in *one* extra forward propagation, scaling the
deviation through each activation by the slope of the chord of the activation
over the current estimated range ``[c - r, c + r]`` (for ReLU: 1 if stable
active, 0 if stable inactive, ``u / (u - l)`` if unstable) instead of
propagating full intervals (IBP) or back-substituting linear bounds (CROWN):

    r_0 = max(x - l, u - x)  (the input box around x),
    zhat_k = W_k c_{k-1} + b_k,   rhat_k = |W_k| r_{k-1},
    c_k = act(zhat_k),            r_k = s_k * rhat_k,
    s_k = (act(zhat_k + rhat_k) - act(zhat_k - rhat_k)) / (2 rhat_k),
    m_j = (C z_L)(x) - |C W_L| r_{L-1}.

**This is not a sound bound**: for an unstable ReLU the chord slope
underestimates the deviation (``s * rhat = u / 2`` while the true deviation from
``relu(zhat)`` can reach ``max(relu(zhat), u - relu(zhat))``), so ``m`` can exceed
the true minimum margin.  It is only a training regulariser, costing one extra
forward pass; certification of the trained network always uses relax's sound
methods (:mod:`relax.train.evaluate`).

Loss (same schedule as IBP): ``kappa * CE(z(x), y) + (1 - kappa) * CE(-m, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from relax.bounds.torch_network import activation_torch
from relax.train.bounds import input_box, layers_of, margin_matrix
from relax.train.robust_loss import robust_ce
from relax.train.schedule import Ramp

__all__ = ["SinglePropLoss", "singleprop_margin"]


def singleprop_margin(model: torch.nn.Module, x: Tensor, y: Tensor, eps: float,
                      num_classes: int) -> tuple[Tensor, Tensor]:
    """``(m, logits)``: the SingleProp margin estimate (B, K) (not sound) and the clean logits."""
    layers = layers_of(model)
    lower, upper = input_box(x, eps)
    centre, radius = x, torch.maximum(x - lower, upper - x)
    L = len(layers.weights)
    for k in range(L - 1):
        W, b = layers.weights[k], layers.biases[k]
        zhat, rhat = centre @ W.T + b, radius @ W.abs().T
        act = lambda z: activation_torch(layers.activations[k], z)  # noqa: E731
        chord = (act(zhat + rhat) - act(zhat - rhat)) / (2 * rhat).clamp(min=1e-12)
        centre, radius = act(zhat), chord * rhat
    logits = centre @ layers.weights[-1].T + layers.biases[-1]
    C = margin_matrix(y, num_classes, x.dtype)
    CW = C @ layers.weights[-1]
    margins = (C @ logits.unsqueeze(-1)).squeeze(-1) - (CW.abs() @ radius.unsqueeze(-1)).squeeze(-1)
    return margins, logits


@dataclass
class SinglePropLoss:
    """SingleProp-regularised cross-entropy with IBP's eps and kappa ramps."""

    eps: float
    kappa_end: float = 0.5
    ramp_begin: float = 0.0
    ramp_finish: float = 0.5
    weight: float = 1.0
    name: str = "singleprop"

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        ramp = lambda a, b: Ramp(a, b, self.ramp_begin, self.ramp_finish)(progress)  # noqa: E731
        eps, kappa = ramp(0.0, self.eps), ramp(1.0, self.kappa_end)
        num_classes = model[-1].out_features if isinstance(model, torch.nn.Sequential) else None
        margins, logits = singleprop_margin(model, x, y, eps, num_classes or 10)
        loss = kappa * F.cross_entropy(logits, y) + (1 - kappa) * robust_ce(margins, y)
        return self.weight * loss
