"""The HiGHS warm start: a simplex basis (see :mod:`solvers.backends.highs`, "Warm start")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.backends.highs.runtime import _highspy
from solvers.program import LinearProgram


@dataclass(frozen=True, eq=False)
class HighsWarmStart:
    """A HiGHS basis: ``HighsBasisStatus`` codes per column and per row (int8 arrays)."""

    col_status: np.ndarray
    row_status: np.ndarray

    @classmethod
    def from_basis(cls, basis) -> "HighsWarmStart | None":
        if not basis.valid:
            return None
        return cls(np.array([int(s) for s in basis.col_status], np.int8),
                   np.array([int(s) for s in basis.row_status], np.int8))

    def to_basis(self):
        highspy = _highspy()
        basis = highspy.HighsBasis()
        status = highspy.HighsBasisStatus
        basis.col_status = [status(int(s)) for s in self.col_status]
        basis.row_status = [status(int(s)) for s in self.row_status]
        basis.valid = True
        return basis

    def fits(self, problem: LinearProgram) -> bool:
        return (self.col_status.size, self.row_status.size) == (problem.num_variables,
                                                                 problem.num_rows)
