"""The ``exact`` verification method.

``milp``: PGD, then the big-M MILP with a MILP-capable solver (its optimal point is a
counterexample candidate, checked in float64), then ``exact`` in the remaining
time.  A MILP solver's own bound rests on its tolerances, so *holds* still comes
only from branch and bound with safe leaf bounds.

``exact``: a complete decision procedure.  PGD first (cheap counterexamples), then
CROWN; for ReLU networks then alpha-CROWN and batched beta-CROWN branch and bound
(:mod:`relax.search.beta_crown`, :attr:`ExactOptions.pipeline` ``"torch"``, the default).  The
``pipeline="lp"`` path (also the fallback for other activations, or when the
torch search runs out of memory for open domains) runs LP tightening and the LP per
disjunct, and finally LP branch and bound (:mod:`relax.search.lp_bab`) on the disjuncts the
LP could not close.  With enough time every disjunct is either closed by safe
bounds on all leaves or yields a float64-checked counterexample.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from relax.bounds import bound_specs
from relax.deadline import Deadline
from relax.lp.method import lp_disjunct_bounds
from relax.lp.runner import DEFAULT_LP_SOLVER
from relax.lp.tighten import tighten_bounds
from relax.network import Network
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason, ReasonKind, join_reasons
from relax.search.attack import pgd_attack
from relax.search.beta_crown import torch_branch_and_bound
from relax.search.lp_bab import branch_and_bound
from relax.spec import Spec

__all__ = ["exact_method", "ExactOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExactOptions(MethodOptions):
    """Options of the ``exact`` method."""

    pipeline: Literal["torch", "lp"] = option(
        "torch", "ReLU networks: torch (alpha/beta-CROWN branch and bound) or lp (LP tightening, "
                 "LP per disjunct, LP branch and bound)")


def exact_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
                 options: VerifyOptions) -> list[BoundOutcome]:
    """Attack, CROWN, LP, then branch and bound; see the module docstring."""
    solver = options.solver or DEFAULT_LP_SOLVER
    pipeline = options.of(ExactOptions).pipeline
    return [_exact_one(network, spec, deadline, options, solver, pipeline) for spec in specs]


def _exact_one(network, spec, deadline: Deadline, options: VerifyOptions, solver: str,
               pipeline: str = "torch", attack: bool = True) -> BoundOutcome:
    """One spec; ``attack=False`` when the caller already ran PGD on it (milp)."""
    cex = pgd_attack(network, spec, options.attack, deadline) if attack else None
    if cex is not None:
        return BoundOutcome(-math.inf, solver, cex)
    crown = bound_specs(network, [spec], "crown")[0]
    if crown.bound > 0:
        return BoundOutcome(crown.bound, solver)
    relu = all(a.name == "relu" for a in network.activations)
    if relu and pipeline == "torch":
        open_disjuncts = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
        outcome = torch_branch_and_bound(network, spec, open_disjuncts, deadline)
        log.info("torch branch and bound: bound %.4g after %d domains", outcome.bound, outcome.nodes)
        if outcome.complete or outcome.reason.kind is ReasonKind.TIME_LIMIT:
            closed = [float(b) for b in crown.disjunct_bounds if b > 0]
            # both bound the open disjuncts' minimum: never weaker than CROWN
            open_crown = min(float(crown.disjunct_bounds[j]) for j in open_disjuncts)
            bound = min([max(outcome.bound, open_crown)] + closed)
            return BoundOutcome(bound, "torch-bab", outcome.counterexample, reason=outcome.reason)
        log.info("torch branch and bound gave up (%s); LP path next", outcome.reason)
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
