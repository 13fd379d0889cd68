"""Batched branch and bound over ReLU splits with alpha/beta-CROWN bounds, in torch.

Decides ``min_x margin(f(x)) > 0`` over a property's box for ReLU networks.

- Root: one domain per unsafe disjunct not yet closed; alpha-CROWN
  (:func:`relax.bounds.alpha.alpha_crown`) with intermediate bounds recomputed
  under the optimised slopes.  These root layer bounds are valid over the whole
  box and are shared by every sub-domain.
- Branching: a domain is split on the unstable ReLU with the largest BaBSR-style
  intercept score into ``z >= 0`` (``l = 0``) and ``z <= 0`` (``u = 0``); the split
  enters the child's bound through its relaxation (now exact) and through a
  Lagrange multiplier ``beta >= 0`` (beta-CROWN), optimised with ``alpha``
  (warm-started from the parent) for a few Adam steps, many domains per batch.
- A domain is closed when its bound is positive (every bound is a float64 CROWN
  bound for some ``alpha in [0,1]``, ``beta >= 0``: sound by construction) or when
  it is empty (``l > u``).  A domain with no unstable ReLU left is decided by the
  LP of :mod:`relax.search.lp_bab` with those phases fixed (exact there: a safe dual bound
  or an optimum that is checked as a counterexample).
- Every evaluated domain proposes the input minimising its linear bound; it is a
  counterexample only after the float64 check of :meth:`relax.spec.Spec.is_violated_by`.
- Domains are processed lowest bound first; the reported bound is the minimum
  over open domains and closed leaves, a valid lower bound on the margin.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from relax.deadline import NEVER, Deadline
from relax.result import Reason, ReasonKind
from relax.search.lp_bab import BabOutcome, DisjunctTree
from relax.bounds import Bounds
from relax.bounds.alpha import alpha_crown
from relax.bounds.crown import crown_layer_bounds
from relax.bounds.torch_network import TorchNetwork
from relax.network import Network
from relax.spec import Spec

__all__ = ["BabSettings", "torch_branch_and_bound", "root_alpha_bounds"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BabSettings:
    """``batch`` domains split per round; Adam ``iterations``/learning rates at the root and
    per batch; ``max_domains`` open domains before giving up (memory); with
    ``float32_steps`` the Adam steps of the search run in float32 and only the final
    evaluation of each batch (the bound that is used) in float64."""

    batch: int = 256
    root_iterations: int = 30
    iterations: int = 8
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    max_domains: int = 60000
    float32_steps: bool = True


def _objectives(spec: Spec, disjuncts, net: TorchNetwork):
    """(disjuncts, rows, n_out) objective and (disjuncts, rows) offsets; short conjunctions
    are padded by repeating their first row (the maximum over rows is unchanged)."""
    rows = max(len(spec.disjuncts[j].b) for j in disjuncts)
    C = np.zeros((len(disjuncts), rows, spec.output_size))
    d = np.zeros((len(disjuncts), rows))
    for n, j in enumerate(disjuncts):
        A, b = spec.disjuncts[j].A, spec.disjuncts[j].b
        C[n], d[n] = A[0], b[0]
        C[n, : len(b)], d[n, : len(b)] = A, b
    return net.tensor(C), net.tensor(d)


def root_alpha_bounds(network: Network, spec: Spec, disjuncts, settings: BabSettings = BabSettings(),
                      deadline: Deadline = NEVER, net: TorchNetwork | None = None,
                      prior: Bounds | None = None, alpha=None):
    """alpha-CROWN per disjunct at the root: (DomainBounds, objective, offsets).

    ``prior``: valid layer bounds over the whole box (e.g. LP-tightened), intersected
    with CROWN's before the slopes are optimised; ``alpha``: initial slopes."""
    net = net or TorchNetwork.from_network(network)
    n = len(disjuncts)
    lower = net.tensor(spec.lower)[None].expand(n, -1)
    upper = net.tensor(spec.upper)[None].expand(n, -1)
    with torch.no_grad():
        layers, _ = crown_layer_bounds(net, lower[:1], upper[:1])
    if prior is not None:
        layers = [(torch.maximum(l, net.tensor(pl)), torch.minimum(u, net.tensor(pu)))
                  for (l, u), pl, pu in zip(layers, prior.lower, prior.upper)]
    pl = [l.expand(n, -1).clone() for l, _ in layers]
    pu = [u.expand(n, -1).clone() for _, u in layers]
    C, d = _objectives(spec, disjuncts, net)
    result = alpha_crown(net, lower, upper, C, pl, pu, alpha=alpha, iterations=settings.root_iterations,
                         lr=settings.lr_alpha, deadline=deadline, offsets=d)
    return result, C, d


