"""The answer of a verification: a verdict with its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

__all__ = ["Verdict", "Result", "Reason", "ReasonKind"]


#: a margin bound says *holds* only above this (it absorbs float64 rounding in the bound
#: computation itself); the searches close a domain only above it too, so that a search
#: that closes every domain proves the property
FLOAT_SLACK = 1e-7


class Verdict(str, Enum):
    HOLDS = "holds"
    VIOLATED = "violated"
    UNKNOWN = "unknown"


class ReasonKind(str, Enum):
    """Why a method's answer is not final (or how it was obtained), as data."""

    TIME_LIMIT = "time limit"          # stopped at the deadline; the bound so far is kept
    NOT_PROVED = "not proved"          # the bound is not positive and no counterexample was found
    SOLVER_FAILED = "solver failed"    # a solver returned no usable bound
    NOT_APPLICABLE = "not applicable"  # the method cannot decide this input (e.g. a leaf it cannot close)
    RESOURCE_LIMIT = "resource limit"  # memory or domain budget exhausted
    RELAXED_INPUT = "relaxed input"    # the bound holds over a larger region than asked


@dataclass(frozen=True)
class Reason:
    """A :class:`ReasonKind` with the human message shown to users."""

    kind: ReasonKind
    message: str

    @classmethod
    def time_limit(cls, message: str = "time limit reached") -> "Reason":
        return cls(ReasonKind.TIME_LIMIT, message)

    def __str__(self) -> str:
        return self.message


def join_reasons(reasons) -> str | None:
    """The human text of several reasons (``None`` if there are none), duplicates once."""
    texts = list(dict.fromkeys(str(r) for r in reasons if r))
    return "; ".join(texts) or None


@dataclass(frozen=True, eq=False)
class Result:
    """``holds`` comes with ``bound > 0`` (a sound lower bound on the margin),
    ``violated`` with a float64-checked ``counterexample``, ``unknown`` with a ``reason``
    (human text, for the CLI and JSON) and ``reasons`` (the same as data)."""

    verdict: Verdict
    bound: float | None
    method: str
    solver: str | None
    seconds: float
    counterexample: np.ndarray | None = None
    reason: str | None = None
    reasons: tuple[Reason, ...] = ()

    def to_json(self) -> dict:
        out = {
            "verdict": self.verdict.value,
            "bound": None if self.bound is None or not np.isfinite(self.bound) else float(self.bound),
            "method": self.method,
            "solver": self.solver,
            "seconds": round(self.seconds, 6),
        }
        if self.counterexample is not None:
            out["counterexample"] = [float(v) for v in np.ravel(self.counterexample)]
        if self.reason is not None:
            out["reason"] = self.reason
        return out
