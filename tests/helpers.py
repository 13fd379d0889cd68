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
