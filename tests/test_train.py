"""Certified training (relax.train): loop, training bounds, regularisers, export, evaluation.

Tiny networks and a handful of steps only; no real training runs here.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from relax.onnx_import import from_onnx
from relax.train import TrainConfig, train
from relax.train.export import export_onnx
from relax.train.models import mlp
from relax.train.standard import CrossEntropy


def separable(n: int = 256, d: int = 4, seed: int = 0):
    """Two Gaussian blobs far apart: a linearly separable two-class problem in [0, 1]^d."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    centre = torch.where(y[:, None] == 1, 0.75, 0.25).expand(n, d)
    X = (centre + 0.05 * torch.randn(n, d, generator=g)).clamp(0, 1)
    return X, y


def test_loop_decreases_loss_on_separable_problem():
    X, y = separable()
    model = mlp([4, 8, 2])
    log = train(model, [CrossEntropy()], TrainConfig(epochs=10, batch_size=32, lr=3e-2,
                                                     progress_bar=False, threads=1), (X, y))
    assert len(log.total_loss) == 10 and len(log.seconds) == 10
    assert log.total_loss[-1] < 0.2 * log.total_loss[0]
    assert log.term_losses["ce"] == log.total_loss
    assert (model(X).argmax(1) == y).float().mean() > 0.95


def test_onnx_export_round_trips(tmp_path):
    torch.manual_seed(0)
    model = mlp([6, 5, 4, 3], "relu")
    path = export_onnx(model, tmp_path / "net.onnx")
    x = np.random.default_rng(0).random((7, 6)).astype(np.float32)
    session = ort.InferenceSession(str(path))
    theirs = np.vstack([session.run(None, {"input": row[None]})[0] for row in x])
    ours = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    network = from_onnx(path)
    relax_out = np.vstack([network.forward(row.astype(np.float64)) for row in x])
    np.testing.assert_allclose(relax_out, ours, atol=1e-5)
