"""Optimisable linear bounds of smooth activations (sigmoid, tanh, softplus) for alpha-CROWN.

On ``[l, u]`` every slope ``a`` gives the tightest sound lines of that slope,

    a z + min_{z' in [l,u]} (act(z') - a z')  <=  act(z)  <=  a z + max_{z' in [l,u]} (act(z') - a z'),

with the extrema taken over the endpoints and the stationary points ``act'(z') = a``
(closed forms in :data:`relax.bounds.activations.RULES`), exactly as
:func:`relax.bounds.relaxations.relax_smooth` computes the offsets of its heuristic
slopes.  Every supporting line of the convex (resp. concave) hull of ``act`` on
``[l, u]`` is the tightest line of its slope, and the hull's slopes lie in
``[min act', max act']`` over ``[l, u]``, so parameterising

    a_lo = d_min + t_lo (d_max - d_min),   a_up = d_min + t_up (d_max - d_min),   t in [0, 1]

loses no supporting line; alpha-CROWN optimises ``t`` (one pair per neuron and
objective row) as it optimises ReLU lower slopes (Xu et al. 2021 optimise the tangent
points of general activations the same way).  Soundness needs no property of ``t``:
the offsets are exact for whatever slope the optimiser returns, and the final bound is
evaluated in float64 with a small outward margin.

The offsets' gradient in ``a`` is ``-z*`` (the extremal point; envelope theorem), so the
stationary points enter as constants (detached): their own derivative in ``a`` is
infinite where ``a`` is the largest slope (``sqrt`` at 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from relax.bounds.activations import rule_of
from relax.bounds.relaxations import ROUNDING_MARGIN, relax_smooth

__all__ = ["SmoothBase", "smooth_base", "initial_fraction", "smooth_line", "smooth_score",
           "respan_fraction"]

Tensor = torch.Tensor


@dataclass(frozen=True)
class SmoothBase:
    """One smooth layer's bounds ``lower, upper`` (batch, n) and the range
    ``[slope_min, slope_max]`` of ``act'`` over them."""

    name: str
    lower: Tensor
    upper: Tensor
    slope_min: Tensor
    slope_max: Tensor


def smooth_base(name: str, lower: Tensor, upper: Tensor, span: str = "interval") -> SmoothBase:
    """The derivative's range over each ``[l, u]``: its values at ``l``, ``u`` and at 0
    (clamped into the interval) contain the extremes of a unimodal derivative with its
    peak at 0 (sigmoid, tanh) and of a monotone one (softplus).  With ``span="activation"``
    the range over the real line instead (the rule's ``derivative_range``), so that a
    fraction means the same slope on every interval (a split keeps the parent's lines)."""
    if span == "activation":
        low, high = rule_of(name).derivative_range
        return SmoothBase(name, lower, upper, torch.full_like(lower, low), torch.full_like(lower, high))
    if span != "interval":
        raise ValueError(f"unknown slope span {span!r}; known: interval, activation")
    derivative = rule_of(name).derivative
    peak = torch.clamp(torch.zeros_like(lower), lower, upper)
    values = torch.stack([derivative(lower), derivative(upper), derivative(peak)])
    return SmoothBase(name, lower, upper, values.amin(0), values.amax(0))


def _fraction(base: SmoothBase, slope: Tensor) -> Tensor:
    width = base.slope_max - base.slope_min
    safe = torch.where(width > 0, width, torch.ones_like(width))
    return torch.where(width > 0, (slope - base.slope_min) / safe, torch.full_like(width, 0.5)).clamp(0, 1)


def initial_fraction(base: SmoothBase) -> Tensor:
    """``t`` (batch, 1, 2n: lower then upper) of the heuristic slopes of
    :func:`relax.bounds.relaxations.relax_smooth` (tangent at the midpoint on a convex or
    concave piece, chord otherwise), so the first iterate is CROWN's relaxation."""
    lines = relax_smooth(base.name, base.lower.detach(), base.upper.detach())
    t = torch.cat([_fraction(base, lines.lo_slope), _fraction(base, lines.up_slope)], dim=-1)
    return t.detach().unsqueeze(1)


def smooth_line(base: SmoothBase, fraction: Tensor):
    """(lower slope, lower offset, upper slope, upper offset), each (batch, rows, n), of
    the fractions ``fraction`` (batch, rows, 2n)."""
    n = base.lower.shape[-1]
    t_lo, t_up = fraction[..., :n].clamp(0, 1), fraction[..., n:].clamp(0, 1)
    low, width = base.slope_min.unsqueeze(1), (base.slope_max - base.slope_min).unsqueeze(1)
    lo_slope, up_slope = low + t_lo * width, low + t_up * width
    lo_offset = _extreme_offset(base, lo_slope, maximum=False) - ROUNDING_MARGIN
    up_offset = _extreme_offset(base, up_slope, maximum=True) + ROUNDING_MARGIN
    return lo_slope, lo_offset, up_slope, up_offset


