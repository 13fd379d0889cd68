"""IBP and CROWN on the shared VNN-COMP networks: no sampled or attacked point may
fall outside the layer bounds or below the margin bound."""

from __future__ import annotations

import numpy as np
import pytest

from relax import from_onnx, read_vnnlib
from relax.search.attack import AttackOptions, pgd_attack
from relax.bounds import bound_specs
from tests.helpers import sample_box

CASES = [
    ("mnistfc/mnist-net_256x2.onnx", "mnistfc/prop_0_0.03.vnnlib"),
    ("mnistfc/mnist-net_256x4.onnx", "mnistfc/prop_1_0.05.vnnlib"),
    ("eran/nets/mnist_relu_9_200.onnx", "eran/specs/mnist_spec_idx_1013_eps_0.01500.vnnlib"),
]


def _attack_points(network, spec):
    """PGD points that push every disjunct's margin down (kept even when not violating)."""
    points = []
    for j, disjunct in enumerate(spec.disjuncts[:3]):
        from relax.spec import Spec

        single = Spec(spec.lower, spec.upper, (disjunct,))
        x = pgd_attack(network, single, AttackOptions(steps=20, restarts=2, seed=j))
        if x is not None:
            points.append(x)
    return points


@pytest.mark.parametrize("method", ["ibp", "crown"])
@pytest.mark.parametrize("net_path, prop_path", CASES)
def test_shared_network_bounds_contain_samples(shared_data, net_path, prop_path, method):
    root = shared_data / "vnncomp2021"
    network = from_onnx(root / net_path)
    spec = read_vnnlib(root / prop_path, network.input_size, network.output_size)[0]
    result = bound_specs(network, [spec], method)[0]
    rng = np.random.default_rng(0)
    xs = np.vstack([sample_box(rng, spec.lower, spec.upper, 200), *_attack_points(network, spec)])
    zs = network.pre_activations(xs)
    for k, (lo, up) in enumerate(zip(result.layers.lower, result.layers.upper)):
        assert np.all(zs[k] >= lo - 1e-8) and np.all(zs[k] <= up + 1e-8), f"layer {k}"
    assert spec.margin(zs[-1]).min() >= result.bound - 1e-8
