"""The open domains of a batched branch and bound, and the check of its counterexample candidates.

:class:`DomainPool` keeps the domains as a dict of batched tensors (a tensor, or a list of
per-layer tensors, per field; one row per domain); the searches of
:mod:`relax.search.beta_crown` and :mod:`relax.search.smooth_bab` pop the lowest-bound
ones, add children, and drop the closed ones.
"""

from __future__ import annotations

import math

import torch

from relax.bounds.torch_network import TorchNetwork
from relax.deadline import Deadline
from relax.search.attack import AttackOptions, pgd_attack

__all__ = ["DomainPool", "take_fields", "doubled_fields", "record_bounds", "first_counterexample",
           "attack_lowest"]


class DomainPool:
    """Open domains as batched tensors (``fields``: a tensor or a list of per-layer tensors
    per name, one row per domain; ``bound`` is the domain's safe bound)."""

    def __init__(self, fields: dict):
        self.f = fields

    def __len__(self):
        return len(self.f["bound"])

    def take(self, mask):
        return take_fields(self.f, mask)

    def pop_lowest(self, count: int) -> dict:
        order = torch.argsort(self.f["bound"])
        chosen = torch.zeros(len(self), dtype=torch.bool)
        chosen[order[:count]] = True
        out = self.take(chosen)
        self.f = self.take(~chosen)
        return out

    def add(self, fields: dict):
        self.f = {k: ([torch.cat([a, b]) for a, b in zip(v, fields[k])] if isinstance(v, list)
                      else torch.cat([v, fields[k]])) for k, v in self.f.items()}

    def close_positive(self) -> float:
        """Drop the domains with a positive bound; the least such bound (``inf`` if none)."""
        done = self.f["bound"] > 0
        if not done.any():
            return math.inf
        least = float(self.f["bound"][done].min())
        self.f = self.take(~done)
        return least


def take_fields(fields: dict, mask) -> dict:
    """The rows ``mask`` (a boolean mask, indices or a slice) of every field."""
    return {k: ([t[mask] for t in v] if isinstance(v, list) else v[mask]) for k, v in fields.items()}


def first_counterexample(network, spec, xs: torch.Tensor, net: TorchNetwork, C, d):
    """The first float64-confirmed counterexample among candidate inputs, or ``None``.

    Candidates are screened with the torch float64 forward pass against every
    disjunct (``C``, ``d`` of all disjuncts), then confirmed with the IR's forward pass.
    """
    lower, upper = net.tensor(spec.lower), net.tensor(spec.upper)
    xs = torch.minimum(torch.maximum(xs, lower), upper)
    with torch.no_grad():
        y = net.forward(xs)
        margins = ((y[:, None, None, :] * C[None]).sum(-1) - d[None]).max(2).values.min(1).values
    for i in torch.argsort(margins)[:4].tolist():
        if margins[i] > 1e-9:
            break
        x = xs[i].numpy()
        if spec.is_violated_by(x, network.forward(x)):
            return x
    return None


def doubled_fields(fields: dict) -> dict:
    """Every field twice over (rows ``r`` and ``r + m`` of ``m``): the two children of each
    domain before their split is written in."""
    return {k: ([torch.cat([t, t]) for t in v] if isinstance(v, list) else torch.cat([v, v]))
            for k, v in fields.items()}


def record_bounds(fields: dict, result) -> None:
    """Store an alpha/beta-CROWN ``result`` (:class:`relax.bounds.domains.DomainBounds`) in
    the domains' fields: the better of the new and the inherited bound (both are safe for
    the domain), and the slopes, multipliers and scores to warm-start and branch from."""
    fields["bound"] = torch.maximum(result.bound, fields["bound"])
    fields["alpha"] = [a.float() for a in result.alpha]
    fields["beta"] = [b.float() for b in result.beta]
    fields["score"] = [s.float() for s in result.score]


def attack_lowest(network, spec, net: TorchNetwork, xs: torch.Tensor, bounds: torch.Tensor,
                  starts: int, steps: int, deadline: Deadline):
    """PGD (``steps``) from the minimising inputs ``xs`` of the ``starts`` lowest-bound
    domains: a float64-checked counterexample or ``None``."""
    count = min(starts, len(bounds))
    if count == 0:
        return None
    return pgd_attack(network, spec, AttackOptions(steps=steps), deadline, net, xs[torch.argsort(bounds)[:count]])
