"""Adam's moment update (Kingma & Ba, 2015), shared by fo-sdp's dual ascent and relax's
alpha-CROWN slope search (each keeps its own explicit state and projection):

    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
    direction = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps).
"""

from __future__ import annotations

__all__ = ["BETA1", "BETA2", "adam_moments"]

BETA1, BETA2 = 0.9, 0.999


def adam_moments(m, v, grad, step: int, eps: float = 1e-8):
    """New ``(m, v)`` and the step direction for gradient ``grad`` at step ``step >= 1``
    (out of place; torch tensors or numpy arrays)."""
    m = BETA1 * m + (1 - BETA1) * grad
    v = BETA2 * v + (1 - BETA2) * grad * grad
    direction = (m / (1 - BETA1 ** step)) / ((v / (1 - BETA2 ** step)) ** 0.5 + eps)
    return m, v, direction
