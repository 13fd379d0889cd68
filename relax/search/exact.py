"""The ``exact`` verification method: a complete decision procedure, cheapest step first.

1. CROWN (milliseconds): a positive bound decides *holds*.
2. A short PGD attack: a float64-checked counterexample decides *violated*.
3. ReLU networks: on deep ones (:attr:`ExactOptions.tighten`; ``auto``: at least
   :data:`AUTO_TIGHTEN_DEPTH` hidden layers) the stage of ``krelu`` before its branch
   and bound (:func:`relax.krelu.method.krelu_stage`: alpha-CROWN; on every hidden layer
   after the first, branch and bound per unstable neuron (:mod:`relax.search.neuron_bounds`,
   :attr:`ExactOptions.neuron_search`), then LP tightening with k-ReLU rows and alpha
   feedback; the k-ReLU LP per disjunct) closes what it can and hands its tightened
   layer bounds to the search; on nets with fewer than
   :data:`STAGE_FIRST_DEPTH` hidden layers the search first runs alone for
   :data:`SEARCH_FIRST_SHARE` of the time (:attr:`ExactOptions.search_first`), so that
   what it decides quickly (falsifiable instances above all) does not wait for the
   stage (with :attr:`ExactOptions.resume`, the default, the search after the stage
   resumes from its open domains).  With :attr:`ExactOptions.overlap` (the default on
   machines with two cores or more) the stage instead runs in a thread beside a search
   from the root, whatever the depth: the stage spends most of its time inside HiGHS,
   which releases the GIL, so it takes the second core while the search keeps the first;
   a search that decides first cancels the stage, else the search starts again from the
   stage's bounds whenever the stage has tightened a layer and when it ends (resuming
   its open domains), on the disjuncts that neither the stage nor a search closed.  Then
   alpha-CROWN at the root and batched beta-CROWN branch and bound (:mod:`relax.search.beta_crown`,
   :attr:`ExactOptions.pipeline` ``"torch"``, the default; FSB branching by default,
   :attr:`ExactOptions.branching`), whose every evaluated domain proposes a counterexample
   candidate and whose lowest-bound domains seed a short PGD.  The ``pipeline="lp"`` path
   (also the fallback when the torch search gives up for memory) runs LP tightening, the
   LP per disjunct, and LP branch and bound (:mod:`relax.search.lp_bab`) on the disjuncts
   the LP could not close.
4. Other activations (sigmoid, tanh, softplus, mixed): alpha-CROWN with optimised
   smooth lines (:mod:`relax.bounds.smooth_lines`; up to :data:`SMOOTH_ALPHA_SHARE` of
   the time, stopping once every open disjunct is positive), then branch and bound over
   the input box with CROWN bounds and the attack on the way
   (:mod:`relax.search.input_split`) on the disjuncts still open.

Every step stops the method as soon as it decides.  With enough time every
disjunct is closed by safe bounds on all leaves or yields a float64-checked
counterexample.  Torch runs with :func:`relax.search.threads.default_threads`
unless the caller set a thread count.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np
import torch

from relax.bounds import Bounds, bound_specs
from relax.bounds.alpha import AlphaSettings
from relax.bounds.torch_network import TorchNetwork
from relax.deadline import Deadline
from relax.errors import UsageError
from relax.krelu.method import krelu_stage
from relax.krelu.options import KreluOptions
from relax.lp.method import lp_disjunct_bounds
from relax.lp.runner import DEFAULT_LP_SOLVER
from relax.lp.tighten import tighten_bounds
from relax.network import Network
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason, ReasonKind, join_reasons
from relax.search.attack import pgd_attack
from relax.search.beta_crown import BabSettings, Frontier, root_alpha_bounds, torch_branch_and_bound
from relax.search.input_split import input_split_search
from relax.search.smooth_bab import smooth_branch_and_bound
from relax.search.lp_bab import branch_and_bound
from relax.search.threads import torch_threads
from relax.spec import Spec

__all__ = ["exact_method", "exact_one", "short_attack", "ExactOptions"]

log = logging.getLogger(__name__)

#: ``tighten="auto"`` runs the k-ReLU stage on ReLU networks with at least this many
#: hidden layers: on eran 9x200 BaB from the root decides 21/36 at 30 s, k-ReLU + BaB
#: 28/36 at 300 s; on mnistfc 256x4 at 300 s the stage decides prop_10_0.05, which the
#: search alone leaves open (``benchmarks/results/vnncomp_notes.md``, section 5)
AUTO_TIGHTEN_DEPTH = 4

#: where the stage runs on a net with fewer hidden layers than this, the search runs alone
#: first, for this share of the time: on mnistfc 256x4 the stage first took 251 s instead
#: of 6 s to falsify prop_1_0.05; on a 784-256x6-10 net of ours both orders decided the
#: same 6 of 13 at 60 s, the search first 3 of them 8-14x sooner
#: (``benchmarks/results/exact_search_first.md``, ``vnncomp_notes.md``); eran 9x200 (9
#: hidden layers) keeps the stage first
STAGE_FIRST_DEPTH = 7
SEARCH_FIRST_SHARE = 0.2

#: smooth networks: alpha-CROWN's steps and its share of the time before the branch and
#: bound.  On one instance of a 784-200x6-10 sigmoid MNIST net (eps 0.02; a scratch trace)
#: the bound kept rising over 100 steps (-2.11 (CROWN), -0.26 at 20 steps, +0.013 at 80)
#: and gained nothing past 150 (300 steps at a slower decay: the same bounds within 0.02)
SMOOTH_ALPHA = AlphaSettings(iterations=150, stop_when_positive=True)
SMOOTH_ALPHA_SHARE = 0.6
#: smooth networks with at most this many inputs are split over the input box after
#: alpha-CROWN, larger ones over their neurons' pre-activation intervals
#: (:mod:`relax.search.smooth_bab`): halving one of 784 input widths barely moves a bound
INPUT_SPLIT_MAX_INPUTS = 16

#: the attack before any search: restarts per disjunct and steps are a fraction of
#: the default (one full attack costs about as much as a few CROWN passes)
SHORT_ATTACK_FRACTION = 0.5


@dataclass(frozen=True)
class ExactOptions(MethodOptions):
    """Options of the ``exact`` method."""

    pipeline: Literal["torch", "lp"] = option(
        "torch", "ReLU networks: torch (alpha/beta-CROWN branch and bound) or lp (LP tightening, "
                 "LP per disjunct, LP branch and bound)")
    branching: Literal["fsb", "babsr"] = option(
        "fsb", "torch pipeline: split the neuron with the best BaBSR score (babsr) or try the best "
               "few and keep the one whose worse child bound is highest (fsb)")
    batch: int | None = option(BabSettings.batch, "torch pipeline: domains split per batched bound evaluation "
                                                  "(None: 256 on one torch thread, 1024 on more; search/budget.py)")
    tighten: Literal["auto", "off", "krelu"] = option(
        "auto", "torch pipeline: before branch and bound, tighten the layer bounds with the k-ReLU "
                "stage (krelu), never (off), or on nets with >= AUTO_TIGHTEN_DEPTH hidden layers")
    tighten_k: int = option(2, "k-ReLU stage: ReLUs per group")
    tighten_share: float = option(0.8, "k-ReLU stage: fraction of the time left after alpha-CROWN for LP tightening")
    search_first: float | None = option(
        None, "k-ReLU stage: share of the time the search runs alone before the stage (None: "
              "SEARCH_FIRST_SHARE on nets with < STAGE_FIRST_DEPTH hidden layers, else 0)")
    resume: bool = option(
        True, "k-ReLU stage: each search after a tightened layer or after the stage resumes from the "
              "open domains of the search before it (re-bounded), not from its root (mnistfc 256x4 at "
              "300 s, its closest unknowns: -0.050 / -0.662, not -0.123 / -0.720; vnncomp_notes.md, 12)")
    publish_every: float | None = option(KreluOptions.publish_every, "k-ReLU stage beside the search: "
                                         "krelu.publish_every (vnncomp_notes.md, section 13)")
    neuron_search: float | None = option(
        1.5, "k-ReLU stage: seconds of branch and bound per end of each unstable neuron of a "
             "hidden layer before its LP (krelu.neuron_search; None: off; vnncomp_notes.md, 16-17)")
    overlap: bool = option(
        True, "k-ReLU stage: on machines with >= 2 cores run it in a thread beside the search "
              "from the root (which then replaces search_first), the search starting again from "
              "the stage's bounds when the stage ends (vnncomp_notes.md, section 9)")

    def __post_init__(self):
        super().__post_init__()
        self.krelu()  # checks tighten_k and tighten_share
        if self.search_first is not None and not 0 <= self.search_first < 1:
            raise UsageError(f"option search_first={self.search_first!r} of ExactOptions: "
                             "expected a share in [0, 1)")

    def bab(self) -> BabSettings:
        """The torch branch and bound's settings."""
        return BabSettings(batch=self.batch, branching=self.branching)

    def krelu(self) -> KreluOptions:
        """The k-ReLU stage's settings (``krelu``'s defaults otherwise: alpha-CROWN start,
        5 feedback steps, every layer LP-tightened)."""
        return KreluOptions(k=self.tighten_k, tighten_share=self.tighten_share, publish_every=self.publish_every,
                            neuron_search=self.neuron_search)

    def tightens(self, network: Network) -> bool:
        """Whether the k-ReLU stage runs on this (ReLU) network."""
        if self.tighten == "auto":
            return len(network.activations) >= AUTO_TIGHTEN_DEPTH
        return self.tighten == "krelu"

    def search_share(self, network: Network) -> float:
        """The share of the time the search runs alone before the stage (where it runs)."""
        if self.search_first is not None:
            return self.search_first
        return SEARCH_FIRST_SHARE if len(network.activations) < STAGE_FIRST_DEPTH else 0.0


