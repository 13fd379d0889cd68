"""The robust cross-entropy shared by the certified-training terms.

Given lower bounds ``m_j <= z_y - z_j`` on the margins (``m_y = 0``), the
worst-case logits ``-m`` give ``CE(-m, y) >= max over the ball of CE(z(x'), y)``
(Wong & Kolter 2018; Gowal et al. 2018): an upper bound on the robust loss.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

__all__ = ["robust_ce"]


def robust_ce(margin_lower: Tensor, y: Tensor) -> Tensor:
    """``mean_b CE(-m_b, y_b)`` for margin lower bounds ``m`` of shape (B, K)."""
    return F.cross_entropy(-margin_lower, y)
