r"""Octahedral input constraints of a group: bounds on ``c^T z_G``, ``c in {-1,0,1}^k``.

For a group ``G`` of ``k`` neurons of hidden layer ``j`` we need ``d_c <= c^T z_G``
for all ``3^k - 1`` nonzero ``c``.  Two sound sources, intersected (max):

- the box: ``sum_i min(c_i l_i, c_i u_i)``;
- CROWN back-substitution (:func:`relax.bounds.crown.backward_lower_bound`) of the
  objective ``c`` placed on ``G``, with layer bounds (e.g. LP-tightened) intersected
  into the relaxations -- float64 and sound.

The polytope is returned as ``H x <= h`` with ``H = -C``, ``h = -d``.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from relax.bounds.crown import backward_lower_bound
from relax.bounds.relaxations import relax_activation
from relax.bounds.torch_network import TorchNetwork
from relax.bounds import Bounds
from relax.network import Network

__all__ = ["directions", "OctahedronBounder"]


def directions(k: int) -> np.ndarray:
    """All nonzero ``c in {-1,0,1}^k`` (``3^k - 1`` rows)."""
    rows = [c for c in itertools.product((-1.0, 0.0, 1.0), repeat=k) if any(c)]
    return np.array(rows)


class OctahedronBounder:
    """CROWN octahedra for groups of any hidden layer of one input box."""

    def __init__(self, network: Network, lower: np.ndarray, upper: np.ndarray, bounds: Bounds,
                 chunk_rows: int = 8192):
        self.net = TorchNetwork.from_network(network, "cpu", torch.float64)
        self.lower = self.net.tensor(lower)[None]
        self.upper = self.net.tensor(upper)[None]
        self.bounds = bounds
        with torch.no_grad():  # relaxations straight from the given (valid) layer bounds
            self.relaxations = [relax_activation(act, self.net.tensor(l)[None], self.net.tensor(u)[None])
                                for act, l, u in zip(self.net.activations, bounds.lower, bounds.upper)]
        self.chunk_rows = chunk_rows

    def polytopes(self, layer: int, groups: list[tuple[int, ...]], k: int):
        """``(H, h)`` per group (list), from the box and CROWN."""
        if not groups:
            return []
        C = directions(k)
        l, u = self.bounds.lower[layer], self.bounds.upper[layer]
        idx = np.array(groups)                                      # (G, k)
        box = (np.minimum(C[None] * l[idx][:, None], C[None] * u[idx][:, None])).sum(axis=2)
        n = len(l)
        objective = np.zeros((len(groups) * len(C), n))
        rows = np.arange(len(groups) * len(C))
        cols = np.repeat(idx, len(C), axis=0)                       # (G*R, k)
        coeffs = np.tile(C, (len(groups), 1))
        objective[rows[:, None], cols] = coeffs
        crown = np.empty(len(objective))
        with torch.no_grad():
            for start in range(0, len(objective), self.chunk_rows):
                part = self.net.tensor(objective[start:start + self.chunk_rows])[None]
                crown[start:start + len(part[0])] = backward_lower_bound(
                    self.net, self.relaxations, part, layer, self.lower, self.upper)[0].numpy()
        d = np.maximum(box, crown.reshape(len(groups), len(C)))
        return [(-C, -d[g]) for g in range(len(groups))]
