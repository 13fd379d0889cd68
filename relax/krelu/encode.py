r"""k-ReLU rows for the triangle LP (:mod:`relax.lp`).

A hull row ``a_x^T z_G + a_y^T a_G <= b`` of a group ``G`` of layer ``j`` becomes,
with ``z_j = M_j v + g_j`` (the encoding's expression) and ``a_G`` columns of ``v``,

    (a_x^T M_j[G]) v + a_y^T v[a_G]  <=  b - a_x^T g_j[G] + margin,

the margin (``1e-9`` times the size of the terms) covering the rounding of the
product.  The rows are appended to the program (the variable box is unchanged,
so safe dual bounds still apply).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from relax.bounds import Bounds
from relax.errors import UsageError
from relax.krelu.groups import select_groups
from relax.krelu.hull import hull_rows
from relax.krelu.octahedron import OctahedronBounder
from relax.lp import LpEncoding
from relax.network import Network
from solvers.program import LinearProgram

__all__ = ["KreluConfig", "LayerRows", "group_rows", "layer_rows", "add_rows"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KreluConfig:
    """Group size ``k``, window ``ns``, overlap ``s``, hull ``exact``/``fast``/``auto``
    (auto: exact for ``k <= 3``; default fast: exact k=3 hulls have ~300 facets per group), at most ``max_groups`` per layer, ``refine``: use the rows of
    earlier layers when LP-tightening later layers' bounds."""

    k: int = 3
    ns: int = 20
    s: int = 1
    hull: str = "fast"
    max_groups: int | None = None
    refine: bool = True

    def __post_init__(self):
        if self.hull not in ("auto", "exact", "fast"):
            raise UsageError(f"k-ReLU hull must be auto, exact or fast, got {self.hull!r}")
        if not 1 <= self.k <= 5:
            raise UsageError(f"k-ReLU needs 1 <= k <= 5, got {self.k}")

    @property
    def hull_method(self) -> str:
        return ("exact" if self.k <= 3 else "fast") if self.hull == "auto" else self.hull


@dataclass(frozen=True, eq=False)
class LayerRows:
    """Hull rows of one layer: ``A_x z[idx] + A_y a[idx] <= b`` with ``idx`` per row (m, k)."""

    layer: int
    index: np.ndarray
    A_x: np.ndarray
    A_y: np.ndarray
    b: np.ndarray
    groups: int
    seconds: float


def group_rows(H, h, lower, upper, method: str):
    """Hull rows of one group (see :func:`relax.krelu.hull.hull_rows`)."""
    return hull_rows(H, h, lower, upper, method)


def layer_rows(network: Network, lower: np.ndarray, upper: np.ndarray, bounds: Bounds, layer: int,
               config: KreluConfig, deadline: float | None = None,
               bounder: OctahedronBounder | None = None) -> LayerRows:
    """Select groups of ``layer``, bound their octahedra (CROWN) and take their hulls."""
    start = time.monotonic()
    l, u = bounds.lower[layer], bounds.upper[layer]
    groups = select_groups(l, u, config.k, config.ns, config.s, config.max_groups)
    bounder = bounder or OctahedronBounder(network, lower, upper, bounds)
    polytopes = bounder.polytopes(layer, groups, config.k)
    index, A_x, A_y, b = [], [], [], []
    for group, (H, h) in zip(groups, polytopes):
        if deadline is not None and time.monotonic() > deadline:
            log.info("k-ReLU layer %d: time limit after %d of %d groups", layer, len(b), len(groups))
            break
        g = np.array(group)
        rows = group_rows(H, h, l[g], u[g], config.hull_method)
        if rows.count:
            index.append(np.tile(g, (rows.count, 1)))
            A_x.append(rows.A_x)
            A_y.append(rows.A_y)
            b.append(rows.b)
    k = config.k
    cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))  # noqa: E731
    out = LayerRows(layer, cat(index, (0, k)).astype(int), cat(A_x, (0, k)), cat(A_y, (0, k)),
                    cat(b, (0,)), len(groups), time.monotonic() - start)
    log.info("k-ReLU layer %d: %d groups -> %d rows (%.2f s)", layer, len(groups), out.b.size, out.seconds)
    return out


def _rows_matrix(encoding: LpEncoding, rows: LayerRows):
    M, g = encoding.expressions[rows.layer]
    M = sp.csr_matrix(M)
    m, k = rows.index.shape
    n = M.shape[1]
    # a_x^T M[G]: sum over the k members
    data_rows = np.repeat(np.arange(m), k)
    X = sp.csr_matrix((rows.A_x.ravel(), (data_rows, rows.index.ravel())), shape=(m, M.shape[0]))
    linear = X @ M
    cols = np.array([encoding.post_activation_index(rows.layer, 0)]) + rows.index.ravel()
    Y = sp.csr_matrix((rows.A_y.ravel(), (data_rows, cols)), shape=(m, n))
    offset = (rows.A_x * g[rows.index]).sum(axis=1)
    size = np.abs(rows.b) + (np.abs(rows.A_x) * np.abs(g[rows.index])).sum(axis=1)
    return (linear + Y).tocsr(), rows.b - offset, size, abs(X) @ abs(M) + abs(Y)


def add_rows(encoding: LpEncoding, layers: list[LayerRows]) -> LpEncoding:
    """The encoding with every layer's hull rows appended (layers beyond its depth ignored)."""
    program = encoding.program
    depth = len(encoding.expressions) - 1
    mats, his = [], []
    vmax = np.maximum(np.abs(program.lower), np.abs(program.upper))
    for rows in layers:
        if rows.layer >= depth or rows.b.size == 0:
            continue
        A, hi, size, absA = _rows_matrix(encoding, rows)
        margin = 1e-9 * (1.0 + size + absA @ vmax)
        mats.append(A)
        his.append(hi + margin)
    if not mats:
        return encoding
    extra = sp.vstack(mats, format="csr")
    hi = np.concatenate(his)
    new = LinearProgram(
        program.c, sp.vstack([program.A, extra], format="csr"),
        np.concatenate([program.row_lower, np.full(extra.shape[0], -np.inf)]),
        np.concatenate([program.row_upper, hi]),
        program.lower, program.upper,
        program.integer if program.integer is not None and program.integer.any() else None,
        program.c0, program.blocks)
    return dataclasses.replace(encoding, program=new)
