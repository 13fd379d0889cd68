"""The ``alpha-crown`` verification method: CROWN, then alpha-CROWN per open disjunct.

alpha-CROWN (:func:`relax.bounds.alpha.alpha_crown`) optimises the ReLU lower slopes
and the sigmoid/tanh/softplus lower and upper slopes (:mod:`relax.bounds.smooth_lines`)
of the CROWN backward pass, one set per objective row and per intermediate bound
row, by projected Adam.
Every iterate is a valid bound, so the result is a sound lower bound on each
disjunct's margin, never below CROWN's (the maximum of both is returned).
Incomplete.  With ``VerifyOptions.bound_only`` every disjunct gets alpha-CROWN,
even when CROWN already proves the property.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from relax.bounds import bound_specs
from relax.bounds.alpha import AlphaSettings
from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.network import Network
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.search.beta_crown import root_alpha_bounds
from relax.spec import Spec

__all__ = ["alpha_crown_method", "AlphaCrownOptions", "DEFAULT_ALPHA", "alpha_disjunct_bounds"]


@dataclass(frozen=True)
class AlphaCrownOptions(MethodOptions):
    """Options of the ``alpha-crown`` method (defaults: auto_LiRPA's)."""

    iterations: int = option(20, "Adam steps on the slopes")
    lr: float = option(0.5, "Adam step size for the ReLU slopes")
    lr_smooth: float = option(AlphaSettings.lr_smooth,
                              "Adam step size for the sigmoid/tanh/softplus slopes (fractions of "
                              "the derivative's range over each neuron's bounds)")
    lr_decay: float = option(0.98, "step size factor after every step")
    refine: bool = option(True, "re-bound intermediate layers under their own optimised slopes")

    def __post_init__(self):
        super().__post_init__()
        if self.iterations < 0 or self.lr <= 0 or self.lr_smooth <= 0 or not 0 < self.lr_decay <= 1:
            raise UsageError("alpha-crown needs iterations >= 0, lr > 0, lr_smooth > 0 and "
                             "0 < lr_decay <= 1")

    def settings(self) -> AlphaSettings:
        return AlphaSettings(self.iterations, self.lr, lr_decay=self.lr_decay, refine=self.refine,
                             lr_smooth=self.lr_smooth)


#: the method's default settings
DEFAULT_ALPHA = AlphaCrownOptions().settings()


def alpha_disjunct_bounds(network: Network, spec: Spec, disjuncts, deadline: Deadline = NEVER,
                          settings: AlphaSettings = DEFAULT_ALPHA) -> np.ndarray:
    """alpha-CROWN lower bounds on the margins of ``disjuncts`` of ``spec``."""
    disjuncts = list(disjuncts)
    if not disjuncts:
        return np.zeros(0)
    root, _, _ = root_alpha_bounds(network, spec, disjuncts, deadline=deadline,
                                   alpha_settings=settings)
    return root.bound.numpy().astype(float)


def alpha_crown_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
                       options: VerifyOptions) -> list[BoundOutcome]:
    """Per spec: the minimum over disjuncts of max(CROWN, alpha-CROWN)."""
    settings = options.of(AlphaCrownOptions).settings()
    outcomes = []
    for spec, crown in zip(specs, bound_specs(network, list(specs), "crown", device=options.device)):
        per_disjunct = np.array(crown.disjunct_bounds, dtype=float)
        todo = [j for j, b in enumerate(per_disjunct) if options.bound_only or b <= 0]
        if todo:
            alpha = alpha_disjunct_bounds(network, spec, todo, deadline, settings)
            per_disjunct[todo] = np.maximum(per_disjunct[todo], alpha)
        outcomes.append(BoundOutcome(float(per_disjunct.min())))
    return outcomes
