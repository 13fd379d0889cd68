"""The per-operator half of the ONNX importer (:mod:`relax.io.onnx_import` walks the graph).

Each supported operator is handled by one small function in :data:`_HANDLERS`; it
receives the node (a :class:`_Node`, constants resolved) and the current tensor shape
(batch dimension excluded) and returns the IR layers it lowers to and the new shape.
Shape-only operators (Flatten, Reshape, Identity) return no layers, since the IR always
works on the C-order flattened tensor.  Everything is float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from relax.bounds.activations import RULES
from relax.errors import NetworkError, UnsupportedOperatorError
from relax.io.conv import conv2d_matrix, last_axis_matrix
from relax.network import Affine, Layer

__all__ = ["SUPPORTED_OPERATORS", "Shape", "Step"]

Shape = tuple[int, ...]
Step = tuple[list[Layer], Shape]


@dataclass(frozen=True)
class _Node:
    """One ONNX node with its constant operands resolved.

    ``operands[k]`` is the value of input ``k`` if it is a constant, else None
    (the data input, at ``data_index``, or an omitted optional input).
    """

    label: str
    op: str
    attrs: dict[str, Any]
    operands: tuple[np.ndarray | None, ...]
    data_index: int

    def error(self, message: str) -> NetworkError:
        """A NetworkError; :func:`relax.io.onnx_import._apply` prefixes it with the node's name."""
        return NetworkError(message)

    def unsupported(self, detail: str) -> UnsupportedOperatorError:
        return UnsupportedOperatorError(self.label, self.op, SUPPORTED_OPERATORS, detail)

    def operand(self, index: int) -> np.ndarray | None:
        """The constant input ``index``, or None when it is omitted."""
        return self.operands[index] if index < len(self.operands) else None

    def constant(self, index: int, what: str) -> np.ndarray:
        """The constant input ``index``; an error if it is missing."""
        value = self.operand(index)
        if value is None or index == self.data_index:
            raise self.error(f"the {what} (input {index}) must be a constant")
        return value


# ---------------------------------------------------------------- shape operators


def _identity(node: _Node, shape: Shape) -> Step:
    """``y = x``."""
    return [], shape


def _flatten(node: _Node, shape: Shape) -> Step:
    """``(batch, d_1, ..., d_r) -> (batch, d_1 ... d_r)``; only ``axis = 1`` keeps the batch."""
    axis = int(node.attrs.get("axis", 1))
    if axis < 0:
        axis += len(shape) + 1
    if axis != 1:
        raise node.unsupported(f"axis={axis}; only axis=1 (flatten all but the batch dimension)")
    return [], (math.prod(shape),)


def _reshape(node: _Node, shape: Shape) -> Step:
    """C-order reshape to the constant target (0 copies a dimension, -1 is inferred).

    The target includes the batch dimension, which must stay first (resolved with batch 1).
    """
    target = [int(t) for t in node.constant(1, "target shape").ravel()]
    full = (1, *shape)
    if node.attrs.get("allowzero", 0) and 0 in target:
        raise node.unsupported("allowzero=1 with a zero in the target shape")
    if any(t == 0 and k >= len(full) for k, t in enumerate(target)) or target.count(-1) > 1:
        raise node.error(f"invalid target shape {target} for input {full}")
    dims = [full[k] if t == 0 else t for k, t in enumerate(target)]
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = math.prod(full) // known if known else 0
    if math.prod(dims) != math.prod(full) or not dims or dims[0] != 1 or min(dims) < 1:
        raise node.error(f"cannot reshape {full} to {target} keeping the batch dimension first")
    return [], tuple(dims[1:])


# ---------------------------------------------------------------- affine operators


def _gemm(node: _Node, shape: Shape) -> Step:
    """``Y = alpha A B' + beta C`` (``B' = B`` or ``B^T``): ``W = alpha B'^T``, ``b = beta C``."""
    if node.attrs.get("transA", 0) or node.data_index != 0:
        raise node.unsupported("the data input must be A, untransposed (transA=0)")
    matrix = node.constant(1, "weight B")
    if matrix.ndim != 2:
        raise node.error(f"weight B must be 2-D, got shape {matrix.shape}")
    weight = matrix if node.attrs.get("transB", 0) else matrix.T
    if len(shape) != 1 or weight.shape[1] != shape[0]:
        raise node.error(f"weight of shape {matrix.shape} does not fit an input of shape {shape}")
    bias = _gemm_bias(node, weight.shape[0])
    alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    return [Affine(alpha * weight, beta * bias)], (weight.shape[0],)


def _gemm_bias(node: _Node, size: int) -> np.ndarray:
    """Gemm's optional ``C``, broadcast to one row of ``size`` entries (zero when omitted)."""
    bias = node.operand(2)
    if bias is None:
        return np.zeros(size)
    try:
        return np.broadcast_to(bias, (1, size))[0].astype(np.float64)
    except ValueError:
        raise node.error(f"bias of shape {bias.shape} does not fit {size} outputs") from None


