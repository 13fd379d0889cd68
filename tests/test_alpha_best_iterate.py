"""The search's children take their float64 bound at each domain's best Adam iterate.

References: the float64 evaluation of the children's warm start (no optimisation) and
dense sampling of the input box, kept to each child's split phases.  Checks: with the Adam steps in float32, no child ends
below its own warm start (the old last-iterate bound did, on about a quarter of the
children of mnistfc 256x4); every bound stays below the sampled minimum of its domain; the
slopes handed on are the last iterate's, not the best one's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import relax.bounds.alpha as alpha_module
from relax import robustness
from relax.bounds.alpha import AlphaSettings, alpha_crown
from relax.search.beta_crown import BabSettings, _Search, root_alpha_bounds
from relax.search.branching import choose_babsr, split_children
from tests.helpers import random_network, sample_box


def _children(seed):
    """The search and the split children of its root domains (slopes from a short root)."""
    rng = np.random.default_rng(seed)
    network = random_network(rng, [4, 16, 16, 16, 3], "relu", scale=1.5)
    x = rng.uniform(size=4)
    spec = robustness(x, int(np.argmax(network.forward(x))), 0.25, num_classes=3)
    disjuncts = list(range(len(spec.disjuncts)))
    settings = BabSettings(root_iterations=3)
    root, C, d = root_alpha_bounds(network, spec, disjuncts, settings)
    search = _Search(network, spec, disjuncts, settings, root, C, d)
    batch = search.root_fields(root)
    return rng, network, spec, search, split_children(batch, choose_babsr(batch))


def _bound(search, children, settings, fast):
    return alpha_crown(search.net, search.child_domains(children), settings, alpha=children["alpha"],
                       beta=children["beta"], fast_net=search.fast_net if fast else None)


def _below_warm_start(seeds, settings):
    """(children, children whose float32-stepped bound ends below their float64 warm start)."""
    total = below = 0
    for seed in seeds:
        _, _, _, search, children = _children(seed)
        warm = _bound(search, children, AlphaSettings(iterations=0, refine=False), fast=False).bound
        stepped = _bound(search, children, settings, fast=True).bound
        finite = torch.isfinite(warm)
        total += int(finite.sum())
        below += int((stepped[finite] < warm[finite] - 1e-5 * (1 + warm[finite].abs())).sum())
    return total, below


# a large step: Adam's first moves overshoot, so the last iterate is often not the best
AGGRESSIVE = AlphaSettings(iterations=8, lr=0.5, lr_beta=0.5, lr_decay=1.0, refine=False)


def test_no_child_ends_below_its_warm_start():
    total, below = _below_warm_start(range(6), AGGRESSIVE)
    assert total > 20 and below == 0


def test_the_last_iterate_alone_would_end_below_it(monkeypatch):
    """The same children with the bound at the last iterate (the tracking switched off)."""
    monkeypatch.setattr(alpha_module._Search, "_tracks_iterates", lambda self: False)
    total, below = _below_warm_start(range(6), AGGRESSIVE)
    assert below > 0


@pytest.mark.parametrize("seed", range(3))
def test_best_iterate_bounds_are_sound_and_hand_on_the_last_slopes(seed, monkeypatch):
    rng, network, spec, search, children = _children(seed)
    handed = []
    real_step = alpha_module._Search._step

    def recording_step(self, value):
        real_step(self, value)
        handed[:] = [p.detach().clone() for p in self.params]

    monkeypatch.setattr(alpha_module._Search, "_step", recording_step)
    result = _bound(search, children, AGGRESSIVE, fast=True)
    assert handed, "no Adam step was taken"
    for got, last in zip(result.alpha, handed):  # the slopes after the last Adam step
        assert torch.allclose(got.float(), last.float())
    # every child's bound lies below the margin of every sampled input in its domain
    xs = sample_box(rng, spec.lower, spec.upper, 20000)
    zs = network.pre_activations(xs)
    outputs = network.forward(xs)
    signs = search.live.expand(children["sign"], "sign")
    checked = 0
    for i in range(len(children["bound"])):
        inside = np.ones(len(xs), dtype=bool)
        for k, sign in enumerate(signs):
            row = sign[i].numpy()
            inside &= np.all((row <= 0) | (zs[k] >= 0), axis=1) & np.all((row >= 0) | (zs[k] <= 0), axis=1)
        if inside.any():
            disjunct = spec.disjuncts[search.disjuncts[int(children["disjunct"][i])]]
            assert float(result.bound[i]) <= disjunct.margin(outputs[inside]).min() + 1e-7
            checked += 1
    assert checked >= len(children["bound"]) // 2
