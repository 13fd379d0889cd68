"""The torch branch and bound's progress lines (``logging`` at INFO)."""

from __future__ import annotations

import logging
import time

from relax.search.pool import DomainPool

__all__ = ["SearchProgress"]

log = logging.getLogger(__name__)

#: seconds between the search's progress lines (INFO: bound, open domains, domains per second)
PROGRESS_EVERY = 10.0


class SearchProgress:
    """Logs the search's state every :data:`PROGRESS_EVERY` seconds: its least bound (over
    the open domains and the closed ones), the open domains, the domains bounded since it
    started and their rate."""

    def __init__(self, nodes: int):
        self.start = self.last = time.monotonic()
        self.nodes = nodes

    def report(self, pool: DomainPool, closed_min: float, nodes: int, crowded: bool) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY or not log.isEnabledFor(logging.INFO):
            return
        self.last = now
        log.info("search %.0f s: bound %.4g, %d open domains%s, %d bounded (%.0f per second)",
                 now - self.start, min(pool.least_bound(), closed_min), len(pool),
                 " (largest bounds first)" if crowded else "", nodes - self.nodes,
                 (nodes - self.nodes) / (now - self.start))
