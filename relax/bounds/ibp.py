"""Interval bound propagation (IBP).

For ``z = W a + b`` with ``a`` in the box ``[l, u]``: centre ``m = (l + u) / 2`` and
radius ``r = (u - l) / 2`` give ``z in [W m + b - |W| r, W m + b + |W| r]``, which
is exact for a single affine map.  Monotone activations map interval endpoints
to interval endpoints.
"""

from __future__ import annotations

import torch

from relax.bounds.torch_network import TorchNetwork, activation_torch, matmul_weight

__all__ = ["affine_interval", "ibp_layer_bounds"]


def affine_interval(net: TorchNetwork, k: int, lower: torch.Tensor, upper: torch.Tensor):
    """Exact bounds of ``W_k a + b_k`` over the box ``lower <= a <= upper`` (batched)."""
    centre = net.affine(k, (lower + upper) / 2)
    weight = net.weights[k]
    radius = matmul_weight((upper - lower) / 2, weight.abs(), transpose=True)
    return centre - radius, centre + radius


def ibp_layer_bounds(net: TorchNetwork, lower: torch.Tensor, upper: torch.Tensor):
    """Pre-activation bounds ``[(l_0, u_0), ..., (l_L, u_L)]`` for input boxes (batch, n_in)."""
    bounds = []
    for k in range(net.num_layers):
        l, u = affine_interval(net, k, lower, upper)
        bounds.append((l, u))
        if k < len(net.activations):
            lower = activation_torch(net.activations[k], l)
            upper = activation_torch(net.activations[k], u)
    return bounds