def _matmul(node: _Node, shape: Shape) -> Step:
    """``Y = X B`` along the last axis of ``X``: ``W = I (x) B^T`` on the flattened tensor."""
    if node.data_index != 0:
        raise node.unsupported("the constant must be the right operand (X @ B)")
    matrix = node.constant(1, "matrix B")
    if matrix.ndim != 2:
        raise node.unsupported(f"the constant operand must be 2-D, got shape {matrix.shape}")
    if not shape or shape[-1] != matrix.shape[0]:
        raise node.error(f"matrix of shape {matrix.shape} does not fit an input of shape {shape}")
    weight = last_axis_matrix(matrix.T, shape)
    return [Affine(weight, np.zeros(weight.shape[0]))], (*shape[:-1], matrix.shape[1])


def _broadcast_constant(node: _Node, shape: Shape) -> np.ndarray:
    """The constant operand broadcast to ``(1, *shape)``, flattened; it may not grow the tensor."""
    value = node.constant(1 - node.data_index, "other operand")
    full = (1, *shape)
    try:
        result = np.broadcast_shapes(value.shape, full)
    except ValueError:
        result = None
    if result != full:
        raise node.error(f"constant of shape {value.shape} does not broadcast to the input {full}")
    return np.broadcast_to(value, full).reshape(-1).astype(np.float64)


def _diagonal(scale: np.ndarray, offset: np.ndarray) -> Affine:
    """The elementwise map ``y = scale * x + offset`` as a sparse diagonal affine layer."""
    size = offset.size
    return Affine(sp.diags(np.broadcast_to(scale, size)).tocsr(), offset)


def _add(node: _Node, shape: Shape) -> Step:
    """``y = x + c``."""
    constant = _broadcast_constant(node, shape)
    return [_diagonal(np.ones(1), constant)], shape


def _sub(node: _Node, shape: Shape) -> Step:
    """``y = x - c`` or ``y = c - x``."""
    constant = _broadcast_constant(node, shape)
    if node.data_index == 0:
        return [_diagonal(np.ones(1), -constant)], shape
    return [_diagonal(-np.ones(1), constant)], shape


def _mul(node: _Node, shape: Shape) -> Step:
    """``y = c * x``."""
    constant = _broadcast_constant(node, shape)
    return [_diagonal(constant, np.zeros_like(constant))], shape


def _div(node: _Node, shape: Shape) -> Step:
    """``y = x / c`` (``c / x`` is not affine)."""
    if node.data_index != 0:
        raise node.unsupported("division by the data tensor is not affine")
    constant = _broadcast_constant(node, shape)
    if np.any(constant == 0):
        raise node.error("division by zero")
    return [_diagonal(1.0 / constant, np.zeros_like(constant))], shape


def _conv(node: _Node, shape: Shape) -> Step:
    """2-D convolution (group 1) lowered to a sparse matrix by :func:`relax.io.conv.conv2d_matrix`."""
    weight = node.constant(1, "weight")
    if weight.ndim != 4:
        raise node.unsupported(f"only 2-D convolutions, got a weight of shape {weight.shape}")
    if int(node.attrs.get("group", 1)) != 1:
        raise node.unsupported(f"group={node.attrs['group']}; only group=1")
    if len(shape) != 3:
        raise node.error(f"input of shape {shape} is not (C, H, W)")
    kernel = tuple(int(k) for k in node.attrs.get("kernel_shape", weight.shape[2:]))
    if kernel != weight.shape[2:]:
        raise node.error(f"kernel_shape {kernel} does not match the weight {weight.shape}")
    strides = tuple(int(s) for s in node.attrs.get("strides", (1, 1)))
    dilations = tuple(int(d) for d in node.attrs.get("dilations", (1, 1)))
    pads = _conv_pads(node, shape[1:], kernel, strides, dilations)
    matrix, bias, out_shape = conv2d_matrix(
        weight, node.operand(2), shape, strides, pads, dilations
    )
    return [Affine(matrix, bias)], out_shape


def _conv_pads(
    node: _Node, size: Shape, kernel: Shape, strides: Shape, dilations: Shape
) -> tuple[int, ...]:
    """(top, left, bottom, right) from ``pads`` or ``auto_pad``.

    SAME_UPPER/SAME_LOWER pad ``total = max((ceil(n/s) - 1) s + (k - 1) d + 1 - n, 0)`` so the
    output has ``ceil(n / s)`` entries, the odd one at the end (UPPER) or the beginning (LOWER).
    """
    auto_pad = node.attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad == "NOTSET":
        return tuple(int(p) for p in node.attrs.get("pads", (0, 0, 0, 0)))
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.unsupported(f"auto_pad={auto_pad}")
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return (*begin, *end)


def _activation(layer: type) -> Callable[[_Node, Shape], Step]:
    """A handler for the elementwise activation ``layer`` (shape unchanged)."""

    def handler(node: _Node, shape: Shape) -> Step:
        return [layer()], shape

    handler.__doc__ = f"``y = {layer.__name__.lower()}(x)`` elementwise."
    return handler


_HANDLERS: dict[str, Callable[[_Node, Shape], Step]] = {
    "Identity": _identity,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Sub": _sub,
    "Mul": _mul,
    "Div": _div,
    "Conv": _conv,
    # the activations: one row each in relax.bounds.activations.RULES
    **{rule.onnx_op: _activation(rule.ir) for rule in RULES.values()},
}

SUPPORTED_OPERATORS: tuple[str, ...] = tuple(sorted([*_HANDLERS, "Constant"]))
