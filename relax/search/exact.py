"""The ``exact`` verification method.

``milp``: PGD, then the big-M MILP with a MILP-capable solver (its optimal point is a
counterexample candidate, checked in float64), then ``exact`` in the remaining
time.  A MILP solver's own bound rests on its tolerances, so *holds* still comes
only from branch and bound with safe leaf bounds.

``exact``: a complete decision procedure.  PGD first (cheap counterexamples), then
CROWN; for ReLU networks then alpha-CROWN and batched beta-CROWN branch and bound
(:mod:`relax.search.beta_crown`, option ``pipeline="torch"``, the default).  The
``pipeline="lp"`` path (also the fallback for other activations, or when the
torch search runs out of memory for open domains) runs LP tightening and the LP per
disjunct, and finally LP branch and bound (:mod:`relax.search.lp_bab`) on the disjuncts the
LP could not close.  With enough time every disjunct is either closed by safe
bounds on all leaves or yields a float64-checked counterexample.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Sequence

import numpy as np

from relax.bounds import bound_specs
from relax.lp.method import lp_disjunct_bounds
from relax.lp.runner import DEFAULT_LP_SOLVER
from relax.lp.tighten import tighten_bounds
from relax.network import Network
from relax.protocol import BoundOutcome, VerifyOptions
from relax.search.attack import pgd_attack
from relax.search.beta_crown import torch_branch_and_bound
from relax.search.lp_bab import branch_and_bound
from relax.spec import Spec

__all__ = ["exact_method"]

log = logging.getLogger(__name__)


def exact_method(network: Network, specs: Sequence[Spec], deadline, options: VerifyOptions):
    """Attack, CROWN, LP, then branch and bound; see the module docstring."""
    solver = options.solver or DEFAULT_LP_SOLVER
    return [_exact_one(network, spec, deadline, options, solver) for spec in specs]


def _exact_one(network, spec, deadline, options, solver) -> BoundOutcome:
    cex = pgd_attack(network, spec, options.attack, deadline)
    if cex is not None:
        return BoundOutcome(-math.inf, solver, cex)
    crown = bound_specs(network, [spec], "crown")[0]
    if crown.bound > 0:
        return BoundOutcome(crown.bound, solver)
    relu = all(a.name == "relu" for a in network.activations)
    if relu and options.get("pipeline", "torch") == "torch":
        open_disjuncts = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0]
        outcome = torch_branch_and_bound(network, spec, open_disjuncts, deadline)
        log.info("torch branch and bound: bound %.4g after %d domains", outcome.bound, outcome.nodes)
        if outcome.complete or "time limit" in outcome.reason:
            closed = [float(b) for b in crown.disjunct_bounds if b > 0]
            bound = min([outcome.bound] + closed)
            return BoundOutcome(bound, "torch-bab", outcome.counterexample,
                                reason=outcome.reason or None)
        log.info("torch branch and bound gave up (%s); LP path next", outcome.reason)
    bounds = tighten_bounds(network, spec.lower, spec.upper, crown.layers, solver, deadline)
    per_disjunct = np.maximum(lp_disjunct_bounds(network, spec, bounds, solver, deadline),
                              crown.disjunct_bounds)
    reasons = []
    for j in np.argsort(per_disjunct):
        if per_disjunct[j] > 0:
            continue
        if deadline is not None and time.monotonic() > deadline:
            reasons.append("time limit reached")
            break
        outcome = branch_and_bound(network, spec, spec.disjuncts[j], bounds, solver, deadline)
        log.info("disjunct %d: bound %.4g after %d nodes", j, outcome.bound, outcome.nodes)
        if outcome.counterexample is not None:
            return BoundOutcome(outcome.bound, solver, outcome.counterexample)
        per_disjunct[j] = max(per_disjunct[j], outcome.bound)
        if outcome.reason:
            reasons.append(outcome.reason)
    return BoundOutcome(float(per_disjunct.min()), solver, reason="; ".join(reasons) or None)
