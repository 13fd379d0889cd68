"""The optimisable lines of smooth activations (:mod:`relax.bounds.smooth_lines`).

References: the activation itself on a dense grid of each interval (the lines must
enclose it), :func:`relax.bounds.relaxations.relax_smooth` (the starting fractions must
reproduce CROWN's lines), and sampling plus PGD on random sigmoid/tanh networks (the
optimised bound must stay below every sampled margin and improve on CROWN).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relax import robustness
from relax.bounds import bound_specs
from relax.bounds.activations import rule_of
from relax.bounds.relaxations import relax_smooth
from relax.bounds.smooth_lines import initial_fraction, smooth_base, smooth_line
from relax.search.alpha_method import alpha_disjunct_bounds
from relax.search.attack import AttackOptions, pgd_attack
from tests.helpers import random_network, sample_box

SMOOTH = ["sigmoid", "tanh", "softplus"]


def _intervals(rng, n=200):
    centre = rng.normal(scale=3.0, size=n)
    width = rng.exponential(scale=2.0, size=n)
    lower = centre - width * rng.uniform(size=n)
    return torch.tensor(lower), torch.tensor(lower + width)


@pytest.mark.parametrize("name", SMOOTH)
def test_lines_enclose_the_activation_for_any_fraction(name):
    rng = np.random.default_rng(0)
    lower, upper = _intervals(rng)
    base = smooth_base(name, lower[None], upper[None])
    fractions = torch.tensor(rng.uniform(-0.2, 1.2, size=(1, 5, 2 * len(lower))))  # clamped inside
    lo_slope, lo_offset, up_slope, up_offset = smooth_line(base, fractions)
    grid = torch.linspace(0, 1, 2001, dtype=torch.float64)[:, None]
    z = lower + grid * (upper - lower)                     # (points, n)
    value = rule_of(name).value(z)[:, None, :]            # (points, 1, n)
    zz = z[:, None, :]
    assert torch.all(lo_slope[0] * zz + lo_offset[0] <= value + 1e-12)
    assert torch.all(up_slope[0] * zz + up_offset[0] >= value - 1e-12)
    # tight: each line touches the activation somewhere on the interval (to the grid's resolution)
    gap_lo = (value - lo_slope[0] * zz - lo_offset[0]).amin(0)
    gap_up = (up_slope[0] * zz + up_offset[0] - value).amin(0)
    assert gap_lo.max() < 1e-3 and gap_up.max() < 1e-3


@pytest.mark.parametrize("name", SMOOTH)
def test_offset_gradients_match_finite_differences(name):
    """The offsets' autograd gradients (the extremal candidate is picked without autograd,
    then evaluated once) against central differences of the offsets themselves, in the
    fractions and in both interval ends."""
    rng = np.random.default_rng(2)
    lower, upper = _intervals(rng, n=60)
    fractions = torch.tensor(rng.uniform(0.05, 0.95, size=(1, 3, 2 * len(lower))))
    weights = torch.tensor(rng.normal(size=(2, 1, 3, len(lower))))

    def loss(l, u, t):
        _, lo_offset, _, up_offset = smooth_line(smooth_base(name, l[None], u[None]), t)
        return (weights[0] * lo_offset).sum() + (weights[1] * up_offset).sum()

    l, u, t = (x.clone().requires_grad_(True) for x in (lower, upper, fractions))
    loss(l, u, t).backward()
    h, inputs, grads = 1e-6, (lower, upper, fractions), (l.grad, u.grad, t.grad)
    for slot, (tensor, grad) in enumerate(zip(inputs, grads)):
        flat = tensor.reshape(-1)
        for i in rng.choice(flat.numel(), 25, replace=False):
            step = torch.zeros_like(flat)
            step[i] = h
            plus, minus = list(inputs), list(inputs)
            plus[slot], minus[slot] = (flat + step).reshape(tensor.shape), (flat - step).reshape(tensor.shape)
            numeric = float(loss(*plus) - loss(*minus)) / (2 * h)
            assert abs(numeric - float(grad.reshape(-1)[i])) < 1e-4 * (1 + abs(numeric)), ("lut"[slot], i)


@pytest.mark.parametrize("name", SMOOTH)
def test_initial_fractions_reproduce_crowns_lines(name):
    rng = np.random.default_rng(1)
    lower, upper = _intervals(rng)
    base = smooth_base(name, lower[None], upper[None])
    lo_slope, lo_offset, up_slope, up_offset = smooth_line(base, initial_fraction(base))
    crown = relax_smooth(name, lower, upper)
    assert torch.allclose(lo_slope[0, 0], crown.lo_slope, atol=1e-10)
    assert torch.allclose(up_slope[0, 0], crown.up_slope, atol=1e-10)
    assert torch.allclose(lo_offset[0, 0], crown.lo_offset, atol=1e-9)
    assert torch.allclose(up_offset[0, 0], crown.up_offset, atol=1e-9)


def test_slope_range_is_the_derivatives_range_on_the_interval():
    rng = np.random.default_rng(2)
    lower, upper = _intervals(rng)
    for name in SMOOTH:
        base = smooth_base(name, lower[None], upper[None])
        grid = torch.linspace(0, 1, 4001, dtype=torch.float64)[:, None]
        derivative = rule_of(name).derivative(lower + grid * (upper - lower))
        assert torch.allclose(base.slope_min[0], derivative.amin(0), atol=1e-6)
        assert torch.allclose(base.slope_max[0], derivative.amax(0), atol=1e-6)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_optimised_smooth_slopes_are_sound_and_beat_crown(activation):
    """Deeper random nets, where CROWN's lines leave room: alpha-CROWN must gain on some
    disjunct and stay below the least sampled / PGD margin of every disjunct."""
    gains = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        network = random_network(rng, [4, 16, 16, 16, 3], activation, scale=1.5)
        x = rng.uniform(size=4)
        spec = robustness(x, int(np.argmax(network.forward(x))), 0.4, num_classes=3)
        crown = np.array(bound_specs(network, [spec], "crown")[0].disjunct_bounds)
        alpha = alpha_disjunct_bounds(network, spec, range(len(spec.disjuncts)))
        xs = sample_box(rng, spec.lower, spec.upper, 4000)
        sampled = _per_disjunct_minimum(network, spec, xs)
        assert np.all(alpha <= sampled + 1e-9)
        gains.append(float((alpha - crown).max()))
    assert min(gains) >= -1e-9
    assert max(gains) > 1e-3, gains


def _per_disjunct_minimum(network, spec, xs):
    """Least margin of each disjunct over the samples and a PGD point per disjunct."""
    from relax.spec import Spec
    out = []
    for disjunct in spec.disjuncts:
        single = Spec(spec.lower, spec.upper, (disjunct,))
        best = float(single.margin(network.forward(xs)).min())
        x = pgd_attack(network, single, AttackOptions(steps=60, restarts=8))
        if x is not None:
            best = min(best, float(single.margin(network.forward(x[None])).min()))
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("name", SMOOTH)
def test_respanned_fractions_describe_the_same_lines(name):
    """The search's children read fractions over the activation's derivative range: the
    root's interval fractions, re-expressed, must give the very same lines."""
    from relax.bounds.smooth_lines import respan_fraction
    rng = np.random.default_rng(3)
    lower, upper = _intervals(rng, 50)
    lower, upper = lower[None], upper[None]
    fraction = torch.tensor(rng.uniform(size=(1, 3, 100)))
    before = smooth_line(smooth_base(name, lower, upper), fraction)
    after = smooth_line(smooth_base(name, lower, upper, "activation"), respan_fraction(name, lower, upper, fraction))
    for a, b in zip(before, after):
        assert torch.allclose(a, b, atol=1e-12)


def test_a_kept_slope_is_at_least_as_tight_on_a_narrower_interval():
    """The reason children use the activation span: the same fraction, hence the same slope,
    on a sub-interval gives a lower line no lower and an upper line no higher there."""
    rng = np.random.default_rng(4)
    lower, upper = _intervals(rng, 100)
    point = lower + torch.tensor(rng.uniform(0.1, 0.9, size=100)) * (upper - lower)
    fraction = torch.tensor(rng.uniform(size=(1, 1, 200)))
    wide = smooth_line(smooth_base("tanh", lower[None], upper[None], "activation"), fraction)
    for lo, up in ((lower, point), (point, upper)):
        narrow = smooth_line(smooth_base("tanh", lo[None], up[None], "activation"), fraction)
        assert torch.allclose(narrow[0], wide[0]) and torch.allclose(narrow[2], wide[2])  # slopes kept
        assert torch.all(narrow[1] >= wide[1] - 1e-12) and torch.all(narrow[3] <= wide[3] + 1e-12)
