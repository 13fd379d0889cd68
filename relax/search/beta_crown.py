"""Batched branch and bound over ReLU splits with alpha/beta-CROWN bounds, in torch.

Decides ``min_x margin(f(x)) > 0`` over a property's box for ReLU networks.

- Root: one domain per unsafe disjunct not yet closed; alpha-CROWN
  (:func:`relax.bounds.alpha.alpha_crown`) with intermediate bounds recomputed
  under the optimised slopes.  These root layer bounds are valid over the whole
  box and are shared by every sub-domain.
- Branching: a domain is split on one unstable ReLU (:mod:`relax.search.branching`:
  the largest BaBSR-style intercept score, or FSB: the best of the top few by the
  bound of its worse child) into ``z >= 0`` (``l = 0``) and ``z <= 0`` (``u = 0``); the split
  enters the child's bound through its relaxation (now exact) and through a
  Lagrange multiplier ``beta >= 0`` (beta-CROWN), optimised with ``alpha``
  (warm-started from the parent) for a few Adam steps, many domains per batch.
- A domain is closed when its bound is positive (every bound is a float64 CROWN
  bound for some ``alpha in [0,1]``, ``beta >= 0``: sound by construction) or when
  it is empty (``l > u``).  A domain with no unstable ReLU left is decided by the
  LP of :mod:`relax.search.leaves` with those phases fixed (exact there: a safe dual bound
  or an optimum that is checked as a counterexample).
- Every evaluated domain proposes the input minimising its linear bound, and a short
  PGD starts from those of the lowest-bound children of every batch; a candidate is a
  counterexample only after the float64 check of :meth:`relax.spec.Spec.is_violated_by`.
- Domains are processed lowest bound first (largest bound first while the pool is near
  its memory limit: closing the domains nearest to closing frees room, and a proof
  has to close them anyway); the reported bound is the minimum
  over open domains and closed leaves, a valid lower bound on the margin.
- A search stopped by its deadline leaves its open domains (:class:`Frontier`); a later
  search (e.g. from tighter layer bounds) can resume from them instead of from the root:
  they cover, with the leaves already closed, every disjunct's part of the box, so each
  re-bounded once under the new root bounds (the better of its old and new bound; both
  are safe) is a valid start.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from relax.deadline import NEVER, Deadline
from relax.result import Reason, ReasonKind
from relax.search.branching import choose_babsr, choose_fsb, split_children
from relax.search.budget import default_batch, default_pool_bytes
from relax.search.leaves import decide_leaves
from relax.search.live import LiveNeurons
from relax.search.progress import SearchProgress
from relax.search.pool import DomainPool, attack_lowest, first_counterexample, record_bounds, take_fields
from relax.search.lp_bab import BabOutcome, DisjunctTree
from relax.bounds import Bounds
from relax.bounds.alpha import AlphaSettings, Domains, alpha_crown
from relax.bounds.crown import crown_layer_bounds
from relax.bounds.torch_network import TorchNetwork
from relax.errors import UnsupportedNetworkError
from relax.network import Network
from relax.spec import Spec

__all__ = ["BabSettings", "Frontier", "TorchBabOutcome", "root_alpha_bounds", "torch_branch_and_bound"]

log = logging.getLogger(__name__)

#: the domain fields the pool keeps narrow under :attr:`BabSettings.compact_pool`: the
#: slopes (in [0, 1]) and split multipliers (>= 0) only warm-start the children's Adam
#: steps, whose bound is computed afresh and is safe for any such values, and the scores
#: (positive for unstable neurons, -1 for the others) only rank and flag neurons;
#: rounding keeps each in its range and sign
COMPACT_FIELDS = {"alpha": torch.float16, "beta": torch.float16, "score": torch.bfloat16}


@dataclass(frozen=True)
class BabSettings:
    """``batch`` domains split per round; Adam iterations and learning rates at the root
    (``root_*``) and per batch (``iterations``, ``lr_alpha``, ``lr_beta``); ``max_domains``
    open domains (or ``max_bytes`` of them) before giving up (past ``crowded`` of that,
    the largest-bound domains are split first); ``branching``: how the split neuron is chosen
    (:mod:`relax.search.branching`; ``fsb`` tries ``fsb_candidates`` neurons); after
    every batch, PGD (``attack_steps`` steps) starts from the minimising inputs of the
    ``attack_starts`` lowest-bound children (0: no attack in the search); with
    ``float32_steps`` the Adam steps of the search run in float32 and only the final
    evaluation of each batch (the bound that is used) in float64."""

    #: ``None``: :func:`default_batch` of the torch threads when the search starts
    batch: int | None = None
    root_iterations: int = 20
    iterations: int = 8
    root_lr: float = 0.5
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    max_domains: int = 5_000_000
    #: and at most this many bytes of open domains (``None``: :func:`default_pool_bytes`;
    #: the pool's storage grows by doubling, so it may take up to twice this): each keeps
    #: its slopes, multipliers, signs and scores of the live neurons, about 2.6 kB per
    #: domain of mnistfc 256x4 prop_8_0.05 after the k-ReLU stage (377 live of 1024 neurons,
    #: 7 bytes each with ``compact_pool``), 13 bytes per neuron without
    max_bytes: int | None = None
    #: the pool keeps the domains' warm starts and scores narrow (:data:`COMPACT_FIELDS`):
    #: 7 bytes per live neuron instead of 13, so nearly twice the domains fit in
    #: ``max_bytes`` before the search turns to the largest bounds
    compact_pool: bool = True
    #: past this share of the limit, the domains of *largest* bound are split first (the
    #: nearest to closing, so the pool shrinks) until it is below the share again
    crowded: float = 0.75
    float32_steps: bool = True
    branching: Literal["babsr", "fsb"] = "fsb"
    fsb_candidates: int = 4
    attack_starts: int = 8
    attack_steps: int = 10
    #: log the root and the end at DEBUG, not INFO (searches run by the hundred, one per neuron)
    quiet: bool = False
    #: the root re-bounds the intermediate layers under its slopes (off: the per-neuron search)
    root_refine: bool = True

    def pool_bytes(self) -> int:
        """``max_bytes``, or :func:`default_pool_bytes` now."""
        return self.max_bytes or default_pool_bytes()

    def domains_per_batch(self) -> int:
        """``batch``, or :func:`default_batch` of torch's thread count now."""
        return self.batch or default_batch(torch.get_num_threads())

    def root(self) -> AlphaSettings:
        """alpha-CROWN at the root, intermediate layers re-bounded with their own slopes unless
        ``root_refine`` is off (auto_LiRPA's defaults: 20 steps at lr 0.5 decayed by 0.98;
        tighter and faster here than 30 steps at 0.1, ``benchmarks/results/alpha_crown.md``)."""
        return AlphaSettings(self.root_iterations, self.root_lr, self.lr_beta, refine=self.root_refine)

    def child(self) -> AlphaSettings:
        """alpha/beta-CROWN on split domains: root layer bounds kept, fewer steps."""
        return AlphaSettings(self.iterations, self.lr_alpha, self.lr_beta, lr_decay=1.0, refine=False)


