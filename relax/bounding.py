"""A method's own bound on every disjunct (``relax bound``).

``bound_report(network, specs, method, timeout)`` runs the method in bound mode
(:attr:`VerifyOptions.bound_only`: no early exit because a cheaper bound already
proves the property, no attack) on every disjunct of every spec as a spec of its
own, all in one call (so a method still batches them), and returns the lower
bound on each disjunct's margin ``max_j (A y - b)_j`` and their minimum, the
property's margin bound.  No verdict is formed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Sequence

from relax.deadline import Deadline
from relax.network import Network
from relax.protocol import VerifyOptions
from relax.spec import Spec

__all__ = ["BoundReport", "bound_report", "split_disjuncts"]


@dataclass(frozen=True)
class BoundReport:
    """``disjunct_bounds[s][d]``: the bound on disjunct ``d`` of spec ``s``."""

    method: str
    disjunct_bounds: tuple[tuple[float, ...], ...]
    solver: str | None
    seconds: float
    reasons: tuple[str, ...] = ()

    @property
    def bound(self) -> float:
        return min(min(row) for row in self.disjunct_bounds)

    def to_json(self) -> dict:
        def number(v: float):
            return v if math.isfinite(v) else None  # JSON has no infinities: null

        return {"method": self.method, "bound": number(self.bound),
                "specs": [{"bound": number(min(row)), "disjuncts": [number(v) for v in row]}
                          for row in self.disjunct_bounds],
                "solver": self.solver, "seconds": round(self.seconds, 6),
                **({"reason": "; ".join(self.reasons)} if self.reasons else {})}


def split_disjuncts(specs: Sequence[Spec]) -> list[Spec]:
    """Every disjunct of every spec as a one-disjunct spec over the same input set."""
    return [Spec(s.lower, s.upper, (d,), s.ball) for s in specs for d in s.disjuncts]


def bound_report(network: Network, specs: Sequence[Spec], method: str,
                 timeout: float | None = None, options: VerifyOptions = VerifyOptions()
                 ) -> BoundReport:
    """The method's bound on every disjunct (module docstring)."""
    from relax.errors import UsageError
    from relax.verify import BOUND_METHODS

    if method not in BOUND_METHODS:
        raise UsageError(f"unknown method {method!r}; choose from {', '.join(BOUND_METHODS)}")
    start = time.monotonic()
    for s in specs:
        s.check_fits(network.input_size, network.output_size)
    deadline = Deadline.after(timeout)
    outcomes = BOUND_METHODS[method](network, split_disjuncts(specs), deadline,
                                     replace(options, bound_only=True))
    values, rows = iter(float(o.bound) for o in outcomes), []
    for s in specs:
        rows.append(tuple(next(values) for _ in s.disjuncts))
    reasons = tuple(dict.fromkeys(str(o.reason) for o in outcomes if o.reason))
    solver = next((o.solver for o in outcomes if o.solver), None)
    return BoundReport(method, tuple(rows), solver, time.monotonic() - start, reasons)
