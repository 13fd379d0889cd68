"""The types shared by verify() and the bound methods it dispatches to."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from relax.search.attack import AttackOptions

__all__ = ["VerifyOptions", "BoundOutcome"]


@dataclass(frozen=True)
class VerifyOptions:
    """Advanced options; :func:`verify` takes the common ones as arguments."""

    solver: str | None = None
    device: str = "cpu"
    #: compute the method's own bound on every disjunct: no early exit when a cheaper
    #: bound already proves the property, no attack (``relax bound``; tightness tables)
    bound_only: bool = False
    attack: AttackOptions = field(default_factory=AttackOptions)
    extra: tuple[tuple[str, object], ...] = ()

    def get(self, key: str, default=None):
        return dict(self.extra).get(key, default)


@dataclass(frozen=True)
class BoundOutcome:
    """A method's answer for one spec: a sound lower bound (``-inf`` if none), and
    optionally a counterexample it found itself, the solver used and a reason."""

    bound: float
    solver: str | None = None
    counterexample: np.ndarray | None = None
    reason: str | None = None
