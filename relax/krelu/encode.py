r"""k-ReLU rows for the triangle LP (:mod:`relax.lp.encode`).

A hull row ``a_x^T z_G + a_y^T a_G <= b`` of a group ``G`` of layer ``j`` is
added on new variables ``z_S`` for the neurons ``S`` of layer ``j`` that belong to
some group, tied to the pre-activation expressions ``z_j = M_j v + g_j`` by
equality rows and boxed by the valid bounds ``[l_S, u_S]``; each hull row then has
``2k`` entries (a dense row over the previous layer would have hundreds).  Every
variable stays bounded, so safe dual bounds still apply (see :func:`add_rows`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from relax.bounds import Bounds
from relax.deadline import NEVER, Deadline
from relax.krelu.groups import select_groups
from relax.krelu.hull import hull_rows
from relax.krelu.octahedron import OctahedronBounder
from relax.krelu.options import KreluOptions
from relax.lp.encode import LpEncoding
from relax.network import Network
from solvers.program import LinearProgram, VariableBlock

__all__ = ["LayerRows", "group_rows", "layer_rows", "add_rows", "dense_rows"]

log = logging.getLogger(__name__)


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
    lower: np.ndarray
    upper: np.ndarray


def group_rows(H, h, lower, upper, method: str):
    """Hull rows of one group (see :func:`relax.krelu.hull.hull_rows`)."""
    return hull_rows(H, h, lower, upper, method)


def layer_rows(network: Network, lower: np.ndarray, upper: np.ndarray, bounds: Bounds, layer: int,
               config: KreluOptions, deadline: Deadline = NEVER,
               bounder: OctahedronBounder | None = None) -> LayerRows:
    """Select groups of ``layer``, bound their octahedra (CROWN) and take their hulls."""
    start = time.monotonic()
    l, u = bounds.lower[layer], bounds.upper[layer]
    groups = select_groups(l, u, config.k, config.ns, config.s, config.max_groups)
    bounder = bounder or OctahedronBounder(network, lower, upper, bounds)
    polytopes = bounder.polytopes(layer, groups, config.k)
    index, A_x, A_y, b = [], [], [], []
    for group, (H, h) in zip(groups, polytopes):
        if deadline.expired:
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
                    cat(b, (0,)), len(groups), time.monotonic() - start, l, u)
    log.info("k-ReLU layer %d: %d groups -> %d rows (%.2f s)", layer, len(groups), out.b.size, out.seconds)
    return out


def add_rows(encoding: LpEncoding, layers: list[LayerRows]) -> LpEncoding:
    """The encoding with every layer's hull rows appended (layers beyond its depth ignored).

    For the neurons ``S`` of layer ``j`` that appear in some group, new variables
    ``z_S`` (boxed by the valid bounds the rows were built with) are tied to the
    pre-activations by ``M_j[S] v - z_S = -g_j[S]``; a hull row is then sparse
    (``2k`` entries): ``a_x^T z_G + a_y^T a_G <= b + 1e-9 (1 + |b|)``.  The margin
    covers the rounding of ``b`` itself; the encoding's expressions get zero columns.
    """
    program = encoding.program
    depth = len(encoding.expressions) - 1
    used = [r for r in layers if r.layer < depth and r.b.size]
    if not used:
        return encoding
    n = program.num_variables
    blocks, eq_rows, eq_rhs, hull_rows_, hull_hi, z_lo, z_hi = [], [], [], [], [], [], []
    offset = n
    for rows in used:
        M, g = encoding.expressions[rows.layer]
        neurons = np.unique(rows.index)
        position = {int(i): offset + p for p, i in enumerate(neurons)}
        m_s = sp.csr_matrix(M)[neurons]
        eq_rows.append((m_s, offset, len(neurons)))
        eq_rhs.append(-g[neurons])
        z_lo.append(rows.lower[neurons])
        z_hi.append(rows.upper[neurons])
        m, k = rows.index.shape
        r_idx = np.repeat(np.arange(m), 2 * k)
        cols = np.empty((m, 2 * k), int)
        cols[:, :k] = np.vectorize(position.__getitem__)(rows.index)
        cols[:, k:] = encoding.post_activation_index(rows.layer, 0) + rows.index
        vals = np.hstack([rows.A_x, rows.A_y])
        hull_rows_.append((r_idx, cols.ravel(), vals.ravel(), m))
        hull_hi.append(rows.b + 1e-9 * (1.0 + np.abs(rows.b)))
        blocks.append(VariableBlock(f"krelu_pre{rows.layer}", offset, offset + len(neurons)))
        offset += len(neurons)
    total = offset
    pieces = []
    for m_s, start, count in eq_rows:
        tie = sp.csr_matrix((-np.ones(count), (np.arange(count), start + np.arange(count))),
                            shape=(count, total))
        pieces.append(sp.hstack([m_s, sp.csr_matrix((count, total - n))], format="csr") + tie)
    for r_idx, cols, vals, m in hull_rows_:
        pieces.append(sp.csr_matrix((vals, (r_idx, cols)), shape=(m, total)))
    A_old = sp.hstack([program.A, sp.csr_matrix((program.num_rows, total - n))], format="csr")
    eq = np.concatenate(eq_rhs)
    hi = np.concatenate(hull_hi)
    integer = np.concatenate([program.integer, np.zeros(total - n, bool)])
    new = LinearProgram(
        np.concatenate([program.c, np.zeros(total - n)]), sp.vstack([A_old] + pieces, format="csr"),
        np.concatenate([program.row_lower, eq, np.full(hi.size, -np.inf)]),
        np.concatenate([program.row_upper, eq, hi]),
        np.concatenate([program.lower] + z_lo), np.concatenate([program.upper] + z_hi),
        integer if integer.any() else None, program.c0, program.blocks + tuple(blocks))
    expressions = tuple((sp.hstack([sp.csr_matrix(M), sp.csr_matrix((M.shape[0], total - n))],
                                   format="csr"), g) for M, g in encoding.expressions)
    return dataclasses.replace(encoding, program=new, expressions=expressions)


def dense_rows(encoding: LpEncoding, layers: list[LayerRows]):
    """The hull rows over the encoding's own variables ``v`` (no new variables):
    ``(a_x^T M_j[G]) v + a_y^T v[a_G] <= b - a_x^T g_j[G] + margin``, as ``(A, hi)``.

    For relaxations that cannot take extra variables (SDP cuts on the first row of
    ``P``).  The margin, ``1e-9`` times the size of the terms (including
    ``|a_x^T M| |v|_max`` over the variable box), covers the rounding of the product."""
    program = encoding.program
    n = program.num_variables
    vmax = np.maximum(np.abs(program.lower), np.abs(program.upper))
    mats, his = [], []
    for rows in layers:
        if rows.layer >= len(encoding.expressions) - 1 or rows.b.size == 0:
            continue
        M, g = encoding.expressions[rows.layer]
        M = sp.csr_matrix(M)
        m, k = rows.index.shape
        r_idx = np.repeat(np.arange(m), k)
        X = sp.csr_matrix((rows.A_x.ravel(), (r_idx, rows.index.ravel())), shape=(m, M.shape[0]))
        cols = encoding.post_activation_index(rows.layer, 0) + rows.index.ravel()
        Y = sp.csr_matrix((rows.A_y.ravel(), (r_idx, cols)), shape=(m, n))
        size = (np.abs(rows.b) + (np.abs(rows.A_x) * np.abs(g[rows.index])).sum(axis=1)
                + (abs(X) @ abs(M) + abs(Y)) @ vmax)
        mats.append((X @ M + Y).tocsr())
        his.append(rows.b - (rows.A_x * g[rows.index]).sum(axis=1) + 1e-9 * (1.0 + size))
    if not mats:
        return sp.csr_matrix((0, n)), np.zeros(0)
    return sp.vstack(mats, format="csr"), np.concatenate(his)
