"""Bound propagation: IBP and CROWN, batched over properties, in torch.

``bound_specs(network, specs, method)`` returns, for every property, a sound
lower bound on its margin (positive means the property holds) and the
pre-activation bounds of every hidden layer.  A method is a function from
(torch network, input boxes, objectives) to (layer bounds, row lower bounds),
registered in :data:`METHODS`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from relax.bounds.crown import backward_lower_bound, crown_layer_bounds
from relax.bounds.ibp import ibp_layer_bounds
from relax.bounds.torch_network import TorchNetwork
from relax.errors import UsageError
from relax.network import Network
from relax.spec import Spec

__all__ = ["Bounds", "SpecBounds", "bound_specs", "refine_bounds", "METHODS", "TorchNetwork"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Bounds:
    """Pre-activation bounds ``lower[k] <= z_k <= upper[k]`` of the hidden layers."""

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    method: str

    def unstable(self, k: int) -> np.ndarray:
        """Indices of layer ``k``'s neurons whose sign is not fixed."""
        return np.flatnonzero((self.lower[k] < 0) & (self.upper[k] > 0))


@dataclass(frozen=True, eq=False)
class SpecBounds:
    """A lower bound on one property's margin and how it decomposes."""

    bound: float
    disjunct_bounds: np.ndarray
    row_bounds: np.ndarray
    layers: Bounds


def _ibp(net: TorchNetwork, lower, upper, objective):
    layers = ibp_layer_bounds(net, lower, upper)
    out_l, out_u = layers[-1]
    centre = ((out_l + out_u) / 2).unsqueeze(-1)
    radius = ((out_u - out_l) / 2).unsqueeze(-1)
    rows = (objective @ centre).squeeze(-1) - (objective.abs() @ radius).squeeze(-1)
    return layers[:-1], rows


def _crown(net: TorchNetwork, lower, upper, objective):
    layers, relaxations = crown_layer_bounds(net, lower, upper)
    rows = backward_lower_bound(net, relaxations, objective, net.num_layers - 1, lower, upper)
    return layers, rows


METHODS = {"ibp": _ibp, "crown": _crown}


def bound_specs(
    network: Network,
    specs: Sequence[Spec],
    method: str = "crown",
    device: str | torch.device | None = "cpu",
    dtype: torch.dtype = torch.float64,
    batch_size: int = 64,
) -> list[SpecBounds]:
    """Sound margin bounds for several properties of one network, batched."""
    if method not in METHODS:
        raise UsageError(f"unknown bound method {method!r}; choose from {', '.join(METHODS)}")
    for spec in specs:
        spec.check_fits(network.input_size, network.output_size)
    net = TorchNetwork.from_network(network, device, dtype)
    results: list[SpecBounds] = []
    for start in range(0, len(specs), batch_size):
        results.extend(_bound_batch(net, list(specs[start:start + batch_size]), method))
    return results


def _bound_batch(net: TorchNetwork, specs: list[Spec], method: str) -> list[SpecBounds]:
    lower = net.tensor(np.stack([s.lower for s in specs]))
    upper = net.tensor(np.stack([s.upper for s in specs]))
    objective, offsets = _stack_objectives(specs)
    with torch.no_grad():
        layers, rows = METHODS[method](net, lower, upper, net.tensor(objective))
    rows = rows.cpu().numpy() - offsets
    out = []
    for i, spec in enumerate(specs):
        n_rows = sum(len(d.b) for d in spec.disjuncts)
        bound, per_disjunct = spec.combine(rows[i, :n_rows])
        layer_bounds = Bounds(
            tuple(l[i].cpu().numpy() for l, _ in layers),
            tuple(u[i].cpu().numpy() for _, u in layers),
            method,
        )
        out.append(SpecBounds(bound, per_disjunct, rows[i, :n_rows], layer_bounds))
    return out


def _stack_objectives(specs: list[Spec]) -> tuple[np.ndarray, np.ndarray]:
    """Pad every spec's rows ``C y - d`` to a common count: (batch, rows, n_out), (batch, rows)."""
    stacked = [s.objectives()[:2] for s in specs]
    n_rows = max(C.shape[0] for C, _ in stacked)
    objective = np.zeros((len(specs), n_rows, specs[0].output_size))
    offsets = np.zeros((len(specs), n_rows))
    for i, (C, d) in enumerate(stacked):
        objective[i, : len(d)] = C
        offsets[i, : len(d)] = d
    return objective, offsets


def refine_bounds(network: Network, lower: np.ndarray, upper: np.ndarray, known: Bounds,
                  device: str | torch.device | None = "cpu") -> Bounds:
    """CROWN layer bounds over one box, intersected with ``known`` valid bounds at every
    layer, so improvements found elsewhere (LP, branching) propagate to later layers."""
    net = TorchNetwork.from_network(network, device)
    known_t = [(net.tensor(l)[None], net.tensor(u)[None]) for l, u in zip(known.lower, known.upper)]
    with torch.no_grad():
        layers, _ = crown_layer_bounds(net, net.tensor(lower)[None], net.tensor(upper)[None], known_t)
    return Bounds(tuple(l[0].cpu().numpy() for l, _ in layers),
                  tuple(u[0].cpu().numpy() for _, u in layers), known.method)
