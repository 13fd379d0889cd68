"""The training loop: Adam over a weighted sum of composable loss terms.

A :class:`LossTerm` maps ``(model, x, y, progress)`` to a scalar, already
weighted loss; ``progress`` in [0, 1] is the fraction of the run done (at the
start of the batch), which terms use for eps and weight ramps.  :func:`train`
minimises ``sum_t term_t(model, x, y, progress)`` with Adam over mini-batches
(learning rate ``lr``, times ``lr_decay`` after each fraction in ``lr_decay_at``)
and records, per epoch, the mean of every term and the seconds taken.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from relax.errors import UsageError

__all__ = ["LossTerm", "TrainConfig", "TrainLog", "train"]

log = logging.getLogger(__name__)


@runtime_checkable
class LossTerm(Protocol):
    """A composable, weighted loss term."""

    name: str

    def __call__(self, model: torch.nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        """Scalar loss (already weighted); ``progress`` in [0, 1] is the fraction done."""
        ...


@dataclass
class TrainConfig:
    """Schedule and data settings of one training run."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    limit: int | None = None  # number of training images (None: all)
    progress_bar: bool = True
    threads: int | None = None  # torch CPU threads during training (None: leave as is)
    lr_decay_at: tuple[float, ...] = ()  # fractions of training after which lr *= lr_decay
    lr_decay: float = 0.1


@dataclass
class TrainLog:
    """Per-epoch mean loss of every term (by name), total loss and seconds per epoch."""

    term_losses: dict[str, list[float]] = field(default_factory=dict)
    total_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time of an epoch."""
        return float(np.mean(self.seconds)) if self.seconds else float("nan")


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _data(config: TrainConfig, data) -> tuple[Tensor, Tensor]:
    if data is None:
        from relax.train.data import mnist_tensors

        return mnist_tensors("train", config.limit)
    X, y = data
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    if config.limit is not None:
        X, y = X[: config.limit], y[: config.limit]
    if len(X) != len(y) or len(X) == 0:
        raise UsageError(f"training data needs as many labels as inputs (> 0): {len(X)} vs {len(y)}")
    return X.float(), y.long()


def _unique_names(terms: Sequence[LossTerm]) -> list[str]:
    names, seen = [], {}
    for term in terms:
        name = getattr(term, "name", type(term).__name__)
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names


def train(
    model: torch.nn.Module,
    terms: Sequence[LossTerm],
    config: TrainConfig,
    data: tuple[Tensor, Tensor] | None = None,
) -> TrainLog:
    """Train ``model`` in place on ``data`` (default: the MNIST training split).

    Deterministic given ``config.seed`` (shuffling and any randomness in the terms
    draw from torch's global generator, seeded here).
    """
    if config.epochs < 0 or config.batch_size < 1 or not config.lr > 0:
        raise UsageError(f"bad training configuration: {config}")
    if not terms:
        raise UsageError("train needs at least one loss term")
    _seed(config.seed)
    X, y = _data(config, data)
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run(model, terms, config, X, y)
    finally:
        torch.set_num_threads(previous_threads)


def _run(model, terms, config: TrainConfig, X: Tensor, y: Tensor) -> TrainLog:
    """The epochs of :func:`train`."""
    device = torch.device(config.device)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    names = _unique_names(terms)
    run_log = TrainLog({name: [] for name in names})
    batches_per_epoch = (len(X) + config.batch_size - 1) // config.batch_size
    total_steps = max(config.epochs * batches_per_epoch, 1)
    bar = _progress_bar(config, total_steps)
    step = 0
    for epoch in range(config.epochs):
        model.train()
        start = time.perf_counter()
        sums = np.zeros(len(terms))
        order = torch.randperm(len(X))
        for first in range(0, len(X), config.batch_size):
            index = order[first:first + config.batch_size]
            xb, yb = X[index].to(device), y[index].to(device)
            progress = step / total_steps
            lr = config.lr * config.lr_decay ** sum(progress >= f for f in config.lr_decay_at)
            for group in optimiser.param_groups:
                group["lr"] = lr
            values = [term(model, xb, yb, progress) for term in terms]
            loss = torch.stack([v.reshape(()) for v in values]).sum()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch}, step {step}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sums += np.array([float(v.detach()) for v in values]) * len(index)
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
        run_log.seconds.append(time.perf_counter() - start)
        means = sums / len(X)
        for name, value in zip(names, means):
            run_log.term_losses[name].append(float(value))
        run_log.total_loss.append(float(means.sum()))
        log.info("epoch %d: loss %.4f (%s) in %.1f s", epoch, means.sum(),
                 ", ".join(f"{n} {v:.4f}" for n, v in zip(names, means)), run_log.seconds[-1])
    if bar is not None:
        bar.close()
    model.eval()
    return run_log


def _progress_bar(config: TrainConfig, total: int):
    if not config.progress_bar:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="train", unit="batch", leave=False)
