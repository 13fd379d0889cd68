"""The triangle (Planet) LP relaxation of a ReLU network, and LP bound tightening.

Variables ``v = [x_0, a_0, ..., a_{D-1}]``: the input and the post-activations
of the first ``D`` hidden layers.  Pre-activations are expressions
``z_k = W_k a_{k-1} + b_k`` (``a_{-1} = x_0``), never variables.  For neuron
``i`` of layer ``k`` with bounds ``l <= z <= u``:

- stable active (``l >= 0``): ``a = z``;
- stable inactive (``u <= 0``): ``a = 0`` (variable bounds), plus ``z <= 0`` when
  the neuron was *split* inactive by branch and bound;
- unstable: ``a >= 0``, ``a >= z``, ``a <= u (z - l) / (u - l)``.

Every variable is boxed (``x_0`` by the input box, ``a`` by ``[relu(l), relu(u)]``)
so any dual vector gives a valid bound (:func:`solvers.lp_safe_bound`).

The MILP adds a binary ``d`` per unstable neuron: ``a <= u d``,
``a <= z - l (1 - d)`` (big-M with the tightest bounds at hand).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from relax.bounds import Bounds
from relax.errors import UsageError
from relax.network import Network
from solvers.program import LinearProgram, VariableBlock

__all__ = ["LpEncoding", "encode_triangle", "encode_milp"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LpEncoding:
    """A relaxation's program (zero objective) and ``z_k = M_k v + g_k`` for ``k <= depth``."""

    program: LinearProgram
    expressions: tuple[tuple[sp.csr_matrix, np.ndarray], ...]
    binary_neurons: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))

    def post_activation_index(self, layer: int, neuron: int) -> int:
        """Column of ``a_{layer, neuron}`` in ``v``."""
        return self.program.block(f"relu{layer}").start + int(neuron)

    def objective(self, layer: int, coeffs: np.ndarray, offsets: np.ndarray):
        """``(c, c0)`` pairs for the objectives ``coeffs_r @ z_layer - offsets_r``."""
        M, g = self.expressions[layer]
        C = np.atleast_2d(coeffs)
        linear = np.asarray((M.T @ C.T).T)
        return [(np.asarray(linear[r]).ravel(), float(C[r] @ g - offsets[r])) for r in range(C.shape[0])]


def _require_relu(network: Network) -> None:
    if not network.is_relu:
        names = sorted({a.name for a in network.activations})
        raise UsageError(f"the LP/MILP relaxations need a ReLU network, got activations {names}")


def _selection(indices: np.ndarray, size: int) -> sp.csr_matrix:
    """Rows of the identity: ``S v = v[indices]``."""
    return sp.csr_matrix((np.ones(len(indices)), (np.arange(len(indices)), indices)),
                         shape=(len(indices), size))


class _Builder:
    """Accumulates rows ``lo <= A v <= hi`` over a fixed variable layout."""

    def __init__(self, sizes: list[int]):
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.n = int(self.offsets[-1])
        self.rows: list[sp.csr_matrix] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []

    def place(self, block: int, matrix) -> sp.csr_matrix:
        """A matrix acting on variable block ``block``, widened to all variables."""
        matrix = sp.csr_matrix(matrix)
        start = self.offsets[block]
        left = sp.csr_matrix((matrix.shape[0], start))
        right = sp.csr_matrix((matrix.shape[0], self.n - start - matrix.shape[1]))
        return sp.hstack([left, matrix, right], format="csr")

    def add(self, matrix: sp.csr_matrix, lo, hi) -> None:
        if matrix.shape[0]:
            self.rows.append(matrix)
            self.lo.append(np.broadcast_to(lo, matrix.shape[0]))
            self.hi.append(np.broadcast_to(hi, matrix.shape[0]))

    def matrix(self):
        if not self.rows:
            return sp.csr_matrix((0, self.n)), np.zeros(0), np.zeros(0)
        return sp.vstack(self.rows, format="csr"), np.concatenate(self.lo), np.concatenate(self.hi)


