"""Activations as a rule table: everything relax knows about an activation, in one row.

Bounds (:mod:`relax.bounds.relaxations`, :mod:`relax.bounds.torch_network`), the
curvature certificate (:mod:`relax.certificates.crc`), training
(:mod:`relax.train.models`, :mod:`relax.train.crt`) and the importers
(:mod:`relax.io.onnx_import`, :mod:`relax.io.torch_import`) read :data:`RULES`
instead of branching on ``activation.name``.  Adding an activation means: its IR
class in :mod:`relax.network` and one :class:`ActivationRule` here.

A rule gives, for ``act`` on pre-activations ``z``:

- ``value(z)`` and ``derivative(z)`` (torch, differentiable);
- ``convexity(l, u)``: masks of the intervals ``[l, u]`` on which ``act`` is convex,
  resp. concave (the sigmoid and tanh change curvature at 0; softplus is convex);
- ``stationary(a)``: the points where ``act'(z) = a`` (NaN where there are none), which
  with the endpoints contain the extrema of ``act(z) - a z`` on any interval, so a
  linear bound's offset is computed exactly (:func:`relax.bounds.relaxations.relax_smooth`);
  ``maxima``: the positions in that list of the points that are local maxima of
  ``act(z) - a z`` (where ``act'' <= 0``); the others are local minima, so an interval's
  maximum is at an end or at one of ``maxima`` and its minimum at an end or one of the
  others (sigmoid, tanh: ``+z`` lies where they are concave, ``-z`` where convex);
- ``second_derivative_range``: ``[min, max]`` of ``act''`` over the real line (slightly
  widened), the curvature constant of the CRC certificate (``None`` for ReLU);
- ``relaxation``: ``"triangle"`` (ReLU) or ``"tangent-chord"`` (smooth);
- ``derivative_range``: ``[inf, sup]`` of ``act'`` over the real line (the slopes a
  line of :mod:`relax.bounds.smooth_lines` may take in a branch and bound's children);
- ``ir``, ``torch_module``, ``onnx_op``: the IR class and what the importers map to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from relax.network import ReLU, Sigmoid, Softplus, Tanh

__all__ = ["ActivationRule", "RULES", "rule_of", "SMOOTH"]

Tensor = torch.Tensor
_S3 = math.sqrt(3.0)
_WIDEN = 1 + 1e-9


@dataclass(frozen=True)
class ActivationRule:
    """The row of one activation (see the module docstring)."""

    name: str
    ir: type
    torch_module: type
    onnx_op: str
    value: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    convexity: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    stationary: Callable[[Tensor], list[Tensor]] | None
    second_derivative_range: tuple[float, float] | None
    relaxation: str
    derivative_range: tuple[float, float] = (0.0, 1.0)
    maxima: tuple[int, ...] = ()

    @property
    def smooth(self) -> bool:
        return self.relaxation == "tangent-chord"


def _split_at_zero(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Convex on ``(-inf, 0]``, concave on ``[0, inf)`` (sigmoid, tanh)."""
    return upper <= 0, lower >= 0


def _convex(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return torch.ones_like(lower, dtype=torch.bool), torch.zeros_like(lower, dtype=torch.bool)


def _sigmoid_stationary(slope: Tensor) -> list[Tensor]:
    """``s (1 - s) = a``  =>  ``s = (1 +- sqrt(1 - 4a)) / 2``, ``z = logit(s)``."""
    z = torch.logit((1 + torch.sqrt(torch.clamp(1 - 4 * slope, min=0))) / 2)
    return [z, -z]


def _tanh_stationary(slope: Tensor) -> list[Tensor]:
    """``1 - t^2 = a``  =>  ``z = +- atanh(sqrt(1 - a))``."""
    z = torch.atanh(torch.sqrt(torch.clamp(1 - slope, min=0)))
    return [z, -z]


def _softplus(z: Tensor) -> Tensor:
    """``log(1 + exp(z))`` to rounding everywhere.  (``torch.nn.functional.softplus``
    returns ``z`` above its threshold 20, *below* the true value by up to 2e-9: an
    interval bound built on it can miss the network's own output.)"""
    return torch.logaddexp(z, torch.zeros_like(z))


def _sigmoid_derivative(z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


RULES: dict[str, ActivationRule] = {rule.name: rule for rule in (
    ActivationRule("relu", ReLU, torch.nn.ReLU, "Relu", torch.relu,
                   lambda z: (z > 0).to(z.dtype), _convex, None, None, "triangle"),
    ActivationRule("sigmoid", Sigmoid, torch.nn.Sigmoid, "Sigmoid", torch.sigmoid,
                   _sigmoid_derivative, _split_at_zero, _sigmoid_stationary,
                   (-1.0 / (6 * _S3) * _WIDEN, 1.0 / (6 * _S3) * _WIDEN), "tangent-chord", (0.0, 0.25), (0,)),
    ActivationRule("tanh", Tanh, torch.nn.Tanh, "Tanh", torch.tanh,
                   lambda z: 1 - torch.tanh(z) ** 2, _split_at_zero, _tanh_stationary,
                   (-4.0 / (3 * _S3) * _WIDEN, 4.0 / (3 * _S3) * _WIDEN), "tangent-chord", (0.0, 1.0), (0,)),
    ActivationRule("softplus", Softplus, torch.nn.Softplus, "Softplus",
                   _softplus, torch.sigmoid, _convex,
                   lambda slope: [torch.logit(slope)], (0.0, 0.25 * _WIDEN), "tangent-chord"),
)}

#: the names of the smooth activations
SMOOTH: tuple[str, ...] = tuple(name for name, rule in RULES.items() if rule.smooth)


def rule_of(activation) -> ActivationRule:
    """The rule of an IR activation (or of its name)."""
    name = activation if isinstance(activation, str) else activation.name
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(RULES)}") from None
