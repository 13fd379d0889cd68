"""alpha-CROWN and the batched beta-CROWN branch and bound against independent references.

References: the exact MILP optimum (HiGHS through :func:`relax.search.milp.milp_margin`) and
dense sampling on tiny random ReLU networks.  Checks: alpha-CROWN is never looser than
CROWN and never above the exact value; its intermediate bounds contain every sample;
branch and bound agrees with the MILP's sign, with real counterexamples; a time
limit gives an incomplete outcome with its reason.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from relax import Verdict, robustness, verify
from relax.deadline import Deadline
from relax.result import ReasonKind
from relax.search.beta_crown import BabSettings, root_alpha_bounds, torch_branch_and_bound
from relax.bounds import bound_specs
from relax.lp.method import intermediate_bounds
from relax.search.milp import milp_margin
from tests.helpers import random_network, sample_box


def _problem(seed, eps, widths=(4, 12, 12, 3)):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return rng, network, robustness(x, label, eps, num_classes=widths[-1])


def _exact(network, spec):
    return milp_margin(network, spec, intermediate_bounds(network, spec, "lp", None))


@pytest.mark.parametrize("seed", range(4))
def test_alpha_crown_lies_between_crown_and_the_exact_value(seed):
    rng, network, spec = _problem(seed, 0.25, widths=(4, 10, 10, 10, 3))
    crown = bound_specs(network, [spec], "crown")[0]
    disjuncts = list(range(len(spec.disjuncts)))
    root, _, _ = root_alpha_bounds(network, spec, disjuncts, BabSettings(root_iterations=20))
    alpha = root.bound.numpy()
    assert np.all(alpha >= crown.disjunct_bounds - 1e-9)
    # exact per-disjunct minima from the MILP of single-disjunct specs
    for j, disjunct in enumerate(spec.disjuncts):
        single = type(spec)(spec.lower, spec.upper, (disjunct,))
        exact = _exact(network, single)
        assert exact is not None and alpha[j] <= exact + 1e-7
    zs = network.pre_activations(sample_box(rng, spec.lower, spec.upper, 2000))
    for k in range(len(root.lower)):
        assert np.all(zs[k] >= root.lower[k].numpy().min(0) - 1e-9)
        assert np.all(zs[k] <= root.upper[k].numpy().max(0) + 1e-9)


def test_alpha_crown_is_strictly_tighter_somewhere():
    gains = []
    for seed in range(4):
        _, network, spec = _problem(seed, 0.25, widths=(4, 10, 10, 10, 3))
        crown = bound_specs(network, [spec], "crown")[0].disjunct_bounds
        root, _, _ = root_alpha_bounds(network, spec, range(len(spec.disjuncts)),
                                       BabSettings(root_iterations=20))
        gains.append(float(np.max(root.bound.numpy() - crown)))
    assert max(gains) > 1e-3


def test_root_refine_false_keeps_the_layer_bounds_it_starts_from():
    """``root_refine=False`` (the per-neuron search's root): the root's intermediate bounds
    are CROWN's, not re-bounded under its slopes; with refining they are tighter somewhere."""
    gains = []
    for seed in range(4):
        _, network, spec = _problem(seed, 0.25, widths=(4, 10, 10, 10, 3))
        crown = bound_specs(network, [spec], "crown")[0].layers
        disjuncts = range(len(spec.disjuncts))
        kept, _, _ = root_alpha_bounds(network, spec, disjuncts, BabSettings(root_refine=False))
        refined, _, _ = root_alpha_bounds(network, spec, disjuncts, BabSettings())
        for k in range(len(crown.lower)):
            np.testing.assert_allclose(kept.lower[k].numpy(), np.broadcast_to(crown.lower[k], kept.lower[k].shape))
            np.testing.assert_allclose(kept.upper[k].numpy(), np.broadcast_to(crown.upper[k], kept.upper[k].shape))
            gains.append(float(np.max(refined.lower[k].numpy() - crown.lower[k])))
    assert max(gains) > 1e-3


PLAIN = BabSettings(batch=2, root_iterations=0, iterations=0)  # plain CROWN: splits down to leaves


@pytest.mark.parametrize("seed,settings", [(s, BabSettings(batch=8)) for s in range(8)]
                         + [(s, PLAIN) for s in range(12, 18)]
                         + [(s, BabSettings(batch=8, root_refine=False)) for s in range(20, 26)])
def test_branch_and_bound_agrees_with_the_milp(seed, settings):
    _, network, spec = _problem(seed, 0.2, widths=(3, 6, 6, 3) if settings is PLAIN else (4, 12, 12, 3))
    exact = _exact(network, spec)
    outcome = torch_branch_and_bound(network, spec, settings=settings)
    assert outcome.complete, outcome.reason
    if outcome.counterexample is not None:
        x = outcome.counterexample
        assert spec.is_violated_by(x, network.forward(x)) and exact <= 1e-7
    else:
        assert 0 < outcome.bound <= exact + 1e-7


@pytest.mark.parametrize("threads,batch", [(1, 256), (2, 1024)])
def test_the_default_batch_follows_the_torch_threads_and_the_search_stays_exact(threads, batch):
    """``BabSettings().batch`` is ``None``: 256 domains per batch on one torch thread, 1024
    on more (``relax.search.budget.default_batch``); either way the search agrees with the MILP."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert BabSettings().domains_per_batch() == batch
        for seed in range(3):
            _, network, spec = _problem(seed + 40, 0.2)
            exact = _exact(network, spec)
            outcome = torch_branch_and_bound(network, spec)
            assert outcome.complete, outcome.reason
            if outcome.counterexample is None:
                assert 0 < outcome.bound <= exact + 1e-7
            else:
                x = outcome.counterexample
                assert spec.is_violated_by(x, network.forward(x)) and exact <= 1e-7
    finally:
        torch.set_num_threads(before)


def test_branch_and_bound_needs_splits_and_closes_them():
    """An instance where alpha-CROWN alone fails but the property holds."""
    for seed in range(15, 100):  # the search starts near the first such seed, to stay fast
        _, network, spec = _problem(seed, 0.2)
        root, _, _ = root_alpha_bounds(network, spec, range(len(spec.disjuncts)))
        if root.bound.min() < 0:
            exact = _exact(network, spec)
            if exact > 1e-3:
                break
    else:
        pytest.fail("no instance where alpha-CROWN fails but the property holds")
    outcome = torch_branch_and_bound(network, spec, settings=BabSettings(batch=4))
    assert outcome.complete and outcome.counterexample is None
    assert outcome.nodes > len(spec.disjuncts) and 0 < outcome.bound <= exact + 1e-7
    late = torch_branch_and_bound(network, spec, deadline=Deadline.after(0))
    assert not late.complete and late.reason.kind is ReasonKind.TIME_LIMIT
    assert late.bound <= exact + 1e-7 and late.counterexample is None


def test_exact_method_uses_the_torch_search_and_agrees_with_the_lp_path():
    for seed in range(6):
        _, network, spec = _problem(seed + 100, 0.2)
        exact = _exact(network, spec)
        if abs(exact) < 1e-4:
            continue
        result = verify(network, spec, "exact", timeout=30)
        assert result.verdict is (Verdict.HOLDS if exact > 0 else Verdict.VIOLATED)
        if result.verdict is Verdict.HOLDS:
            assert result.bound <= exact + 1e-7
            assert result.solver == "torch-bab" or result.bound == bound_specs(network, [spec])[0].bound
        else:
            x = result.counterexample
            assert spec.is_violated_by(x, network.forward(x))


def test_exact_method_time_limit_gives_unknown_with_the_reason():
    for seed in range(15, 100):
        _, network, spec = _problem(seed, 0.2)
        if bound_specs(network, [spec])[0].bound < 0 < _exact(network, spec):
            break
    result = verify(network, spec, "exact", timeout=1e-9)
    assert result.verdict is Verdict.UNKNOWN and "time limit" in result.reason


def test_root_bounds_are_float64():
    _, network, spec = _problem(0, 0.2)
    root, C, _ = root_alpha_bounds(network, spec, [0])
    assert root.bound.dtype == torch.float64 and C.dtype == torch.float64
