"""LP objectives for a property's disjuncts.

A disjunct ``{y : A y <= b}`` is empty over the network's image iff
``min_x max_j (A f(x) - b)_j > 0``.  With one row that is a plain linear
objective.  With several rows we add an epigraph variable ``t``:

    min t   s.t.   (A_j M) v - t <= b_j - A_j g   for every row j,

where ``y = M v + g`` is the output expression of the encoding.  ``t`` is boxed
by ``[max_j min_box row_j, max_j max_box row_j]`` (valid: the optimum of ``t`` is
``max_j row_j(v)`` at some feasible ``v``), so every variable stays bounded and
safe dual bounds apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from relax.lp.encode import LpEncoding
from relax.spec import Conjunction
from solvers.program import LinearProgram, VariableBlock

__all__ = ["DisjunctObjective", "disjunct_objective"]


@dataclass(frozen=True, eq=False)
class DisjunctObjective:
    """Minimise ``c^T v + c0`` over ``program``: a lower bound is a margin bound."""

    program: LinearProgram
    c: np.ndarray
    c0: float


def _box_range(c: np.ndarray, c0: float, lower: np.ndarray, upper: np.ndarray) -> tuple[float, float]:
    low = c0 + np.sum(np.minimum(c * lower, c * upper))
    high = c0 + np.sum(np.maximum(c * lower, c * upper))
    return float(low), float(high)


def disjunct_objective(encoding: LpEncoding, disjunct: Conjunction) -> DisjunctObjective:
    """The objective (and, for several rows, the epigraph program) of one disjunct."""
    layer = len(encoding.expressions) - 1
    rows = encoding.objective(layer, disjunct.A, disjunct.b)
    program = encoding.program
    if len(rows) == 1:
        c, c0 = rows[0]
        return DisjunctObjective(program, c, c0)
    ranges = [_box_range(c, c0, program.lower, program.upper) for c, c0 in rows]
    t_low, t_high = max(r[0] for r in ranges), max(r[1] for r in ranges)
    n = program.num_variables
    linear = sp.csr_matrix(np.vstack([c for c, _ in rows]))
    new_rows = sp.hstack([linear, -np.ones((len(rows), 1))], format="csr")
    A = sp.vstack([sp.hstack([program.A, sp.csr_matrix((program.num_rows, 1))]), new_rows], format="csr")
    offsets = np.array([c0 for _, c0 in rows])
    integer = np.append(program.integer, False)
    epigraph = LinearProgram(
        np.zeros(n + 1), A,
        np.concatenate([program.row_lower, np.full(len(rows), -np.inf)]),
        np.concatenate([program.row_upper, -offsets]),
        np.append(program.lower, t_low), np.append(program.upper, t_high),
        integer if integer.any() else None, 0.0,
        program.blocks + (VariableBlock("epigraph", n, n + 1),),
    )
    c = np.zeros(n + 1)
    c[n] = 1.0
    return DisjunctObjective(epigraph, c, 0.0)
