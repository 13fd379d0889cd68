"""Solver-neutral problems.

- :class:`LinearProgram`: ``min c^T x + c0`` s.t. ``row_lower <= A x <= row_upper``,
  ``lower <= x <= upper``, ``x_j`` integer where ``integer[j]``.  ``A`` is scipy
  CSR.  Named variable blocks map back to the model (for example one block per
  layer).  With all integrality flags off it is an LP, otherwise a MILP.
- :class:`ConicProgram`: an LP part plus PSD constraints ``sum_j x_j F_j - F_0 >= 0``
  in a compact form (see its docstring); used by the SDP issue.
- :class:`LayeredReluProgram`: the network-structured QCQP for structure-exploiting
  solvers: ``min c^T x_L + c0`` over ``x_{k+1} = relu(W_k x_k + b_k)`` with
  ``lower_k <= x_k <= upper_k`` and ``x_0`` in a box.

All arrays are float64; the dataclasses are frozen and validated on creation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import scipy.sparse as sp

from solvers.errors import InvalidProblem

__all__ = ["ProblemKind", "VariableBlock", "LinearProgram", "ConicProgram", "PsdConstraint",
           "LayeredReluProgram"]


class ProblemKind(str, Enum):
    LP = "lp"
    MILP = "milp"
    SDP = "sdp"
    LAYERED_QCQP = "layered-qcqp"


@dataclass(frozen=True)
class VariableBlock:
    """Variables ``x[start:stop]`` named ``name``."""

    name: str
    start: int
    stop: int

    @property
    def indices(self) -> slice:
        return slice(self.start, self.stop)


def _vector(values, size: int, what: str, allow_inf: bool = False) -> np.ndarray:
    array = np.array(np.broadcast_to(np.asarray(values, dtype=np.float64), (size,)))
    if np.isnan(array).any() or (not allow_inf and not np.isfinite(array).all()):
        raise InvalidProblem(f"{what} has NaN{'' if allow_inf else ' or Inf'} entries")
    array.setflags(write=False)
    return array


def _sized(values, size: int, what: str, allow_inf: bool = False) -> None:
    """Check that ``values`` is a vector of ``size`` entries without NaN (or Inf)."""
    if np.size(values) != size:
        raise InvalidProblem(f"{what} has {np.size(values)} entries, expected {size}")
    _vector(values, size, what, allow_inf)


@dataclass(frozen=True, eq=False)
class LinearProgram:
    """``min c^T x + c0`` s.t. ``row_lower <= A x <= row_upper``, ``lower <= x <= upper``."""

    c: np.ndarray
    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray | None = None
    c0: float = 0.0
    blocks: tuple[VariableBlock, ...] = field(default=())

    def __post_init__(self) -> None:
        n = np.asarray(self.c).size
        A = sp.csr_matrix(self.A, dtype=np.float64)
        if A.shape[1] != n:
            raise InvalidProblem(f"A has {A.shape[1]} columns for {n} variables")
        if not np.isfinite(A.data).all():
            raise InvalidProblem("A has NaN or Inf entries")
        m = A.shape[0]
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("c", _vector(self.c, n, "objective"))
        set_("A", A)
        set_("row_lower", _vector(self.row_lower, m, "row_lower", allow_inf=True))
        set_("row_upper", _vector(self.row_upper, m, "row_upper", allow_inf=True))
        set_("lower", _vector(self.lower, n, "lower", allow_inf=True))
        set_("upper", _vector(self.upper, n, "upper", allow_inf=True))
        integer = np.zeros(n, bool) if self.integer is None else np.asarray(self.integer, bool)
        if integer.shape != (n,):
            raise InvalidProblem(f"integrality mask has shape {integer.shape}, expected ({n},)")
        set_("integer", integer)
        set_("c0", float(self.c0))
        if np.any(self.row_lower > self.row_upper) or np.any(self.lower > self.upper):
            raise InvalidProblem("a lower bound exceeds its upper bound")

    @property
    def kind(self) -> ProblemKind:
        return ProblemKind.MILP if self.integer.any() else ProblemKind.LP

    @property
    def num_variables(self) -> int:
        return self.c.size

    @property
    def num_rows(self) -> int:
        return self.A.shape[0]

    def block(self, name: str) -> VariableBlock:
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(name)

    def relaxed(self) -> "LinearProgram":
        """The same program with integrality dropped (the LP relaxation)."""
        return LinearProgram(self.c, self.A, self.row_lower, self.row_upper, self.lower,
                             self.upper, None, self.c0, self.blocks)

    def with_bounds(self, lower: np.ndarray, upper: np.ndarray) -> "LinearProgram":
        """The same program with new variable bounds (branch and bound)."""
        return LinearProgram(self.c, self.A, self.row_lower, self.row_upper, lower, upper,
                             self.integer, self.c0, self.blocks)

    def with_objective(self, c: np.ndarray, c0: float = 0.0) -> "LinearProgram":
        return LinearProgram(c, self.A, self.row_lower, self.row_upper, self.lower,
                             self.upper, self.integer, c0, self.blocks)


@dataclass(frozen=True, eq=False)
class PsdConstraint:
    """``sum_j x_j F_j - F_0`` is PSD, with ``F_j`` symmetric (size, size).

    Stored sparsely: ``coefficients`` is a CSR matrix of shape (size*size, n_vars)
    whose column ``j`` is ``vec(F_j)`` (row-major), and ``constant`` is ``vec(F_0)``.
    """

    size: int
    coefficients: sp.csr_matrix
    constant: np.ndarray


@dataclass(frozen=True, eq=False)
class ConicProgram:
    """A :class:`LinearProgram` plus PSD constraints (an SDP when any are present)."""

    linear: LinearProgram
    psd: tuple[PsdConstraint, ...] = ()

    @property
    def kind(self) -> ProblemKind:
        return ProblemKind.SDP if self.psd else self.linear.kind


@dataclass(frozen=True, eq=False)
class LayeredReluProgram:
    """``min c^T x_L + c0`` over ``x_{k+1} = relu(W_k x_k + b_k)``, ``k < L``, with
    ``lower[k] <= x_k <= upper[k]`` (``x_0`` the input box) and pre-activation
    bounds ``pre_lower[k] <= W_k x_k + b_k <= pre_upper[k]``; ``x_L`` is the last
    hidden layer and ``c`` already includes the final affine map."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    pre_lower: tuple[np.ndarray, ...]
    pre_upper: tuple[np.ndarray, ...]
    c: np.ndarray
    c0: float = 0.0

    def __post_init__(self) -> None:
        """Shapes: ``W_k`` is ``(n_{k+1}, n_k)``, ``b_k`` and the pre-bounds have ``n_{k+1}``
        entries, the boxes ``n_k``, ``c`` has ``n_L``; no NaN anywhere (boxes may be infinite)."""
        L = len(self.weights)
        counts = (len(self.biases), len(self.pre_lower), len(self.pre_upper))
        if counts != (L, L, L) or len(self.lower) != L + 1 or len(self.upper) != L + 1:
            raise InvalidProblem("LayeredReluProgram: need L weights, biases and pre-bounds "
                                 "and L + 1 boxes")
        shapes = [tuple(W.shape) if hasattr(W, "shape") else np.shape(W) for W in self.weights]
        if any(len(shape) != 2 for shape in shapes):
            raise InvalidProblem("LayeredReluProgram: every weight must be a matrix")
        sizes = [np.size(self.lower[0])] + [shape[0] for shape in shapes]
        for k, W in enumerate(self.weights):
            if shapes[k] != (sizes[k + 1], sizes[k]):
                raise InvalidProblem(f"LayeredReluProgram: weight {k} has shape {shapes[k]}, "
                                     f"expected {(sizes[k + 1], sizes[k])}")
            if not np.isfinite(W.data if sp.issparse(W) else np.asarray(W)).all():
                raise InvalidProblem(f"LayeredReluProgram: weight {k} has NaN or Inf entries")
            for name, values in (("bias", self.biases), ("pre_lower", self.pre_lower),
                                 ("pre_upper", self.pre_upper)):
                _sized(values[k], sizes[k + 1], f"LayeredReluProgram {name} {k}",
                       allow_inf=name != "bias")
        for k in range(L + 1):
            _sized(self.lower[k], sizes[k], f"LayeredReluProgram lower {k}", allow_inf=True)
            _sized(self.upper[k], sizes[k], f"LayeredReluProgram upper {k}", allow_inf=True)
        _sized(self.c, sizes[-1], "LayeredReluProgram c")

    @property
    def kind(self) -> ProblemKind:
        return ProblemKind.LAYERED_QCQP
