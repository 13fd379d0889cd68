"""The types shared by verify() and the bound methods it dispatches to."""

from __future__ import annotations

from dataclasses import dataclass, field, is_dataclass
from typing import TypeVar

import numpy as np

from relax.errors import UsageError
from relax.result import Reason
from relax.search.attack import AttackOptions

__all__ = ["VerifyOptions", "BoundOutcome"]

T = TypeVar("T")


@dataclass(frozen=True)
class VerifyOptions:
    """Advanced options; :func:`verify` takes the common ones as arguments."""

    solver: str | None = None
    device: str = "cpu"
    #: compute the method's own bound on every disjunct: no early exit when a cheaper
    #: bound already proves the property, no attack (``relax bound``; tightness tables)
    bound_only: bool = False
    attack: AttackOptions = field(default_factory=AttackOptions)
    #: typed options of the methods (``LpOptions(...)``, ``KreluOptions(...)``; at most one
    #: of each type); a method without an entry uses its defaults (see :mod:`relax.options`)
    methods: tuple[object, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(self.methods))
        kinds = [type(m) for m in self.methods]
        if not all(is_dataclass(m) for m in self.methods) or len(set(kinds)) != len(kinds):
            raise UsageError("VerifyOptions.methods takes at most one options object per method")

    def of(self, kind: type[T]) -> T:
        """This method's options: the ``kind`` instance in :attr:`methods`, or ``kind()``."""
        return next((m for m in self.methods if type(m) is kind), None) or kind()


@dataclass(frozen=True)
class BoundOutcome:
    """A method's answer for one spec: a sound lower bound (``-inf`` if none), and
    optionally a counterexample it found itself, the solver used and a reason (data:
    :class:`relax.result.Reason`; e.g. the time limit cut the method short)."""

    bound: float
    solver: str | None = None
    counterexample: np.ndarray | None = None
    reason: Reason | None = None
