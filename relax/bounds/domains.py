"""The data of alpha-CROWN (:mod:`relax.bounds.alpha`): its settings, a batch of domains,
and the bounds it returns for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from relax.bounds.kernels import cast_batch

__all__ = ["AlphaSettings", "Domains", "DomainBounds"]


@dataclass(frozen=True)
class AlphaSettings:
    """Adam ``iterations`` and step sizes (``lr`` for ReLU ``alpha``, ``lr_smooth`` for the
    smooth layers' slope fractions, ``lr_beta`` for ``beta``), multiplied by ``lr_decay``
    after every step; ``refine``: recompute the unstable intermediate bounds under the
    optimised slopes; ``per_layer_alpha``: every intermediate bound row has its own slopes
    (else one set shared with the objective).

    ``lr_smooth``: on a 784-200x6-10 sigmoid MNIST net (eps 0.02, 20 steps; a scratch
    trace) the bound of one instance went from CROWN's -0.118 to 0.705 at lr 0.1, 1.14 at 0.05, 1.27 at 0.02
    and 1.02 at 0.01; at ReLU's 0.5 the first step sent it to -6 (-0.85 after 20 steps):
    all slopes move together, and a smooth line's bound is far more sensitive to its
    slope than a ReLU's lower line."""

    iterations: int = 20
    lr: float = 0.1
    lr_beta: float = 0.05
    lr_decay: float = 0.98
    refine: bool = True
    per_layer_alpha: bool = True
    lr_smooth: float = 0.02
    #: stop (with the final evaluation in the exact dtype) once every domain's bound is positive
    stop_when_positive: bool = False
    #: a smooth slope's fraction is of the range of ``act'`` over the neuron's bounds
    #: (``interval``) or over the real line (``activation``: a fraction then means the same
    #: slope on any interval; only with ``refine=False``, :mod:`relax.search.smooth_bab`)
    smooth_span: Literal["interval", "activation"] = "interval"


@dataclass(frozen=True, eq=False)
class Domains:
    """A batch of domains: input boxes ``lower, upper`` (batch, n_in); objective rows
    ``objective`` (batch, rows, n_out) minus ``offsets`` (batch, rows); valid layer bounds
    ``prior_lower/upper[k]`` (batch, n_k); optional split ``signs[k]`` (batch, n_k) at 0,
    or two-sided (batch, 2 n_k) at ``points[k]`` (module docstring)."""

    lower: torch.Tensor
    upper: torch.Tensor
    objective: torch.Tensor
    prior_lower: list
    prior_upper: list
    offsets: torch.Tensor | None = None
    signs: list | None = None
    #: every domain has the same box and prior bounds (the disjuncts of one property at
    #: the root): intermediate bounds and their slopes are computed once, for all
    shared: bool = False
    points: list | None = None

    def head(self) -> "Domains":
        """The first domain alone (its box and layer bounds)."""
        return Domains(self.lower[:1], self.upper[:1], self.objective[:1],
                       [t[:1] for t in self.prior_lower], [t[:1] for t in self.prior_upper])

    def to(self, dtype) -> "Domains":
        cast = (lambda t: None if t is None else cast_batch(t, dtype))
        lists = (lambda ts: None if ts is None else [cast(t) for t in ts])
        return Domains(cast(self.lower), cast(self.upper), cast(self.objective),
                       lists(self.prior_lower), lists(self.prior_upper), cast(self.offsets),
                       lists(self.signs), self.shared, lists(self.points))


@dataclass
class DomainBounds:
    """Result for a batch of domains: best ``bound`` (batch,), row bounds (batch, rows),
    the layer bounds and final-objective ``alpha`` (batch, rows, n_k) of the last
    iteration, the input point minimising the first row's linear bound, and a per-neuron
    branching score (``-1`` where a neuron cannot be split)."""

    bound: torch.Tensor
    rows: torch.Tensor
    lower: list[torch.Tensor]
    upper: list[torch.Tensor]
    alpha: list[torch.Tensor]
    x: torch.Tensor
    score: list[torch.Tensor]
    beta: list[torch.Tensor] | None = None