@dataclass(frozen=True)
class Frontier:
    """The open domains of a search that stopped at its deadline: its ``pool`` (per domain
    ``disjunct``, an index into ``disjuncts``, the spec's disjunct numbers; its safe
    ``bound``; slopes, multipliers, split signs, scores of the neurons ``live`` kept) and
    ``closed_min``, the least bound of the domains it closed (``inf`` if none).  The open
    domains and the closed ones cover the box for every disjunct of ``disjuncts``.  The
    fields in the full numbering are made only when asked for (:meth:`chunks`): a search
    that is not resumed never pays for them."""

    disjuncts: tuple[int, ...]
    pool: DomainPool = field(repr=False)
    live: LiveNeurons = field(repr=False)
    closed_min: float

    def __len__(self):
        return len(self.pool)

    def chunks(self, size: int):
        """The open domains' fields in the full numbering, ``size`` domains at a time."""
        for chunk in self.pool.chunks(size):
            yield self.live.expand_fields(chunk)

    def closed_disjuncts(self) -> list[int]:
        """The disjuncts (spec numbers) with no open domain left: the search closed every
        domain of each, so each disjunct's margin is at least ``closed_min`` (> 0)."""
        still_open = {self.disjuncts[i] for i in self.pool.column("disjunct").unique().tolist()}
        return [j for j in self.disjuncts if j not in still_open]

    def closed(self) -> dict[int, float]:
        """Each closed disjunct (:meth:`closed_disjuncts`) with its safe bound ``closed_min``."""
        return {j: self.closed_min for j in self.closed_disjuncts()}


