"""Differentiable bound propagation for training (float32, autograd through the bounds).

The bounds are relax's own (:mod:`relax.bounds`): the model, an ``nn.Sequential`` of
``Linear`` layers separated by activations (``Flatten`` at the front allowed), becomes a
:class:`~relax.bounds.torch_network.TorchNetwork` that *shares* its parameters
(:meth:`~relax.bounds.torch_network.TorchNetwork.from_module`), so IBP and CROWN computed
by :mod:`relax.bounds.ibp` and :mod:`relax.bounds.crown` carry gradients to the weights.
Robustness margins are ``C z_L`` with the rows of ``C`` equal to ``e_y - e_j``
(:func:`margin_matrix`); their lower bounds are folded into the last layer (``C W_L``),
which is never looser than bounding the logits first.

- :func:`ibp_bounds`: :func:`relax.bounds.ibp.ibp_layer_bounds` (Gowal et al. 2018).
- :func:`ibp_margin`: IBP lower bound on ``C z_L``.
- :func:`linear_margin`: CROWN's backward linear bound on ``C z_L``
  (:func:`relax.bounds.crown.backward_linear` with :func:`relax.bounds.relaxations.relax_relu`,
  ReLU only) given pre-activation bounds of the hidden layers (IBP ones: CROWN-IBP, Zhang
  et al. 2020).  It also returns the relaxation's optimiser (the input corner and which
  line each ReLU sits on), which the Zhu et al. regularisers use.

These bounds are sound in exact arithmetic but computed in float32 for speed;
certification never uses them (see :mod:`relax.train.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from relax.bounds.crown import backward_linear
from relax.bounds.ibp import ibp_layer_bounds
from relax.bounds.relaxations import relax_relu
from relax.bounds.torch_network import TorchNetwork, activation_torch
from relax.errors import UsageError

__all__ = ["layers_of", "margin_matrix", "ibp_bounds", "ibp_margin",
           "LinearBound", "linear_margin", "input_box", "all_relu"]


def layers_of(model: torch.nn.Module) -> TorchNetwork:
    """The model as a :class:`TorchNetwork` sharing its parameters (differentiable)."""
    return TorchNetwork.from_module(model)


def all_relu(net: TorchNetwork) -> bool:
    return all(a.name == "relu" for a in net.activations)


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


def ibp_bounds(net: TorchNetwork, lower: Tensor, upper: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Interval bounds ``(l_k, u_k)`` of every pre-activation ``z_1 .. z_L`` (logits last)."""
    return ibp_layer_bounds(net, lower, upper)


def ibp_margin(net: TorchNetwork, lower: Tensor, upper: Tensor, C: Tensor,
               bounds: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """IBP lower bound (B, K) on ``C z_L`` with ``C`` folded into the last layer."""
    bounds = bounds or ibp_bounds(net, lower, upper)
    if net.num_layers == 1:
        a_lo, a_up = lower, upper
    else:
        l, u = bounds[-2]
        act = net.activations[-1]
        a_lo, a_up = activation_torch(act, l), activation_torch(act, u)
    W = C @ net.weights[-1]                          # (B, K, n)
    b = C @ net.biases[-1]                           # (B, K)
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


def linear_margin(net: TorchNetwork, lower: Tensor, upper: Tensor, C: Tensor,
                  hidden_bounds: list[tuple[Tensor, Tensor]]) -> LinearBound:
    """CROWN backward bound on ``C z_L`` (ReLU networks) given bounds of ``z_1 .. z_{L-1}``."""
    if not all_relu(net):
        raise UsageError("linear (CROWN) training bounds are implemented for ReLU networks only")
    relaxations = [relax_relu(l, u) for l, u in hidden_bounds]
    coeffs, const, upper_line = backward_linear(net, relaxations, C, net.num_layers - 1)
    mid, rad = (upper + lower) / 2, (upper - lower) / 2
    bound = const + (coeffs @ mid.unsqueeze(-1)).squeeze(-1) - (coeffs.abs() @ rad.unsqueeze(-1)).squeeze(-1)
    # the minimiser of coeffs . x over the box: the lower corner where coeffs > 0
    x_opt = torch.where(coeffs > 0, lower.unsqueeze(1), upper.unsqueeze(1))
    slopes = [(r.lo_slope, r.up_slope, r.up_offset) for r in relaxations]
    return LinearBound(bound, x_opt, upper_line, slopes)
