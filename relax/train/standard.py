"""Standard (clean) cross-entropy training."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["CrossEntropy"]


@dataclass
class CrossEntropy:
    """``weight * CE(model(x), y)``."""

    weight: float = 1.0
    name: str = "ce"

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        return self.weight * F.cross_entropy(model(x), y)
