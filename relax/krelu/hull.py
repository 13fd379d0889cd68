r"""Convex hulls of the k-ReLU graph over an octahedral polytope.

Given a polytope ``P = {x in R^k : H x <= h}`` (an octahedron: bounds on
``c^T x`` for ``c in {-1,0,1}^k``), the k-ReLU graph is
``G = {(x, relu(x)) : x in P}``.  On each orthant ``O_s`` relu is linear, so
``G = union_s L_s(P cap O_s)`` and ``conv G = conv{(v, relu(v))}`` over the
vertices ``v`` of the pieces ``P cap O_s``.

Vertex set.  Every vertex of a piece is the intersection of ``k`` hyperplanes
taken from the rows of ``H`` and the coordinate planes ``x_i = 0``, and lies in
``P``.  Adding further points of ``P`` (mapped by relu) does not change the hull,
so we may enumerate *all* feasible intersections (:func:`graph_points`): by brute
force when the number of ``k``-subsets is small, otherwise per orthant with
Qhull's half-space intersection.

Hulls.  :func:`exact_hull` takes the facets of Qhull's convex hull of the
points in ``R^{2k}``; :func:`fast_hull` uses a fixed template of directions
(PRIMA-like: ``sum_i c_i y_i + t_i x_i`` with ``t_i = -slope_i`` on upper rows
and ``t_i in {0, 1}`` on lower rows) and needs no hull computation.

Soundness.  A row ``a^T (x, y) <= b`` is valid for ``G`` iff ``b >= max_G
a^T (x, y) = max_points a^T p``; whatever Qhull returned, every right-hand side
is recomputed as this maximum over the float64 point set plus a margin
(:func:`_sound_rhs`), so floating-point error can only loosen a row.  Rows that
are implied by the per-neuron triangle relaxation (their right-hand side is not
below the sum of the per-neuron maxima over ``[l_i, u_i]``) are dropped.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, HalfspaceIntersection
from scipy.spatial import QhullError

__all__ = ["HullRows", "graph_points", "exact_hull", "fast_hull", "hull_rows", "HULL_METHODS"]

log = logging.getLogger(__name__)

BRUTE_FORCE_LIMIT = 40_000   # k-subsets of hyperplanes enumerated directly
FEASIBILITY_TOL = 1e-9       # relative slack for "v is in P" (a point slightly outside only loosens rows)
MARGIN_REL, MARGIN_ABS = 1e-9, 1e-10


@dataclass(frozen=True, eq=False)
class HullRows:
    """Rows ``A_x x + A_y y <= b`` valid for the k-ReLU graph over the polytope."""

    A_x: np.ndarray
    A_y: np.ndarray
    b: np.ndarray

    @property
    def count(self) -> int:
        return int(self.b.size)

    @staticmethod
    def empty(k: int) -> "HullRows":
        return HullRows(np.zeros((0, k)), np.zeros((0, k)), np.zeros(0))


def _brute_force_vertices(H: np.ndarray, h: np.ndarray) -> np.ndarray:
    """All feasible intersections of ``k`` hyperplanes from ``H`` and ``x_i = 0``."""
    k = H.shape[1]
    planes = np.vstack([H, np.eye(k)])
    rhs = np.concatenate([h, np.zeros(k)])
    subsets = np.array(list(itertools.combinations(range(len(planes)), k)))
    A, r = planes[subsets], rhs[subsets]
    det = np.linalg.det(A)
    scale = np.prod(np.linalg.norm(A, axis=2), axis=1)
    ok = np.abs(det) > 1e-10 * scale
    x = np.linalg.solve(A[ok], r[ok][..., None])[..., 0]
    return _feasible(x, H, h)


def _feasible(x: np.ndarray, H: np.ndarray, h: np.ndarray) -> np.ndarray:
    slack = FEASIBILITY_TOL * (1.0 + np.abs(H) @ np.abs(x).T + np.abs(h)[:, None])
    keep = np.all(H @ x.T <= h[:, None] + slack, axis=0)
    return x[keep]


def _orthant_vertices(H: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Vertices of the full-dimensional pieces ``P cap O_s`` with Qhull.

    Pieces without interior are skipped: when ``P`` is full-dimensional the closures
    of the full-dimensional pieces cover ``P``, so no graph point is lost.
    """
    k = H.shape[1]
    out = []
    norms = np.linalg.norm(H, axis=1)
    for signs in itertools.product((-1.0, 1.0), repeat=k):
        Hs = np.vstack([H, -np.diag(signs)])
        hs = np.concatenate([h, np.zeros(k)])
        ns = np.concatenate([norms, np.ones(k)])
        # Chebyshev centre: max r s.t. Hs x + r |Hs_i| <= hs
        res = linprog(np.r_[np.zeros(k), -1.0], A_ub=np.c_[Hs, ns], b_ub=hs,
                      bounds=[(None, None)] * k + [(0, None)], method="highs")
        if res.status != 0 or res.x[-1] <= 1e-9 * (1 + np.abs(hs).max()):
            continue
        centre = res.x[:k]
        halfspaces = np.c_[Hs, -hs]
        out.append(HalfspaceIntersection(halfspaces, centre).intersections)
    if not out:
        return np.zeros((0, k))
    return _feasible(np.vstack(out), H, h)