def exact_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
                 options: VerifyOptions) -> list[BoundOutcome]:
    """CROWN, attack, alpha-CROWN, branch and bound; see the module docstring."""
    solver = options.solver or DEFAULT_LP_SOLVER
    exact = options.of(ExactOptions)
    with torch_threads():
        stage = exact.tightens(network)
        return [exact_one(network, spec, deadline, options, solver, exact.pipeline, bab=exact.bab(),
                          krelu=exact.krelu() if stage else None,
                          search_first=exact.search_share(network) if stage else 0.0,
                          resume=exact.resume, overlap=exact.overlap and (os.cpu_count() or 1) >= 2)
                for spec in specs]


def short_attack(options: VerifyOptions):
    """The attack options of step 2: fewer steps than the configured attack."""
    attack = options.attack
    return replace(attack, steps=max(1, int(attack.steps * SHORT_ATTACK_FRACTION)))


def exact_one(network: Network, spec: Spec, deadline: Deadline, options: VerifyOptions, solver: str,
              pipeline: str = "torch", crown=None, attack: bool = True,
              bab: BabSettings = BabSettings(), krelu: KreluOptions | None = None,
              search_first: float = 0.0, resume: bool = False, overlap: bool = False) -> BoundOutcome:
    """The pipeline for one spec (``crown``: its CROWN bounds if already computed;
    ``attack=False`` when the caller already ran PGD on it, as milp does; ``bab``: the
    torch branch and bound's settings; ``krelu``: run the k-ReLU stage before it, after
    the search alone for ``search_first`` of the time, or with ``overlap`` in a thread
    beside searches that start again from each layer the stage tightens; with ``resume``
    each search after the first starts from the open domains of the one before it, not
    from its root)."""
    crown = crown or bound_specs(network, [spec], "crown", device=options.device)[0]
    if crown.bound > 0:
        return BoundOutcome(crown.bound, "crown")
    cex = pgd_attack(network, spec, short_attack(options), deadline) if attack else None
    if cex is not None:
        return BoundOutcome(-math.inf, solver, cex)
    open_disjuncts = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
    if not network.is_relu:
        return _smooth_path(network, spec, np.array(crown.disjunct_bounds, float), open_disjuncts, deadline)
    if pipeline == "torch":
        known, prior, frontier = np.array(crown.disjunct_bounds, float), None, None
        if krelu is not None:
            first = None
            closed = {}
            if overlap:
                first, staged, closed = _search_beside_stage(network, spec, crown, krelu, solver, deadline,
                                                             open_disjuncts, bab, resume)
                _raise(known, closed)
                open_disjuncts = [j for j in open_disjuncts if known[j] <= 0]
            elif search_first > 0:
                first = torch_branch_and_bound(network, spec, open_disjuncts, deadline.share(search_first), bab)
                log.info("search before the stage: bound %.4g after %d domains", first.bound, first.nodes)
            if first is not None and (first.complete or deadline.expired):
                return _combined(first, known, open_disjuncts, "torch-bab")
            frontier = first.frontier if resume and first is not None else None
            if not overlap:
                staged = krelu_stage(network, spec, crown, krelu, solver, deadline)
            prior, known, _ = staged
            _raise(known, closed)
            log.info("k-ReLU stage: disjunct bounds %s", np.round(known, 4))
            if first is not None and first.frontier is not None:
                _keep_closed(known, first.frontier)
            if known.min() > 0:
                return BoundOutcome(float(known.min()), "krelu")
            open_disjuncts = [int(j) for j in np.flatnonzero(known <= 0)]
        outcome = torch_branch_and_bound(network, spec, open_disjuncts, deadline, bab, prior,
                                         resume=frontier)
        log.info("torch branch and bound: bound %.4g after %d domains", outcome.bound, outcome.nodes)
        searched = _combined(outcome, known, open_disjuncts, "torch-bab")
        if outcome.complete or outcome.reason.kind is ReasonKind.TIME_LIMIT:
            return searched
        log.info("torch branch and bound gave up (%s); LP path next", outcome.reason)
        return _better(searched, _lp_path(network, spec, crown, deadline, solver))
    return _lp_path(network, spec, crown, deadline, solver)