@dataclass(frozen=True)
class TorchBabOutcome(BabOutcome):
    """An outcome with the open domains where the search stopped (``None``: it decided)."""

    frontier: Frontier | None = None


def _objectives(spec: Spec, disjuncts, net: TorchNetwork):
    """(disjuncts, rows, n_out) objective and (disjuncts, rows) offsets
    (:meth:`relax.spec.Spec.padded_rows`) as tensors."""
    C, d = spec.padded_rows(disjuncts)
    return net.tensor(C), net.tensor(d)


def root_alpha_bounds(network: Network, spec: Spec, disjuncts, settings: BabSettings = BabSettings(),
                      deadline: Deadline = NEVER, net: TorchNetwork | None = None,
                      prior: Bounds | None = None, alpha=None, alpha_settings: AlphaSettings | None = None,
                      fast_net: TorchNetwork | None = None):
    """alpha-CROWN per disjunct at the root: (DomainBounds, objective, offsets).

    ``prior``: valid layer bounds over the whole box (e.g. LP-tightened), intersected
    with CROWN's before the slopes are optimised; ``alpha``: initial slopes;
    ``alpha_settings``: overrides ``settings.root()``; ``fast_net``: Adam steps in its dtype."""
    net = net or TorchNetwork.from_network(network)
    disjuncts = list(disjuncts)
    n = len(disjuncts)
    lower = net.tensor(spec.lower)[None].expand(n, -1)
    upper = net.tensor(spec.upper)[None].expand(n, -1)
    with torch.no_grad():
        layers, _ = crown_layer_bounds(net, lower[:1], upper[:1])
    if prior is not None:
        layers = [(torch.maximum(l, net.tensor(pl)), torch.minimum(u, net.tensor(pu)))
                  for (l, u), pl, pu in zip(layers, prior.lower, prior.upper)]
    C, d = _objectives(spec, disjuncts, net)
    domains = Domains(lower, upper, C, [l.expand(n, -1).clone() for l, _ in layers],
                      [u.expand(n, -1).clone() for _, u in layers], d, shared=True)
    result = alpha_crown(net, domains, alpha_settings or settings.root(), alpha=alpha, deadline=deadline,
                         fast_net=fast_net)
    return result, C, d


