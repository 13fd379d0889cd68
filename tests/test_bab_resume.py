"""The torch branch and bound resumed from an earlier search's open domains.

References: the exact MILP optimum (HiGHS through :func:`relax.search.milp.milp_margin`)
and the float64 check of counterexamples.  A search is cut after a fixed number of
deadline checks (deterministic, unlike a wall-clock limit), and a second search resumes
from its open domains, from the same root layer bounds or from LP-tightened ones (as
``exact`` does after the k-ReLU stage).  Checks: the cut search leaves a frontier and a
bound below the MILP's; the resumed search decides like the MILP (a bound in
``(0, exact]`` or a checked counterexample); a frontier of one disjunct leaves the
other disjuncts to their roots; ``exact`` with the search cut early before the stage
still agrees with the MILP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest

from relax import robustness
from relax.deadline import Deadline
from relax.krelu.options import KreluOptions
from relax.lp.method import intermediate_bounds
from relax.protocol import VerifyOptions
from relax.search.beta_crown import BabSettings, torch_branch_and_bound
from relax.search.exact import exact_one
from relax.search.milp import milp_margin
from relax.spec import Spec
from tests.helpers import random_network

#: small batches and no attack in the search, so that the cut search leaves open domains
SETTINGS = BabSettings(batch=2, attack_starts=0)


@dataclass(frozen=True)
class _Checks(Deadline):
    """A deadline that expires after ``limit`` checks of :attr:`expired`."""

    limit: int = 10
    count: list = field(default_factory=lambda: [0])

    @property
    def expired(self) -> bool:
        self.count[0] += 1
        return self.count[0] > self.limit


@cache
def _reference(seed: int):
    """The problem, its LP-tightened layer bounds and its exact margin (MILP)."""
    network, spec = _problem(seed)
    lp = intermediate_bounds(network, spec, "lp", None)
    exact = milp_margin(network, spec, lp)
    assert exact is not None
    return network, spec, lp, exact


def _problem(seed: int, widths=(5, 24, 24, 24, 3), eps=0.35):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return network, robustness(x, label, eps, num_classes=widths[-1])


@pytest.mark.parametrize("seed,checks", [(7, 60), (10, 60), (6, 20)])
@pytest.mark.parametrize("tightened", [False, True])
def test_a_resumed_search_decides_like_the_milp(seed, checks, tightened):
    network, spec, lp, exact = _reference(seed)
    cut = torch_branch_and_bound(network, spec, deadline=_Checks(checks), settings=SETTINGS)
    assert not cut.complete and cut.frontier is not None and len(cut.frontier) > 0
    assert cut.bound <= exact + 1e-7
    resumed = torch_branch_and_bound(network, spec, settings=SETTINGS,
                                     prior=lp if tightened else None, resume=cut.frontier)
    assert resumed.complete and resumed.frontier is None
    if exact > 0:
        assert resumed.counterexample is None and 0 < resumed.bound <= exact + 1e-7
    else:
        x = resumed.counterexample
        assert x is not None and spec.is_violated_by(x, network.forward(x))


@pytest.mark.parametrize("seed", [10, 6])
def test_a_frontier_of_one_disjunct_leaves_the_others_to_their_roots(seed):
    network, spec, _, exact = _reference(seed)
    cut = torch_branch_and_bound(network, spec, [0], deadline=_Checks(20), settings=SETTINGS)
    assert not cut.complete and cut.frontier.disjuncts == (0,)
    resumed = torch_branch_and_bound(network, spec, settings=SETTINGS, resume=cut.frontier)
    assert resumed.complete
    if exact > 0:
        assert 0 < resumed.bound <= exact + 1e-7
    else:
        x = resumed.counterexample
        assert x is not None and spec.is_violated_by(x, network.forward(x))


#: a weak stage (as in test_exact_tighten), so that the search after it has work left
WEAK = KreluOptions(k=2, alpha_iterations=1, feedback=0, intermediate="crown")


@pytest.mark.parametrize("seed,resume", [(7, False), (7, True), (10, True), (16, True)])
def test_exact_resumes_after_the_stage_and_agrees_with_the_milp(seed, resume):
    network, spec, _, exact = _reference(seed)
    outcome = exact_one(network, spec, Deadline.after(120), VerifyOptions(), "highs", krelu=WEAK,
                        search_first=1e-4, resume=resume)
    if exact > 0:
        assert outcome.counterexample is None and 0 < outcome.bound <= exact + 1e-6
    else:
        x = outcome.counterexample
        assert x is not None and spec.is_violated_by(x, network.forward(x))


@pytest.mark.parametrize("seed,checks", [(7, 60), (10, 60)])
def test_the_disjuncts_a_cut_search_closed_have_margins_above_its_closed_bound(seed, checks):
    """``Frontier.closed_disjuncts`` (which ``exact`` keeps closed after the stage): each
    such disjunct's exact margin (its own MILP) is at least the search's ``closed_min``,
    and the disjuncts with open domains are not among them."""
    network, spec, lp, _ = _reference(seed)
    cut = torch_branch_and_bound(network, spec, deadline=_Checks(checks), settings=SETTINGS)
    frontier = cut.frontier
    closed = frontier.closed_disjuncts()
    still_open = {frontier.disjuncts[i] for i in frontier.pool.column("disjunct").tolist()}
    assert closed and still_open and not still_open & set(closed)
    assert 0 < frontier.closed_min
    for j in closed:
        alone = Spec(spec.lower, spec.upper, (spec.disjuncts[j],))
        assert milp_margin(network, alone, lp) >= frontier.closed_min - 1e-7


@pytest.mark.parametrize("seed", [18, 26])
def test_exact_does_not_search_again_the_disjuncts_closed_before_the_stage(seed, monkeypatch):
    """The search before the stage is cut after 60 deadline checks, having closed a
    disjunct that the (weak) stage leaves open; the search after the stage is not handed
    that disjunct, and ``exact`` still agrees with the MILP."""
    import relax.search.exact as exact_module

    network, spec, _, exact = _reference(seed)
    real, calls = exact_module.torch_branch_and_bound, []

    def searches(network, spec, disjuncts, deadline, settings, *args, **kwargs):
        first = not calls
        outcome = real(network, spec, disjuncts, _Checks(60) if first else deadline, settings, *args, **kwargs)
        calls.append((list(disjuncts), outcome))
        return outcome

    monkeypatch.setattr(exact_module, "torch_branch_and_bound", searches)
    outcome = exact_one(network, spec, Deadline.after(120), VerifyOptions(), "highs", bab=SETTINGS,
                        krelu=WEAK, search_first=0.5)
    assert len(calls) == 2 and not calls[0][1].complete
    closed = calls[0][1].frontier.closed_disjuncts()
    assert closed and not set(calls[1][0]) & set(closed)
    if exact > 0:
        assert outcome.counterexample is None and 0 < outcome.bound <= exact + 1e-6
    else:
        x = outcome.counterexample
        assert x is not None and spec.is_violated_by(x, network.forward(x))
