"""One clock: the :class:`Deadline` that :func:`relax.verify.verify` builds once and
every method, search and solver call receives.

A deadline is an absolute point on ``time.monotonic()``'s clock, or *never*
(``math.inf``), optionally brought forward by events (:meth:`Deadline.or_when`: work
running beside other work stops when that work ends).  Work is divided by handing out earlier deadlines
(:meth:`Deadline.share`, :meth:`Deadline.split`), never by converting seconds by hand;
a solver call gets its time limit from :meth:`Deadline.solve_options`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from dataclasses import dataclass, field

from solvers.backend import SolveOptions

__all__ = ["Deadline", "NEVER", "seconds_since_process_start"]

_IMPORTED = time.monotonic()

#: the smallest time limit handed to a solver (a solver refuses a limit of 0 s)
MIN_SOLVER_SECONDS = 1e-2


@dataclass(frozen=True)
class Deadline:
    """The instant ``at`` (``time.monotonic()`` seconds; ``math.inf``: no limit), or the
    moment one of ``events`` is set, whichever comes first."""

    at: float = math.inf
    events: tuple[threading.Event, ...] = field(default=(), compare=False)

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """``seconds`` from now (``None``: never)."""
        return NEVER if seconds is None else cls(time.monotonic() + float(seconds))

    @property
    def cancelled(self) -> bool:
        """Whether one of the events has been set."""
        return any(event.is_set() for event in self.events)

    def or_when(self, event: threading.Event) -> Deadline:
        """This deadline, or the moment ``event`` is set if that comes first."""
        return Deadline(self.at, self.events + (event,))

    def left(self) -> float:
        """Seconds until the deadline, at least 0 (``math.inf`` without a time limit)."""
        if self.cancelled:
            return 0.0
        return math.inf if self.at == math.inf else max(self.at - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self.cancelled or time.monotonic() >= self.at

    def share(self, fraction: float) -> Deadline:
        """The deadline ``fraction`` (in ``[0, 1]``) of the remaining time from now (with
        the same events)."""
        if self.at == math.inf:
            return self
        return Deadline(time.monotonic() + min(max(fraction, 0.0), 1.0) * self.left(), self.events)

    def split(self, parts: int) -> Deadline:
        """The deadline of the first of ``parts`` equal shares of the remaining time."""
        return self.share(1.0 / max(int(parts), 1))

    def earliest(self, other: Deadline) -> Deadline:
        """The earlier instant, with the events of both."""
        first, later = (self, other) if self.at <= other.at else (other, self)
        return first if not later.events else Deadline(first.at, first.events + later.events)

    def time_limit(self) -> float | None:
        """The solver time limit this deadline implies (``None``: no limit); at least
        :data:`MIN_SOLVER_SECONDS`, since solvers refuse 0 (check :attr:`expired` first)."""
        return None if self.left() == math.inf else max(self.left(), MIN_SOLVER_SECONDS)

    def solve_options(self, base: SolveOptions | None = None) -> SolveOptions:
        """``base`` (default: plain options) with its time limit cut to this deadline."""
        base = base or SolveOptions()
        limit = self.time_limit()
        if limit is None:
            return base
        if base.time_limit is not None:
            limit = min(limit, base.time_limit)
        return dataclasses.replace(base, time_limit=limit)

    def __repr__(self) -> str:
        events = f", {len(self.events)} events" if self.events else ""
        if self.at == math.inf:
            return f"Deadline(never{events})"
        return f"Deadline({self.left():.3f} s left{events})"


#: no time limit
NEVER = Deadline()


def seconds_since_process_start() -> float:
    """Seconds since this process started (interpreter start-up and imports included),
    from ``/proc`` on Linux; elsewhere since this module was first imported.  The
    command line subtracts it from ``--timeout``: its promise is about the wall time of
    the whole command, and start-up (importing torch, reading a network) takes seconds
    on a busy machine."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in ticks
        return max(0.0, uptime - started)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED
