"""The triangle (Planet) LP relaxation of a network, and the big-M MILP of a ReLU network.

Variables ``v = [x_0, a_0, ..., a_{D-1}]``: the input and the post-activations
of the first ``D`` hidden layers.  Pre-activations are expressions
``z_k = W_k a_{k-1} + b_k`` (``a_{-1} = x_0``), never variables.  For neuron
``i`` of layer ``k`` with bounds ``l <= z <= u``:

- stable active (``l >= 0``): ``a = z``;
- stable inactive (``u <= 0``): ``a = 0`` (variable bounds), plus ``z <= 0`` when
  the neuron was *split* inactive by branch and bound;
- unstable: ``a >= 0``, ``a >= z``, ``a <= u (z - l) / (u - l)``.

A sigmoid, tanh or softplus neuron (increasing functions) gets
``act(l) <= a <= act(u)`` and, for each of the slopes ``s`` in {chord, ``act'(l)``,
``act'((l+u)/2)``, ``act'(u)``}, the two lines ``s z + c_lo(s) <= a <= s z + c_up(s)``
with ``c_lo(s) = min_{[l,u]} act(z) - s z`` and ``c_up(s) = max ...`` computed exactly
(:mod:`relax.bounds.relaxations`: endpoints and closed-form stationary points, with an
outward margin), so every row is valid on the neuron's interval: tangent rows where
the function is convex or concave, chords across, and their sound shifts elsewhere.

Every variable is boxed (``x_0`` by the input box, ``a`` by ``[act(l), act(u)]``)
so any dual vector gives a valid bound (:func:`solvers.lp_safe_bound`).

The MILP adds a binary ``d`` per unstable neuron: ``a <= u d``,
``a <= z - l (1 - d)`` (big-M with the tightest bounds at hand).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from relax.bounds import Bounds
from relax.bounds.activations import SMOOTH
from relax.bounds.relaxations import ROUNDING_MARGIN, activation_derivative, activation_value
from relax.bounds.relaxations import _extreme_offset as extreme_offset
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


def _require_relaxable(network: Network, integer: bool) -> None:
    names = sorted({a.name for a in network.activations})
    if integer and not network.is_relu:
        raise UsageError(f"the MILP encoding needs a ReLU network, got activations {names}")
    unknown = [n for n in names if n != "relu" and n not in SMOOTH]
    if unknown:
        raise UsageError(f"the LP relaxation has no rows for activations {unknown}")


def _activation_box(activation, l: np.ndarray, u: np.ndarray):
    """Bounds of ``a = act(z)`` for ``z`` in ``[l, u]`` (all activations are increasing)."""
    if activation.name == "relu":
        return np.maximum(l, 0), np.maximum(u, 0)
    lo, hi = (activation_value(activation.name, torch.as_tensor(v, dtype=torch.float64)).numpy()
              for v in (l, u))
    return lo - ROUNDING_MARGIN, hi + ROUNDING_MARGIN


def _smooth_lines(name: str, l: np.ndarray, u: np.ndarray):
    """Slopes (m, n) and exact lower/upper offsets (m, n) of the sound lines of the docstring."""
    lt, ut = torch.as_tensor(l, dtype=torch.float64), torch.as_tensor(u, dtype=torch.float64)
    width = ut - lt
    flat = width <= 1e-12
    chord = (activation_value(name, ut) - activation_value(name, lt)) / torch.where(flat, torch.ones_like(width), width)
    middle = activation_derivative(name, (lt + ut) / 2)
    slopes = [torch.where(flat, middle, chord), activation_derivative(name, lt), middle,
              activation_derivative(name, ut)]
    lows = [extreme_offset(name, s, lt, ut, torch.amin) - ROUNDING_MARGIN for s in slopes]
    highs = [extreme_offset(name, s, lt, ut, torch.amax) + ROUNDING_MARGIN for s in slopes]
    return torch.stack(slopes).numpy(), torch.stack(lows).numpy(), torch.stack(highs).numpy()


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
    _require_relaxable(network, integer)
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
        if network.activations[k].name != "relu":
            _smooth_rows(builder, k, W, affine.bias, bounds.lower[k], bounds.upper[k],
                         network.activations[k].name)
            continue
        inactive = None if split_inactive is None else split_inactive[k]
        binary_start = _layer_rows(builder, k, W, affine.bias, bounds.lower[k], bounds.upper[k],
                                   inactive, integer, binary_start)
    A, row_lo, row_hi = builder.matrix()
    boxes = [_activation_box(network.activations[k], bounds.lower[k], bounds.upper[k])
             for k in range(depth)]
    var_lo = np.concatenate([lower] + [lo for lo, _ in boxes] + [np.zeros(n_binaries)])
    var_hi = np.concatenate([upper] + [hi for _, hi in boxes] + [np.ones(n_binaries)])
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


def _smooth_rows(builder: _Builder, k, W, b, l, u, name: str) -> None:
    """Rows ``c_lo(s) <= a - s z <= c_up(s)`` for each sound slope ``s`` (module docstring)."""
    n = W.shape[0]
    select = builder.place(k + 1, _selection(np.arange(n), n))
    z = builder.place(k, W)
    slopes, lows, highs = _smooth_lines(name, l, u)
    for s, c_lo, c_up in zip(slopes, lows, highs):
        # a - s (W a_prev + b) in [c_lo, c_up]  <=>  a - s W a_prev in [c_lo + s b, c_up + s b]
        builder.add(select - sp.diags(s) @ z, c_lo + s * b, c_up + s * b)


def encode_milp(network: Network, lower, upper, bounds: Bounds) -> LpEncoding:
    """The big-M MILP: exact over the box given valid pre-activation bounds."""
    return encode_triangle(network, lower, upper, bounds, integer=True)
