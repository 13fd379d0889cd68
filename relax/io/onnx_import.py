"""Import a sequential ONNX model into the :class:`relax.network.Network` IR.

The graph must be a chain: one graph input (with a leading batch dimension),
and every node reads the previous node's output plus constants (initializers or
``Constant`` nodes).  This module walks the graph; each supported operator is
handled by one small function in :data:`relax.io.onnx_ops._HANDLERS`, which
receives the node and the current tensor shape (batch dimension excluded) and
returns the IR layers it lowers to and the new shape.  Shape-only operators
(Flatten, Reshape, Identity) return no layers, since the IR always works on the
C-order flattened tensor.  Everything is float64.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from relax.errors import NetworkError, UnsupportedOperatorError
from relax.io.onnx_ops import _HANDLERS, SUPPORTED_OPERATORS, Shape, Step, _Node
from relax.network import Affine, Network

__all__ = ["from_onnx", "SUPPORTED_OPERATORS"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- graph walking


def from_onnx(path: str | Path) -> Network:
    """Load the sequential ONNX model at ``path`` as a float64 :class:`Network`."""
    model = _load(path)
    graph = model.graph
    constants = {init.name: _to_array(init) for init in graph.initializer}
    current, input_shape = _graph_input(graph, constants)
    shape, layers = input_shape, []
    for index, proto in enumerate(graph.node):
        if _fold_constant(proto, constants):
            continue
        node = _prepare(proto, index, constants, current)
        new_layers, new_shape = _apply(node, shape)
        log.debug("node %s (%s): %s -> %s", node.label, node.op, shape, new_shape)
        layers += new_layers
        shape, current = new_shape, proto.output[0]
    _check_output(graph, current)
    if not any(isinstance(layer, Affine) for layer in layers):
        layers.insert(0, Affine.identity(math.prod(input_shape)))
    network = Network(tuple(layers), input_shape)
    log.info("loaded %s: %s", path, network.describe())
    return network


def _load(path: str | Path) -> onnx.ModelProto:
    """``onnx.load`` with every failure turned into a NetworkError naming the path."""
    if not Path(path).is_file():
        raise NetworkError(f"{path}: no such file (expected an ONNX model)")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several unrelated types
        reason = f"{type(exc).__name__}: {exc}"
        raise NetworkError(f"{path}: not a valid ONNX model ({reason})") from None
    if not model.graph.input or not model.graph.output:
        raise NetworkError(f"{path}: not a valid ONNX model (the graph has no inputs or outputs)")
    return model


def _to_array(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor as numpy; floating tensors become float64."""
    array = numpy_helper.to_array(tensor)
    return array.astype(np.float64) if np.issubdtype(array.dtype, np.floating) else array


def _graph_input(graph: onnx.GraphProto, constants: dict[str, np.ndarray]) -> tuple[str, Shape]:
    """The single non-initializer graph input and its static shape without the batch dimension."""
    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1:
        names = ", ".join(repr(value.name) for value in inputs)
        raise NetworkError(f"the graph has {len(inputs)} inputs ({names}); only one is supported")
    value = inputs[0]
    dims = value.type.tensor_type.shape.dim
    if len(dims) < 2:
        raise NetworkError(f"graph input {value.name!r} needs a batch dimension and a static shape")
    if any(not dim.HasField("dim_value") or dim.dim_value < 1 for dim in dims[1:]):
        raise NetworkError(f"graph input {value.name!r} has a dynamic non-batch dimension")
    return value.name, tuple(int(dim.dim_value) for dim in dims[1:])


def _fold_constant(proto: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """Record the output of a Constant node (or an Identity of a constant); True if folded."""
    if proto.op_type == "Constant":
        constants[proto.output[0]] = _constant_value(proto)
        return True
    if proto.op_type == "Identity" and proto.input[0] in constants:
        constants[proto.output[0]] = constants[proto.input[0]]
        return True
    return False


def _constant_value(proto: onnx.NodeProto) -> np.ndarray:
    """The value of a Constant node (``value`` tensor or a scalar/list attribute)."""
    for attr in proto.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if attr.name == "value":
            return _to_array(value)
        if attr.name in ("value_float", "value_floats"):
            return np.asarray(value, dtype=np.float64)
        if attr.name in ("value_int", "value_ints"):
            return np.asarray(value, dtype=np.int64)
    label = proto.name or proto.output[0]
    raise UnsupportedOperatorError(
        label, "Constant", SUPPORTED_OPERATORS, "only value/value_float(s)/value_int(s) attributes"
    )


def _prepare(
    proto: onnx.NodeProto, index: int, constants: dict[str, np.ndarray], current: str
) -> _Node:
    """Check that ``proto`` is supported and continues the chain, and resolve its constants."""
    label = proto.name or f"{proto.op_type}_{index}"
    if proto.op_type not in _HANDLERS:
        raise UnsupportedOperatorError(label, proto.op_type, SUPPORTED_OPERATORS)
    data = [k for k, name in enumerate(proto.input) if name and name not in constants]
    if len(data) != 1:
        raise NetworkError(
            f"node {label!r} ({proto.op_type}) takes {len(data)} non-constant inputs; "
            "only sequential graphs are supported"
        )
    if proto.input[data[0]] != current:
        raise NetworkError(
            f"node {label!r} ({proto.op_type}) reads {proto.input[data[0]]!r}, not the previous "
            f"output {current!r}; only sequential graphs are supported"
        )
    for name in proto.input:
        _check_finite(label, proto.op_type, name, constants.get(name))
    operands = tuple(constants.get(name) if name else None for name in proto.input)
    attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in proto.attribute}
    return _Node(label, proto.op_type, attrs, operands, data[0])


def _check_finite(label: str, op: str, name: str, value: np.ndarray | None) -> None:
    """NetworkError if a floating constant holds NaN or Inf."""
    if value is None or not np.issubdtype(value.dtype, np.floating):
        return
    if not np.all(np.isfinite(value)):
        raise NetworkError(f"node {label!r} ({op}): constant {name!r} has NaN or Inf values")


def _apply(node: _Node, shape: Shape) -> Step:
    """Run the node's handler; its NetworkErrors get the node's name in front."""
    try:
        return _HANDLERS[node.op](node, shape)
    except UnsupportedOperatorError:
        raise
    except NetworkError as exc:
        raise NetworkError(f"node {node.label!r} ({node.op}): {exc}") from exc


def _check_output(graph: onnx.GraphProto, current: str) -> None:
    """The graph's only output must be the last node's output."""
    names = [value.name for value in graph.output]
    if names != [current]:
        raise NetworkError(
            f"graph outputs {names} are not the last node's output {current!r}; "
            "only sequential graphs are supported"
        )
