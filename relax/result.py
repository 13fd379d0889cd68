"""The answer of a verification: a verdict with its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

__all__ = ["Verdict", "Result"]


class Verdict(str, Enum):
    HOLDS = "holds"
    VIOLATED = "violated"
    UNKNOWN = "unknown"


@dataclass(frozen=True, eq=False)
class Result:
    """``holds`` comes with ``bound > 0`` (a sound lower bound on the margin),
    ``violated`` with a float64-checked ``counterexample``, ``unknown`` with a ``reason``."""

    verdict: Verdict
    bound: float | None
    method: str
    solver: str | None
    seconds: float
    counterexample: np.ndarray | None = None
    reason: str | None = None

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
