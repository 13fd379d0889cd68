"""Adam's moment update (Kingma & Ba, 2015), shared by fo-sdp's dual ascent and relax's
alpha-CROWN slope search (each keeps its own explicit state and projection):

    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
    direction = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps).
"""

from __future__ import annotations

__all__ = ["BETA1", "BETA2", "adam_moments", "adam_moments_"]

BETA1, BETA2 = 0.9, 0.999


def adam_moments(m, v, grad, step: int, eps: float = 1e-8):
    """New ``(m, v)`` and the step direction for gradient ``grad`` at step ``step >= 1``
    (out of place; torch tensors or numpy arrays)."""
    m = BETA1 * m + (1 - BETA1) * grad
    v = BETA2 * v + (1 - BETA2) * grad * grad
    direction = (m / (1 - BETA1 ** step)) / ((v / (1 - BETA2 ** step)) ** 0.5 + eps)
    return m, v, direction


#: :func:`adam_moments_` takes ``sqrt(max(v_hat, TINY))``: torch's CPU ``sqrt`` is 10-25x
#: slower on exact zeros (entries that never had a gradient) than on normal numbers, and
#: ``sqrt(TINY) = 1e-15`` is far below ``eps``, so the direction is unchanged to ~1e-7
TINY = 1e-30


def adam_moments_(m, v, grad, step: int, eps: float = 1e-8):
    """:func:`adam_moments` in place on torch tensors ``m`` and ``v`` (fused multiply-adds,
    several times cheaper than the out-of-place version on the CPU; ``v_hat`` floored
    at :data:`TINY`); returns the step direction."""
    m.mul_(BETA1).add_(grad, alpha=1 - BETA1)
    v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
    denominator = (v / (1 - BETA2 ** step)).clamp_min_(TINY).sqrt_().add_(eps)
    return (m / (1 - BETA1 ** step)).div_(denominator)
