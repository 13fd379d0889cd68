"""The ``lp`` verification method: CROWN intermediate bounds, tightened by the LP layer
by layer, then the triangle LP of every disjunct; incomplete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from relax.bounds import Bounds, bound_specs
from relax.deadline import NEVER, Deadline
from relax.lp.encode import encode_triangle
from relax.lp.objectives import disjunct_objective
from relax.lp.runner import DEFAULT_LP_SOLVER, LpRunner
from relax.lp.tighten import tighten_bounds
from relax.network import Network
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason
from relax.spec import Spec

__all__ = ["lp_method", "LpOptions", "intermediate_bounds", "lp_disjunct_bounds"]


@dataclass(frozen=True)
class LpOptions(MethodOptions):
    """Options of the ``lp`` method."""

    intermediate: Literal["ibp", "crown", "lp"] = option(
        "lp", "hidden-layer bounds: ibp, crown, or lp (CROWN, then LP-tightened layer by layer)")


def intermediate_bounds(network: Network, spec: Spec, source: str, solver: str | None,
                        deadline: Deadline = NEVER) -> Bounds:
    """Hidden-layer bounds from ``ibp``, ``crown`` or ``lp`` (CROWN, then LP-tightened)."""
    base = "ibp" if source == "ibp" else "crown"
    bounds = bound_specs(network, [spec], base)[0].layers
    if source == "lp":
        bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, solver, deadline)
    return bounds


def lp_disjunct_bounds(network: Network, spec: Spec, bounds: Bounds, solver: str | None,
                       deadline: Deadline = NEVER, known: np.ndarray | None = None) -> np.ndarray:
    """Safe triangle-LP lower bounds on every disjunct's margin, each the max with ``known``
    (valid bounds, e.g. CROWN's; default ``-inf``).  Disjuncts left when ``deadline``
    passes keep ``known``; each LP gets the time left, split over the disjuncts to go."""
    encoding = encode_triangle(network, spec.lower, spec.upper, bounds)
    out = np.full(len(spec.disjuncts), -np.inf) if known is None else np.array(known, float)
    for j, disjunct in enumerate(spec.disjuncts):
        if deadline.expired:
            break
        objective = disjunct_objective(encoding, disjunct)
        share = deadline.split(len(spec.disjuncts) - j)
        runner = LpRunner(objective.program, solver, share.solve_options())
        out[j] = max(out[j], runner.lower_bound(objective.c, objective.c0))
    return out


def lp_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
              options: VerifyOptions) -> list[BoundOutcome]:
    """The triangle LP with intermediate bounds from :attr:`LpOptions.intermediate`.

    Never weaker than CROWN: each disjunct's bound is the max of its LP bound and its
    CROWN bound, and one the time limit leaves unsolved keeps CROWN's."""
    source = options.of(LpOptions).intermediate
    solver = options.solver or DEFAULT_LP_SOLVER
    outcomes = []
    for spec in specs:
        crown = bound_specs(network, [spec], "crown")[0]
        if crown.bound > 0 and not options.bound_only:
            outcomes.append(BoundOutcome(crown.bound, solver))
            continue
        bounds = crown.layers
        if source == "lp":
            bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, solver, deadline)
        elif source == "ibp":
            bounds = bound_specs(network, [spec], "ibp")[0].layers
        known = None if source == "ibp" else crown.disjunct_bounds
        per_disjunct = lp_disjunct_bounds(network, spec, bounds, solver, deadline, known)
        reason = Reason.time_limit() if deadline.expired else None
        outcomes.append(BoundOutcome(float(per_disjunct.min()), solver, reason=reason))
    return outcomes
