"""Soundness of IBP and CROWN: no sampled point may fall outside the bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from relax.bounds import bound_specs
from relax.bounds.relaxations import relax_activation
from relax.network import Affine, Network, ReLU
from relax.spec import Conjunction, Spec, robustness
from tests.helpers import ACTIVATIONS, random_network, sample_box


def _random_spec(rng, network, radius):
    centre = rng.uniform(-1, 1, size=network.input_size)
    n_out = network.output_size
    disjuncts = tuple(
        Conjunction(rng.normal(size=(2, n_out)), rng.normal(size=2))
        for _ in range(rng.integers(1, 4))
    )
    return Spec(centre - radius, centre + radius, disjuncts)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    depth=st.integers(1, 3),
    width=st.integers(1, 6),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    radius=st.floats(0.0, 2.0),
    method=st.sampled_from(["ibp", "crown"]),
)
def test_bounds_contain_every_sample(seed, depth, width, activation, radius, method):
    rng = np.random.default_rng(seed)
    network = random_network(rng, [3] + [width] * depth + [2], activation, scale=2.0)
    spec = _random_spec(rng, network, radius)
    result = bound_specs(network, [spec], method)[0]
    xs = sample_box(rng, spec.lower, spec.upper, 300)
    zs = network.pre_activations(xs)
    for k, (lo, up) in enumerate(zip(result.layers.lower, result.layers.upper)):
        assert np.all(zs[k] >= lo - 1e-9) and np.all(zs[k] <= up + 1e-9), f"layer {k}"
    C, d, _ = spec.objectives()
    rows = zs[-1] @ C.T - d
    assert np.all(rows >= result.row_bounds - 1e-9)
    assert spec.margin(zs[-1]).min() >= result.bound - 1e-9


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softplus"])
def test_activation_relaxations_are_sound(name):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4, size=400)
    widths = np.concatenate([rng.exponential(2, size=300), np.zeros(50), rng.exponential(40, size=50)])
    lower, upper = torch.tensor(centres - widths / 2), torch.tensor(centres + widths / 2)
    relaxation = relax_activation(ACTIVATIONS[name](), lower, upper)
    t = torch.rand(2000, 1, dtype=torch.float64)
    z = lower + t * (upper - lower)
    value = torch.tensor(ACTIVATIONS[name]().apply(z.numpy()))
    assert torch.all(relaxation.lo_slope * z + relaxation.lo_offset <= value + 1e-12)
    assert torch.all(relaxation.up_slope * z + relaxation.up_offset >= value - 1e-12)


def test_relu_triangle_is_the_tightest_upper_line():
    lower, upper = torch.tensor([-1.0]), torch.tensor([3.0])
    relaxation = relax_activation(ReLU(), lower, upper)
    assert relaxation.up_slope.item() == pytest.approx(0.75)
    assert relaxation.up_offset.item() == pytest.approx(0.75)
    assert relaxation.lo_slope.item() == 1.0  # u > -l: adaptive slope 1


def test_crown_is_exact_on_a_single_affine_layer():
    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(4, 5)), rng.normal(size=4)
    network = Network((Affine(weight, bias),))
    spec = robustness(rng.uniform(size=5), 0, 0.1, domain=None, num_classes=4)
    C, d, _ = spec.objectives()
    linear = C @ weight
    exact = (C @ bias - d) + np.where(linear > 0, linear * spec.lower, linear * spec.upper).sum(1)
    assert np.allclose(bound_specs(network, [spec], "crown")[0].row_bounds, exact, atol=1e-12)
    # IBP loses the correlation between outputs, so it may only be looser
    assert np.all(bound_specs(network, [spec], "ibp")[0].row_bounds <= exact + 1e-12)


def test_crown_is_tighter_than_ibp_on_a_deep_network():
    rng = np.random.default_rng(5)
    network = random_network(rng, [10, 30, 30, 30, 10], "relu")
    spec = robustness(rng.uniform(size=10), 0, 0.05, num_classes=10)
    ibp, crown = (bound_specs(network, [spec], m)[0] for m in ("ibp", "crown"))
    assert crown.bound > ibp.bound
    for k in range(3):
        assert np.all(crown.layers.lower[k] >= ibp.layers.lower[k] - 1e-12)


def test_batched_bounds_equal_one_by_one():
    rng = np.random.default_rng(7)
    network = random_network(rng, [4, 8, 8, 3], "tanh")
    specs = [robustness(rng.uniform(size=4), i % 3, 0.1 * (i + 1), num_classes=3) for i in range(5)]
    specs.append(_random_spec(rng, network, 0.2))  # different number of rows: padding
    batched = bound_specs(network, specs, "crown", batch_size=4)
    for spec, together in zip(specs, batched):
        alone = bound_specs(network, [spec], "crown")[0]
        assert together.bound == pytest.approx(alone.bound, abs=1e-10)


def test_bounds_reject_a_spec_of_the_wrong_size():
    from relax.errors import SpecError

    network = random_network(np.random.default_rng(0), [3, 4, 2])
    with pytest.raises(SpecError, match="inputs"):
        bound_specs(network, [robustness(np.zeros(5), 0, 0.1, num_classes=2)])