def _better(searched: BoundOutcome, lp: BoundOutcome) -> BoundOutcome:
    """The LP path's outcome after a search that gave up, with the search's bound where it
    is higher (both are safe bounds on the same margin)."""
    if lp.counterexample is not None or lp.bound >= searched.bound:
        return lp
    return replace(lp, bound=searched.bound)


def _search_beside_stage(network, spec, crown, krelu: KreluOptions, solver: str, deadline: Deadline,
                         open_disjuncts, bab: BabSettings, resume: bool = False):
    """The search in this thread while the k-ReLU stage runs in another: (the last
    search's outcome, the stage's ``(bounds, disjunct bounds, rows)`` or ``None`` when a
    search decided first, the disjuncts the searches closed on the way ``{j: bound}``).

    The search starts from the root; whenever the stage has tightened a layer (and fed
    alpha-CROWN through the later ones) it starts again from those bounds, on the
    disjuncts not yet closed (with ``resume`` from the open domains so far, else from
    its root).  It stops when the stage ends (or at the deadline); a search that decides
    the spec first cancels the stage (its result is then partial, and unused).  Torch
    gets one thread fewer meanwhile, so that the stage keeps a core.  Every bound is
    sound whatever the other thread does; only their timing changes."""
    stage_done, search_done, tightened = threading.Event(), threading.Event(), threading.Event()
    latest: list[Bounds] = []

    def publish(bounds: Bounds) -> None:
        latest.append(bounds)
        tightened.set()

    def stage():
        try:
            return krelu_stage(network, spec, crown, krelu, solver, deadline.or_when(search_done),
                               progress=publish)
        finally:
            stage_done.set()

    threads = torch.get_num_threads()
    closed: dict[int, float] = {}
    with ThreadPoolExecutor(1, thread_name_prefix="krelu-stage") as pool:
        future = pool.submit(stage)
        torch.set_num_threads(max(1, threads - 1))
        first = None
        try:
            while True:
                tightened.clear()
                first = torch_branch_and_bound(
                    network, spec, open_disjuncts, deadline.or_when(stage_done).or_when(tightened), bab,
                    latest[-1] if latest else None,
                    resume=first.frontier if resume and first is not None else None)
                if first.complete or stage_done.is_set() or deadline.expired:
                    break
                closed.update(first.frontier.closed())
                open_disjuncts = [j for j in open_disjuncts if j not in closed]
                log.info("search beside the stage: bound %.4g after %d domains; again from the "
                         "stage's tighter layer bounds", first.bound, first.nodes)
        except BaseException:
            search_done.set()
            raise
        finally:
            torch.set_num_threads(threads)
        log.info("search beside the stage: bound %.4g after %d domains (%s)", first.bound, first.nodes,
                 "decided" if first.complete else "stage ended" if stage_done.is_set() else "stopped")
        if first.complete:  # the stage's (partial) result is not needed
            search_done.set()
            if future.exception() is not None:
                log.warning("the cancelled k-ReLU stage failed: %s", future.exception())
            return first, None, closed
        return first, future.result(), closed


