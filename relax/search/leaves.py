"""The leaves of the torch branch and bound: domains whose every ReLU has a fixed phase.

With every phase fixed (by a split sign or by the root bounds) the network is affine on
the domain, so the LP of :class:`relax.search.lp_bab.DisjunctTree` with those phases is
exact there: a positive (safe, dual) bound closes the leaf, and an optimum below zero is
a counterexample once the float64 check of :meth:`relax.spec.Spec.is_violated_by` accepts it.
"""

from __future__ import annotations

import math

import torch

from relax.result import Reason, ReasonKind
from relax.search.lp_bab import DisjunctTree

__all__ = ["decide_leaves"]


def decide_leaves(network, spec, disjuncts, root_bounds, trees, batch, leaves, common_lower,
                  common_upper, check_network=None):
    """LP with every ReLU phase fixed for domains without unstable ReLUs.

    ``network``: the network the LP encodes (e.g. the search's live part,
    :mod:`relax.search.live`); ``check_network``: the one counterexamples are checked on
    (default ``network``).  Returns the least LP bound when all those leaves close (all
    positive), else (bound, counterexample, reason)."""
    least = math.inf
    for r in torch.nonzero(leaves).flatten().tolist():
        j = disjuncts[int(batch["disjunct"][r])]
        if j not in trees:
            trees[j] = DisjunctTree(network, spec, spec.disjuncts[j], root_bounds, None, None,
                                    check_network=check_network)
        tree = trees[j]
        fixed = {}
        for b, (k, i) in enumerate(tree.neurons):
            sign = int(batch["sign"][k][r, i])
            if sign > 0 or common_lower[k][i] >= 0:
                fixed[b] = 1.0
            elif sign < 0 or common_upper[k][i] <= 0:
                fixed[b] = 0.0
        bound, x = tree.solve(fixed)
        if bound > 0:
            least = min(least, bound)
            continue
        cex = tree.counterexample(x)
        if cex is not None:
            return -math.inf, cex, None
        return bound, None, Reason(ReasonKind.NOT_APPLICABLE, "a fully split domain has a "
                                   "non-positive LP bound and no checked counterexample")
    return least
