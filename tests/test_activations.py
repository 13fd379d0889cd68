"""The activation rule table: every row's maths checked numerically, and every reader
(bounds, importers, training) covers every row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relax.bounds.activations import RULES, SMOOTH, rule_of
from relax.bounds.relaxations import relax_activation
from relax.bounds.torch_network import TorchNetwork
from relax.io.torch_import import from_torch
from relax.train.models import ACTIVATIONS, mlp

Z = torch.linspace(-8, 8, 4001, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(RULES))
def test_value_and_derivative_agree_with_autograd_and_the_ir(name):
    rule = RULES[name]
    z = Z[Z.abs() > 1e-3].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(rule.value(z).sum(), z)
    np.testing.assert_allclose(rule.derivative(z.detach()).numpy(), grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(rule.value(Z).numpy(), rule.ir().apply(Z.numpy()), atol=1e-12)
    assert rule_of(rule.ir()) is rule and rule.ir.name == name


@pytest.mark.parametrize("name", sorted(RULES))
def test_values_match_the_ir_to_rounding_far_out(name):
    """No shortcut tails: torch's softplus returns z above 20, below log(1 + e^z), which
    made IBP miss sampled outputs (a hypothesis case of tests/test_bounds.py)."""
    z = torch.linspace(-60, 60, 2001, dtype=torch.float64)
    np.testing.assert_allclose(RULES[name].value(z).numpy(), RULES[name].ir().apply(z.numpy()),
                               rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("name", SMOOTH)
def test_curvature_constants_convexity_and_stationary_points(name):
    rule = RULES[name]
    z = Z.clone().requires_grad_(True)
    (d1,) = torch.autograd.grad(rule.value(z).sum(), z, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), z)
    lo, hi = rule.second_derivative_range
    assert lo <= d2.min() and d2.max() <= hi and hi - d2.max() < 1e-3 and d2.min() - lo < 1e-3
    convex, concave = rule.convexity(Z[:-1], Z[1:])
    assert (d2[:-1][convex] >= -1e-12).all() and (d2[:-1][concave] <= 1e-12).all()
    slopes = torch.linspace(0.01, 0.2, 7, dtype=torch.float64)
    for point in rule.stationary(slopes):
        np.testing.assert_allclose(rule.derivative(point).numpy(), slopes.numpy(), rtol=1e-9)


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_reader_covers_every_rule(name):
    rule = RULES[name]
    lower, upper = torch.tensor([-1.0, 0.2], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    relaxation = relax_activation(rule.ir(), lower, upper)
    z = lower + torch.rand(200, 2, dtype=torch.float64) * (upper - lower)
    value = rule.value(z)
    assert (relaxation.lo_slope * z + relaxation.lo_offset <= value + 1e-12).all()
    assert (relaxation.up_slope * z + relaxation.up_offset >= value - 1e-12).all()
    assert ACTIVATIONS[name] is rule.torch_module
    model = mlp([3, 4, 2], activation=name)
    assert [a.name for a in TorchNetwork.from_module(model).activations] == [name]
    assert [a.name for a in from_torch(model, (3,)).activations] == [name]
