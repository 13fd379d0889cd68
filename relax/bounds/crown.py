"""CROWN: backward linear bound propagation (Zhang et al. 2018).

To lower-bound ``C z_j`` (rows of ``C`` are objectives on layer ``j``'s
pre-activations) we carry a linear function ``Lambda z_k + c`` backwards:

    Lambda <- Lambda W_j,  c <- c + Lambda b_j            (through an affine map)
    c <- c + Lambda^+ c_lo + Lambda^- c_up,
    Lambda <- Lambda^+ diag(a_lo) + Lambda^- diag(a_up)   (through an activation)

where ``a_lo z + c_lo <= act(z) <= a_up z + c_up`` is the activation's linear
relaxation on its pre-activation bounds.  At the input, the minimum of
``Lambda x + c`` over the box is ``Lambda m + c - |Lambda| r``.  Everything is
batched over input boxes (dim 0) and objective rows (dim 1).

Intermediate bounds are computed layer by layer with ``C = [I; -I]`` and
intersected with IBP's, so each layer's relaxation is as tight as either.
"""

from __future__ import annotations

import torch

from relax.bounds.ibp import affine_interval, ibp_layer_bounds
from relax.bounds.relaxations import LinearRelaxation, relax_activation
from relax.bounds.torch_network import TorchNetwork

__all__ = ["backward_lower_bound", "backward_linear", "crown_layer_bounds"]


def backward_lower_bound(
    net: TorchNetwork,
    relaxations: list[LinearRelaxation],
    objective: torch.Tensor,
    layer: int,
    lower: torch.Tensor,
    upper: torch.Tensor,
) -> torch.Tensor:
    """Lower bounds (batch, rows) on ``objective @ z_layer`` with ``objective`` (batch, rows, n_layer)."""
    coeffs, const, _ = backward_linear(net, relaxations, objective, layer)
    centre = ((lower + upper) / 2).unsqueeze(-1)
    radius = ((upper - lower) / 2).unsqueeze(-1)
    return const + (coeffs @ centre).squeeze(-1) - (coeffs.abs() @ radius).squeeze(-1)


def backward_linear(net: TorchNetwork, relaxations: list[LinearRelaxation],
                    objective: torch.Tensor, layer: int):
    """``(Lambda, c, on_upper)``: ``objective @ z_layer >= Lambda x + c`` over the relaxation,
    and ``on_upper[k]`` (batch, rows, n_k), True where the backward coefficient of hidden
    layer ``k``'s activation is negative (the bound uses its upper line there)."""
    coeffs = objective
    const = torch.zeros(objective.shape[:2], device=objective.device, dtype=objective.dtype)
    on_upper: list = [None] * layer
    for k in range(layer, -1, -1):
        const = const + coeffs @ net.biases[k]
        coeffs = net.back(k, coeffs)
        if k > 0:
            on_upper[k - 1] = coeffs < 0
            coeffs, const = _through_activation(coeffs, const, relaxations[k - 1])
    return coeffs, const, on_upper


def _through_activation(coeffs, const, relaxation: LinearRelaxation):
    positive, negative = coeffs.clamp(min=0), coeffs.clamp(max=0)
    const = const + _rowdot(positive, relaxation.lo_offset) + _rowdot(negative, relaxation.up_offset)
    coeffs = positive * relaxation.lo_slope.unsqueeze(1) + negative * relaxation.up_slope.unsqueeze(1)
    return coeffs, const


def _rowdot(coeffs: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``sum_i coeffs[b, r, i] * vector[b, i]``."""
    return (coeffs @ vector.unsqueeze(-1)).squeeze(-1)


def crown_layer_bounds(net: TorchNetwork, lower: torch.Tensor, upper: torch.Tensor, known=None):
    """Pre-activation bounds of every hidden layer, tightened by CROWN, plus relaxations.

    Returns ``(bounds, relaxations)`` where ``bounds[k] = (l_k, u_k)`` for the hidden
    layers ``k = 0..L-1`` and ``relaxations[k]`` relaxes ``act_k`` on them.  ``known``
    (optional, same layout) are valid bounds from elsewhere (LP tightening, branching
    splits) that are intersected in at every layer before it is relaxed.
    """
    ibp = ibp_layer_bounds(net, lower, upper)
    bounds, relaxations = [], []
    for k in range(len(net.activations)):
        if k == 0:  # interval arithmetic is exact for the first affine map
            l_k, u_k = affine_interval(net, 0, lower, upper)
        else:
            size = net.weights[k].shape[0]
            eye = torch.eye(size, device=lower.device, dtype=lower.dtype)
            objective = torch.cat([eye, -eye]).expand(lower.shape[0], -1, -1)
            both = backward_lower_bound(net, relaxations, objective, k, lower, upper)
            l_k = torch.maximum(both[:, :size], ibp[k][0])
            u_k = torch.minimum(-both[:, size:], ibp[k][1])
        if known is not None:
            l_k, u_k = torch.maximum(l_k, known[k][0]), torch.minimum(u_k, known[k][1])
        bounds.append((l_k, u_k))
        relaxations.append(relax_activation(net.activations[k], l_k, u_k))
    return bounds, relaxations
