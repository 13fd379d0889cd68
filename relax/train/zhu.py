"""The two tightness regularisers of Zhu et al. 2020 ("Improving the Tightness of
Convex Relaxation Bounds for Training Certifiably Robust Classifiers").

The relaxation is CROWN's linear bound on the margins ``C z_L`` with IBP
pre-activation bounds (the CROWN-IBP relaxation, :func:`relax.train.bounds.linear_margin`).
Its optimum ``d`` is attained at an input corner ``x*`` with every relaxed
ReLU on one of its triangle lines; forwarding ``x*`` through the *relaxed*
network gives the relaxation's optimiser ``(z*_k, a*_k)``.

- Gap regulariser: ``r_gap = mean relu(p - d)`` with ``p = (C z_L)(x*)`` the
  network's own margin at the relaxation's optimal input.  ``p - d >= 0`` since
  ``d <= min margin <= p``; it is zero when the relaxation is tight there (e.g.
  when no neuron is unstable, the network is affine on the box).
- Off-graph regulariser: ``r_graph = mean sum_{unstable i} |a*_i - relu(z*_i)|``,
  the vertical distance of the relaxed optimiser from the ReLU graph, over the
  unstable neurons (``l < 0 < u``); zero when there are none.

Means are over the batch and the K - 1 margin rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from relax.train.bounds import ibp_bounds, input_box, layers_of, linear_margin, margin_matrix
from relax.train.schedule import Ramp

__all__ = ["relaxation_optimum", "gap_penalty", "off_graph_penalty", "ZhuGapLoss", "ZhuOffGraphLoss", "ZhuLoss"]


@dataclass
class RelaxationOptimum:
    """The relaxation's optimum ``bound`` (B, K), the network's margin ``network_margin``
    at the optimal inputs, and the off-graph distance per (B, K) summed over unstable neurons."""

    bound: Tensor
    network_margin: Tensor
    off_graph: Tensor
    rows: Tensor  # (B, K) mask of the margin rows j != y
    relaxed_margin: Tensor  # C z_L of the relaxed optimiser (equals ``bound`` up to rounding)


def relaxation_optimum(model: torch.nn.Module, x: Tensor, y: Tensor, eps: float) -> RelaxationOptimum:
    """Solve the CROWN-IBP relaxation of every margin and evaluate its optimiser."""
    layers = layers_of(model)
    lower, upper = input_box(x, eps)
    num_classes = layers.weights[-1].shape[0]
    C = margin_matrix(y, num_classes, x.dtype)
    bounds = ibp_bounds(layers, lower, upper)
    relaxed = linear_margin(layers, lower, upper, C, bounds[:-1])
    x_opt = relaxed.x_opt                                     # (B, K, n0)
    p = (C * model(x_opt)).sum(-1)                            # network margin at x*
    off = torch.zeros_like(p)
    h = x_opt
    for k in range(len(layers.weights) - 1):
        z = h @ layers.weights[k].T + layers.biases[k]        # (B, K, n_k)
        s_lo, s_up, c_up = (t.unsqueeze(1) for t in relaxed.slopes[k])
        a = torch.where(relaxed.upper_line[k], s_up * z + c_up, s_lo * z)
        l, u = bounds[k]
        unstable = ((l < 0) & (u > 0)).unsqueeze(1)
        off = off + ((a - torch.relu(z)).abs() * unstable).sum(-1)
        h = a
    relaxed_margin = (C * (h @ layers.weights[-1].T + layers.biases[-1])).sum(-1)
    rows = 1 - torch.nn.functional.one_hot(y, num_classes).to(p.dtype)
    return RelaxationOptimum(relaxed.bound, p, off, rows, relaxed_margin)


def _row_mean(values: Tensor, rows: Tensor) -> Tensor:
    return (values * rows).sum() / rows.sum().clamp(min=1)


def gap_penalty(opt: RelaxationOptimum) -> Tensor:
    """``mean relu(p - d)`` over the batch and margin rows."""
    return _row_mean(torch.relu(opt.network_margin - opt.bound), opt.rows)


def off_graph_penalty(opt: RelaxationOptimum) -> Tensor:
    """Mean over the batch and rows of the summed off-graph distances."""
    return _row_mean(opt.off_graph, opt.rows)


@dataclass
class ZhuGapLoss:
    """``weight * r_gap`` at the (ramped) training eps."""

    eps: float
    weight: float = 0.1
    ramp_finish: float = 0.5
    name: str = "zhu-gap"

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        eps = Ramp(0.0, self.eps, 0.0, self.ramp_finish)(progress)
        if eps <= 0:
            return x.new_zeros(())
        return self.weight * gap_penalty(relaxation_optimum(model, x, y, eps))


@dataclass
class ZhuOffGraphLoss:
    """``weight * r_graph`` at the (ramped) training eps."""

    eps: float
    weight: float = 0.1
    ramp_finish: float = 0.5
    name: str = "zhu-graph"

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        eps = Ramp(0.0, self.eps, 0.0, self.ramp_finish)(progress)
        if eps <= 0:
            return x.new_zeros(())
        return self.weight * off_graph_penalty(relaxation_optimum(model, x, y, eps))


@dataclass
class ZhuLoss:
    """Both regularisers from one relaxation solve: ``w_gap r_gap + w_graph r_graph``."""

    eps: float
    gap_weight: float = 0.1
    graph_weight: float = 0.1
    ramp_finish: float = 0.5
    name: str = "zhu"

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        eps = Ramp(0.0, self.eps, 0.0, self.ramp_finish)(progress)
        if eps <= 0:
            return x.new_zeros(())
        opt = relaxation_optimum(model, x, y, eps)
        return self.gap_weight * gap_penalty(opt) + self.graph_weight * off_graph_penalty(opt)
