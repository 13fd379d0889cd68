"""Export a trained model to ONNX (readable by :func:`relax.io.onnx_import.from_onnx`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

__all__ = ["export_onnx"]


def _input_size(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Linear):
            return module.in_features
    raise ValueError("export_onnx needs a model whose first layer is nn.Linear")


def export_onnx(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` (input ``'input'`` of shape (1, n)) to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    dummy = torch.zeros(1, _input_size(model), dtype=next(model.parameters()).dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.cpu(), (dummy,), str(path), input_names=["input"],
                          output_names=["output"], dynamo=False, opset_version=13)
    model.train(was_training)
    return path
