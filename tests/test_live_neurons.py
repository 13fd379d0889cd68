"""The branch and bound on the live part of a network (:mod:`relax.search.live`).

References: the full network's float64 forward pass on sampled inputs of the box, the
exact MILP optimum (HiGHS, :func:`relax.search.milp.milp_margin`) and the float64 check
of counterexamples.  The nets get large negative biases on some neurons so that the
root bounds prove them dead over the box.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relax import robustness
from relax.bounds import bound_specs
from relax.lp.method import intermediate_bounds
from relax.network import Affine, Network
from relax.search.beta_crown import BabSettings, torch_branch_and_bound
from relax.search.live import LiveNeurons
from relax.search.milp import milp_margin
from tests.helpers import random_network, sample_box


def _with_dead_neurons(seed: int, widths=(5, 20, 20, 20, 3), dead=0.4, eps=0.3):
    """A random ReLU net whose hidden layers have a share ``dead`` of neurons pushed far
    below zero (bias -50), and a robustness property around a random point."""
    rng = np.random.default_rng(seed)
    base = random_network(rng, list(widths), "relu", scale=1.5)
    layers = []
    for k, affine in enumerate(base.affines):
        bias = affine.bias.copy()
        if k < len(base.activations):
            bias[rng.random(len(bias)) < dead] = -50.0
        layers.append(Affine(affine.weight, bias))
        if k < len(base.activations):
            layers.append(base.activations[k])
    network = Network(tuple(layers))
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return network, robustness(x, label, eps, num_classes=widths[-1])


def test_the_live_network_equals_the_network_on_the_box():
    network, spec = _with_dead_neurons(3)
    layers = bound_specs(network, [spec], "crown")[0].layers
    live = LiveNeurons.of([torch.tensor(u) for u in layers.upper])
    assert live.pruned
    reduced = live.network(network)
    assert reduced.hidden_sizes == tuple(len(k) for k in live.keep)
    assert all(len(k) < n for k, n in zip(live.keep, live.sizes))
    x = sample_box(np.random.default_rng(0), spec.lower, spec.upper, 500)
    np.testing.assert_allclose(reduced.forward(x), network.forward(x), rtol=0, atol=1e-10)


def test_a_layer_with_no_live_neuron_keeps_one():
    live = LiveNeurons.of([torch.tensor([-1.0, -0.5, -2.0]), torch.tensor([1.0, -1.0])])
    assert [k.tolist() for k in live.keep] == [[1], [0]]


def test_fields_restricted_and_expanded_keep_the_kept_neurons_and_fill_the_dead():
    live = LiveNeurons((torch.tensor([0, 2]),), (4,))
    alpha = torch.arange(24.0).reshape(2, 3, 4)
    sign = torch.tensor([[1, 0, -1, 0], [0, 1, 0, -1]], dtype=torch.int8)
    small = live.restrict_fields({"bound": torch.zeros(2), "alpha": [alpha], "sign": [sign]})
    assert small["alpha"][0].shape == (2, 3, 2) and small["sign"][0].tolist() == [[1, -1], [0, 0]]
    back = live.expand_fields(small)
    assert torch.equal(back["alpha"][0][..., [0, 2]], alpha[..., [0, 2]])
    assert back["alpha"][0][..., [1, 3]].abs().sum() == 0
    assert back["sign"][0].tolist() == [[1, 0, -1, 0], [0, 0, 0, 0]]
    assert live.expand([torch.ones(2, 2)], "score")[0][:, [1, 3]].eq(-1).all()


@pytest.mark.parametrize("seed,eps", [(1, 0.5), (8, 0.5), (2, 0.8), (7, 0.8)])
def test_the_search_on_the_live_network_decides_like_the_milp(seed, eps):
    """Cases where the search branches (124-766 domains; 1 violated, 3 holds)."""
    network, spec = _with_dead_neurons(seed, (5, 30, 30, 30, 3), dead=0.3, eps=eps)
    layers = bound_specs(network, [spec], "crown")[0].layers
    assert LiveNeurons.of([torch.tensor(u) for u in layers.upper]).pruned
    exact = milp_margin(network, spec, intermediate_bounds(network, spec, "lp", None))
    outcome = torch_branch_and_bound(network, spec, settings=BabSettings(batch=4, attack_starts=0))
    assert outcome.complete and outcome.nodes > 20
    if exact > 0:
        assert outcome.counterexample is None and 0 < outcome.bound <= exact + 1e-7
    else:
        x = outcome.counterexample
        assert x is not None and spec.is_violated_by(x, network.forward(x))
