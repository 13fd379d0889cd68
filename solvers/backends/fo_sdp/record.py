"""The record of one problem's run (what a :class:`Solution` is built from) and the
warm-start payload :class:`FoSdpState`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from solvers.solution import Status

__all__ = ["FoSdpState", "Record"]


@dataclass(frozen=True, eq=False)
class FoSdpState:
    """The warm-start payload: scaled duals ``params`` (layout of
    :class:`~solvers.backends.fo_sdp.problem.Layout`), the last eigenvector, and the
    run's record.  ``history[t]`` is the *estimated* dual value at iteration ``t`` (not
    a bound); ``checks`` holds the ``(iteration, rigorous bound)`` pairs of every
    ``check_every``-th iterate, ``check_seconds`` when each was taken."""

    sizes: tuple[int, ...]
    cuts: bool
    params: np.ndarray
    eigenvector: np.ndarray | None
    iterations: int
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    checks: tuple[tuple[int, float], ...] = ()
    check_seconds: tuple[float, ...] = ()


@dataclass
class Record:
    """One problem's run: start, best (by estimate) and last duals (numpy), the last
    eigenvector, estimates, rigorous checks, iterations and status."""

    start: np.ndarray
    last: np.ndarray
    best: np.ndarray | None = None
    best_value: float = -math.inf
    vector: np.ndarray | None = None
    history: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    iterations: int = 0
    status: Status = Status.ITERATION_LIMIT
    seconds: float = 0.0
    check_seconds: list = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)
    certified: tuple | None = None
    stage: str = ""                     # a line on an earlier stage (Burer-Monteiro)

    def add_check(self, iteration: int, bound: float, params=None) -> None:
        """Record a rigorous check and the seconds since ``t0`` (the run's start); with
        ``params`` (the duals checked), keep the best-certified ones in ``certified``
        as ``(bound, params)``."""
        self.checks.append((iteration, bound))
        self.check_seconds.append(time.perf_counter() - self.t0)
        if params is not None and (self.certified is None or bound > self.certified[0]):
            self.certified = (bound, params)
