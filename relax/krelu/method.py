"""The ``krelu`` verification method: triangle LP plus k-ReLU hull rows.

Pipeline per property: CROWN (stop if it proves the property); then the
intermediate layer bounds, from one of two sources (:attr:`KreluOptions.bounds`):

- ``"alpha"`` (default): alpha-CROWN (:func:`relax.search.beta_crown.root_alpha_bounds`,
  slopes optimised for the open disjuncts, intermediate bounds recomputed under the
  slopes, float64).  Every disjunct's layer bounds are valid over the whole box, so
  their intersection (and with CROWN's) is valid.  Then the last ``lp_layers``
  hidden layers (default: all of them, as in ``"lp"``, until 80 % of the time) are
  LP-tightened with the k-ReLU rows of the layers below; starting from the tighter
  alpha-CROWN bounds leaves fewer unstable neurons, so the LPs are smaller and faster.
  After each LP-tightened layer alpha-CROWN runs again (``feedback`` Adam steps,
  warm slopes) *from* the tightened bounds: the tighter relaxation of that layer tightens
  every later layer's bounds and the disjunct bounds at the cost of a few CROWN passes
  (much cheaper than LP-tightening them), and it stops as soon as every disjunct is proved.
  alpha-CROWN's final per-disjunct bounds are sound lower bounds too and join CROWN's
  as ``known`` bounds (a disjunct they prove needs no LP).
- ``"lp"``: layer by layer, the LP of the layers below (triangle rows plus, with
  ``refine``, the k-ReLU rows of every earlier layer) tightens the bounds of the
  unstable neurons of the next layer (safe dual bounds), CROWN re-propagates, and
  the k-ReLU rows of the newly bounded layer are computed (groups, CROWN octahedra
  over the current layer bounds, hulls).  Finally each
disjunct's LP with all rows gives a safe margin bound (intersected with CROWN's).
With ``bab="lp"``, LP branch and bound with the rows at every node
runs on the disjuncts still open, until the deadline; with ``bab="torch"``
alpha/beta-CROWN branch and bound (:func:`relax.search.beta_crown.torch_branch_and_bound`) starts
from the LP-tightened layer bounds instead (valid over the whole box, hence in every
sub-domain).
On networks with sigmoid, tanh or softplus layers the groups and hulls are formed on the
ReLU layers only; the smooth layers enter the LP by their tangent/chord rows (and
alpha-CROWN by its optimised lines), and each of their neurons is LP-tightened on both
ends (a smooth neuron's lines tighten with either end).  Both branch and bounds split ReLU
phases, so ``bab`` must be ``"off"`` there.
Every bound that can make a verdict *holds* is a float64 (alpha-)CROWN bound or comes
from :meth:`relax.lp.runner.LpRunner.lower_bound` (recomputed from the dual vector
over the variable box), so hull or solver round-off cannot make it unsound.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np

from relax.bounds import Bounds, bound_specs, refine_bounds
from relax.bounds.activations import SMOOTH
from relax.deadline import NEVER, Deadline
from relax.errors import UnsupportedNetworkError
from relax.krelu.encode import LayerRows, add_rows, layer_rows
from relax.krelu.options import KreluOptions
from relax.lp.encode import encode_triangle
from relax.lp.method import disjunct_bounds
from relax.lp.runner import DEFAULT_LP_SOLVER
from relax.lp.tighten import tighten_layer
from relax.network import Network
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason
from relax.spec import Spec

__all__ = ["krelu_method", "krelu_stage", "krelu_tighten", "krelu_disjunct_bounds", "KreluOptions"]

log = logging.getLogger(__name__)

#: the per-neuron search of a layer (``KreluOptions.neuron_search``) stops at this share of
#: the stage's time left, so the LP and the later layers keep the rest
NEURON_SEARCH_SHARE = 0.3


def krelu_tighten(network: Network, spec: Spec, bounds: Bounds, config: KreluOptions,
                  solver: str | None = None, deadline: Deadline = NEVER,
                  tighten: bool = True, tighten_from: int = 1,
                  feedback: Callable[[int, Bounds], Bounds | None] | None = None,
                  progress: Callable[[Bounds], None] | None = None
                  ) -> tuple[Bounds, list[LayerRows]]:
    """Layer bounds (LP-tightened with k-ReLU rows when ``config.refine``) and every layer's rows.

    Layers ``k >= max(tighten_from, 1)`` are LP-tightened; with ``tighten=False`` the given
    bounds are kept and only the rows are computed.  ``feedback(k, bounds)``, called after
    layer ``k`` was LP-tightened, may return valid bounds that are at least as tight (e.g.
    alpha-CROWN over the tightened layers, which tightens the later layers cheaply), or
    ``None`` to stop tightening (the property is already decided).  ``progress(bounds)``
    is called with the bounds so far after every tightened layer but the last (e.g. to
    hand them to a search running beside the stage), and every ``config.publish_every``
    seconds within a layer (:class:`_PartialLayer`)."""
    lower, upper = spec.lower, spec.upper
    layers: list[LayerRows] = []
    for k in range(len(network.activations)):
        relu = network.activations[k].name == "relu"
        if tighten and k > 0 and k >= tighten_from and not deadline.expired:
            start = time.monotonic()
            encoding = encode_triangle(network, lower, upper, bounds, depth=k)
            if config.refine:
                encoding = add_rows(encoding, layers)
            if config.neuron_search and all(a.name == "relu" for a in network.activations[:k + 1]):
                bounds = _neuron_search(network, spec, bounds, k, config.neuron_search, deadline)
            before = len(bounds.unstable(k))
            partial = None if progress is None else _PartialLayer(network, spec, bounds, k, feedback, progress)
            bounds = tighten_layer(encoding, k, bounds, solver, deadline, smooth=not relu, partial=partial,
                                   every=config.publish_every)
            bounds = refine_bounds(network, lower, upper, bounds)
            log.info("layer %d: %d -> %d unstable (%.2f s)", k, before, len(bounds.unstable(k)),
                     time.monotonic() - start)
            if feedback is not None and k + 1 < len(network.activations):
                fed = feedback(k, bounds)
                if fed is None:
                    break
                bounds = fed
            if progress is not None and k + 1 < len(network.activations):
                progress(bounds)
        if deadline.expired:
            break
        if relu and (k > 0 or config.first_layer):  # groups only on ReLU layers
            layers.append(layer_rows(network, lower, upper, bounds, k, config, deadline))
    return bounds, layers


def _neuron_search(network, spec, bounds, k: int, seconds: float, deadline: Deadline) -> Bounds:
    """Layer ``k``'s bounds tightened by branch and bound per neuron
    (:func:`relax.search.neuron_bounds.search_layer_bounds`), in at most
    :data:`NEURON_SEARCH_SHARE` of the time left."""
    from relax.search.neuron_bounds import search_layer_bounds  # imported here, as _torch_branch does
    return search_layer_bounds(network, spec, bounds, k, seconds, deadline.share(NEURON_SEARCH_SHARE))


class _PartialLayer:
    """Hands a layer's partly LP-tightened bounds on: layer ``k`` of ``bounds`` replaced by
    the bounds so far (valid: each neuron's is the intersection of valid bounds), CROWN
    re-propagated through the later layers, ``feedback`` (alpha-CROWN) through them when
    some are left, then ``progress``.  Returns whether to go on tightening the layer (not
    once the feedback has proved every disjunct)."""

    def __init__(self, network, spec, bounds: Bounds, k: int, feedback, progress):
        self.network, self.spec, self.bounds, self.k = network, spec, bounds, k
        self.feedback, self.progress = feedback, progress

    def __call__(self, l_k: np.ndarray, u_k: np.ndarray) -> bool:
        lowers, uppers = list(self.bounds.lower), list(self.bounds.upper)
        lowers[self.k], uppers[self.k] = l_k, u_k
        part = refine_bounds(self.network, self.spec.lower, self.spec.upper,
                             Bounds(tuple(lowers), tuple(uppers), self.bounds.method))
        if self.feedback is not None and self.k + 1 < len(self.network.activations):
            part = self.feedback(self.k, part)
            if part is None:  # every disjunct proved: the feedback at the layer's end stops the stage
                return False
        self.progress(part)
        return True


def krelu_disjunct_bounds(network: Network, spec: Spec, bounds: Bounds, layers: list[LayerRows],
                          solver: str | None = None, deadline: Deadline = NEVER,
                          known: np.ndarray | None = None) -> np.ndarray:
    """Safe lower bounds on every disjunct's margin over the triangle LP plus the rows
    (:func:`relax.lp.method.disjunct_bounds`; with ``known``, e.g. CROWN's, disjuncts it
    proves are skipped and solving stops at the first that stays <= 0)."""
    encoding = add_rows(encode_triangle(network, spec.lower, spec.upper, bounds), layers)
    return disjunct_bounds(encoding, spec, solver, deadline, known, early_exit=known is not None)


def _branch(network, spec, bounds, layers, per_disjunct, solver, deadline):
    """LP branch and bound (:mod:`relax.search.lp_bab`) with the k-ReLU rows at every node, on the
    disjuncts the LP left open, weakest first, until the deadline."""
    from relax.search.lp_bab import branch_and_bound
    from relax.krelu.encode import add_rows

    per_disjunct = per_disjunct.copy()
    for j in np.argsort(per_disjunct):
        if per_disjunct[j] > 0 or deadline.expired:
            continue
        outcome = branch_and_bound(network, spec, spec.disjuncts[j], bounds, solver, deadline,
                                   augment=lambda e: add_rows(e, layers))
        if outcome.counterexample is not None:
            return per_disjunct, outcome.counterexample
        per_disjunct[j] = max(per_disjunct[j], outcome.bound)
        if per_disjunct[j] <= 0:
            break
    return per_disjunct, None


def alpha_layer_bounds(network: Network, spec: Spec, bounds: Bounds, disjuncts,
                       iterations: int = 20, deadline: Deadline = NEVER,
                       use_prior: bool = False, alpha=None, return_alpha: bool = False):
    """alpha-CROWN layer bounds intersected with ``bounds``, and the alpha-CROWN lower bound
    of every disjunct (``-inf`` for those not in ``disjuncts``); with ``return_alpha`` also
    the optimised slopes (to warm-start a later call, ``alpha``).

    With ``use_prior`` alpha-CROWN starts from ``bounds`` (valid bounds, e.g. LP-tightened
    ones, intersected with CROWN's): the relaxations of the tightened layers are then
    tighter, and so are the recomputed bounds of every later layer and the final bound.
    Sound: each domain's layer bounds are float64 CROWN bounds for some slopes in
    ``[0, 1]`` over the whole box, given valid bounds of the layers below, so their
    intersection with valid bounds is valid."""
    from relax.search.beta_crown import BabSettings, root_alpha_bounds

    disjuncts = list(disjuncts)
    out = np.full(len(spec.disjuncts), -np.inf)
    if not disjuncts:
        return (bounds, out, alpha) if return_alpha else (bounds, out)
    root, _, _ = root_alpha_bounds(network, spec, disjuncts, BabSettings(root_iterations=iterations),
                                   deadline, prior=bounds if use_prior else None, alpha=alpha)
    out[disjuncts] = root.bound.numpy()
    lowers = tuple(np.maximum(l, a.max(0).values.numpy()) for l, a in zip(bounds.lower, root.lower))
    uppers = tuple(np.minimum(u, a.min(0).values.numpy()) for u, a in zip(bounds.upper, root.upper))
    result = Bounds(lowers, uppers, "alpha-crown")
    return (result, out, root.alpha) if return_alpha else (result, out)


class _AlphaFeedback:
    """After LP tightening of layer ``k``: alpha-CROWN (``iterations`` Adam steps, slopes
    warm-started from the previous call) over the tightened bounds, for the disjuncts still
    open; tightens the later layers' bounds and the disjuncts' ``known`` bounds.  Returns
    ``None`` (stop tightening) once every disjunct is proved."""

    def __init__(self, network, spec, known, iterations, alpha, disjuncts, deadline):
        self.network, self.spec, self.known = network, spec, known
        self.iterations, self.alpha, self.deadline = iterations, alpha, deadline
        self.disjuncts = np.asarray(disjuncts)  # the rows of ``alpha``

    def __call__(self, k: int, bounds: Bounds) -> Bounds | None:
        start = time.monotonic()
        open_now = np.flatnonzero(self.known <= 0)
        alpha = self.alpha
        if alpha is not None and len(open_now) != len(self.disjuncts):
            keep = np.isin(self.disjuncts, open_now)
            alpha = [a[np.flatnonzero(keep)] for a in alpha]
        before = sum(len(bounds.unstable(j)) for j in range(k + 1, len(bounds.lower)))
        fed, values, self.alpha = alpha_layer_bounds(
            self.network, self.spec, bounds, open_now, self.iterations, self.deadline,
            use_prior=True, alpha=alpha, return_alpha=True)
        self.disjuncts = open_now
        np.maximum(self.known, values, out=self.known)
        after = sum(len(fed.unstable(j)) for j in range(k + 1, len(fed.lower)))
        log.info("alpha feedback after layer %d: later unstable %d -> %d, disjunct bounds min %.4g "
                 "(%.2f s)", k, before, after, self.known.min(), time.monotonic() - start)
        return None if self.known.min() > 0 else fed


def _torch_branch(network, spec, bounds, per_disjunct, deadline):
    """alpha/beta-CROWN branch and bound (:func:`relax.search.beta_crown.torch_branch_and_bound`) on
    the disjuncts still open, from the (LP-tightened) layer bounds: they are valid over the
    whole box, so they bound every sub-domain's intermediate layers too."""
    from relax.search.beta_crown import torch_branch_and_bound

    per_disjunct = per_disjunct.copy()
    todo = np.flatnonzero(per_disjunct <= 0)
    if len(todo) == 0 or deadline.expired:
        return per_disjunct, None
    outcome = torch_branch_and_bound(network, spec, todo, deadline, prior=bounds)
    log.info("torch branch and bound over LP-tightened bounds: bound %.4g (%s)", outcome.bound,
             outcome.reason or "complete")
    if outcome.counterexample is not None:
        return per_disjunct, outcome.counterexample
    per_disjunct[todo] = np.maximum(per_disjunct[todo], outcome.bound)
    return per_disjunct, None


def _check_network(network: Network, config: KreluOptions) -> None:
    """k-ReLU's hulls are those of the ReLU, so groups are formed on ReLU layers only; the
    LP relaxes sigmoid, tanh and softplus layers by their tangent/chord rows and
    alpha-CROWN by its smooth lines.  Both branch and bounds split ReLU phases: on other
    activations they are refused (typed error), as is an activation without LP rows."""
    names = sorted({a.name for a in network.activations})
    unknown = [n for n in names if n != "relu" and n not in SMOOTH]
    if unknown:
        raise UnsupportedNetworkError(f"method krelu has no relaxation for activations {unknown}")
    if config.bab != "off" and not network.is_relu:
        raise UnsupportedNetworkError(
            f"krelu.bab={config.bab} splits ReLU phases, but the network has activations {names}; "
            "use krelu.bab=off, or the exact method (it searches over smooth neurons' intervals)")


def krelu_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
                 options: VerifyOptions) -> list[BoundOutcome]:
    """CROWN, then intermediate bounds (alpha-CROWN plus LP on the last layers, or LP on
    every layer) with k-ReLU rows, then the k-ReLU LP per disjunct, then optionally branch
    and bound (:class:`KreluOptions`; module docstring).  Each disjunct's bound is never
    weaker than the best (alpha-)CROWN bound already computed, also at the time limit."""
    config = options.of(KreluOptions)
    _check_network(network, config)
    solver = options.solver or DEFAULT_LP_SOLVER
    return [_krelu_one(network, spec, deadline, options, config, solver) for spec in specs]


def _krelu_one(network, spec, deadline: Deadline, options: VerifyOptions, config: KreluOptions,
               solver: str) -> BoundOutcome:
    crown = bound_specs(network, [spec], "crown")[0]
    if crown.bound > 0 and not options.bound_only:
        return BoundOutcome(crown.bound, solver)
    bounds, per_disjunct, layers = krelu_stage(network, spec, crown, config, solver, deadline,
                                               options.bound_only)
    if per_disjunct.min() > 0 and not options.bound_only:
        return BoundOutcome(float(per_disjunct.min()), solver)
    counterexample = None
    if config.bab == "torch":
        per_disjunct, counterexample = _torch_branch(network, spec, bounds, per_disjunct, deadline)
    elif config.bab == "lp":
        per_disjunct, counterexample = _branch(network, spec, bounds, layers, per_disjunct,
                                               solver, deadline)
    log.info("k-ReLU (k=%d): %d rows over %d layers, bound %.4g", config.k,
             sum(r.b.size for r in layers), len(layers), per_disjunct.min())
    reason = Reason.time_limit() if deadline.expired else None
    return BoundOutcome(float(per_disjunct.min()), solver, counterexample, reason)


def krelu_stage(network: Network, spec: Spec, crown, config: KreluOptions, solver: str,
                deadline: Deadline, bound_only: bool = False,
                progress: Callable[[Bounds], None] | None = None
                ) -> tuple[Bounds, np.ndarray, list[LayerRows]]:
    """Everything of ``krelu`` before branch and bound, from ``crown`` (the spec's CROWN
    result): (layer bounds, a safe lower bound on every disjunct's margin, k-ReLU rows).

    With ``config.bounds == "alpha"``: alpha-CROWN for the open disjuncts, then LP
    tightening of the last ``lp_layers`` layers with k-ReLU rows and alpha feedback
    (``tighten_share`` of the time left); else LP tightening of every layer from CROWN.
    Then the k-ReLU LP per disjunct.  Without ``bound_only`` it returns as soon as every
    disjunct is proved (the rows may then be incomplete) and the LP stops at the first
    disjunct that stays <= 0.  Each layer bound is valid over the whole box and each
    disjunct bound is the best of CROWN's, alpha-CROWN's and the LP's safe dual bound.
    ``progress``: as :func:`krelu_tighten`'s."""
    known = np.array(crown.disjunct_bounds, float)
    bounds, tighten_from, feedback = crown.layers, 1, None
    if config.bounds == "alpha":
        bounds, feedback = _alpha_start(network, spec, bounds, known, config, deadline)
        lp_layers = len(network.activations) if config.lp_layers is None else config.lp_layers
        tighten_from = len(network.activations) - lp_layers
        if known.min() > 0 and not bound_only:
            return bounds, known, []
    bounds, layers = krelu_tighten(network, spec, bounds, config, solver,
                                   deadline.share(config.tighten_share),
                                   config.intermediate == "lp", tighten_from, feedback, progress)
    if known.min() > 0 and not bound_only:  # the alpha feedback proved every disjunct
        return bounds, known, layers
    per_disjunct = krelu_disjunct_bounds(network, spec, bounds, layers, solver, deadline,
                                         known=None if bound_only else known)
    return bounds, np.maximum(per_disjunct, known), layers


def _alpha_start(network, spec, bounds, known, config: KreluOptions, deadline: Deadline):
    """alpha-CROWN layer bounds for the open disjuncts (30 % of the time left); raises
    ``known`` in place to alpha-CROWN's disjunct bounds; the feedback for the LP stage."""
    start = time.monotonic()
    open_disjuncts = np.flatnonzero(known <= 0)
    bounds, alpha, slopes = alpha_layer_bounds(network, spec, bounds, open_disjuncts,
                                               config.alpha_iterations, deadline.share(0.3),
                                               return_alpha=True)
    np.maximum(known, alpha, out=known)
    log.info("alpha-CROWN bounds %.2f s, disjunct bounds %s", time.monotonic() - start,
             np.round(alpha, 3))
    feedback = None
    if config.feedback > 0:
        feedback = _AlphaFeedback(network, spec, known, config.feedback, slopes, open_disjuncts,
                                  deadline)
    return bounds, feedback