class _Search:
    """The state of one branch and bound: networks, objectives, root bounds, trees for leaves.

    Every bound is computed on the live part of the network (:mod:`relax.search.live`:
    the neurons dead over the whole box by the root bounds deleted, ``self.live``), and
    every per-domain field is in its numbering; counterexamples are checked on ``network``."""

    def __init__(self, network, spec, disjuncts, settings, root, C, d):
        self.network, self.spec, self.disjuncts, self.settings = network, spec, disjuncts, settings
        self.C, self.d = C, d
        # every disjunct's layer bounds are valid over the whole box: intersect them
        common_lower = [l.max(0).values for l in root.lower]
        common_upper = [u.min(0).values for u in root.upper]
        self.live = LiveNeurons.of(common_upper)
        self.live_network = self.live.network(network)
        self.net = TorchNetwork.from_network(self.live_network)
        self.fast_net = (TorchNetwork.from_network(self.live_network, dtype=torch.float32)
                         if settings.float32_steps else None)
        self.C_all, self.d_all = _objectives(spec, range(len(spec.disjuncts)), self.net)
        self.common_lower = self.live.restrict(common_lower)
        self.common_upper = self.live.restrict(common_upper)
        self.root_bounds = Bounds(tuple(l.numpy() for l in self.common_lower),
                                  tuple(u.numpy() for u in self.common_upper), "alpha-crown")
        self.trees: dict[int, DisjunctTree] = {}
        self.nodes = len(disjuncts)
        self.stored = COMPACT_FIELDS if settings.compact_pool else None
        self.batch = settings.domains_per_batch()

    def root_fields(self, root) -> dict:
        """The pool's fields of the root domains (one per disjunct, live numbering)."""
        alpha = self.live.restrict(root.alpha)
        return {"disjunct": torch.arange(len(self.disjuncts)), "bound": root.bound.clone(),
                "alpha": [a.float() for a in alpha],
                "beta": [torch.zeros_like(a[:, 0], dtype=torch.float32) for a in alpha],
                "sign": [torch.zeros_like(a[:, 0], dtype=torch.int8) for a in alpha],
                "score": [s.float() for s in self.live.restrict(root.score)]}

    def check(self, xs):
        return first_counterexample(self.network, self.spec, xs, self.net, self.C_all, self.d_all)

    def attack(self, xs: torch.Tensor, bounds: torch.Tensor, deadline: Deadline):
        """PGD from the minimising inputs of the lowest-bound domains (float64-checked
        counterexample or ``None``)."""
        return attack_lowest(self.network, self.spec, self.net, xs, bounds, self.settings.attack_starts,
                             self.settings.attack_steps, deadline)

    def leaves(self, batch, leaves):
        return decide_leaves(self.live_network, self.spec, self.disjuncts, self.root_bounds, self.trees,
                             batch, leaves, self.common_lower, self.common_upper, self.network)

    def choose(self, batch: dict) -> torch.Tensor:
        """The flat index of the neuron each domain of ``batch`` is split on."""
        if self.settings.branching == "fsb":
            return choose_fsb(self, batch, self.settings.fsb_candidates)
        return choose_babsr(batch)

    def child_domains(self, children: dict) -> Domains:
        """The domains of split children: the root layer bounds with each split neuron's
        bound set to 0 on the side its sign excludes."""
        m = len(children["bound"])
        sign_lower = [torch.where(s > 0, torch.zeros_like(c), c.expand(m, -1))
                      for s, c in zip(children["sign"], self.common_lower)]
        sign_upper = [torch.where(s < 0, torch.zeros_like(c), c.expand(m, -1))
                      for s, c in zip(children["sign"], self.common_upper)]
        lower, upper = self.net.tensor(self.spec.lower), self.net.tensor(self.spec.upper)
        index = children["disjunct"]
        return Domains(lower[None].expand(m, -1), upper[None].expand(m, -1), self.C[index],
                       sign_lower, sign_upper, self.d[index], children["sign"])

    def bound_children(self, children: dict, deadline: Deadline = NEVER) -> torch.Tensor:
        """alpha/beta-CROWN on split children (warm-started; at the deadline the Adam steps
        stop and the current slopes are evaluated in float64); updates them in place and
        returns their minimising inputs (counterexample candidates)."""
        m = len(children["bound"])
        result = alpha_crown(self.net, self.child_domains(children), self.settings.child(), alpha=children["alpha"],
                             beta=children["beta"], fast_net=self.fast_net, deadline=deadline)
        self.nodes += m
        record_bounds(children, result)
        return result.x


def torch_branch_and_bound(network: Network, spec: Spec, disjuncts=None, deadline: Deadline = NEVER,
                           settings: BabSettings = BabSettings(),
                           prior: Bounds | None = None, resume: Frontier | None = None) -> TorchBabOutcome:
    """Decide the disjuncts ``disjuncts`` (default all) of ``spec`` (module docstring).

    ``bound`` is a lower bound on the minimum margin over these disjuncts.  ``prior``:
    valid layer bounds over the whole box (e.g. LP-tightened) that the root starts from;
    ``resume``: an earlier search's open domains, which replace the roots of the
    disjuncts they cover (:func:`_resumed_pool`).
    """
    if any(a.name != "relu" for a in network.activations):
        raise UnsupportedNetworkError("torch branch and bound handles ReLU networks only")
    disjuncts = list(range(len(spec.disjuncts))) if disjuncts is None else list(disjuncts)
    net = TorchNetwork.from_network(network)
    root, C, d = root_alpha_bounds(network, spec, disjuncts, settings, deadline, net, prior)
    search = _Search(network, spec, disjuncts, settings, root, C, d)
    cex = search.check(root.x)
    if cex is not None:
        return TorchBabOutcome(-math.inf, cex, search.nodes, True)
    log.log(logging.DEBUG if settings.quiet else logging.INFO, "alpha-CROWN root bounds %s; live neurons %s of %s",
            np.round(root.bound.numpy(), 4), [len(k) for k in search.live.keep], list(search.live.sizes))
    pool = DomainPool(search.root_fields(root), search.stored)
    closed_min = math.inf
    if resume is not None:
        pool, cex = _resumed_pool(search, pool, resume, deadline)
        if cex is not None:
            return TorchBabOutcome(-math.inf, cex, search.nodes, True)
        closed_min = resume.closed_min
    return _search_loop(search, pool, deadline, closed_min)


