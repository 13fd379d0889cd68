"""Training bounds run on relax.bounds: the TorchNetwork of a torch model shares its
parameters (gradients reach them), keeps float32, and gives relax's own CROWN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relax.bounds import bound_specs
from relax.bounds.torch_network import TorchNetwork
from relax.errors import UsageError
from relax.spec import robustness
from relax.train.bounds import ibp_bounds, input_box, layers_of, linear_margin, margin_matrix
from relax.train.crown_ibp import crown_ibp_margin
from relax.train.evaluate import as_network
from relax.train.models import mlp


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    return mlp([5, 12, 12, 3]).to(dtype)


def test_the_network_shares_the_parameters_and_gradients_reach_them():
    model = _model()
    net = layers_of(model)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert net.dtype == torch.float32 and len(linears) == net.num_layers
    assert all(w is m.weight and b is m.bias for w, b, m in zip(net.weights, net.biases, linears))
    x = torch.rand(4, 5)
    y = model(x).argmax(1)
    crown_ibp_margin(model, x, y, 0.1, 0.5, 3).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_crown_on_exact_hidden_bounds_is_relax_crown():
    """Given relax's own float64 CROWN hidden bounds, the training CROWN bound on the margin
    rows is relax's CROWN bound (same code path, same numbers)."""
    model = _model()
    network = as_network(model)
    x = torch.rand(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = model(x.float()).argmax(1)
    eps = 0.1
    lower, upper = input_box(x, eps)
    specs = [robustness(xi.numpy(), int(yi), eps, num_classes=3) for xi, yi in zip(x, y)]
    relax_crown = bound_specs(network, specs, "crown")
    hidden = [(torch.tensor(np.stack([r.layers.lower[k] for r in relax_crown])),
               torch.tensor(np.stack([r.layers.upper[k] for r in relax_crown])))
              for k in range(2)]
    net = TorchNetwork.from_network(network)
    C = margin_matrix(y, 3, torch.float64)
    ours = linear_margin(net, lower, upper, C, hidden).bound
    ours = torch.where(C.abs().sum(-1) > 0, ours, torch.inf).amin(1)
    np.testing.assert_allclose(ours.numpy(), [r.bound for r in relax_crown], atol=1e-9)
    assert len(ibp_bounds(net, lower, upper)) == 3


def test_unsupported_models_are_refused():
    with pytest.raises(UsageError, match="Linear"):
        layers_of(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ELU(), torch.nn.Linear(2, 2)))
