"""The search beside the k-ReLU stage starts again from each layer the stage tightens.

References: sampled pre-activations (every published bound must contain them), the exact
MILP optimum (HiGHS through :func:`relax.search.milp.milp_margin`) and the float64 check
of counterexamples.  Checks:

- ``krelu_tighten`` publishes the bounds after every tightened layer but the last (and,
  with ``publish_every``, a layer's bounds so far while it is being tightened), each
  containing 4000 sampled inputs' pre-activations and no looser than CROWN's;
- ``exact`` with the stage in a thread (a stand-in stage that publishes LP-tightened
  bounds and waits) starts a second search from those bounds, resumed from the first
  search's open domains or from its root, and decides like the MILP (the attack is off,
  so that a violated instance reaches the searches too);
- a resumed frontier drops the domains split active on a neuron dead under the new root
  bounds (:meth:`relax.search.live.LiveNeurons.contradicted`), and only those.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from relax.bounds import bound_specs
from relax.deadline import Deadline
from relax.krelu.method import krelu_tighten
from relax.krelu.options import KreluOptions
from relax.protocol import VerifyOptions
from relax.search.exact import exact_one
from relax.search.live import LiveNeurons
from tests.helpers import sample_box
from tests.test_bab_resume import SETTINGS, _reference


@pytest.mark.parametrize("seed,within", [(7, False), (10, False), (7, True), (10, True)])
def test_the_stage_publishes_sound_bounds_after_each_tightened_layer(seed, within):
    """With ``publish_every`` below one LP's time, also after every neuron but a layer's
    last (its bounds so far)."""
    network, spec, _, _ = _reference(seed)
    crown = bound_specs(network, [spec], "crown")[0].layers
    published = []
    config = KreluOptions(k=2, publish_every=1e-9 if within else None)
    final, _ = krelu_tighten(network, spec, crown, config, "highs", progress=published.append)
    hidden = len(network.activations)
    if within:  # layers 1 .. hidden-1 publish within, the last layer too
        assert len(published) > hidden - 2
        for k in range(hidden):  # the stage's final bounds are no looser than any it handed over
            assert (final.lower[k] >= published[-1].lower[k] - 1e-9).all()
            assert (final.upper[k] <= published[-1].upper[k] + 1e-9).all()
    else:
        assert len(published) == hidden - 2  # layers 1 .. hidden-2; not layer 0, not the last
    xs = sample_box(np.random.default_rng(seed), spec.lower, spec.upper, 4000)
    z = [np.stack(layer) for layer in zip(*(network.pre_activations(x) for x in xs))]
    for bounds in published:
        for k in range(hidden):
            assert (z[k] >= bounds.lower[k] - 1e-7).all() and (z[k] <= bounds.upper[k] + 1e-7).all()
            assert (bounds.lower[k] >= crown.lower[k] - 1e-9).all()
            assert (bounds.upper[k] <= crown.upper[k] + 1e-9).all()


@pytest.mark.parametrize("seed,resume", [(7, False), (7, True), (10, True), (16, False)])
def test_the_search_beside_the_stage_starts_again_from_its_bounds(seed, resume, monkeypatch):
    """The stand-in stage publishes the LP-tightened bounds as soon as the first search
    has started, and ends only once the second search has returned."""
    import relax.search.exact as exact_module

    network, spec, lp, exact = _reference(seed)
    real, calls = exact_module.torch_branch_and_bound, []
    started, second_done = threading.Event(), threading.Event()

    def searches(network, spec, disjuncts, deadline, settings, prior=None, resume=None):
        calls.append((prior, resume))
        if len(calls) == 1:
            started.set()
            assert second_done.wait(0) is False
            while not deadline.expired:  # until the stage publishes
                threading.Event().wait(0.01)
        outcome = real(network, spec, disjuncts, deadline, settings, prior, resume=resume)
        calls[-1] += (outcome,)
        if len(calls) == 2:
            second_done.set()
        return outcome

    def stage(network, spec, crown, config, solver, deadline, progress=None):
        assert started.wait(60)
        progress(lp)
        second_done.wait(120)
        return lp, np.array(crown.disjunct_bounds, float), []

    monkeypatch.setattr(exact_module, "torch_branch_and_bound", searches)
    monkeypatch.setattr(exact_module, "krelu_stage", stage)
    outcome = exact_one(network, spec, Deadline.after(120), VerifyOptions(), "highs", bab=SETTINGS,
                        krelu=KreluOptions(k=2), resume=resume, overlap=True, attack=False)
    assert len(calls) >= 2
    assert calls[0][0] is None and calls[1][0] is lp
    first = calls[0][2]
    if not first.complete:
        assert (calls[1][1] is first.frontier) if resume else calls[1][1] is None
    if exact > 0:
        assert outcome.counterexample is None and 0 < outcome.bound <= exact + 1e-6
    else:
        x = outcome.counterexample
        assert x is not None and spec.is_violated_by(x, network.forward(x))


def test_contradicted_flags_active_splits_on_deleted_neurons_only():
    live = LiveNeurons.of([torch.tensor([1.0, -1.0, 0.0, 2.0]), torch.tensor([-0.5, 3.0])])
    assert [k.tolist() for k in live.keep] == [[0, 3], [1]]
    signs = [torch.tensor([[0, 1, 0, 0],    # active on deleted neuron 1: dropped
                           [0, -1, -1, 0],  # inactive on deleted neurons: kept
                           [1, 0, 0, -1],   # splits on kept neurons only: kept
                           [0, 0, 1, 0],    # active on deleted neuron 2 (u = 0): dropped
                           [0, 0, 0, 0]], dtype=torch.int8),
             torch.tensor([[0, 0], [0, 1], [0, -1], [0, 0], [1, 0]], dtype=torch.int8)]
    # the last: active on layer 1's deleted neuron 0
    assert live.contradicted(signs).tolist() == [True, False, False, True, True]


@pytest.mark.parametrize("seed", [7, 16])
def test_exact_with_the_bounds_handed_over_after_every_neuron_decides_like_the_milp(seed):
    """The real stage beside the search, handing over after every LP-tightened neuron: the
    search starts again (resumed) dozens of times and proves the property the MILP proves;
    on the violated one it never claims more than the MILP's margin, and a counterexample
    it returns is one (finding it within the limit depends on the threads' timing)."""
    network, spec, _, exact = _reference(seed)
    outcome = exact_one(network, spec, Deadline.after(120), VerifyOptions(), "highs", bab=SETTINGS,
                        krelu=KreluOptions(k=2, publish_every=1e-9), resume=True, overlap=True, attack=False)
    x = outcome.counterexample
    if exact > 0:
        assert x is None and 0 < outcome.bound <= exact + 1e-6
    else:
        assert outcome.bound <= exact + 1e-6
        assert x is None or spec.is_violated_by(x, network.forward(x))


def test_a_hand_over_that_says_stop_ends_the_layer_there():
    """``tighten_layer``'s ``partial`` returning False (the feedback proved every disjunct)
    leaves the neurons after the first with their bounds; without it they are tightened."""
    from relax.lp.encode import encode_triangle
    from relax.lp.tighten import tighten_layer

    network, spec, _, _ = _reference(7)
    crown = bound_specs(network, [spec], "crown")[0].layers
    k = len(network.activations) - 1
    encoding = encode_triangle(network, spec.lower, spec.upper, crown, depth=k)
    calls = []
    stopped = tighten_layer(encoding, k, crown, "highs", partial=lambda l, u: calls.append(1) or False, every=1e-9)
    full = tighten_layer(encoding, k, crown, "highs")

    def moved(bounds):
        return int(np.sum((bounds.lower[k] > crown.lower[k] + 1e-9) | (bounds.upper[k] < crown.upper[k] - 1e-9)))

    assert len(calls) == 1 and moved(stopped) <= 1 < moved(full)
