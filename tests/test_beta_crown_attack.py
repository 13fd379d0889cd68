"""PGD started from given points (the search's attack on its lowest-bound domains).

References: the exact MILP optimum (HiGHS) decides which properties are violated; a
counterexample must pass the float64 check and may only exist where the MILP says so.
"""

from __future__ import annotations

import numpy as np
import torch

from relax import robustness
from relax.lp.method import intermediate_bounds
from relax.search.attack import AttackOptions, pgd_attack
from relax.search.milp import milp_margin
from tests.helpers import random_network, sample_box


def test_attack_from_starts_finds_only_real_counterexamples():
    found = 0
    for seed in range(12):
        rng = np.random.default_rng(seed + 200)
        network = random_network(rng, [4, 12, 12, 3], "relu", scale=1.5)
        x = rng.uniform(size=4)
        spec = robustness(x, int(np.argmax(network.forward(x))), 0.3, num_classes=3)
        exact = milp_margin(network, spec, intermediate_bounds(network, spec, "lp", None))
        starts = torch.as_tensor(sample_box(rng, spec.lower, spec.upper, 3))
        cex = pgd_attack(network, spec, AttackOptions(steps=10), starts=starts)
        if cex is not None:
            found += 1
            assert exact <= 1e-7
            assert np.all(cex >= spec.lower) and np.all(cex <= spec.upper)
            assert spec.is_violated_by(cex, network.forward(cex))
    assert found > 0
