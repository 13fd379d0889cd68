"""Differentiable bound propagation for training (float32, autograd through the bounds).

The model is an ``nn.Sequential`` of ``Linear`` layers separated by activations
(``Flatten`` at the front is allowed): ``z_1 = W_1 x + b_1``, ``a_k = act(z_k)``,
``z_{k+1} = W_{k+1} a_k + b_{k+1}``, logits ``z_L``.  Robustness margins are
``C z_L`` with the rows of ``C`` equal to ``e_y - e_j`` (:func:`margin_matrix`);
their lower bounds are folded into the last layer (``C W_L``), which is never
looser than bounding the logits first.

- :func:`ibp_bounds`: interval bounds of every pre-activation (Gowal et al. 2018),
  ``mu' = W mu + b``, ``r' = |W| r``; monotone activations map ``[l, u]`` to
  ``[act(l), act(u)]``.
- :func:`ibp_margin`: IBP lower bound on ``C z_L``.
- :func:`linear_margin`: CROWN's backward linear bound on ``C z_L`` (ReLU only)
  given pre-activation bounds of the hidden layers (IBP ones: CROWN-IBP, Zhang et
  al. 2020).  Triangle upper line ``u/(u-l) (z - l)``, adaptive lower line
  (slope 1 if ``u > -l`` else 0).  It also returns the relaxation's optimiser
  (the input corner and which line each ReLU sits on), which the Zhu et al.
  regularisers use.

These bounds are sound in exact arithmetic but computed in float32 for speed;
certification never uses them (see :mod:`relax.train.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from relax.errors import UsageError

__all__ = ["Layers", "layers_of", "margin_matrix", "ibp_bounds", "ibp_margin",
           "LinearBound", "linear_margin", "input_box"]

_MONOTONE = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Softplus)


@dataclass
class Layers:
    """The affine maps ``(W_k, b_k)`` and the activations between them."""

    weights: list[Tensor]
    biases: list[Tensor]
    activations: list[nn.Module]

    @property
    def all_relu(self) -> bool:
        return all(isinstance(a, nn.ReLU) for a in self.activations)


def layers_of(model: nn.Module) -> Layers:
    """Split ``Linear (Act Linear)*`` (optionally after a Flatten) into its parts."""
    modules = [m for m in (model if isinstance(model, nn.Sequential) else [model])
               if not isinstance(m, (nn.Flatten, nn.Identity))]
    weights, biases, activations = [], [], []
    for index, module in enumerate(modules):
        want_linear = index % 2 == 0
        if want_linear and isinstance(module, nn.Linear):
            weights.append(module.weight)
            bias = module.bias if module.bias is not None else module.weight.new_zeros(module.out_features)
            biases.append(bias)
        elif not want_linear and isinstance(module, _MONOTONE):
            activations.append(module)
        else:
            raise UsageError(f"training bounds need Linear (Act Linear)*; got {type(module).__name__} "
                             f"at position {index}")
    if not weights or len(activations) != len(weights) - 1:
        raise UsageError("training bounds need a model that starts and ends with nn.Linear")
    return Layers(weights, biases, activations)


def input_box(x: Tensor, eps: float, domain: tuple[float, float] | None = (0.0, 1.0)):
    """The L-inf ball ``[x - eps, x + eps]`` clipped to ``domain``."""
    lower, upper = x - eps, x + eps
    if domain is not None:
        lower, upper = lower.clamp(*domain), upper.clamp(*domain)
    return lower, upper


def margin_matrix(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``C`` of shape (B, K, K): row ``j`` is ``e_y - e_j`` (row ``y`` is zero)."""
    eye = torch.eye(num_classes, device=y.device, dtype=dtype)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def _affine_interval(W: Tensor, b: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    mid, rad = (upper + lower) / 2, (upper - lower) / 2
    centre = mid @ W.T + b
    radius = rad @ W.abs().T
    return centre - radius, centre + radius


def ibp_bounds(layers: Layers, lower: Tensor, upper: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Interval bounds ``(l_k, u_k)`` of every pre-activation ``z_1 .. z_L`` (logits last)."""
    bounds = []
    for k, (W, b) in enumerate(zip(layers.weights, layers.biases)):
        lower, upper = _affine_interval(W, b, lower, upper)
        bounds.append((lower, upper))
        if k < len(layers.activations):
            act = layers.activations[k]
            lower, upper = act(lower), act(upper)
    return bounds


def ibp_margin(layers: Layers, lower: Tensor, upper: Tensor, C: Tensor,
               bounds: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """IBP lower bound (B, K) on ``C z_L`` with ``C`` folded into the last layer."""
    bounds = bounds or ibp_bounds(layers, lower, upper)
    if len(layers.weights) == 1:
        a_lo, a_up = lower, upper
    else:
        l, u = bounds[-2]
        act = layers.activations[-1]
        a_lo, a_up = act(l), act(u)
    W = C @ layers.weights[-1]                       # (B, K, n)
    b = C @ layers.biases[-1]                        # (B, K)
    mid, rad = ((a_up + a_lo) / 2).unsqueeze(-1), ((a_up - a_lo) / 2).unsqueeze(-1)
    return (W @ mid).squeeze(-1) + b - (W.abs() @ rad).squeeze(-1)


@dataclass
class LinearBound:
    """``bound[b, r] = min over the relaxation of C z_L``, attained at ``x_opt[b, r]``.

    ``upper_line[k][b, r, i]`` is True where, for objective row ``r``, hidden
    neuron ``i`` of layer ``k`` sits on the triangle's upper line at the optimum
    (its backward coefficient is negative), False where it sits on the lower line.
    """

    bound: Tensor
    x_opt: Tensor
    upper_line: list[Tensor]
    slopes: list[tuple[Tensor, Tensor, Tensor]]  # (lower slope, upper slope, upper offset) per layer


def relu_relaxation(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(s_lo, s_up, c_up)`` with ``s_lo z <= relu(z) <= s_up z + c_up`` on ``[l, u]``."""
    active = (lower >= 0).to(lower.dtype)
    unstable = (lower < 0) & (upper > 0)
    width = (upper - lower).clamp(min=1e-12)
    s_up = torch.where(unstable, upper / width, active)
    c_up = torch.where(unstable, -s_up * lower, torch.zeros_like(lower))
    s_lo = torch.where(unstable, (upper > -lower).to(lower.dtype), active)
    return s_lo.detach(), s_up, c_up


def linear_margin(layers: Layers, lower: Tensor, upper: Tensor, C: Tensor,
                  hidden_bounds: list[tuple[Tensor, Tensor]]) -> LinearBound:
    """CROWN backward bound on ``C z_L`` (ReLU networks) given bounds of ``z_1 .. z_{L-1}``."""
    if not layers.all_relu:
        raise UsageError("linear (CROWN) training bounds are implemented for ReLU networks only")
    L = len(layers.weights)
    coeffs = C @ layers.weights[-1]                  # (B, K, n_{L-1})
    const = C @ layers.biases[-1]                    # (B, K)
    upper_line: list[Tensor] = [None] * (L - 1)      # type: ignore[list-item]
    slopes: list = [None] * (L - 1)
    for k in range(L - 2, -1, -1):
        s_lo, s_up, c_up = relu_relaxation(*hidden_bounds[k])
        slopes[k] = (s_lo, s_up, c_up)
        positive, negative = coeffs.clamp(min=0), coeffs.clamp(max=0)
        upper_line[k] = coeffs < 0
        const = const + (negative * c_up.unsqueeze(1)).sum(-1)
        coeffs = positive * s_lo.unsqueeze(1) + negative * s_up.unsqueeze(1)
        const = const + coeffs @ layers.biases[k]
        coeffs = coeffs @ layers.weights[k]
    mid, rad = (upper + lower) / 2, (upper - lower) / 2
    bound = const + (coeffs @ mid.unsqueeze(-1)).squeeze(-1) - (coeffs.abs() @ rad.unsqueeze(-1)).squeeze(-1)
    # the minimiser of coeffs . x over the box: the lower corner where coeffs > 0
    x_opt = torch.where(coeffs > 0, lower.unsqueeze(1), upper.unsqueeze(1))
    return LinearBound(bound, x_opt, upper_line, slopes)
