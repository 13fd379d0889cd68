"""The arithmetic shortcuts of alpha-CROWN's inner loop against the plain formulas.

- ``box_minimum`` (one matrix-vector product when every domain shares the box) equals
  ``sum_i min(c_i l_i, c_i u_i)`` computed elementwise in numpy, for an expanded box and
  for a box per domain.
- A batch of split domains bounded by alpha/beta-CROWN gives the same bounds whether the
  input box is expanded from one row (the branch and bound's children) or materialised.
- The in-place Adam update equals the out-of-place one wherever a gradient was seen, and
  leaves entries that never had a gradient where they are.
"""

from __future__ import annotations

import numpy as np
import torch

from relax.bounds.alpha import AlphaSettings, Domains, alpha_crown
from relax.bounds.kernels import box_minimum
from relax.bounds.crown import crown_layer_bounds
from relax.bounds.torch_network import TorchNetwork
from solvers.optim import adam_moments, adam_moments_
from tests.helpers import random_network


def _reference_box_minimum(coeffs, lower, upper):
    c = coeffs.numpy()
    lo, up = np.broadcast_to(lower.numpy()[:, None], c.shape), np.broadcast_to(upper.numpy()[:, None], c.shape)
    return np.minimum(c * lo, c * up).sum(-1)


def test_box_minimum_matches_the_elementwise_minimum():
    g = torch.Generator().manual_seed(0)
    coeffs = torch.randn(5, 3, 7, generator=g, dtype=torch.float64)
    lower = torch.randn(1, 7, generator=g, dtype=torch.float64)
    upper = lower + torch.rand(1, 7, generator=g, dtype=torch.float64)
    shared = box_minimum(coeffs, lower.expand(5, -1), upper.expand(5, -1))
    assert np.allclose(shared.numpy(), _reference_box_minimum(coeffs, lower.expand(5, -1), upper.expand(5, -1)),
                       atol=1e-12)
    lowers = torch.randn(5, 7, generator=g, dtype=torch.float64)
    uppers = lowers + torch.rand(5, 7, generator=g, dtype=torch.float64)
    own = box_minimum(coeffs, lowers, uppers)
    assert np.allclose(own.numpy(), _reference_box_minimum(coeffs, lowers, uppers), atol=1e-12)


def _split_domains(seed: int, materialise: bool) -> Domains:
    rng = np.random.default_rng(seed)
    network = random_network(rng, [4, 12, 12, 3], "relu", scale=1.5)
    net = TorchNetwork.from_network(network)
    x = net.tensor(rng.uniform(size=4))
    lower, upper = (x - 0.3)[None], (x + 0.3)[None]
    layers, _ = crown_layer_bounds(net, lower, upper)
    m = 6
    signs = [torch.from_numpy(rng.integers(-1, 2, size=(m, l.shape[1]))).to(torch.int8)
             * ((l < 0) & (u > 0)).to(torch.int8) for l, u in layers]  # splits on unstable ReLUs only
    prior_lower = [torch.where(s > 0, torch.zeros_like(l), l.expand(m, -1)) for s, (l, _) in zip(signs, layers)]
    prior_upper = [torch.where(s < 0, torch.zeros_like(u), u.expand(m, -1)) for s, (_, u) in zip(signs, layers)]
    box_lower, box_upper = lower.expand(m, -1), upper.expand(m, -1)
    if materialise:
        box_lower, box_upper = box_lower.clone(), box_upper.clone()
    objective = net.tensor(rng.normal(size=(m, 2, 3)))
    return net, Domains(box_lower, box_upper, objective, prior_lower, prior_upper, signs=signs)


def test_shared_box_gives_the_same_bounds_as_a_box_per_domain():
    settings = AlphaSettings(iterations=3, refine=False)
    for seed in range(3):
        net, shared = _split_domains(seed, materialise=False)
        _, own = _split_domains(seed, materialise=True)
        assert shared.lower.stride(0) == 0 and own.lower.stride(0) != 0
        a = alpha_crown(net, shared, settings).bound.numpy()
        b = alpha_crown(net, own, settings).bound.numpy()
        assert np.all(np.isfinite(a)) and np.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_in_place_adam_matches_the_out_of_place_update():
    g = torch.Generator().manual_seed(1)
    m0 = torch.randn(4, 9, generator=g, dtype=torch.float64) * 1e-2
    v0 = torch.rand(4, 9, generator=g, dtype=torch.float64) * 1e-3
    grad = torch.randn(4, 9, generator=g, dtype=torch.float64)
    grad[0] = 0.0
    m0[0], v0[0] = 0.0, 0.0  # never had a gradient
    for step in (1, 5):
        m_ref, v_ref, d_ref = adam_moments(m0, v0, grad, step)
        m, v = m0.clone(), v0.clone()
        direction = adam_moments_(m, v, grad, step)
        assert torch.allclose(m, m_ref, rtol=1e-12, atol=0) and torch.allclose(v, v_ref, rtol=1e-12, atol=0)
        assert torch.allclose(direction[1:], d_ref[1:], rtol=1e-9, atol=0)
        assert torch.all(direction[0] == 0)
