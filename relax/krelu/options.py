"""Options of the ``krelu`` method (:func:`relax.krelu.method.krelu_method`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from relax.errors import UsageError
from relax.options import MethodOptions, option

__all__ = ["KreluOptions"]


@dataclass(frozen=True)
class KreluOptions(MethodOptions):
    """k-ReLU groups and hulls (``k``, ``ns``, ``s``, ``hull``, ``max_groups``, ``refine``,
    ``first_layer``) and the pipeline around them (the other fields)."""

    k: int = option(3, "ReLUs per group (1..5)")
    ns: int = option(20, "window of candidate neurons per group selection")
    s: int = option(1, "largest overlap between two groups")
    hull: Literal["fast", "exact", "auto"] = option(
        "fast", "hull: fast template, exact (Qhull), or auto (exact for k <= 3)")
    max_groups: int | None = option(None, "at most this many groups per layer (None: no cap)")
    refine: bool = option(True, "use the rows of earlier layers when LP-tightening later ones")
    first_layer: bool = option(True, "rows for hidden layer 0 too (dense over the input)")
    bounds: Literal["alpha", "lp"] = option(
        "alpha", "intermediate bounds: alpha-CROWN plus LP on the last layers, or LP on all")
    lp_layers: int | None = option(None, "with bounds=alpha: LP-tighten this many last hidden "
                                         "layers (None: all)")
    alpha_iterations: int = option(20, "Adam steps of the first alpha-CROWN run")
    feedback: int = option(5, "with bounds=alpha: alpha-CROWN steps re-run after each LP-tightened "
                              "layer (0: off)")
    tighten_share: float = option(0.8, "fraction of the remaining time for LP tightening")
    publish_every: float | None = option(
        None, "seconds of LP tightening within a layer between hand-overs of its bounds so far "
              "to a search running beside the stage (None: whole layers only; each hand-over "
              "restarts that search, which on eran 9x200 costs it 10-20 s: vnncomp_notes.md, "
              "section 13)")
    bab: Literal["off", "lp", "torch"] = option(
        "off", "branch and bound on the open disjuncts afterwards: LP with the rows, or "
               "alpha/beta-CROWN from the tightened bounds")
    intermediate: Literal["lp", "crown"] = option(
        "lp", "lp: LP-tighten the layer bounds; crown: keep the (alpha-)CROWN bounds")
    neuron_search: float | None = option(
        None, "before LP-tightening a hidden layer (ReLU layers below it), branch "
              "and bound on each unstable neuron's ends for at most this many seconds each "
              "(relax.search.neuron_bounds; None: off)")

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.k <= 5:
            raise UsageError(f"k-ReLU needs 1 <= k <= 5, got {self.k}")
        if self.ns < self.k or self.s < 0 or self.alpha_iterations < 0 or self.feedback < 0:
            raise UsageError("k-ReLU needs ns >= k, s >= 0, alpha_iterations >= 0, feedback >= 0")
        if self.publish_every is not None and not (math.isfinite(self.publish_every) and self.publish_every > 0):
            raise UsageError(f"krelu.publish_every must be a positive number of seconds, got {self.publish_every}")
        if self.neuron_search is not None and not (math.isfinite(self.neuron_search) and self.neuron_search > 0):
            raise UsageError(f"krelu.neuron_search must be a positive number of seconds, got {self.neuron_search}")
        if not (math.isfinite(self.tighten_share) and 0 < self.tighten_share <= 1):
            raise UsageError(f"krelu.tighten_share must be in (0, 1], got {self.tighten_share}")
        if (self.max_groups is not None and self.max_groups < 1) or \
                (self.lp_layers is not None and self.lp_layers < 0):
            raise UsageError("krelu.max_groups must be >= 1 and krelu.lp_layers >= 0")

    @property
    def hull_method(self) -> str:
        return ("exact" if self.k <= 3 else "fast") if self.hull == "auto" else self.hull
