"""MNIST as torch tensors for training."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from relax.errors import DataError
from relax.io.mnist import load_mnist

__all__ = ["mnist_tensors", "default_mnist_root"]


def default_mnist_root() -> Path:
    """``$RELAX_DATA/mnist`` when set, else ``../shared/data/mnist`` relative to the cwd
    or, failing that, next to this checkout (``<checkout>/../shared/data/mnist``)."""
    env = os.environ.get("RELAX_DATA")
    if env:
        return Path(env) / "mnist"
    here = Path("../shared/data/mnist")
    beside_checkout = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
    return here if here.is_dir() or not beside_checkout.is_dir() else beside_checkout


def mnist_tensors(
    split: str, limit: int | None = None, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)``: X float32 of shape (N, 784) in [0, 1], y int64 of shape (N,)."""
    root = Path(root) if root is not None else default_mnist_root()
    if not root.is_dir():
        raise DataError(f"MNIST directory not found: {root} (set RELAX_DATA or pass root)")
    images, labels = load_mnist(root, split, limit)
    return torch.from_numpy(images).float(), torch.from_numpy(labels)
