"""The ``krelu`` verification method: triangle LP plus k-ReLU hull rows.

Pipeline per property: CROWN (stop if it proves the property); then the
intermediate layer bounds, from one of two sources (option ``krelu_bounds``):

- ``"alpha"`` (default): alpha-CROWN (:func:`relax.search.beta_crown.root_alpha_bounds`,
  slopes optimised for the open disjuncts, intermediate bounds recomputed under the
  slopes, float64).  Every disjunct's layer bounds are valid over the whole box, so
  their intersection (and with CROWN's) is valid.  Then the last ``krelu_lp_layers``
  hidden layers (default: all of them, as in ``"lp"``, until 80 % of the time) are
  LP-tightened with the k-ReLU rows of the layers below; starting from the tighter
  alpha-CROWN bounds leaves fewer unstable neurons, so the LPs are smaller and faster.
  After each LP-tightened layer alpha-CROWN runs again (``krelu_feedback`` Adam steps,
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
With option ``krelu_bab`` (true or "lp"), LP branch and bound with the rows at every node
runs on the disjuncts still open, until the deadline; with ``krelu_bab="torch"``
alpha/beta-CROWN branch and bound (:func:`relax.search.beta_crown.torch_branch_and_bound`) starts
from the LP-tightened layer bounds instead (valid over the whole box, hence in every
sub-domain).
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
from relax.errors import UnsupportedNetworkError, UsageError
from relax.krelu.encode import KreluConfig, LayerRows, add_rows, layer_rows
from relax.lp.encode import encode_triangle
from relax.lp.runner import DEFAULT_LP_SOLVER, LpRunner
from relax.network import Network
from relax.lp.objectives import disjunct_objective
from relax.spec import Spec
from relax.protocol import BoundOutcome, VerifyOptions
from solvers.backend import SolveOptions

__all__ = ["krelu_method", "krelu_tighten", "krelu_disjunct_bounds", "config_from_options"]

log = logging.getLogger(__name__)


def _flag(value) -> bool:
    return str(value).lower() not in ("0", "false", "no", "off")


def config_from_options(options: VerifyOptions) -> KreluConfig:
    """Options ``krelu_k``, ``krelu_ns``, ``krelu_s``, ``krelu_hull``, ``krelu_max_groups``,
    ``krelu_refine``, ``krelu_first_layer`` (``krelu_bab``: branch and bound with the rows
    afterwards, read by :func:`krelu_method`)."""
    g = options.get
    max_groups = g("krelu_max_groups")
    return KreluConfig(k=int(g("krelu_k", 3) or 3), ns=int(g("krelu_ns", 20)), s=int(g("krelu_s", 1)),
                       hull=str(g("krelu_hull", "fast")),
                       max_groups=None if max_groups is None else int(max_groups),
                       refine=_flag(g("krelu_refine", True)),
                       first_layer=_flag(g("krelu_first_layer", True)))


def _tighten_layer(encoding, layer: int, bounds: Bounds, solver, deadline) -> Bounds:
    runner = LpRunner(encoding.program, solver, _remaining(deadline))
    M, g = encoding.expressions[layer]
    M = M.tocsr()
    l_k, u_k = np.array(bounds.lower[layer]), np.array(bounds.upper[layer])
    for i in bounds.unstable(layer):
        if deadline is not None and time.monotonic() > deadline:
            break
        row = M[i].toarray().ravel()
        l_k[i] = max(l_k[i], runner.lower_bound(row, g[i]))
        if l_k[i] < 0:
            u_k[i] = min(u_k[i], -runner.lower_bound(-row, -g[i]))
    lowers, uppers = list(bounds.lower), list(bounds.upper)
    lowers[layer], uppers[layer] = l_k, u_k
    return Bounds(tuple(lowers), tuple(uppers), bounds.method)


def krelu_tighten(network: Network, spec: Spec, bounds: Bounds, config: KreluConfig,
                  solver: str | None = None, deadline: float | None = None,
                  tighten: bool = True, tighten_from: int = 1,
                  feedback: Callable[[int, Bounds], Bounds | None] | None = None
                  ) -> tuple[Bounds, list[LayerRows]]:
    """Layer bounds (LP-tightened with k-ReLU rows when ``config.refine``) and every layer's rows.

    Layers ``k >= max(tighten_from, 1)`` are LP-tightened; with ``tighten=False`` the given
    bounds are kept and only the rows are computed.  ``feedback(k, bounds)``, called after
    layer ``k`` was LP-tightened, may return valid bounds that are at least as tight (e.g.
    alpha-CROWN over the tightened layers, which tightens the later layers cheaply), or
    ``None`` to stop tightening (the property is already decided)."""
    lower, upper = spec.lower, spec.upper
    layers: list[LayerRows] = []
    for k in range(len(network.activations)):
        if tighten and k > 0 and k >= tighten_from and (deadline is None or time.monotonic() < deadline):
            start = time.monotonic()
            encoding = encode_triangle(network, lower, upper, bounds, depth=k)
            if config.refine:
                encoding = add_rows(encoding, layers)
            before = len(bounds.unstable(k))
            bounds = _tighten_layer(encoding, k, bounds, solver, deadline)
            bounds = refine_bounds(network, lower, upper, bounds)
            log.info("layer %d: %d -> %d unstable (%.2f s)", k, before, len(bounds.unstable(k)),
                     time.monotonic() - start)
            if feedback is not None and k + 1 < len(network.activations):
                fed = feedback(k, bounds)
                if fed is None:
                    break
                bounds = fed
        if deadline is not None and time.monotonic() > deadline:
            break
        if k > 0 or config.first_layer:
            layers.append(layer_rows(network, lower, upper, bounds, k, config, deadline))
    return bounds, layers


def _remaining(deadline: float | None, parts: int = 1) -> SolveOptions:
    if deadline is None:
        return SolveOptions()
    return SolveOptions(time_limit=max(deadline - time.monotonic(), 0.5) / max(parts, 1))


def krelu_disjunct_bounds(network: Network, spec: Spec, bounds: Bounds, layers: list[LayerRows],
                          solver: str | None = None, deadline: float | None = None,
                          known: np.ndarray | None = None) -> np.ndarray:
    """Safe lower bounds on every disjunct's margin over the triangle LP plus the rows.

    With ``known`` (valid bounds, e.g. CROWN's) disjuncts already above zero are skipped
    and the rest are solved weakest first, stopping at the first that stays <= 0 (the
    property cannot be proved then); skipped disjuncts keep ``known`` (or ``-inf``)."""
    encoding = add_rows(encode_triangle(network, spec.lower, spec.upper, bounds), layers)
    out = np.full(len(spec.disjuncts), -np.inf) if known is None else np.array(known, float)
    order = range(len(spec.disjuncts)) if known is None else np.argsort(known)
    todo = [j for j in order if known is None or known[j] <= 0]
    for n, j in enumerate(todo):
        if deadline is not None and time.monotonic() > deadline:
            break
        objective = disjunct_objective(encoding, spec.disjuncts[j])
        runner = LpRunner(objective.program, solver, _remaining(deadline, len(todo) - n))
        out[j] = max(out[j], runner.lower_bound(objective.c, objective.c0))
        if known is not None and out[j] <= 0:
            break
    return out


def _branch(network, spec, bounds, layers, per_disjunct, solver, deadline):
    """LP branch and bound (:mod:`relax.search.lp_bab`) with the k-ReLU rows at every node, on the
    disjuncts the LP left open, weakest first, until the deadline."""
    from relax.search.lp_bab import branch_and_bound
    from relax.krelu.encode import add_rows

    per_disjunct = per_disjunct.copy()
    for j in np.argsort(per_disjunct):
        if per_disjunct[j] > 0 or (deadline is not None and time.monotonic() > deadline):
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
                       iterations: int = 20, deadline: float | None = None,
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
    if len(todo) == 0 or (deadline is not None and time.monotonic() > deadline):
        return per_disjunct, None
    outcome = torch_branch_and_bound(network, spec, todo, deadline, prior=bounds)
    log.info("torch branch and bound over LP-tightened bounds: bound %.4g (%s)", outcome.bound,
             outcome.reason or "complete")
    if outcome.counterexample is not None:
        return per_disjunct, outcome.counterexample
    per_disjunct[todo] = np.maximum(per_disjunct[todo], outcome.bound)
    return per_disjunct, None


def _share(deadline: float | None, fraction: float) -> float | None:
    return None if deadline is None else time.monotonic() + fraction * (deadline - time.monotonic())


def _require_relu(network: Network) -> None:
    """k-ReLU's hulls, its triangle LP and its alpha-CROWN bounds are those of the ReLU: on
    any other activation they would bound the wrong function."""
    if not network.is_relu:
        names = sorted({a.name for a in network.activations})
        raise UnsupportedNetworkError(f"method krelu needs a ReLU network, got activations {names}")


def krelu_method(network: Network, specs: Sequence[Spec], deadline, options: VerifyOptions):
    """CROWN, then intermediate bounds (alpha-CROWN plus LP on the last layers, or LP on
    every layer) with k-ReLU rows, then the k-ReLU LP per disjunct.

    Options (``options.extra``): ``krelu_bounds`` ("alpha" default, or "lp"),
    ``krelu_lp_layers`` (with "alpha": how many last hidden layers to LP-tighten, default
    all), ``krelu_alpha_iterations`` (default 20), ``krelu_feedback`` (with "alpha": Adam
    steps of alpha-CROWN re-run over the LP-tightened bounds after each layer, slopes
    warm-started; default 5, 0 turns it off), ``krelu_tighten_share`` (fraction of the
    remaining time for LP tightening, default 0.8), ``krelu_bab`` (true or "lp": LP branch and bound with the rows; "torch":
    alpha/beta-CROWN branch and bound from the LP-tightened layer bounds) and those of
    :func:`config_from_options`."""
    _require_relu(network)
    config = config_from_options(options)
    solver = options.solver or DEFAULT_LP_SOLVER
    tighten = options.get("intermediate", "lp") == "lp"
    source = str(options.get("krelu_bounds", "alpha"))
    if source not in ("alpha", "lp"):
        raise UsageError(f"krelu_bounds must be 'alpha' or 'lp', not {source!r}")
    lp_layers = options.get("krelu_lp_layers")
    lp_layers = len(network.activations) if lp_layers is None else int(lp_layers)
    outcomes = []
    for spec in specs:
        crown = bound_specs(network, [spec], "crown")[0]
        if crown.bound > 0:
            outcomes.append(BoundOutcome(crown.bound, solver))
            continue
        known = np.array(crown.disjunct_bounds, float)
        bounds, tighten_from, feedback = crown.layers, 1, None
        if source == "alpha":
            start = time.monotonic()
            open_disjuncts = np.flatnonzero(known <= 0)
            bounds, alpha, slopes = alpha_layer_bounds(
                network, spec, bounds, open_disjuncts,
                int(options.get("krelu_alpha_iterations", 20)), _share(deadline, 0.3),
                return_alpha=True)
            known = np.maximum(known, alpha)
            steps = int(options.get("krelu_feedback", 5) or 0)
            if steps > 0:
                feedback = _AlphaFeedback(network, spec, known, steps, slopes, open_disjuncts, deadline)
            tighten_from = len(network.activations) - lp_layers
            log.info("alpha-CROWN bounds %.2f s, disjunct bounds %s", time.monotonic() - start,
                     np.round(alpha, 3))
            if known.min() > 0:
                outcomes.append(BoundOutcome(float(known.min()), solver))
                continue
        share = float(options.get("krelu_tighten_share", 0.8))
        bounds, layers = krelu_tighten(network, spec, bounds, config, solver,
                                       _share(deadline, share), tighten, tighten_from, feedback)
        if known.min() > 0:  # the alpha feedback proved every disjunct
            outcomes.append(BoundOutcome(float(known.min()), solver))
            continue
        per_disjunct = krelu_disjunct_bounds(network, spec, bounds, layers, solver, deadline,
                                             known=known)
        counterexample = None
        bab = str(options.get("krelu_bab", False)).lower()
        if bab == "torch":
            per_disjunct, counterexample = _torch_branch(network, spec, bounds, per_disjunct,
                                                         deadline)
        elif _flag(bab):
            per_disjunct, counterexample = _branch(network, spec, bounds, layers, per_disjunct,
                                                   solver, deadline)
        rows = sum(r.b.size for r in layers)
        reason = "time limit reached" if deadline is not None and time.monotonic() > deadline else None
        log.info("k-ReLU (k=%d): %d rows over %d layers, bound %.4g", config.k, rows, len(layers),
                 per_disjunct.min())
        outcomes.append(BoundOutcome(float(per_disjunct.min()), solver, counterexample, reason))
    return outcomes
