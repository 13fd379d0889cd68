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

    @property
    def kind(self) -> ProblemKind:
        return ProblemKind.LAYERED_QCQP
