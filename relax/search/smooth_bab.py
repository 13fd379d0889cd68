"""Branch and bound over pre-activation intervals, for networks with smooth activations.

GenBaB-style (Shi et al. 2024, "Neural network verification with branch-and-bound for
general nonlinearities"):

- A *domain* is one unsafe disjunct and valid bounds ``l_k <= z_k <= u_k`` of every
  hidden layer; the roots are alpha-CROWN's layer bounds over the whole box.
- Bound: alpha/beta-CROWN (:func:`relax.bounds.alpha.alpha_crown`) with the domain's
  layer bounds held fixed, slopes and multipliers warm-started from the parent, a few
  Adam steps, float64.  Every line of every neuron is valid on the neuron's interval,
  and every split constraint ``z >= p`` (``z <= p``) enters through a multiplier
  ``beta >= 0`` (the term ``-beta (z - p)``, non-positive on the domain), so the bound
  holds for every input of the box whose pre-activations lie in the domain's intervals.
  Without the multipliers a split barely moves a bound: nothing but the split neuron's
  own lines would know of it.
- Split: the neuron with the largest :func:`relax.bounds.smooth_lines.smooth_score` (a
  ReLU: the BaBSR intercept score) into ``[l, p]`` and ``[p, u]``, ``p = 0`` for a ReLU
  and for a sigmoid or tanh whose interval holds 0 well inside (the two children then
  lie on a convex and a concave piece), else the midpoint.  The children cover the
  parent, so the least bound over the open and closed domains bounds the disjunct's
  minimum margin.  (Trying the best 4 by one CROWN pass each, as FSB does for ReLU
  splits, reached no better bounds in 30 s on three disjuncts of a sigmoid MNIST net in
  a scratch trace: -0.396 vs -0.391, -0.111 vs -0.096, -0.298 vs -0.266; not kept.)
- Every bounded domain proposes the input minimising its linear bound and a short PGD
  starts from the lowest children's; a candidate is a counterexample only after the
  float64 check of :meth:`relax.spec.Spec.is_violated_by`.

As widths shrink each line's gap vanishes, so with time the bound approaches the
minimum margin of every domain (complete in the limit, as input splitting is).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from relax.bounds.activations import RULES
from relax.bounds.alpha import AlphaSettings, DomainBounds, Domains, alpha_crown
from relax.bounds.smooth_lines import respan_fraction
from relax.bounds.torch_network import TorchNetwork
from relax.deadline import Deadline
from relax.network import Network
from relax.result import Reason, ReasonKind
from relax.search.lp_bab import BabOutcome
from relax.search.pool import DomainPool, attack_lowest, doubled_fields, first_counterexample, record_bounds
from relax.spec import Spec

__all__ = ["SmoothBabSettings", "smooth_branch_and_bound"]

log = logging.getLogger(__name__)

#: a sigmoid/tanh interval is split at 0 when 0 lies at least this fraction of its width
#: inside, else at its midpoint
ZERO_SPLIT_MARGIN = 0.1


@dataclass(frozen=True)
class SmoothBabSettings:
    """``batch`` domains split per round (16 beat 64 and 4 on one disjunct of a
    784-200x6-10 sigmoid net in a scratch trace: the lowest bound after 30 s -0.32 against
    -0.46 and -0.36, from -0.50); ``iterations`` Adam steps per child (step sizes
    ``lr_alpha`` for ReLU slopes, ``lr_smooth`` for smooth ones, ``lr_beta`` for the split
    multipliers; in float64, so the best iterate is kept); ``max_domains`` open before giving up;
    PGD of ``attack_steps`` from the ``attack_starts`` lowest children after every batch."""

    batch: int = 16
    iterations: int = 10
    lr_alpha: float = 0.1
    lr_smooth: float = 0.005
    lr_beta: float = 0.05
    max_domains: int = 20000
    #: and at most this many bytes of open domains (each keeps its layer bounds, slopes,
    #: multipliers and scores: about 43 kB per domain of a 784-200x6-10 net)
    max_bytes: int = 2 ** 30
    attack_starts: int = 8
    attack_steps: int = 10

    def child(self) -> AlphaSettings:
        return AlphaSettings(self.iterations, self.lr_alpha, self.lr_beta, lr_decay=1.0, refine=False,
                             lr_smooth=self.lr_smooth, smooth_span="activation")


class _Search:
    """Networks, objectives and the box of one search."""

    def __init__(self, network: Network, spec: Spec, disjuncts, C, d, settings: SmoothBabSettings,
                 root: DomainBounds):
        self.network, self.spec, self.disjuncts, self.settings = network, spec, disjuncts, settings
        self.net = TorchNetwork.from_network(network)
        self.C, self.d = C, d
        C_all, d_all = spec.padded_rows(range(len(spec.disjuncts)))
        self.C_all, self.d_all = self.net.tensor(C_all), self.net.tensor(d_all)
        self.lower, self.upper = self.net.tensor(spec.lower), self.net.tensor(spec.upper)
        self.names = [act.name for act in network.activations]
        # the root bounds of each disjunct: a domain's tighter bound is a split constraint
        self.root_lower, self.root_upper = root.lower, root.upper
        self.nodes = len(disjuncts)

    def check(self, xs):
        return first_counterexample(self.network, self.spec, xs, self.net, self.C_all, self.d_all)

    def domains(self, domains: dict) -> Domains:
        """The batch of ``domains`` for alpha-CROWN: every bound tighter than its root's is
        a split constraint (two-sided signs at the domain's bounds)."""
        m = len(domains["bound"])
        index = domains["disjunct"]
        signs = [torch.cat([(l > rl[index]).to(l.dtype), -(u < ru[index]).to(u.dtype)], dim=1)
                 for l, u, rl, ru in zip(domains["lower"], domains["upper"], self.root_lower, self.root_upper)]
        points = [torch.cat([l, u], dim=1) for l, u in zip(domains["lower"], domains["upper"])]
        return Domains(self.lower[None].expand(m, -1), self.upper[None].expand(m, -1), self.C[index],
                       domains["lower"], domains["upper"], self.d[index], signs, points=points)

    def bound(self, domains: dict, deadline: Deadline) -> torch.Tensor:
        """alpha-CROWN on ``domains`` (updated in place); returns their minimising inputs."""
        m = len(domains["bound"])
        result = alpha_crown(self.net, self.domains(domains), self.settings.child(), alpha=domains["alpha"],
                             beta=domains["beta"], deadline=deadline)
        self.nodes += m
        record_bounds(domains, result)
        return result.x

    def split(self, batch: dict, flat: torch.Tensor) -> dict:
        """Two children per domain, split on neuron ``flat`` (a flat index over the layers;
        module docstring); children ``r`` and ``r + m`` come from domain ``r`` of ``m``."""
        m = len(batch["bound"])
        children = doubled_fields(batch)
        for key in ("lower", "upper"):
            children[key] = [t.clone() for t in children[key]]
        start, rows = 0, torch.arange(m)
        for k, name in enumerate(self.names):
            size = batch["lower"][k].shape[1]
            here = (flat >= start) & (flat < start + size)
            if here.any():
                r, i = rows[here], flat[here] - start
                l, u = batch["lower"][k][r, i], batch["upper"][k][r, i]
                point = split_point(name, l, u)
                children["upper"][k][r, i] = point
                children["lower"][k][r + m, i] = point
            start += size
        return children

    def attack(self, xs, bounds, deadline: Deadline):
        return attack_lowest(self.network, self.spec, self.net, xs, bounds, self.settings.attack_starts,
                             self.settings.attack_steps, deadline)


def _activation_span(name, lower, upper, alpha):
    """The root's slopes as the children's fractions (float32): a smooth layer's fractions
    move from the span of each interval to the activation's, so that a split keeps the
    parent's slopes, whose lines, with offsets recomputed over the narrower interval, are
    at least as tight as the parent's."""
    if RULES[name].smooth:
        alpha = respan_fraction(name, lower, upper, alpha)
    return alpha.float()


def split_point(name: str, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """0 for a ReLU, and for a sigmoid/tanh interval holding 0 at least
    :data:`ZERO_SPLIT_MARGIN` of its width inside; else the midpoint."""
    if not RULES[name].smooth:
        return torch.zeros_like(lower)
    margin = ZERO_SPLIT_MARGIN * (upper - lower)
    inside = (lower + margin < 0) & (upper - margin > 0) & (name in ("sigmoid", "tanh"))
    return torch.where(inside, torch.zeros_like(lower), (lower + upper) / 2)


def smooth_branch_and_bound(network: Network, spec: Spec, disjuncts, root: DomainBounds, C, d,
                            deadline: Deadline,
                            settings: SmoothBabSettings = SmoothBabSettings()) -> BabOutcome:
    """Decide the disjuncts ``disjuncts`` of ``spec`` from their alpha-CROWN ``root``
    (one domain per disjunct: its bound, layer bounds, slopes and scores; ``C``, ``d``
    the disjuncts' objective rows and offsets, as :func:`relax.search.beta_crown.root_alpha_bounds`
    returns them).  ``bound`` is a lower bound on the least margin over those disjuncts."""
    search = _Search(network, spec, list(disjuncts), C, d, settings, root)
    roots = {
        "disjunct": torch.arange(len(disjuncts)), "bound": root.bound.clone(),
        "lower": [t.clone() for t in root.lower], "upper": [t.clone() for t in root.upper],
        "alpha": [_activation_span(name, l, u, a) for name, l, u, a in zip(
            search.names, root.lower, root.upper, root.alpha)],
        "score": [s.float() for s in root.score],
        "beta": [torch.zeros(l.shape[0], 2 * l.shape[1]) for l in root.lower],
    }
    pool = DomainPool(roots)
    limit = min(settings.max_domains, settings.max_bytes // max(pool.bytes_per_domain(), 1))
    closed_min = math.inf
    while True:
        closed_min = min(closed_min, pool.close_positive())
        if len(pool) == 0:
            return BabOutcome(closed_min, None, search.nodes, True)
        bound = min(pool.least_bound(), closed_min)
        if deadline.expired:
            return BabOutcome(bound, None, search.nodes, False, Reason.time_limit())
        if len(pool) > limit:
            return BabOutcome(bound, None, search.nodes, False, Reason(
                ReasonKind.RESOURCE_LIMIT, f"more than {limit} open domains (memory)"))
        batch = pool.pop_lowest(settings.batch)
        if (torch.cat(batch["score"], dim=1).max(1).values < 0).any():
            return BabOutcome(bound, None, search.nodes, False, Reason(
                ReasonKind.RESOURCE_LIMIT, "a domain has no neuron left to split"))
        children = search.split(batch, torch.cat(batch["score"], dim=1).max(1).indices)
        xs = search.bound(children, deadline)
        cex = search.check(xs)
        if cex is None:
            cex = search.attack(xs, children["bound"], deadline)
        if cex is not None:
            return BabOutcome(-math.inf, cex, search.nodes, True)
        pool.add(children)
        log.debug("smooth branch and bound: %d open, least bound %.4g", len(pool), bound)
