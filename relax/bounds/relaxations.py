"""Sound linear bounds of activations over an interval ``[l, u]``.

For every neuron we return ``lower(z) = a_lo z + c_lo`` and ``upper(z) = a_up z + c_up``
with ``lower(z) <= act(z) <= upper(z)`` for all ``z`` in ``[l, u]``.

ReLU: the triangle relaxation; the lower slope is adaptive (CROWN-Ada): 1 when
``u > -l``, else 0.

Sigmoid, tanh, softplus: the slope is chosen heuristically (a tangent at the
midpoint on a convex/concave piece, the chord otherwise) and the *offset is then
computed exactly*: ``c_lo = min_{z in [l,u]} act(z) - a z`` and ``c_up = max ...``.
The function ``g(z) = act(z) - a z`` is smooth, so its extrema lie at ``l``,
``u`` or at the stationary points ``act'(z) = a``, which have closed forms given by
each activation's rule (:data:`relax.bounds.activations.RULES`), e.g. for the sigmoid
``s(1 - s) = a``  =>  ``s = (1 +- sqrt(1 - 4a)) / 2``, ``z = logit(s)``.

Any slope therefore gives a sound bound; a small outward margin covers rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from relax.bounds.activations import rule_of

__all__ = ["LinearRelaxation", "relax_activation", "activation_value", "activation_derivative"]

ROUNDING_MARGIN = 1e-12


@dataclass(frozen=True)
class LinearRelaxation:
    """``lo_slope * z + lo_offset <= act(z) <= up_slope * z + up_offset`` on ``[l, u]``."""

    lo_slope: torch.Tensor
    lo_offset: torch.Tensor
    up_slope: torch.Tensor
    up_offset: torch.Tensor


def relax_activation(activation, lower: torch.Tensor, upper: torch.Tensor) -> LinearRelaxation:
    """The linear relaxation its rule names: the triangle, or tangent/chord slopes."""
    if rule_of(activation).relaxation == "triangle":
        return relax_relu(lower, upper)
    return relax_smooth(activation.name, lower, upper)


def relax_relu(lower: torch.Tensor, upper: torch.Tensor) -> LinearRelaxation:
    """Triangle relaxation with the adaptive lower slope."""
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    width = torch.where(unstable, upper - lower, torch.ones_like(upper))
    up_slope = torch.where(unstable, upper / width, active.to(upper.dtype))
    up_offset = torch.where(unstable, -lower * upper / width, torch.zeros_like(upper))
    lo_slope = torch.where(unstable, (upper > -lower).to(upper.dtype), active.to(upper.dtype))
    return LinearRelaxation(lo_slope, torch.zeros_like(lower), up_slope, up_offset)


def activation_value(name: str, z: torch.Tensor) -> torch.Tensor:
    """``act(z)`` (the rule's ``value``)."""
    return rule_of(name).value(z)


def activation_derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    """``act'(z)`` (the rule's ``derivative``)."""
    return rule_of(name).derivative(z)


def relax_smooth(name: str, lower: torch.Tensor, upper: torch.Tensor) -> LinearRelaxation:
    """Tangent/chord slopes with exactly computed offsets (see module docstring)."""
    width = upper - lower
    degenerate = width <= 1e-12
    safe_width = torch.where(degenerate, torch.ones_like(width), width)
    chord = (activation_value(name, upper) - activation_value(name, lower)) / safe_width
    tangent = activation_derivative(name, (lower + upper) / 2)
    chord = torch.where(degenerate, tangent, chord)
    convex, concave = rule_of(name).convexity(lower, upper)
    lo_slope = torch.where(convex, tangent, chord)
    up_slope = torch.where(concave, tangent, chord)
    lo_offset = _extreme_offset(name, lo_slope, lower, upper, torch.amin) - ROUNDING_MARGIN
    up_offset = _extreme_offset(name, up_slope, lower, upper, torch.amax) + ROUNDING_MARGIN
    return LinearRelaxation(lo_slope, lo_offset, up_slope, up_offset)


def _extreme_offset(name, slope, lower, upper, reduce) -> torch.Tensor:
    """``reduce_{z in [l,u]} act(z) - slope z`` over endpoints and stationary points."""
    candidates = [lower, upper]
    for point in rule_of(name).stationary(slope):
        point = torch.nan_to_num(point, nan=0.0, posinf=0.0, neginf=0.0)
        candidates.append(torch.minimum(torch.maximum(point, lower), upper))
    stacked = torch.stack(candidates)
    values = activation_value(name, stacked) - slope * stacked
    return reduce(values, dim=0)
