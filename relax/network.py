"""The network IR: affine layers and elementwise activations, evaluated in float64.

A :class:`Network` is always in *canonical form*

    z_0 = W_0 x + b_0,   a_k = act_k(z_k),   z_{k+1} = W_{k+1} a_k + b_{k+1},

that is ``Affine (Activation Affine)*``: consecutive affine maps are merged
(input normalisation, flatten-then-gemm, conv-then-linear) and a network that
starts or ends with an activation gets an identity affine map.  Convolutions are
lowered to (sparse) matrices by the importers, so every consumer (bounds, LP,
SDP, attacks) only needs to know these five layer types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import scipy.sparse as sp

from relax.errors import NetworkError

__all__ = [
    "Affine", "ReLU", "Sigmoid", "Tanh", "Softplus", "Activation", "Layer", "Network",
]

Matrix = Union[np.ndarray, sp.csr_matrix]


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Affine:
    """``z = W a + b`` with ``W`` of shape (out, in), dense or scipy.sparse CSR."""

    weight: Matrix
    bias: np.ndarray

    def __post_init__(self) -> None:
        weight = self.weight
        if sp.issparse(weight):
            weight = sp.csr_matrix(weight, dtype=np.float64)
            values = weight.data
        else:
            weight = _readonly(weight)
            values = weight
        bias = _readonly(np.ravel(self.bias))
        if weight.ndim != 2:
            raise NetworkError(f"affine weight must be 2-D, got shape {weight.shape}")
        if bias.shape != (weight.shape[0],):
            raise NetworkError(
                f"affine bias has {bias.size} entries but the weight has {weight.shape[0]} rows"
            )
        if not (np.all(np.isfinite(values)) and np.all(np.isfinite(bias))):
            raise NetworkError("affine layer has NaN or Inf weights")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.weight)

    def dense_weight(self) -> np.ndarray:
        """The weight as a dense float64 array."""
        return self.weight.toarray() if self.is_sparse else self.weight

    def apply(self, a: np.ndarray) -> np.ndarray:
        """Apply to a batch ``a`` of shape (batch, in)."""
        return np.asarray(self.weight @ a.T).T + self.bias

    def then(self, other: "Affine") -> "Affine":
        """The composition ``other(self(a))`` as one affine map."""
        if other.in_features != self.out_features:
            raise NetworkError(
                f"shape mismatch: a layer with {self.out_features} outputs feeds "
                f"a layer expecting {other.in_features} inputs"
            )
        weight = other.weight @ self.weight
        if sp.issparse(weight) and not (self.is_sparse and other.is_sparse):
            weight = weight.toarray()
        return Affine(weight, other.weight @ self.bias + other.bias)

    @staticmethod
    def identity(size: int) -> "Affine":
        return Affine(sp.identity(size, format="csr"), np.zeros(size))


@dataclass(frozen=True)
class ReLU:
    """``max(z, 0)``."""

    name = "relu"

    @staticmethod
    def apply(z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0)


@dataclass(frozen=True)
class Sigmoid:
    """``1 / (1 + exp(-z))``."""

    name = "sigmoid"

    @staticmethod
    def apply(z: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return expit(z)


@dataclass(frozen=True)
class Tanh:
    """``tanh(z)``."""

    name = "tanh"

    @staticmethod
    def apply(z: np.ndarray) -> np.ndarray:
        return np.tanh(z)


@dataclass(frozen=True)
class Softplus:
    """``log(1 + exp(z))``."""

    name = "softplus"

    @staticmethod
    def apply(z: np.ndarray) -> np.ndarray:
        return np.logaddexp(z, 0.0)


Activation = Union[ReLU, Sigmoid, Tanh, Softplus]
Layer = Union[Affine, ReLU, Sigmoid, Tanh, Softplus]
ACTIVATIONS = (ReLU, Sigmoid, Tanh, Softplus)


def _canonical_layers(layers: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """Merge consecutive affine maps and pad with identities to ``Affine (Act Affine)*``."""
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Affine):
            if out and isinstance(out[-1], Affine):
                out[-1] = out[-1].then(layer)
            else:
                out.append(layer)
        elif isinstance(layer, ACTIVATIONS):
            if not out or not isinstance(out[-1], Affine):
                size = _width_before(out, layers)
                out.append(Affine.identity(size))
            out.append(layer)
        else:
            raise NetworkError(f"not a network layer: {layer!r}")
    if not out:
        raise NetworkError("a network needs at least one layer")
    if not isinstance(out[-1], Affine):
        out.append(Affine.identity(out[-2].out_features))
    return tuple(out)


def _width_before(done: list[Layer], layers: tuple[Layer, ...]) -> int:
    """Width of the tensor before an activation that has no affine map in front."""
    for layer in reversed(done):
        if isinstance(layer, Affine):
            return layer.out_features
    for layer in layers:
        if isinstance(layer, Affine):
            return layer.in_features
    raise NetworkError("a network of activations only has no known width")


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network in canonical form; see the module docstring.

    ``input_shape`` is the shape the original model expects (for example
    ``(1, 28, 28)``); inputs are flattened in C order before the first layer.
    """

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        layers = _canonical_layers(tuple(self.layers))
        object.__setattr__(self, "layers", layers)
        for previous, following in zip(self.affines, self.affines[1:]):
            if previous.out_features != following.in_features:
                raise NetworkError(
                    f"shape mismatch: a layer with {previous.out_features} outputs feeds "
                    f"a layer expecting {following.in_features} inputs"
                )
        shape = tuple(int(d) for d in self.input_shape) or (self.input_size,)
        if int(np.prod(shape)) != self.input_size:
            raise NetworkError(
                f"input shape {shape} has {int(np.prod(shape))} entries but the first layer "
                f"expects {self.input_size}"
            )
        object.__setattr__(self, "input_shape", shape)

    @property
    def affines(self) -> tuple[Affine, ...]:
        """The affine maps ``(W_0, b_0), ..., (W_L, b_L)``."""
        return self.layers[0::2]

    @property
    def activations(self) -> tuple[Activation, ...]:
        """The activations ``act_0, ..., act_{L-1}``."""
        return self.layers[1::2]

    @property
    def input_size(self) -> int:
        return self.layers[0].in_features

    @property
    def output_size(self) -> int:
        return self.layers[-1].out_features

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(affine.out_features for affine in self.affines[:-1])

    @property
    def is_relu(self) -> bool:
        return all(isinstance(act, ReLU) for act in self.activations)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float64 forward pass; ``x`` is one input (any shape) or a batch (batch, ...)."""
        return self.pre_activations(x)[-1]

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """``[z_0, ..., z_L]`` for one input or a batch, in float64."""
        x = np.asarray(x, dtype=np.float64)
        single = x.size == self.input_size
        a = x.reshape(1 if single else -1, self.input_size)
        zs = []
        for affine, act in zip(self.affines, self.activations + (None,)):
            z = affine.apply(a)
            zs.append(z[0] if single else z)
            if act is not None:
                a = act.apply(z)
        return zs

    def describe(self) -> str:
        widths = [self.input_size] + [affine.out_features for affine in self.affines]
        acts = {act.name for act in self.activations} or {"linear"}
        return "-".join(map(str, widths)) + f" ({', '.join(sorted(acts))})"
