"""Evaluation of trained models: clean, PGD and certified error.

- :func:`clean_error`: fraction misclassified.
- :func:`pgd_error`: fraction misclassified at the clean point or at an L-inf PGD
  adversarial example (a lower bound on the robust error).
- :func:`certified_error`: fraction *not* certified robust by one of relax's sound
  bound methods (``relax.verify.BOUND_METHODS``: ``ibp``, ``crown``, ``lp``, ...).
  A point is certified when the float64 lower bound on every other class's
  margin ``z_y - z_j`` exceeds :data:`relax.verify.FLOAT_SLACK` (the same rule as
  a *holds* verdict); misclassified points are never certified.  This is an
  upper bound on the robust error, so ``pgd_error <= certified_error`` always.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor, nn

from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.network import Network
from relax.spec import robustness
from relax.train.pgd import pgd_linf
from relax.verify import BOUND_METHODS, FLOAT_SLACK, VerifyOptions

__all__ = ["clean_error", "pgd_error", "pgd_broken", "certified", "certified_error", "as_network"]

log = logging.getLogger(__name__)


def as_network(model_or_network: nn.Module | Network, input_size: int | None = None) -> Network:
    """The float64 IR of a torch model (or the network itself)."""
    if isinstance(model_or_network, Network):
        return model_or_network
    from relax.io.torch_import import from_torch

    if input_size is None:
        first = next(m for m in model_or_network.modules() if isinstance(m, nn.Linear))
        input_size = first.in_features
    return from_torch(model_or_network.cpu().float().eval(), input_size)


@torch.no_grad()
def _predict(model: nn.Module, X: Tensor) -> Tensor:
    model.eval()
    return model(X).argmax(-1)


def clean_error(model: nn.Module, X: Tensor, y: Tensor) -> float:
    """Fraction of ``X`` misclassified."""
    return float((_predict(model, X) != y).float().mean())


def pgd_broken(model: nn.Module, X: Tensor, y: Tensor, eps: float, steps: int = 40,
               restarts: int = 2, seed: int = 0, batch_size: int = 500) -> Tensor:
    """Boolean mask: misclassified at ``x`` or at a PGD point within ``eps`` (and [0, 1])."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    broken = _predict(model, X) != y
    for start in range(0, len(X), batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        for restart in range(restarts):
            x_adv = pgd_linf(model, xb, yb, eps, steps, random_start=restart > 0)
            broken[start:start + batch_size] |= _predict(model, x_adv) != yb
    torch.set_rng_state(generator_state)
    return broken


def pgd_error(model: nn.Module, X: Tensor, y: Tensor, eps: float, steps: int = 40,
              restarts: int = 2, seed: int = 0) -> float:
    """Fraction broken by PGD (see :func:`pgd_broken`)."""
    return float(pgd_broken(model, X, y, eps, steps, restarts, seed).float().mean())


def certified(model_or_network: nn.Module | Network, X, y, eps: float, method: str = "crown",
              timeout: float | None = None, options: VerifyOptions = VerifyOptions()) -> np.ndarray:
    """Boolean mask of the points whose L-inf ``eps`` robustness ``method`` proves."""
    if method not in BOUND_METHODS:
        raise UsageError(f"unknown method {method!r}; choose from {', '.join(BOUND_METHODS)}")
    network = as_network(model_or_network)
    X = np.asarray(X.detach().cpu() if isinstance(X, Tensor) else X, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=np.int64)
    correct = np.array([int(np.argmax(network.forward(x))) == label for x, label in zip(X, y)])
    result = np.zeros(len(X), dtype=bool)
    index = np.flatnonzero(correct)
    if not len(index):
        return result
    specs = [robustness(X[i], int(y[i]), eps, num_classes=network.output_size) for i in index]
    if method in ("ibp", "crown"):  # batched, no deadline needed
        outcomes = BOUND_METHODS[method](network, specs, NEVER, options)
        result[index] = [o.bound > FLOAT_SLACK for o in outcomes]
        return result
    for i, spec in zip(index, specs):  # solver-based methods: one property at a time
        (outcome,) = BOUND_METHODS[method](network, [spec], Deadline.after(timeout), options)
        result[i] = outcome.bound > FLOAT_SLACK
    return result


def certified_error(model_or_network: nn.Module | Network, X, y, eps: float, method: str = "crown",
                    timeout: float | None = None, options: VerifyOptions = VerifyOptions()) -> float:
    """Fraction of points *not* certified by ``method`` (an upper bound on the robust error)."""
    mask = certified(model_or_network, X, y, eps, method, timeout, options)
    return float(1 - mask.mean()) if len(mask) else float("nan")
