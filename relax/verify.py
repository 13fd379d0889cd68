"""Verification entry point: bound the margin, try to falsify, return a verdict.

``verify(network, spec, method)``:

1. a bound method gives a sound lower bound on the property's margin; *holds*
   is said only when it exceeds :data:`FLOAT_SLACK` (which absorbs float64
   rounding in the bound computation itself);
2. otherwise PGD looks for a counterexample, which is accepted only after a
   float64 forward pass confirms it (*violated*);
3. otherwise the verdict is *unknown* with the reason.

A method is a :class:`BoundMethod`: a function from (network, specs,
:class:`~relax.deadline.Deadline`, options) to one lower bound per spec.  New methods
register in :data:`BOUND_METHODS` (and their options class in
:data:`relax.options.METHOD_OPTIONS`).  The deadline is built once here, from
``timeout``, and passed down to every step and solver call.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable, Sequence

from relax.bounds import bound_specs
from relax.deadline import Deadline
from relax.errors import UsageError
from relax.network import Network
from relax.result import FLOAT_SLACK, Reason, ReasonKind, Result, Verdict, join_reasons
from relax.search.attack import pgd_attack
from relax.spec import Spec
from relax.protocol import BoundOutcome, VerifyOptions

__all__ = ["verify", "VerifyOptions", "BOUND_METHODS", "FLOAT_SLACK", "BoundOutcome"]

log = logging.getLogger(__name__)



BoundMethod = Callable[[Network, Sequence[Spec], Deadline, VerifyOptions], list[BoundOutcome]]


def _bound_propagation(name: str) -> BoundMethod:
    def method(network, specs, deadline, options):
        results = bound_specs(network, list(specs), name, device=options.device)
        return [BoundOutcome(r.bound) for r in results]

    method.__doc__ = f"{name.upper()} margin bounds (incomplete)."
    return method


def _lazy(module: str, function: str) -> BoundMethod:
    """A method whose module (and its solver imports) loads on first use."""

    def method(network, specs, deadline, options):
        import importlib

        return getattr(importlib.import_module(module), function)(network, specs, deadline, options)

    method.__doc__ = f"{module}.{function}"
    return method


BOUND_METHODS: dict[str, BoundMethod] = {
    "ibp": _bound_propagation("ibp"),
    "crown": _bound_propagation("crown"),
    "alpha-crown": _lazy("relax.search.alpha_method", "alpha_crown_method"),
    "lp": _lazy("relax.lp.method", "lp_method"),
    "exact": _lazy("relax.search.exact", "exact_method"),
    "milp": _lazy("relax.search.milp", "milp_method"),
    "sdp": _lazy("relax.sdp.method", "sdp_method"),
    "sdp-dual1": _lazy("relax.sdp.dual1", "sdp_dual1_method"),
    "crc": _lazy("relax.certificates.crc", "crc_method"),
    "krelu": _lazy("relax.krelu.method", "krelu_method"),
}


def verify(
    network: Network,
    spec: Spec | Sequence[Spec],
    method: str = "crown",
    timeout: float | None = None,
    options: VerifyOptions = VerifyOptions(),
) -> Result:
    """Decide whether ``spec`` (or every spec of a sequence) holds for ``network``."""
    start = time.monotonic()
    specs = [spec] if isinstance(spec, Spec) else list(spec)
    if method not in BOUND_METHODS:
        raise UsageError(f"unknown method {method!r}; choose from {', '.join(BOUND_METHODS)}")
    if timeout is not None and not (timeout > 0 and not math.isnan(timeout)):
        raise UsageError(f"timeout must be positive, got {timeout}")
    for s in specs:
        s.check_fits(network.input_size, network.output_size)
    deadline = Deadline.after(timeout)
    if not specs:  # every unsafe region was empty (for example, an empty input box)
        return Result(Verdict.HOLDS, float("inf"), method, None, time.monotonic() - start,
                      reason="the property's unsafe set is empty")
    outcomes = BOUND_METHODS[method](network, specs, deadline, options)
    verdict, counterexample, reasons = _decide(network, specs, outcomes, deadline, options)
    bound = min(o.bound for o in outcomes)
    solver = next((o.solver for o in outcomes if o.solver), None)
    seconds = time.monotonic() - start
    return Result(verdict, bound, method, solver, seconds, counterexample,
                  join_reasons(reasons), tuple(reasons))


def _decide(network, specs, outcomes, deadline: Deadline, options: VerifyOptions):
    """Holds if every bound clears the slack; else look for a checked counterexample
    (PGD unless ``options.bound_only``).  Returns (verdict, counterexample, reasons)."""
    if all(o.bound > FLOAT_SLACK for o in outcomes):
        return Verdict.HOLDS, None, []
    for spec, outcome in zip(specs, outcomes):
        candidates = [outcome.counterexample] if outcome.counterexample is not None else []
        if outcome.bound <= FLOAT_SLACK and not options.bound_only:
            candidates.append(pgd_attack(network, spec, options.attack, deadline))
        for x in candidates:
            if x is not None and spec.is_violated_by(x, network.forward(x)):
                return Verdict.VIOLATED, x, []
    reasons = [o.reason for o in outcomes if o.reason]
    if deadline.expired and not any(r.kind is ReasonKind.TIME_LIMIT for r in reasons):
        reasons.append(Reason.time_limit())
    worst = min(o.bound for o in outcomes)
    reasons.append(Reason(ReasonKind.NOT_PROVED, f"margin bound {worst:.4g} is not positive "
                                                 "and no counterexample was found"))
    return Verdict.UNKNOWN, None, reasons
