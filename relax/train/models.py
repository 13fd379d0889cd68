"""Fully connected models: ``Linear (Act Linear)*``, the shape the IR imports directly."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from relax.bounds.activations import RULES
from relax.errors import UsageError

__all__ = ["mlp", "ACTIVATIONS"]

ACTIVATIONS = {name: rule.torch_module for name, rule in RULES.items()}


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """``nn.Sequential(Linear(s0, s1), Act, ..., Linear(s_{L-1}, s_L))``."""
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise UsageError(f"mlp needs at least two positive sizes, got {list(sizes)}")
    if activation not in ACTIVATIONS:
        raise UsageError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(int(n_in), int(n_out)))
    return nn.Sequential(*layers)
