"""The torch branch and bound near its memory limit, and ``exact`` after a search that
gave up for memory.

References: the exact MILP optimum (HiGHS, :func:`relax.search.milp.milp_margin`) and the
float64 check of counterexamples.
"""

from __future__ import annotations

import numpy as np
import pytest

from relax import robustness
from relax.deadline import Deadline
from relax.lp.method import intermediate_bounds
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason, ReasonKind
from relax.search.beta_crown import BabSettings, torch_branch_and_bound
from relax.search.exact import exact_one
from relax.search.milp import milp_margin
from relax.search.pool import DomainPool
from tests.helpers import random_network


def _problem(seed: int, widths=(5, 24, 24, 24, 3), eps=0.35):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    spec = robustness(x, label, eps, num_classes=widths[-1])
    return network, spec, milp_margin(network, spec, intermediate_bounds(network, spec, "lp", None))


@pytest.mark.parametrize("seed", [10, 16, 18])
def test_a_crowded_search_still_decides_like_the_milp(seed, monkeypatch):
    """Past 2 open domains the search splits the largest bounds first (14-279 times on
    these: 2 hold, 1 violated); it must neither give up (limit 200) nor decide differently."""
    network, spec, exact = _problem(seed)
    highest, pop_highest = [], DomainPool.pop_highest
    monkeypatch.setattr(DomainPool, "pop_highest", lambda pool, count: highest.append(count) or pop_highest(pool, count))
    crowded = BabSettings(batch=2, attack_starts=0, max_domains=200, crowded=0.01)
    outcome = torch_branch_and_bound(network, spec, settings=crowded)
    assert len(highest) >= 10
    assert outcome.complete, outcome.reason
    if exact > 0:
        assert outcome.counterexample is None and 0 < outcome.bound <= exact + 1e-7
    else:
        x = outcome.counterexample
        assert x is not None and spec.is_violated_by(x, network.forward(x))


def test_exact_keeps_the_search_bound_when_the_lp_path_after_it_is_weaker(monkeypatch):
    import relax.search.exact as exact_module

    network, spec, exact = _problem(7)
    gave_up = torch_branch_and_bound(network, spec, settings=BabSettings(max_domains=1))
    assert not gave_up.complete and gave_up.reason.kind is ReasonKind.RESOURCE_LIMIT
    weak = BoundOutcome(-1e9, "highs", reason=Reason.time_limit())
    monkeypatch.setattr(exact_module, "_lp_path", lambda *args: weak)
    outcome = exact_one(network, spec, Deadline.after(60), VerifyOptions(), "highs", bab=BabSettings(max_domains=1))
    assert -1e9 < outcome.bound <= exact + 1e-7 and outcome.reason == weak.reason


def test_the_pool_memory_follows_the_memory_available(monkeypatch, tmp_path):
    """``max_bytes=None``: a share of ``MemAvailable``, clipped to [1 GiB, 4 GiB]; 1 GiB where
    ``/proc/meminfo`` cannot be read; an explicit ``max_bytes`` wins."""
    import builtins

    import relax.search.budget as budget

    real_open = builtins.open

    def meminfo(kib):
        path = tmp_path / f"meminfo_{kib}"
        path.write_text(f"MemTotal: 99999999 kB\nMemAvailable: {kib} kB\n")
        return lambda name, *args, **kw: real_open(path if name == "/proc/meminfo" else name, *args, **kw)

    monkeypatch.setattr(builtins, "open", meminfo(20 * 2 ** 20))  # 20 GiB available
    assert BabSettings().pool_bytes() == int(budget.POOL_MEMORY_SHARE * 20 * 2 ** 30)
    assert 2 ** 30 < BabSettings().pool_bytes() < 4 * 2 ** 30
    assert BabSettings(max_bytes=12345).pool_bytes() == 12345
    monkeypatch.setattr(builtins, "open", meminfo(2 * 2 ** 20))  # 2 GiB: the floor
    assert BabSettings().pool_bytes() == 2 ** 30
    monkeypatch.setattr(builtins, "open", meminfo(200 * 2 ** 20))  # 200 GiB: the cap
    assert BabSettings().pool_bytes() == 4 * 2 ** 30

    def unreadable(name, *args, **kw):
        if name == "/proc/meminfo":
            raise OSError("no /proc here")
        return real_open(name, *args, **kw)

    monkeypatch.setattr(builtins, "open", unreadable)
    assert BabSettings().pool_bytes() == 2 ** 30
