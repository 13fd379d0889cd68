"""Branch and bound over the input box, for any activation (complete for smooth ones).

A *domain* is a sub-box ``[lo, hi]`` of the property's input box and one unsafe
disjunct ``j``.  Its bound is CROWN's lower bound on the disjunct's margin
``max_r (A_j f(x) - b_j)_r`` over the sub-box (float64, sound for ReLU, sigmoid,
tanh and softplus: :mod:`relax.bounds.crown`).  A domain closes when the bound is
positive; otherwise it is split in two at the midpoint of the input coordinate
with the largest ``|lambda_i| (hi_i - lo_i)``, where ``lambda`` is the linear
function CROWN found for the domain's best row (the coordinate that costs the
bound most).  Every evaluated domain proposes its box centre and the corner that
minimises the linear bound as counterexample candidates, kept only after the
float64 check of :meth:`relax.spec.Spec.is_violated_by`; every few rounds a
short PGD runs from the lowest domains.

Completeness: for continuous activations CROWN's relaxation gap on a box of
width ``w`` is ``O(w)`` (``O(w^2)`` for smooth ones), so with time every
disjunct whose minimum margin is not exactly zero is decided: positive minima
close, negative ones yield a point near the minimiser whose margin is negative.
The bound reported is the minimum over open domains and closed ones.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from relax.bounds.crown import crown_layer_bounds
from relax.bounds.torch_network import TorchNetwork
from relax.deadline import NEVER, Deadline
from relax.result import FLOAT_SLACK, Reason, ReasonKind
from relax.network import Network
from relax.search.attack import AttackOptions, pgd_attack
from relax.search.lp_bab import BabOutcome
from relax.spec import Spec

__all__ = ["InputSplitSettings", "input_split_search"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSplitSettings:
    """``batch`` domains bounded together; ``max_domains`` open before giving up (memory);
    a PGD of ``attack_steps`` every ``attack_every`` rounds from the lowest domains."""

    batch: int = 64
    max_domains: int = 200000
    attack_every: int = 20
    attack_steps: int = 20


def _linear_bound(net: TorchNetwork, lower, upper, objective):
    """CROWN's linear lower bound ``lambda x + c`` of every row over each box; returns
    (row bounds (B, R), lambda (B, R, n_in))."""
    _, relaxations = crown_layer_bounds(net, lower, upper)
    coeffs = objective
    const = torch.zeros(objective.shape[:2], dtype=objective.dtype)
    for k in range(net.num_layers - 1, -1, -1):
        const = const + coeffs @ net.biases[k]
        coeffs = net.back(k, coeffs)
        if k == 0:
            break
        r = relaxations[k - 1]
        positive, negative = coeffs.clamp(min=0), coeffs.clamp(max=0)
        const = (const + (positive @ r.lo_offset.unsqueeze(-1)).squeeze(-1)
                 + (negative @ r.up_offset.unsqueeze(-1)).squeeze(-1))
        coeffs = positive * r.lo_slope.unsqueeze(1) + negative * r.up_slope.unsqueeze(1)
    centre = ((lower + upper) / 2).unsqueeze(-1)
    radius = ((upper - lower) / 2).unsqueeze(-1)
    value = const + (coeffs @ centre).squeeze(-1) - (coeffs.abs() @ radius).squeeze(-1)
    return value, coeffs


@dataclass
class _Domains:
    """Sub-boxes with their disjunct (index into the objective tensors), bound and the
    coordinate to split next."""

    lower: torch.Tensor
    upper: torch.Tensor
    which: torch.Tensor
    bound: torch.Tensor
    split: torch.Tensor

    def __len__(self):
        return len(self.bound)

    def select(self, index) -> "_Domains":
        return _Domains(self.lower[index], self.upper[index], self.which[index], self.bound[index],
                        self.split[index])

    def join(self, other: "_Domains") -> "_Domains":
        return _Domains(*(torch.cat([a, b]) for a, b in zip(
            (self.lower, self.upper, self.which, self.bound, self.split),
            (other.lower, other.upper, other.which, other.bound, other.split))))


class _Search:
    def __init__(self, network: Network, spec: Spec, disjuncts, settings: InputSplitSettings):
        self.network, self.spec, self.settings = network, spec, settings
        self.net = TorchNetwork.from_network(network)
        C, d = spec.padded_rows(disjuncts)
        self.C, self.d = self.net.tensor(C), self.net.tensor(d)
        self.nodes = 0

    def evaluate(self, lower, upper, which):
        """Bounds of the boxes, the split coordinate and candidate points."""
        with torch.no_grad():
            rows, coeffs = _linear_bound(self.net, lower, upper, self.C[which])
        rows = rows - self.d[which]
        bound, best = rows.max(1)
        lam = coeffs[torch.arange(len(best)), best]
        corner = torch.where(lam > 0, lower, upper)
        self.nodes += len(bound)
        return bound, torch.argmax(lam.abs() * (upper - lower), dim=1), torch.cat([corner, (lower + upper) / 2])

    def check(self, points) -> np.ndarray | None:
        with torch.no_grad():
            y = self.net.forward(points)
        margins = ((self.C[None] @ y[:, None, :, None]).squeeze(-1) - self.d[None]).max(2).values.min(1).values
        for i in torch.argsort(margins)[:4].tolist():
            if margins[i] > 1e-9:
                break
            x = np.clip(points[i].numpy(), self.spec.lower, self.spec.upper)
            if self.spec.is_violated_by(x, self.network.forward(x)):
                return x
        return None

    def attack(self, domains: _Domains, deadline: Deadline) -> np.ndarray | None:
        """A short PGD inside the lowest open box."""
        i = int(torch.argmin(domains.bound))
        lo, hi = domains.lower[i].numpy(), domains.upper[i].numpy()
        box = Spec(lo, hi, self.spec.disjuncts)
        options = AttackOptions(steps=self.settings.attack_steps, restarts=2, seed=self.nodes)
        x = pgd_attack(self.network, box, options, deadline, self.net)
        return x if x is not None and self.spec.is_violated_by(x, self.network.forward(x)) else None


def input_split_search(network: Network, spec: Spec, disjuncts=None, deadline: Deadline = NEVER,
                       settings: InputSplitSettings = InputSplitSettings()) -> BabOutcome:
    """Decide ``spec``'s disjuncts ``disjuncts`` (default all) by splitting the input box."""
    disjuncts = list(range(len(spec.disjuncts))) if disjuncts is None else list(disjuncts)
    search = _Search(network, spec, disjuncts, settings)
    n = len(disjuncts)
    lower = search.net.tensor(spec.lower)[None].expand(n, -1).clone()
    upper = search.net.tensor(spec.upper)[None].expand(n, -1).clone()
    which = torch.arange(n)
    bound, split, points = search.evaluate(lower, upper, which)
    cex = search.check(points)
    if cex is not None:
        return BabOutcome(-math.inf, cex, search.nodes, True)
    return _loop(search, _Domains(lower, upper, which, bound, split), deadline)


