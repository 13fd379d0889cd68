"""Backends declare optional abilities (session, solve_many) with defaults; LpRunner asks
for them instead of naming a solver, and gets the same bounds either way."""

from __future__ import annotations

import numpy as np

from relax.deadline import Deadline
from relax.lp.runner import LpRunner
from solvers.backend import Backend
from solvers.backends.highs import HighsBackend
from solvers.solution import Status
from tests.test_solvers import canonical_lp


class _Plain(HighsBackend):
    """HiGHS without a session: the default ability."""

    name = "plain-highs"

    def session(self, program, options=None):
        return Backend.session(self, program, options)


def test_default_abilities():
    plain = _Plain()
    assert plain.session(canonical_lp()) is None
    solutions = plain.solve_many([canonical_lp(), canonical_lp()])
    assert [s.status for s in solutions] == [Status.OPTIMAL, Status.OPTIMAL]
    assert HighsBackend().session(canonical_lp()) is not None


def test_runner_with_and_without_a_session_agree(monkeypatch):
    import solvers.registry as registry

    real = registry.get_solver
    monkeypatch.setattr(registry, "get_solver",
                        lambda name: _Plain() if name == "plain-highs" else real(name))
    rng = np.random.default_rng(0)
    hot = LpRunner(canonical_lp(), "highs", deadline=Deadline.after(60))
    cold = LpRunner(canonical_lp(), "plain-highs")
    assert hot._session is not None and cold._session is None
    for _ in range(5):
        c = rng.normal(size=3)
        assert abs(hot.lower_bound(c) - cold.lower_bound(c)) < 1e-7


def test_a_session_limit_counts_from_the_runs_so_far():
    """HiGHS compares ``time_limit`` with the run time of all solves of one object; a
    session's per-solve limit must therefore be offset by the run time so far."""
    session = HighsBackend().session(canonical_lp())
    for _ in range(3):
        session.set_time_limit(30.0)
        assert session.solve().status is Status.OPTIMAL
    limit = session._h.getOptionValue("time_limit")
    limit = limit[1] if isinstance(limit, tuple) else limit
    assert 30.0 < limit <= 30.0 + session._h.getRunTime()  # offset by the earlier runs