def _raise(known: np.ndarray, closed: dict[int, float]) -> None:
    """Raise ``known`` (the disjuncts' safe bounds) in place to the bounds ``closed``
    (disjunct: safe bound) of the disjuncts a search closed."""
    for j, bound in closed.items():
        known[j] = max(known[j], bound)


def _keep_closed(known: np.ndarray, frontier: Frontier) -> None:
    """Raise ``known`` (the disjuncts' safe bounds) in place to the first search's
    ``closed_min`` on the disjuncts it closed completely, so that the search after the
    stage does not start them again."""
    closed = frontier.closed()
    if closed:
        _raise(known, closed)
        log.info("disjuncts %s were closed by the search before the stage (bound >= %.4g)",
                 list(closed), frontier.closed_min)


def _smooth_path(network, spec, known, open_disjuncts, deadline: Deadline) -> BoundOutcome:
    """alpha-CROWN with optimised smooth lines on the open disjuncts, then branch and bound
    (over neurons' intervals, or over the input box for few inputs) on the ones it leaves
    open; ``known`` (CROWN's disjunct bounds) is raised in place."""
    fast = TorchNetwork.from_network(network, dtype=torch.float32)
    root, C, d = root_alpha_bounds(network, spec, open_disjuncts, deadline=deadline.share(SMOOTH_ALPHA_SHARE),
                                   alpha_settings=SMOOTH_ALPHA, fast_net=fast)
    known[open_disjuncts] = np.maximum(known[open_disjuncts], root.bound.numpy())
    log.info("alpha-CROWN (smooth lines): disjunct bounds %s", np.round(known, 4))
    if known.min() > 0:
        return BoundOutcome(float(known.min()), "alpha-crown")
    if spec.lower.size > INPUT_SPLIT_MAX_INPUTS:
        outcome = smooth_branch_and_bound(network, spec, open_disjuncts, root, C, d, deadline)
        log.info("neuron-interval branch and bound: bound %.4g after %d domains", outcome.bound, outcome.nodes)
        return _combined(outcome, known, open_disjuncts, "smooth-bab")
    open_disjuncts = [int(j) for j in np.flatnonzero(known <= 0)]
    outcome = input_split_search(network, spec, open_disjuncts, deadline)
    log.info("input splitting: bound %.4g after %d domains", outcome.bound, outcome.nodes)
    return _combined(outcome, known, open_disjuncts, "input-split")