def _resumed_pool(search: _Search, roots: DomainPool, frontier: Frontier, deadline: Deadline):
    """The pool that resumes ``frontier``: its open domains of this search's disjuncts, each
    re-bounded once under this search's root layer bounds, in place of the roots of the
    disjuncts it covers (a disjunct it covers but has no open domain of is closed); and a
    float64-checked counterexample among the re-bounded domains' inputs, or ``None``.
    Domains split active on a neuron dead under these root bounds are dropped
    (:meth:`LiveNeurons.contradicted`)."""
    position = {j: p for p, j in enumerate(search.disjuncts)}
    covered = set(frontier.disjuncts)
    pool = DomainPool(roots.take(torch.tensor([j not in covered for j in search.disjuncts])), search.stored)
    spec_numbers = torch.tensor(frontier.disjuncts, dtype=torch.long)
    count = dropped = 0
    for chunk in frontier.chunks(2 * search.batch):
        spec_index = spec_numbers[chunk["disjunct"]]
        mine = torch.tensor([int(j) in position for j in spec_index.tolist()], dtype=torch.bool)
        keep = mine & ~search.live.contradicted(chunk["sign"])
        dropped += int((mine & ~keep).sum())
        if not keep.any():
            continue
        chunk = search.live.restrict_fields(take_fields(chunk, keep))
        chunk["disjunct"] = torch.tensor([position[int(j)] for j in spec_index[keep].tolist()],
                                         dtype=torch.long)
        if not deadline.expired:  # else the chunk keeps its earlier (safe) bounds
            cex = search.check(search.bound_children(chunk, deadline))
            if cex is not None:
                return pool, cex
        pool.add(chunk)
        count += len(chunk["bound"])
    log.info("resumed %d open domains (%d dropped: split active on a dead neuron); least bound %.4g",
             count, dropped, pool.least_bound())
    return pool, None


def _search_loop(search: _Search, pool: DomainPool, deadline: Deadline,
                 closed_min: float = math.inf) -> TorchBabOutcome:
    """Split the lowest-bound domains, bound the children, until every domain closes."""
    limit = min(search.settings.max_domains, search.settings.pool_bytes() // max(pool.bytes_per_domain(), 1))
    crowded = False  # whether it was ever near the limit (logged once)
    progress = SearchProgress(search.nodes)
    while True:
        closed_min = min(closed_min, pool.close_positive())
        near_limit = len(pool) > search.settings.crowded * limit
        progress.report(pool, closed_min, search.nodes, near_limit)
        if len(pool) == 0:
            log.debug("torch branch and bound closed %d domains", search.nodes)
            return TorchBabOutcome(closed_min, None, search.nodes, True)
        bound = min(pool.least_bound(), closed_min)
        if deadline.expired:
            frontier = Frontier(tuple(search.disjuncts), pool, search.live, closed_min)
            return TorchBabOutcome(bound, None, search.nodes, False, Reason.time_limit(), frontier)
        if len(pool) > limit:
            return TorchBabOutcome(bound, None, search.nodes, False, Reason(
                ReasonKind.RESOURCE_LIMIT, f"more than {limit} open domains (memory)"))
        if near_limit:
            if not crowded:
                log.info("%d open domains, near the memory limit (%d): splitting the largest "
                         "bounds first (bound %.4g)", len(pool), limit, bound)
            crowded = True
            batch = pool.pop_highest(search.batch)
        else:
            batch = pool.pop_lowest(search.batch)
        leaves = torch.cat(batch["score"], dim=1).max(1).values < 0  # no unstable ReLU left
        if leaves.any():
            outcome = search.leaves(batch, leaves)
            if isinstance(outcome, tuple):
                return TorchBabOutcome(outcome[0], outcome[1], search.nodes, outcome[1] is not None,
                                       outcome[2])
            closed_min = min(closed_min, outcome)
            batch = take_fields(batch, ~leaves)
            if len(batch["bound"]) == 0:
                continue
        children = split_children(batch, search.choose(batch))
        xs = search.bound_children(children, deadline)
        cex = search.check(xs)
        if cex is None:
            cex = search.attack(xs, children["bound"], deadline)
        if cex is not None:
            return TorchBabOutcome(-math.inf, cex, search.nodes, True)
        pool.add(children)
