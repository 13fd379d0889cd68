"""Each domain's best iterate of an optimisation over per-domain slopes and multipliers."""

from __future__ import annotations

import torch

__all__ = ["BestIterate"]


class BestIterate:
    """Each domain's best Adam iterate in the working dtype (value and a copy of its slopes
    and multipliers).  Where the steps run in float32 and only one float64 evaluation gives
    the bound, that evaluation is at each domain's best iterate, not its last: in a scratch
    count on mnistfc 256x4 prop_8_0.05 (the search alone, 40 s) an earlier iterate was better
    than the last for 56 % of the children, by 0.058 on average (``vnncomp_notes.md``,
    section 15; ``tests/test_alpha_best_iterate.py`` checks the effect).  Any
    slopes in [0, 1] and multipliers >= 0 give a sound bound, so the choice is free."""

    def __init__(self, params: list[torch.Tensor], betas: list[torch.Tensor] | None):
        self.value = None
        self.params = [p.detach().clone() for p in params]
        self.betas = None if betas is None else [b.detach().clone() for b in betas]

    def offer(self, value: torch.Tensor, params: list[torch.Tensor], betas: list[torch.Tensor] | None) -> None:
        """Keep ``params`` and ``betas`` (rows: domains) of the domains whose ``value``
        beats their best so far."""
        better = torch.ones_like(value, dtype=torch.bool) if self.value is None else value > self.value
        self.value = value if self.value is None else torch.where(better, value, self.value)
        self.params = [_where_rows(better, p.detach(), b) for p, b in zip(params, self.params)]
        if self.betas is not None:
            self.betas = [_where_rows(better, p.detach(), b) for p, b in zip(betas, self.betas)]

    def cast(self, dtype):
        """The best slopes and multipliers in ``dtype``."""
        return ([p.to(dtype) for p in self.params],
                None if self.betas is None else [b.to(dtype) for b in self.betas])


def _where_rows(rows: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` in the rows (first dimension) where ``rows`` is true, else ``old``."""
    return torch.where(rows.view(-1, *([1] * (new.dim() - 1))), new, old)