def _extreme_offset(base: SmoothBase, slope: Tensor, maximum: bool) -> Tensor:
    """``max_{z in [l,u]} act(z) - slope z`` (``min`` unless ``maximum``), (batch, rows, n),
    over the endpoints and the stationary points (clamped into ``[l, u]``) that can hold
    that extremum: the rule's
    ``maxima`` for the maximum, its other stationary points for the minimum.

    The value is that reduction, computed without autograd; zero-valued terms attach its
    gradient: ``-z*`` in ``slope`` (``z*`` the extremal point; a stationary point enters as
    a constant, as the envelope theorem allows) and ``act'(l) - slope`` in ``l`` where
    ``z* = l`` (likewise ``u``).  Where both ends are extremal (a chord) each gets half,
    as ``amax``'s backward would share it.  Recording the candidates' graph instead cost
    more than all of the forward pass."""
    rule = rule_of(base.name)
    pick = torch.maximum if maximum else torch.minimum
    lower, upper = base.lower.unsqueeze(1), base.upper.unsqueeze(1)
    with torch.no_grad():
        fixed = slope.detach()
        gap_lower, gap_upper = rule.value(lower) - fixed * lower, rule.value(upper) - fixed * upper
        best = pick(gap_lower, gap_upper)
        candidates = [z for i, z in enumerate(rule.stationary(fixed)) if (i in rule.maxima) == maximum]
        if len(candidates) > 1:
            raise ValueError(f"{rule.name}: more than one stationary point per extremum is not supported")
        stationary = None
        if candidates:
            stationary = torch.nan_to_num(candidates[0], nan=0.0, posinf=0.0, neginf=0.0)
            stationary = torch.minimum(torch.maximum(stationary, lower), upper)
            best = pick(best, rule.value(stationary) - fixed * stationary)
        at_lower, at_upper = (gap_lower == best).to(best.dtype), (gap_upper == best).to(best.dtype)
        ends = at_lower + at_upper  # 2 at a chord: each end gets half
        at_lower, at_upper = at_lower / ends.clamp(min=1), at_upper / ends.clamp(min=1)
        point = at_lower * lower + at_upper * upper
        if stationary is not None:
            point = point + (ends == 0) * stationary
    offset = best - (slope - fixed) * point  # every added term is exactly 0: it carries a gradient
    for weight, end in ((at_lower, lower), (at_upper, upper)):
        if end.requires_grad:
            offset = offset + weight * (rule.value(end) - rule.value(end.detach()) - fixed * (end - end.detach()))
    return offset


def smooth_score(base: SmoothBase, coeffs: Tensor, fraction: Tensor) -> Tensor:
    """A branching score (batch, n): ``lambda^+ gap_lo + lambda^- gap_up`` for backward
    coefficients ``coeffs`` (batch, n) on the layer's output and the lines of ``fraction``
    (batch, 1, 2n): the gap between the activation and the line the bound uses (the lower
    one where ``lambda > 0``), the largest of those at ``l``, ``u`` and the midpoint; ``-1``
    where the interval is too narrow to split."""
    lo_slope, lo_offset, up_slope, up_offset = (t[:, 0] for t in smooth_line(base, fraction))
    points = torch.stack([base.lower, base.upper, (base.lower + base.upper) / 2])
    value = rule_of(base.name).value(points)
    gap_lo = (value - lo_slope * points - lo_offset).amax(0)
    gap_up = (up_slope * points + up_offset - value).amax(0)
    score = coeffs.clamp(min=0) * gap_lo - coeffs.clamp(max=0) * gap_up
    return torch.where(base.upper - base.lower > 1e-6, score, torch.full_like(score, -1.0))


def respan_fraction(name: str, lower: Tensor, upper: Tensor, fraction: Tensor) -> Tensor:
    """Fractions (batch, rows, 2n) of the ``interval`` span re-expressed in the
    ``activation`` span: the same slopes, hence the same lines."""
    was = smooth_base(name, lower, upper)
    now = smooth_base(name, lower, upper, "activation")
    n = lower.shape[-1]
    low, width = was.slope_min.unsqueeze(1), (was.slope_max - was.slope_min).unsqueeze(1)
    slopes = torch.cat([low + fraction[..., :n].clamp(0, 1) * width,
                        low + fraction[..., n:].clamp(0, 1) * width], dim=-1)
    new_low = torch.cat([now.slope_min, now.slope_min], -1).unsqueeze(1)
    new_width = torch.cat([now.slope_max - now.slope_min] * 2, -1).unsqueeze(1)
    return ((slopes - new_low) / new_width).clamp(0, 1)
