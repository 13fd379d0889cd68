"""Import a (possibly nested) ``torch.nn.Sequential`` into the :class:`relax.network.Network` IR.

Modules are visited in order; each supported module type is handled by one
small function in :data:`_HANDLERS` that receives the module and the current
tensor shape (batch dimension excluded) and returns the IR layers and the new
shape.  Convolutions share :func:`relax.io.conv.conv2d_matrix` with the ONNX
importer.  Parameters are copied to float64.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from relax.io.conv import conv2d_matrix, last_axis_matrix
from relax.errors import NetworkError, UnsupportedOperatorError
from relax.bounds.activations import RULES
from relax.network import Affine, Layer, Network, Softplus

__all__ = ["from_torch", "SUPPORTED_MODULES"]

log = logging.getLogger(__name__)

Shape = tuple[int, ...]
Step = tuple[list[Layer], Shape]


def _array(name: str, tensor: torch.Tensor | None) -> np.ndarray | None:
    """A parameter as a float64 numpy array; NetworkError if it holds NaN or Inf."""
    if tensor is None:
        return None
    array = tensor.detach().cpu().to(torch.float64).numpy()
    if not np.all(np.isfinite(array)):
        raise NetworkError(f"parameter {name!r} has NaN or Inf values")
    return array


def _unsupported(name: str, module: nn.Module, detail: str) -> UnsupportedOperatorError:
    return UnsupportedOperatorError(name, type(module).__name__, SUPPORTED_MODULES, detail)


def _identity(name: str, module: nn.Module, shape: Shape) -> Step:
    """``y = x``."""
    return [], shape


def _flatten(name: str, module: nn.Flatten, shape: Shape) -> Step:
    """Merge dimensions ``start_dim..end_dim`` (C order, so no layer); the batch must stay."""
    rank = len(shape) + 1
    start, end = (d + rank if d < 0 else d for d in (module.start_dim, module.end_dim))
    if start < 1 or end < start or end >= rank:
        raise _unsupported(name, module, f"start_dim={module.start_dim}, end_dim={module.end_dim}")
    merged = math.prod(shape[start - 1:end])
    return [], (*shape[:start - 1], merged, *shape[end:])


def _linear(name: str, module: nn.Linear, shape: Shape) -> Step:
    """``y = x W^T + b`` along the last axis."""
    weight = _array("weight", module.weight)
    if not shape or shape[-1] != weight.shape[1]:
        raise NetworkError(f"expects {weight.shape[1]} features, the input has shape {shape}")
    bias = _array("bias", module.bias)
    bias = np.zeros(weight.shape[0]) if bias is None else bias
    repeats = math.prod(shape[:-1])
    matrix = last_axis_matrix(weight, shape)
    return [Affine(matrix, np.tile(bias, repeats))], (*shape[:-1], weight.shape[0])


def _conv2d(name: str, module: nn.Conv2d, shape: Shape) -> Step:
    """2-D convolution (groups 1, zero padding) lowered by :func:`relax.io.conv.conv2d_matrix`."""
    if module.groups != 1 or module.padding_mode != "zeros":
        detail = f"groups={module.groups}, padding_mode={module.padding_mode}"
        raise _unsupported(name, module, detail)
    if len(shape) != 3 or shape[0] != module.in_channels:
        raise NetworkError(f"expects ({module.in_channels}, H, W), the input has shape {shape}")
    pads = _conv_pads(module)
    matrix, bias, out_shape = conv2d_matrix(
        _array("weight", module.weight), _array("bias", module.bias), shape,
        tuple(module.stride), pads, tuple(module.dilation),
    )
    return [Affine(matrix, bias)], out_shape


def _conv_pads(module: nn.Conv2d) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from torch's padding (ints, or 'valid' / 'same' with stride 1)."""
    if module.padding == "valid":
        return (0, 0, 0, 0)
    if module.padding == "same":
        total_h, total_w = (d * (k - 1) for d, k in zip(module.dilation, module.kernel_size))
        return (total_h // 2, total_w // 2, total_h - total_h // 2, total_w - total_w // 2)
    pad_h, pad_w = module.padding
    return (pad_h, pad_w, pad_h, pad_w)


def _softplus(name: str, module: nn.Softplus, shape: Shape) -> Step:
    """``log(1 + exp(x))``; only ``beta = 1`` (the threshold's linear tail differs by < 3e-9)."""
    if module.beta != 1:
        raise _unsupported(name, module, f"beta={module.beta}; only beta=1")
    return [Softplus()], shape


def _activation(layer: type) -> Callable[[str, nn.Module, Shape], Step]:
    """A handler for the elementwise activation ``layer`` (shape unchanged)."""

    def handler(name: str, module: nn.Module, shape: Shape) -> Step:
        return [layer()], shape

    handler.__doc__ = f"``y = {layer.__name__.lower()}(x)`` elementwise."
    return handler


_HANDLERS: dict[type, Callable] = {
    nn.Identity: _identity,
    nn.Flatten: _flatten,
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    # the activations: one row each in relax.bounds.activations.RULES (softplus: beta = 1 only)
    **{rule.torch_module: _activation(rule.ir) for rule in RULES.values()},
    nn.Softplus: _softplus,
}

SUPPORTED_MODULES: tuple[str, ...] = tuple(
    sorted(cls.__name__ for cls in [*_HANDLERS, nn.Sequential])
)


def _leaves(module: nn.Module, name: str) -> Iterator[tuple[str, nn.Module]]:
    """The non-Sequential modules of a nested Sequential, in order, with dotted names."""
    if type(module) is nn.Sequential:
        for child_name, child in module.named_children():
            yield from _leaves(child, f"{name}.{child_name}" if name else child_name)
    else:
        yield name or type(module).__name__, module


def _apply(name: str, module: nn.Module, shape: Shape) -> Step:
    """Run the module's handler; its NetworkErrors get the module's name in front."""
    handler = _HANDLERS.get(type(module))
    if handler is None:
        raise UnsupportedOperatorError(name, type(module).__name__, SUPPORTED_MODULES)
    try:
        return handler(name, module, shape)
    except UnsupportedOperatorError:
        raise
    except NetworkError as exc:
        raise NetworkError(f"module {name!r} ({type(module).__name__}): {exc}") from exc


def from_torch(module: nn.Module, input_shape: tuple[int, ...] | int) -> Network:
    """Convert ``module`` for inputs of ``input_shape`` (batch excluded) to a float64 Network."""
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    input_shape = tuple(int(d) for d in input_shape)
    shape, layers = input_shape, []
    for name, leaf in _leaves(module, ""):
        new_layers, new_shape = _apply(name, leaf, shape)
        log.debug("module %s (%s): %s -> %s", name, type(leaf).__name__, shape, new_shape)
        layers += new_layers
        shape = new_shape
    if not any(isinstance(layer, Affine) for layer in layers):
        layers.insert(0, Affine.identity(math.prod(input_shape)))
    network = Network(tuple(layers), input_shape)
    log.info("converted %s: %s", type(module).__name__, network.describe())
    return network