def graph_points(H: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Points ``(v, relu(v))`` whose hull is the hull of the k-ReLU graph over ``H x <= h``.

    Raises :class:`scipy.spatial.QhullError` or ``ValueError`` on numerical failure
    (the caller then skips the group, which is always sound)."""
    k = H.shape[1]
    if math.comb(H.shape[0] + k, k) <= BRUTE_FORCE_LIMIT:
        v = _brute_force_vertices(H, h)
    else:
        v = _orthant_vertices(H, h)
    if len(v) == 0:
        raise ValueError("empty polytope")
    v = np.unique(np.round(v, 12), axis=0) if len(v) > 1 else v
    return np.hstack([v, np.maximum(v, 0.0)])


def _sound_rhs(A: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``max_p a^T p`` for every row ``a``, rounded up by a relative and absolute margin."""
    values = A @ points.T
    top = values.max(axis=1)
    size = np.abs(A) @ np.abs(points).T
    return top + MARGIN_REL * size.max(axis=1) + MARGIN_ABS


def _triangle_rhs(A_x, A_y, lower, upper) -> np.ndarray:
    """Sum over neurons of ``max a_x x + a_y relu(x)`` on ``[l_i, u_i]`` (at l, 0 or u)."""
    cands = [np.clip(z, lower, upper) for z in (lower, np.zeros_like(lower), upper)]
    vals = np.stack([A_x * z + A_y * np.maximum(z, 0) for z in cands])
    return vals.max(axis=0).sum(axis=1)


def _normalise(A: np.ndarray, lower, upper):
    """Normalised, de-duplicated directions and their per-neuron triangle right-hand sides."""
    k = len(lower)
    A = A / np.abs(A).max(axis=1, keepdims=True)
    A = np.unique(np.round(A, 10), axis=0)
    A_x, A_y = A[:, :k], A[:, k:]
    return A_x, A_y, _triangle_rhs(A_x, A_y, lower, upper)


def _finish(A: np.ndarray, points: np.ndarray, lower, upper) -> HullRows:
    A = A[np.abs(A).max(axis=1) > 0]
    if len(A) == 0:
        return HullRows.empty(len(lower))
    A_x, A_y, tri = _normalise(A, lower, upper)
    b = _sound_rhs(np.hstack([A_x, A_y]), points)
    scale = 1e-7 * (1 + np.abs(b) + np.abs(tri))
    useful = b < tri - scale
    return HullRows(A_x[useful], A_y[useful], b[useful])


def _hull_directions(points: np.ndarray) -> np.ndarray:
    """Facet normals of the convex hull of ``points`` within their affine hull, plus both
    signs of the normals of that affine hull (the equalities of a lower-dimensional set)."""
    centred = points - points.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=True)
    rank = int(np.sum(sing > 1e-9 * max(sing[0], 1e-300)))
    basis, normals = vt[:rank], vt[rank:]
    if rank < 2:
        raise ValueError(f"graph hull has dimension {rank}")
    hull = ConvexHull(centred @ basis.T)
    return np.vstack([hull.equations[:, :-1] @ basis, normals, -normals])


def exact_hull(H: np.ndarray, h: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               points: np.ndarray | None = None) -> HullRows:
    """Facets of ``conv G`` (Qhull), with sound right-hand sides; triangle-implied rows dropped.

    A lower-dimensional hull (a neuron stable over ``P``, a flat octahedron) is taken
    within its affine hull.  Falls back to :func:`fast_hull` when Qhull fails."""
    points = graph_points(H, h) if points is None else points
    try:
        directions = _hull_directions(points)
    except (QhullError, ValueError) as error:
        log.debug("exact hull failed (%s); template rows instead", str(error).split("\n")[0])
        return fast_hull(H, h, lower, upper, points)
    return _finish(directions, points, lower, upper)


def _templates(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Directions ``(t, c)``: ``c in {-1,0,1}^k``, ``t_i = -u_i/(u_i-l_i)`` where ``c_i = 1``,
    ``t_i in {0, 1}`` where ``c_i = -1`` (lower rows ``y >= 0``, ``y >= x``)."""
    k = len(lower)
    slope = upper / (upper - lower)
    rows = []
    for c in itertools.product((-1, 0, 1), repeat=k):
        c = np.array(c, float)
        if not c.any():
            continue
        neg = np.flatnonzero(c < 0)
        for choice in itertools.product((0.0, 1.0), repeat=len(neg)):
            t = np.where(c > 0, -slope * c, 0.0)
            t[neg] = choice
            rows.append(np.r_[t, c])
    return np.array(rows)


def fast_hull(H: np.ndarray, h: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              points: np.ndarray | None = None) -> HullRows:
    """Template rows (no hull computation) with sound right-hand sides over the graph points."""
    points = graph_points(H, h) if points is None else points
    return _finish(_templates(lower, upper), points, lower, upper)


HULL_METHODS = {"exact": exact_hull, "fast": fast_hull}


def hull_rows(H, h, lower, upper, method: str = "exact") -> HullRows:
    """Rows for one group; an empty set (always sound) if the geometry fails numerically."""
    try:
        return HULL_METHODS[method](H, h, lower, upper)
    except (QhullError, ValueError, np.linalg.LinAlgError) as error:
        log.debug("k-ReLU group skipped: %s", str(error).split("\n")[0])
        return HullRows.empty(len(lower))