class _Pool:
    """Open domains as batched tensors: disjunct index, bound, per-layer l, u, alpha, beta, sign."""

    def __init__(self, fields: dict):
        self.f = fields

    def __len__(self):
        return len(self.f["bound"])

    def take(self, mask):
        return {k: ([t[mask] for t in v] if isinstance(v, list) else v[mask]) for k, v in self.f.items()}

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


def _check(network, spec, xs: torch.Tensor, net: TorchNetwork, C, d):
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


def torch_branch_and_bound(network: Network, spec: Spec, disjuncts=None, deadline: Deadline = NEVER,
                           settings: BabSettings = BabSettings(),
                           prior: Bounds | None = None) -> BabOutcome:
    """Decide the disjuncts ``disjuncts`` (default all) of ``spec`` (module docstring).

    ``bound`` is a lower bound on the minimum margin over these disjuncts.  ``prior``:
    valid layer bounds over the whole box (e.g. LP-tightened) that the root starts from.
    """
    if any(a.name != "relu" for a in network.activations):
        raise ValueError("torch branch and bound handles ReLU networks only")
    disjuncts = list(range(len(spec.disjuncts))) if disjuncts is None else list(disjuncts)
    net = TorchNetwork.from_network(network)
    fast_net = TorchNetwork.from_network(network, dtype=torch.float32) if settings.float32_steps else None
    root, C, d = root_alpha_bounds(network, spec, disjuncts, settings, deadline, net, prior)
    nodes = len(disjuncts)
    C_all, d_all = _objectives(spec, range(len(spec.disjuncts)), net)
    cex = _check(network, spec, root.x, net, C_all, d_all)
    if cex is not None:
        return BabOutcome(-math.inf, cex, nodes, True)
    log.info("alpha-CROWN root bounds %s", np.round(root.bound.numpy(), 4))
    # every disjunct's layer bounds are valid over the whole box: intersect them
    common_lower = [l.max(0).values for l in root.lower]
    common_upper = [u.min(0).values for u in root.upper]
    root_bounds = Bounds(tuple(l.numpy() for l in common_lower),
                         tuple(u.numpy() for u in common_upper), "alpha-crown")
    trees: dict[int, DisjunctTree] = {}
    lower = net.tensor(spec.lower)
    upper = net.tensor(spec.upper)
    n = len(disjuncts)
    pool = _Pool({
        "disjunct": torch.arange(n), "bound": root.bound.clone(),
        "alpha": [a.float() for a in root.alpha],
        "beta": [torch.zeros_like(a, dtype=torch.float32) for a in root.alpha],
        "sign": [torch.zeros_like(a, dtype=torch.int8) for a in root.alpha],
        "score": [s.float() for s in root.score],
    })
    closed_min = math.inf
    while True:
        done = pool.f["bound"] > 0
        if done.any():
            closed_min = min(closed_min, float(pool.f["bound"][done].min()))
            pool.f = pool.take(~done)
        if len(pool) == 0:
            log.info("torch branch and bound closed %d domains", nodes)
            return BabOutcome(closed_min, None, nodes, True)
        open_min = float(pool.f["bound"].min())
        if deadline.expired:
            return BabOutcome(min(open_min, closed_min), None, nodes, False, Reason.time_limit())
        if len(pool) > settings.max_domains:
            return BabOutcome(min(open_min, closed_min), None, nodes, False, Reason(
                ReasonKind.RESOURCE_LIMIT, f"more than {settings.max_domains} open domains"))
        batch = pool.pop_lowest(settings.batch)
        scores = torch.cat(batch["score"], dim=1)
        best = scores.max(1)
        leaves = best.values < 0  # no unstable ReLU left
        if leaves.any():
            outcome = _decide_leaves(network, spec, disjuncts, root_bounds, trees, batch, leaves,
                                     common_lower, common_upper)
            if isinstance(outcome, tuple):
                return BabOutcome(outcome[0], outcome[1], nodes, outcome[1] is not None, outcome[2])
            closed_min = min(closed_min, outcome)
            keep = ~leaves
            batch = {k: ([t[keep] for t in v] if isinstance(v, list) else v[keep]) for k, v in batch.items()}
            best = scores[keep].max(1)
            if len(batch["bound"]) == 0:
                continue
        children = _split(batch, best.indices)
        m = len(children["bound"])
        child_lower = [torch.where(s > 0, torch.zeros_like(c), c.expand(m, -1))
                       for s, c in zip(children["sign"], common_lower)]
        child_upper = [torch.where(s < 0, torch.zeros_like(c), c.expand(m, -1))
                       for s, c in zip(children["sign"], common_upper)]
        nodes += m
        result = alpha_crown(
            net, lower[None].expand(m, -1), upper[None].expand(m, -1), C[children["disjunct"]],
            child_lower, child_upper, alpha=children["alpha"],
            iterations=settings.iterations, lr=settings.lr_alpha, offsets=d[children["disjunct"]],
            refine=False, signs=children["sign"], beta=children["beta"], lr_beta=settings.lr_beta,
            fast_net=fast_net)
        cex = _check(network, spec, result.x, net, C_all, d_all)
        if cex is not None:
            return BabOutcome(-math.inf, cex, nodes, True)
        children["bound"] = torch.maximum(result.bound, children["bound"])
        children["alpha"] = [a.float() for a in result.alpha]
        children["beta"] = [b.float() for b in result.beta]
        children["score"] = [s.float() for s in result.score]
        pool.add(children)
        log.debug("%d domains evaluated, %d open, lowest bound %.4g", nodes, len(pool), open_min)


