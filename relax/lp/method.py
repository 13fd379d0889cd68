"""The ``lp`` verification method: CROWN intermediate bounds, tightened by the LP layer
by layer, then the triangle LP of every disjunct; incomplete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from relax.bounds import Bounds, bound_specs
from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.lp.encode import LpEncoding, encode_triangle
from relax.lp.objectives import disjunct_objective
from relax.lp.runner import DEFAULT_LP_SOLVER, LpRunner
from relax.lp.tighten import tighten_bounds
from relax.network import Network
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason
from relax.spec import Spec

__all__ = ["lp_method", "LpOptions", "intermediate_bounds", "lp_disjunct_bounds", "disjunct_bounds"]


@dataclass(frozen=True)
class LpOptions(MethodOptions):
    """Options of the ``lp`` method."""

    intermediate: Literal["ibp", "crown", "lp"] = option(
        "lp", "hidden-layer bounds: ibp, crown, or lp (CROWN, then LP-tightened layer by layer)")
    tighten_share: float = option(0.8, "with intermediate=lp: fraction of the time left for the "
                                       "LP tightening (the rest: the disjuncts' LPs)")

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.tighten_share <= 1:
            raise UsageError(f"lp.tighten_share must be in (0, 1], got {self.tighten_share}")


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
    """Safe triangle-LP lower bounds on every disjunct's margin (:func:`disjunct_bounds`
    over the triangle LP, every disjunct solved)."""
    encoding = encode_triangle(network, spec.lower, spec.upper, bounds)
    return disjunct_bounds(encoding, spec, solver, deadline, known, early_exit=False)


def disjunct_bounds(encoding: LpEncoding, spec: Spec, solver: str | None,
                    deadline: Deadline = NEVER, known: np.ndarray | None = None,
                    early_exit: bool = True) -> np.ndarray:
    """Safe lower bounds on every disjunct's margin over the LP ``encoding`` (the triangle
    LP, possibly with extra valid rows), each the max with ``known`` (valid bounds, e.g.
    CROWN's; default ``-inf``).

    Disjuncts are solved weakest ``known`` first; with ``early_exit`` those ``known``
    already proves are skipped and solving stops at the first that stays ``<= 0`` (the
    property is not proved then).  Each LP gets the time left split over the disjuncts
    still to go; disjuncts left at the deadline keep ``known``."""
    n = len(spec.disjuncts)
    out = np.full(n, -np.inf) if known is None else np.array(known, float)
    order = np.argsort(out, kind="stable")
    todo = [j for j in order if not (early_exit and out[j] > 0)]
    for done, j in enumerate(todo):
        if deadline.expired:
            break
        objective = disjunct_objective(encoding, spec.disjuncts[j])
        runner = LpRunner(objective.program, solver, deadline=deadline.split(len(todo) - done))
        out[j] = max(out[j], runner.lower_bound(objective.c, objective.c0))
        if early_exit and out[j] <= 0:
            break
    return out


def lp_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
              options: VerifyOptions) -> list[BoundOutcome]:
    """The triangle LP with intermediate bounds from :attr:`LpOptions.intermediate`.

    Never weaker than CROWN: each disjunct's bound is the max of its LP bound and its
    CROWN bound, and one the time limit leaves unsolved keeps CROWN's."""
    settings = options.of(LpOptions)
    source = settings.intermediate
    solver = options.solver or DEFAULT_LP_SOLVER
    outcomes = []
    for spec in specs:
        crown = bound_specs(network, [spec], "crown")[0]
        if crown.bound > 0 and not options.bound_only:
            outcomes.append(BoundOutcome(crown.bound, solver))
            continue
        bounds, tightening = crown.layers, deadline.share(settings.tighten_share)
        if source == "lp":
            bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, solver, tightening)
        elif source == "ibp":
            bounds = bound_specs(network, [spec], "ibp")[0].layers
        known = None if source == "ibp" else crown.disjunct_bounds
        per_disjunct = lp_disjunct_bounds(network, spec, bounds, solver, deadline, known)
        cut = deadline.expired or (source == "lp" and tightening.expired)
        reason = Reason.time_limit("time limit reached (LP tightening or disjunct LPs cut short)") \
            if cut else None
        outcomes.append(BoundOutcome(float(per_disjunct.min()), solver, reason=reason))
    return outcomes
