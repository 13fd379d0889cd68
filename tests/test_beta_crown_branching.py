"""Branching rules of the torch branch and bound (relax.search.branching).

References: the exact MILP optimum (HiGHS, :func:`relax.search.milp.milp_margin`) for
the search's verdicts under each rule; for FSB's choice, an independent float64
CROWN evaluation of every candidate's two children: the chosen neuron must be an
unstable one among the top BaBSR candidates whose worse child is (up to float32
rounding) the best of them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relax import Verdict, robustness, verify
from relax.bounds import bound_specs
from relax.bounds.alpha import AlphaSettings, alpha_crown
from relax.lp.method import intermediate_bounds
from relax.search.beta_crown import BabSettings, _Search, root_alpha_bounds, torch_branch_and_bound
from relax.search.branching import choose_babsr, choose_fsb, split_children
from relax.protocol import VerifyOptions
from relax.search.exact import ExactOptions
from relax.search.milp import milp_margin
from tests.helpers import random_network


def _problem(seed, eps=0.2, widths=(4, 12, 12, 3)):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return network, robustness(x, label, eps, num_classes=widths[-1])


@pytest.mark.parametrize("branching", ["babsr", "fsb"])
@pytest.mark.parametrize("seed", range(4))
def test_each_rule_agrees_with_the_milp(seed, branching):
    network, spec = _problem(seed + 40)
    exact = milp_margin(network, spec, intermediate_bounds(network, spec, "lp", None))
    outcome = torch_branch_and_bound(network, spec, settings=BabSettings(batch=4, branching=branching))
    assert outcome.complete, outcome.reason
    if outcome.counterexample is not None:
        x = outcome.counterexample
        assert spec.is_violated_by(x, network.forward(x)) and exact <= 1e-7
    else:
        assert 0 < outcome.bound <= exact + 1e-7


def _root_batch(network, spec):
    """The search state and the root domains as the search's batch dict."""
    disjuncts = list(range(len(spec.disjuncts)))
    settings = BabSettings(root_iterations=5)
    root, C, d = root_alpha_bounds(network, spec, disjuncts, settings)
    search = _Search(network, spec, disjuncts, settings, root, C, d)
    return search, search.root_fields(root)


def _worse_child(search, batch, flat):
    """min over the two children of the float64 CROWN bound (parent slopes, no optimisation)."""
    children = split_children(batch, flat)
    result = alpha_crown(search.net, search.child_domains(children), AlphaSettings(iterations=0, refine=False),
                         alpha=children["alpha"], beta=children["beta"])
    m = len(flat)
    return torch.minimum(result.bound[:m], result.bound[m:])


def test_fsb_picks_the_best_unstable_candidate():
    differs = 0
    for seed in range(60, 63):
        differs += _check_fsb_choice(*_problem(seed, widths=(4, 10, 10, 10, 3)))
    assert differs > 0  # FSB is not BaBSR's first choice everywhere


def _check_fsb_choice(network, spec) -> int:
    """Assert FSB's choice on the root domains; how many differ from BaBSR's."""
    search, batch = _root_batch(network, spec)
    scores = torch.cat(batch["score"], dim=1)
    candidates = 3
    top = scores.topk(candidates, dim=1).indices
    chosen = choose_fsb(search, batch, candidates)
    assert torch.all(scores.gather(1, chosen[:, None]) >= 0)  # an unstable neuron
    assert torch.all((top == chosen[:, None]).any(1))
    assert torch.equal(choose_babsr(batch), top[:, 0])
    best = torch.stack([_worse_child(search, batch, top[:, j]) for j in range(candidates)]).max(0).values
    got = _worse_child(search, batch, chosen)
    assert torch.all(got >= best - 1e-4 * (1 + best.abs()))
    return int((chosen != top[:, 0]).sum())


@pytest.mark.parametrize("branching", ["babsr", "fsb"])
def test_exact_method_honours_the_branching_option(branching, monkeypatch):
    """``exact`` passes the rule and batch to the search and decides like the MILP."""
    import relax.search.exact as exact_module

    seen = []

    def spy(network, spec, disjuncts, deadline, settings, prior=None, **kwargs):
        seen.append(settings)
        return torch_branch_and_bound(network, spec, disjuncts, deadline, settings, prior, **kwargs)

    monkeypatch.setattr(exact_module, "torch_branch_and_bound", spy)
    for seed in range(15, 100):  # the first instance CROWN cannot decide but that holds
        network, spec = _problem(seed)
        if bound_specs(network, [spec])[0].bound < 0 < _milp(network, spec):
            break
    options = VerifyOptions(methods=(ExactOptions(branching=branching, batch=2),))
    result = verify(network, spec, "exact", timeout=30, options=options)
    assert result.verdict is Verdict.HOLDS and 0 < result.bound <= _milp(network, spec) + 1e-7
    assert [(s.branching, s.batch) for s in seen] == [(branching, 2)]


def _milp(network, spec):
    return milp_margin(network, spec, intermediate_bounds(network, spec, "lp", None))
