"""Data shipped with relax: a small default MNIST network and sample images.

``default_net.onnx`` is a 784-100-100-10 ReLU network (input 'input' of shape
(1, 784), pixels in [0, 1], no normalisation; only Gemm and Relu nodes) trained
with PGD adversarial training at eps 0.1.  It was produced, together with
``default_images.npz`` (the first 10 MNIST test images and their labels), by
``benchmarks/train_default.py``.
"""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np

NETWORK = "default_net.onnx"
IMAGES = "default_images.npz"


def default_network_path() -> Path:
    """Path of the shipped default ONNX network (inside the installed package)."""
    return Path(str(resources.files(__name__).joinpath(NETWORK)))


def default_images() -> tuple[np.ndarray, np.ndarray]:
    """The first 10 MNIST test images, float64 (10, 784) in [0, 1], and int64 labels."""
    raw = resources.files(__name__).joinpath(IMAGES).read_bytes()
    with np.load(io.BytesIO(raw)) as data:
        return data["images"].astype(np.float64), data["labels"].astype(np.int64)