def _split(batch: dict, flat_index: torch.Tensor) -> dict:
    """Two children per domain: the chosen ReLU active (sign +1, ``z >= 0``) and inactive
    (sign -1, ``z <= 0``); everything else is inherited."""
    sizes = [t.shape[1] for t in batch["sign"]]
    offsets = np.cumsum([0] + sizes)
    m = len(batch["bound"])
    rows = torch.arange(m)
    children = {k: ([torch.cat([t, t]) for t in v] if isinstance(v, list) else torch.cat([v, v]))
                for k, v in batch.items()}
    for k in range(len(sizes)):
        here = (flat_index >= offsets[k]) & (flat_index < offsets[k + 1])
        if not here.any():
            continue
        r, i = rows[here], flat_index[here] - offsets[k]
        children["sign"][k][r, i] = 1
        children["sign"][k][r + m, i] = -1
    return children


def _decide_leaves(network, spec, disjuncts, root_bounds, trees, batch, leaves, common_lower,
                   common_upper):
    """LP with every ReLU phase fixed for domains without unstable ReLUs.

    Returns the least LP bound when all those leaves close (all positive), else
    (bound, counterexample, reason)."""
    least = math.inf
    for r in torch.nonzero(leaves).flatten().tolist():
        j = disjuncts[int(batch["disjunct"][r])]
        if j not in trees:
            trees[j] = DisjunctTree(network, spec, spec.disjuncts[j], root_bounds, None, None)
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