def encode_triangle(
    network: Network,
    lower: np.ndarray,
    upper: np.ndarray,
    bounds: Bounds,
    depth: int | None = None,
    split_inactive: list[np.ndarray] | None = None,
    integer: bool = False,
) -> LpEncoding:
    """The triangle LP (or big-M MILP with ``integer``) of the first ``depth`` hidden layers.

    ``bounds`` holds pre-activation bounds of the hidden layers; ``split_inactive[k]``
    lists neurons of layer ``k`` forced inactive by branching (adds ``z <= 0``).
    """
    _require_relu(network)
    depth = len(network.activations) if depth is None else depth
    sizes = [network.input_size] + [network.affines[k].out_features for k in range(depth)]
    n_binaries = sum(len(bounds.unstable(k)) for k in range(depth)) if integer else 0
    builder = _Builder(sizes + [n_binaries])
    expressions = []
    binary_start = 0
    for k in range(depth + 1):
        affine = network.affines[k]
        W = sp.csr_matrix(affine.weight)
        expressions.append((builder.place(k, W), affine.bias))
        if k == depth:
            break
        inactive = None if split_inactive is None else split_inactive[k]
        binary_start = _layer_rows(builder, k, W, affine.bias, bounds.lower[k], bounds.upper[k],
                                   inactive, integer, binary_start)
    A, row_lo, row_hi = builder.matrix()
    var_lo = np.concatenate([lower] + [np.maximum(bounds.lower[k], 0) for k in range(depth)]
                            + [np.zeros(n_binaries)])
    var_hi = np.concatenate([upper] + [np.maximum(bounds.upper[k], 0) for k in range(depth)]
                            + [np.ones(n_binaries)])
    is_int = np.zeros(builder.n, bool)
    is_int[builder.n - n_binaries:] = True
    names = ["input"] + [f"relu{k}" for k in range(depth)] + (["binary"] if integer else [])
    blocks = tuple(VariableBlock(name, int(builder.offsets[i]), int(builder.offsets[i + 1]))
                   for i, name in enumerate(names))
    program = LinearProgram(np.zeros(builder.n), A, row_lo, row_hi, var_lo, var_hi,
                            is_int if integer else None, 0.0, blocks)
    log.debug("encoded %s with %d variables and %d rows", program.kind.value, builder.n, A.shape[0])
    binaries = [(k, i) for k in range(depth) for i in bounds.unstable(k)] if integer else []
    return LpEncoding(program, tuple(expressions), np.array(binaries, dtype=int).reshape(-1, 2))


def _layer_rows(builder: _Builder, k, W, b, l, u, inactive, integer, binary_start) -> int:
    """Rows tying ``a_k`` (block ``k + 1``) to ``z_k = W a_{k-1} + b`` (block ``k``)."""
    n = W.shape[0]
    active = np.flatnonzero(l >= 0)
    unstable = np.flatnonzero((l < 0) & (u > 0))
    z_minus_a = lambda idx: builder.place(k, W[idx]) - builder.place(k + 1, _selection(idx, n))  # noqa: E731
    builder.add(z_minus_a(active), -b[active], -b[active])                 # a = z
    builder.add(z_minus_a(unstable), -np.inf, -b[unstable])                # a >= z
    if inactive is not None and len(inactive):
        builder.add(builder.place(k, W[inactive]), -np.inf, -b[inactive])  # z <= 0
    lu, uu = l[unstable], u[unstable]
    if not integer:
        slope = uu / (uu - lu)                                             # a <= s (z - l)
        upper_rows = builder.place(k + 1, _selection(unstable, n)) - sp.diags(slope) @ builder.place(k, W[unstable])
        builder.add(upper_rows, -np.inf, slope * (b[unstable] - lu))
        return binary_start
    m = len(unstable)
    binary = builder.place(len(builder.offsets) - 2, _selection(binary_start + np.arange(m), builder.offsets[-1] - builder.offsets[-2]))
    a_sel = builder.place(k + 1, _selection(unstable, n))
    builder.add(a_sel - sp.diags(uu) @ binary, -np.inf, 0.0)               # a <= u d
    builder.add(-z_minus_a(unstable) - sp.diags(lu) @ binary, -np.inf, b[unstable] - lu)  # a <= z - l(1-d)
    return binary_start + m


def encode_milp(network: Network, lower, upper, bounds: Bounds) -> LpEncoding:
    """The big-M MILP: exact over the box given valid pre-activation bounds."""
    return encode_triangle(network, lower, upper, bounds, integer=True)
