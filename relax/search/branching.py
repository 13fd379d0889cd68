"""Which unstable ReLU a branch-and-bound domain is split on.

- ``babsr``: the neuron with the largest BaBSR-style intercept score
  ``-min(lambda_i, 0) * (-l_i u_i / (u_i - l_i))`` (:func:`relax.bounds.alpha._score`):
  how much the upper chord of neuron ``i`` costs the domain's bound, ``lambda_i`` being
  the backward coefficient on its output.
- ``fsb`` (filtered smart branching, De Palma et al. 2021): the ``candidates``
  neurons with the largest BaBSR scores are *tried*: for each, both children
  (``z_i >= 0`` and ``z_i <= 0``) are bounded by one CROWN pass with the parent's
  slopes and multipliers (no optimisation, float32: the pass only ranks candidates,
  its values are never used as bounds), all candidates of all domains in one batch;
  the neuron whose worse child has the highest bound is chosen.

Branching only decides the order of the search; it never affects soundness (every
bound used to close a domain is computed afterwards, in float64, for the chosen split).
"""

from __future__ import annotations

import numpy as np
import torch

from relax.bounds.alpha import AlphaSettings, alpha_crown
from relax.search.pool import doubled_fields

__all__ = ["split_children", "choose_babsr", "choose_fsb"]

#: one CROWN pass, layer bounds as given (the split neuron's bound is set by its sign)
_EVALUATE = AlphaSettings(iterations=0, refine=False)


def split_children(batch: dict, flat_index: torch.Tensor) -> dict:
    """Two children per domain: the chosen ReLU active (sign +1, ``z >= 0``) and inactive
    (sign -1, ``z <= 0``); everything else is inherited.  Children ``r`` and ``r + m``
    come from domain ``r`` of ``m``."""
    sizes = [t.shape[1] for t in batch["sign"]]
    offsets = np.cumsum([0] + sizes)
    m = len(batch["bound"])
    rows = torch.arange(m)
    children = doubled_fields(batch)
    for k in range(len(sizes)):
        here = (flat_index >= offsets[k]) & (flat_index < offsets[k + 1])
        if not here.any():
            continue
        r, i = rows[here], flat_index[here] - offsets[k]
        children["sign"][k][r, i] = 1
        children["sign"][k][r + m, i] = -1
    return children


def choose_babsr(batch: dict) -> torch.Tensor:
    """Flat index (over all ReLU layers) of each domain's highest-scoring neuron."""
    return torch.cat(batch["score"], dim=1).max(1).indices


def choose_fsb(search, batch: dict, candidates: int) -> torch.Tensor:
    """Flat index of the neuron, among each domain's ``candidates`` best by BaBSR score,
    that maximises ``min(bound(z_i >= 0 child), bound(z_i <= 0 child))``; ``search``
    (:class:`relax.search.beta_crown._Search`) builds the children's domains."""
    scores = torch.cat(batch["score"], dim=1)
    m = scores.shape[0]
    top = scores.topk(min(candidates, scores.shape[1]), dim=1)
    k = top.indices.shape[1]
    if k == 1:
        return top.indices[:, 0]
    tried = [split_children(batch, top.indices[:, j]) for j in range(k)]
    every = {key: ([torch.cat([t[key][n] for t in tried]) for n in range(len(value))]
                   if isinstance(value, list) else torch.cat([t[key] for t in tried]))
             for key, value in tried[0].items()}
    net = search.fast_net or search.net
    with torch.no_grad():
        result = alpha_crown(net, search.child_domains(every).to(net.dtype), _EVALUATE,
                             alpha=every["alpha"], beta=every["beta"])
    bound = result.bound.reshape(k, 2, m)
    worse = torch.nan_to_num(bound.min(1).values, nan=-torch.inf)  # (k, m)
    worse = torch.where(top.values.T < 0, torch.full_like(worse, -torch.inf), worse)  # not unstable
    pick = worse.argmax(0)
    return top.indices[torch.arange(m), pick]
