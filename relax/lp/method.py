"""The ``lp`` verification method: CROWN intermediate bounds, tightened by the LP layer
by layer, then the triangle LP of every disjunct; incomplete."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from relax.bounds import Bounds, bound_specs
from relax.lp.encode import encode_triangle
from relax.lp.objectives import disjunct_objective
from relax.lp.runner import DEFAULT_LP_SOLVER, LpRunner
from relax.lp.tighten import tighten_bounds
from relax.network import Network
from relax.protocol import BoundOutcome, VerifyOptions
from relax.spec import Spec

__all__ = ["lp_method", "intermediate_bounds", "lp_disjunct_bounds"]


def intermediate_bounds(network: Network, spec: Spec, source: str, solver: str | None,
                        deadline: float | None) -> Bounds:
    """Hidden-layer bounds from ``ibp``, ``crown`` or ``lp`` (CROWN, then LP-tightened)."""
    base = "ibp" if source == "ibp" else "crown"
    bounds = bound_specs(network, [spec], base)[0].layers
    if source == "lp":
        bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, solver, deadline)
    return bounds


def lp_disjunct_bounds(network: Network, spec: Spec, bounds: Bounds, solver: str | None,
                       deadline: float | None = None) -> np.ndarray:
    """Safe triangle-LP lower bounds on every disjunct's margin."""
    encoding = encode_triangle(network, spec.lower, spec.upper, bounds)
    out = np.full(len(spec.disjuncts), -np.inf)
    for j, disjunct in enumerate(spec.disjuncts):
        if deadline is not None and time.monotonic() > deadline:
            break
        objective = disjunct_objective(encoding, disjunct)
        runner = LpRunner(objective.program, solver)
        out[j] = runner.lower_bound(objective.c, objective.c0)
    return out


def lp_method(network: Network, specs: Sequence[Spec], deadline, options: VerifyOptions):
    """The triangle LP with LP-tightened intermediate bounds (``intermediate`` option)."""
    source = options.get("intermediate", "lp")
    solver = options.solver or DEFAULT_LP_SOLVER
    outcomes = []
    for spec in specs:
        bounds = intermediate_bounds(network, spec, source, solver, deadline)
        per_disjunct = lp_disjunct_bounds(network, spec, bounds, solver, deadline)
        reason = "time limit reached" if np.isinf(per_disjunct).any() else None
        outcomes.append(BoundOutcome(float(per_disjunct.min()), solver, reason=reason))
    return outcomes
