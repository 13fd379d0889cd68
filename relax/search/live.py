"""The live part of a ReLU network over an input box: the neurons a search can still split.

A ReLU neuron whose pre-activation upper bound over the whole box is ``u_{k,i} <= 0``
outputs 0 for every input of the box.  Deleting it (row ``i`` of ``W_k`` and ``b_k``,
column ``i`` of ``W_{k+1}``) leaves the network's function on the box unchanged, and
every CROWN bound of the reduced network under the same layer bounds equals the full
network's (the deleted neuron's relaxation is ``0 <= a <= 0``: its backward
coefficients and offsets are zero).  A branch and bound whose sub-domains all share the
root's layer bounds (:mod:`relax.search.beta_crown`) can therefore run on the reduced
network: on mnistfc 256x4 at eps 0.05 the root leaves 47, 95, 12 and 132 of the 256
neurons of its four layers alive, so every backward pass of the search multiplies by
matrices a fraction of the full ones' size.

Per-domain fields (slopes, multipliers, split signs, scores: one tensor per hidden
layer, neurons on the last axis) move between the two numberings with
:meth:`LiveNeurons.restrict` and :meth:`LiveNeurons.expand`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from relax.network import Affine, Network

__all__ = ["LiveNeurons"]

#: what a deleted neuron's per-domain field holds in the full numbering: not split, no
#: multiplier, slope 0, score -1 (the score of a neuron that is not unstable)
_DEAD_FILL = {"sign": 0, "beta": 0.0, "alpha": 0.0, "score": -1.0}


@dataclass(frozen=True)
class LiveNeurons:
    """``keep[k]``: the indices (ascending) of layer ``k``'s neurons kept, of ``sizes[k]``."""

    keep: tuple[torch.Tensor, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, upper) -> "LiveNeurons":
        """The neurons with a positive upper bound (``upper``: per hidden layer, valid over
        the box); a layer with none keeps its neuron of largest bound (still dead, so
        keeping it is exact too) so that no layer is empty."""
        keep = []
        for u in upper:
            index = torch.nonzero(u > 0).flatten()
            keep.append(index if len(index) else u.argmax().reshape(1))
        return cls(tuple(keep), tuple(len(u) for u in upper))

    @property
    def pruned(self) -> bool:
        """Whether any neuron is deleted."""
        return any(len(k) < n for k, n in zip(self.keep, self.sizes))

    def network(self, network: Network) -> Network:
        """The reduced network (same inputs and outputs, equal on the box)."""
        rows = [k.numpy() for k in self.keep] + [np.arange(network.output_size)]
        columns = [np.arange(network.input_size)] + [k.numpy() for k in self.keep]
        layers = []
        for index, (affine, r, c) in enumerate(zip(network.affines, rows, columns)):
            layers.append(Affine(affine.weight[r][:, c], affine.bias[r]))
            if index < len(network.activations):
                layers.append(network.activations[index])
        return Network(tuple(layers), network.input_shape)

    def restrict(self, tensors) -> list[torch.Tensor]:
        """Per-layer tensors in the full numbering -> the kept neurons (last axis)."""
        return [t.index_select(-1, k) for t, k in zip(tensors, self.keep)]

    def expand(self, tensors, name: str) -> list[torch.Tensor]:
        """Per-layer tensors of field ``name`` in the reduced numbering -> the full one,
        deleted neurons filled as :data:`_DEAD_FILL` says."""
        out = []
        for t, k, n in zip(tensors, self.keep, self.sizes):
            full = torch.full((*t.shape[:-1], n), _DEAD_FILL[name], dtype=t.dtype)
            full[..., k] = t
            out.append(full)
        return out

    def contradicted(self, signs) -> torch.Tensor:
        """The domains (rows of the per-layer ``signs``, full numbering) split active
        (``z >= 0``) on a deleted neuron.  With ``u <= 0`` over the whole box such a domain
        lies in ``z = 0``, which its sibling split ``z <= 0`` covers: dropping it loses no
        input, where restricting it (the split deleted with the neuron) would duplicate its
        sibling."""
        out = torch.zeros(len(signs[0]), dtype=torch.bool)
        for sign, k, n in zip(signs, self.keep, self.sizes):
            deleted = torch.ones(n, dtype=torch.bool)
            deleted[k] = False
            out |= (sign[:, deleted] > 0).any(1)
        return out

    def restrict_fields(self, fields: dict) -> dict:
        """A pool's fields with every per-layer field restricted."""
        return {key: self.restrict(value) if isinstance(value, list) else value
                for key, value in fields.items()}

    def expand_fields(self, fields: dict) -> dict:
        """A pool's fields with every per-layer field expanded to the full numbering."""
        return {key: self.expand(value, key) if isinstance(value, list) else value
                for key, value in fields.items()}