def _loop(search: _Search, pool: _Domains, deadline: Deadline) -> BabOutcome:
    """Close positive domains, split the lowest, until none is open (or time, or memory)."""
    closed_min, rounds = math.inf, 0
    while True:
        done = pool.bound > FLOAT_SLACK
        if done.any():
            closed_min = min(closed_min, float(pool.bound[done].min()))
            pool = pool.select(~done)
        if len(pool) == 0:
            return BabOutcome(closed_min, None, search.nodes, True)
        bound = min(float(pool.bound.min()), closed_min)
        if deadline.expired:
            return BabOutcome(bound, None, search.nodes, False, Reason.time_limit())
        if len(pool) > search.settings.max_domains:
            return BabOutcome(bound, None, search.nodes, False, Reason(
                ReasonKind.RESOURCE_LIMIT, f"more than {search.settings.max_domains} open domains"))
        rounds += 1
        cex = search.attack(pool, deadline) if rounds % search.settings.attack_every == 0 else None
        if cex is None:
            pool, cex = _round(search, pool)
        if cex is not None:
            return BabOutcome(-math.inf, cex, search.nodes, True)


def _round(search: _Search, pool: _Domains):
    """Split the lowest domains at the midpoint of their chosen coordinate; bound the halves.
    Returns (the new pool, a checked counterexample or ``None``)."""
    order = torch.argsort(pool.bound)
    parents, rest = pool.select(order[: search.settings.batch]), pool.select(order[search.settings.batch:])
    rows = torch.arange(len(parents))
    middle = (parents.lower[rows, parents.split] + parents.upper[rows, parents.split]) / 2
    left_upper, right_lower = parents.upper.clone(), parents.lower.clone()
    left_upper[rows, parents.split] = middle
    right_lower[rows, parents.split] = middle
    lower, upper = torch.cat([parents.lower, right_lower]), torch.cat([left_upper, parents.upper])
    which = torch.cat([parents.which, parents.which])
    bound, split, points = search.evaluate(lower, upper, which)
    # a sub-box inherits its parent's bound (valid on the larger box)
    bound = torch.maximum(bound, torch.cat([parents.bound, parents.bound]))
    return rest.join(_Domains(lower, upper, which, bound, split)), search.check(points)
