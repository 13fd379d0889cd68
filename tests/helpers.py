"""Small random networks and sampling utilities shared by the tests."""

from __future__ import annotations

import numpy as np

from relax.network import Affine, Network, ReLU, Sigmoid, Softplus, Tanh

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "softplus": Softplus}


def random_network(rng: np.random.Generator, widths: list[int], activation: str = "relu",
                   scale: float = 1.0) -> Network:
    """A dense network ``widths[0] -> ... -> widths[-1]`` with Gaussian weights."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        weight = rng.normal(size=(n_out, n_in)) * scale / np.sqrt(n_in)
        layers.append(Affine(weight, rng.normal(size=n_out) * 0.5))
        if k < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return Network(tuple(layers))


def sample_box(rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray, n: int) -> np.ndarray:
    """Uniform samples plus the box's corners-ish extremes (each coordinate at l or u)."""
    uniform = rng.uniform(lower, upper, size=(n, lower.size))
    corners = np.where(rng.random((n, lower.size)) < 0.5, lower, upper)
    return np.vstack([uniform, corners])


def least_sampled_margin(rng: np.random.Generator, network: Network, spec, n: int = 4000,
                         steps: int = 60, restarts: int = 8) -> float:
    """Least margin over ``n`` samples of the box (and as many corner-ish points) and the
    PGD point: an upper bound on the spec's minimum margin."""
    from relax.search.attack import AttackOptions, pgd_attack
    xs = sample_box(rng, spec.lower, spec.upper, n)
    best = float(spec.margin(network.forward(xs)).min())
    x = pgd_attack(network, spec, AttackOptions(steps=steps, restarts=restarts))
    if x is not None:
        best = min(best, float(spec.margin(network.forward(x[None])).min()))
    return best