def _combined(outcome, known, open_disjuncts, solver: str) -> BoundOutcome:
    """A search's outcome on the open disjuncts with the ``known`` safe bounds (CROWN's, or
    the k-ReLU stage's) on the closed ones; both bound the open disjuncts' minimum, so the
    result is never weaker than ``known``."""
    closed = [float(b) for b in known if b > 0]
    open_crown = min(float(known[j]) for j in open_disjuncts)
    bound = min([max(outcome.bound, open_crown)] + closed)
    return BoundOutcome(bound, solver, outcome.counterexample, reason=outcome.reason)


def _lp_path(network, spec, crown, deadline: Deadline, solver) -> BoundOutcome:
    """LP tightening, the LP per disjunct, LP branch and bound on the open ones."""
    bounds = tighten_bounds(network, spec.lower, spec.upper, crown.layers, solver, deadline)
    per_disjunct = lp_disjunct_bounds(network, spec, bounds, solver, deadline,
                                      known=crown.disjunct_bounds)
    reasons = []
    for j in np.argsort(per_disjunct):
        if per_disjunct[j] > 0:
            continue
        if deadline.expired:
            reasons.append(Reason.time_limit())
            break
        outcome = branch_and_bound(network, spec, spec.disjuncts[j], bounds, solver, deadline)
        log.info("disjunct %d: bound %.4g after %d nodes", j, outcome.bound, outcome.nodes)
        if outcome.counterexample is not None:
            return BoundOutcome(outcome.bound, solver, outcome.counterexample)
        per_disjunct[j] = max(per_disjunct[j], outcome.bound)
        if outcome.reason:
            reasons.append(outcome.reason)
    return BoundOutcome(float(per_disjunct.min()), solver, reason=_first(reasons))


def _first(reasons: list[Reason]) -> Reason | None:
    """One reason for several disjuncts: the time limit if it is among them, else the
    first, with every message joined."""
    if not reasons:
        return None
    kinds = [r.kind for r in reasons]
    kind = ReasonKind.TIME_LIMIT if ReasonKind.TIME_LIMIT in kinds else kinds[0]
    return Reason(kind, join_reasons(reasons))
