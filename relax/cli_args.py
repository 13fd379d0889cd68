"""Argument types and up-front checks of the command line.

Each check raises :class:`~relax.errors.UsageError` (argparse types raise
``argparse.ArgumentTypeError``, which the parser turns into one line), so bad
input is refused before any work starts.
"""

from __future__ import annotations

import argparse
import math
import re

from relax.errors import UsageError

__all__ = ["seconds", "positive_int", "radius", "check_device"]

_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def _finite_positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite {what} > 0, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A time limit: a finite number of seconds > 0 (``nan``, ``inf``, 0 are refused)."""
    return _finite_positive(text, "number of seconds")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def radius(text: str) -> float:
    """A perturbation radius: finite and > 0."""
    return _finite_positive(text, "radius")


def check_device(device: str) -> str:
    """``cpu``, ``auto``, ``cuda`` or ``cuda:N``; CUDA only where a GPU is present."""
    if not _DEVICE.match(device):
        raise UsageError(f"argument --device: expected cpu, cuda, cuda:N or auto, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"argument --device: {device!r} requested but no CUDA GPU is available")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(f"argument --device: no GPU {index} (found {torch.cuda.device_count()})")
    return device
