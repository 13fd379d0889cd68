r"""The SDP relaxation of Raghunathan, Steinhardt & Liang (2018) for ReLU networks.

Lifting
-------
``x = [x_0, a_0, ..., a_{L-1}]`` (``n`` entries: the input and every hidden
post-activation) and ``P = [[1, x^T], [x, X]] >= 0`` (PSD, size ``s = n + 1``).  With
``z_k = W_k a_{k-1} + b_k`` (``a_{-1} = x_0``) and the bounds ``[lo_i, hi_i]`` of ``x_i``
(the input box; ``[relu(l), relu(u)]`` from the pre-activation bounds of hidden neurons):

* ``a_k >= 0`` and ``a_k >= W_k a_{k-1} + b_k`` (rows on the first row of ``P``);
* ``diag(X_{a_k a_k}) = diag(W_k X_{a_{k-1} a_k}) + b_k * a_k`` (``a (a - z) = 0`` lifted);
* ``X_ii <= (lo_i + hi_i) x_i - lo_i hi_i`` for every ``i`` (the box lifted; the right
  side gets ``4 eps max(lo_i^2, hi_i^2)`` of slack for the rounding of its coefficients);
* with ``cuts=True``, the rows of the triangle LP (:func:`relax.lp.encode.encode_triangle`)
  on ``x``, so the SDP with cuts is never looser than the LP with the same bounds.

The objective of a disjunct row ``(c, d)`` is the margin ``c^T (W_L a_{L-1} + b_L) - d``.
A disjunct with several rows gets ``max`` over its rows of the per-row bounds (valid:
``min_x max_j >= max_j min_x``).  Note the plain SDP is *not* always tighter than the
triangle LP; with cuts it is.

Program layout (:func:`encode_sdp`)
-----------------------------------
The :class:`~solvers.program.ConicProgram`'s variables are the upper triangle of ``P``
without the constant ``P_00``, row-major: entry ``(i, j)``, ``i <= j``, is variable
``i (2s - i + 1) / 2 + (j - i) - 1``.  So variables ``0..n-1`` are ``x`` and
``X_ij = P_{i+1, j+1}``.  Everything is built from index arrays (numpy / scipy.sparse),
with loops only over layers.  Every variable is boxed by bounds the SDP already implies
(``lo <= x <= hi``; ``X_ii`` in ``[min over the box of x^2, m_i^2]``,
``|X_ij| <= m_i m_j``, ``m_i = max(|lo_i|, |hi_i|)``, rounded outwards), so
:func:`solvers.safe_bound.conic_safe_bound` gives a finite sound bound from any duals.

Solvers (:func:`relax.sdp.method.sdp_bound`)
--------------------------------------------
The encoding follows what the backend declares it takes (``backend.kinds``), never its
name.  ``LAYERED_QCQP`` (``sdp-ipm``, ``fo-sdp``, plug-ins): the
:class:`~solvers.program.LayeredReluProgram` of :func:`layered_program` (the triangle
cuts are the ``cuts`` key of ``SolveOptions.extra``; with cuts ``sdp-ipm`` also
substitutes stably active neurons, ``a = z``, which adds the valid lifted
constraint ``z (a - z) = 0``: a slightly tighter, still sound SDP, see
:mod:`solvers.backends.sdp_ipm.reduced`).  ``SDP`` (``cvxpy-clarabel``,
``cvxpy-scs``, ``cvxpy-mosek``, plug-ins): the primal ConicProgram of :func:`encode_sdp`
(bound: ``conic_safe_bound`` from the row and PSD duals, ``-inf`` when the solve failed;
a claimed infeasibility is numerical -- the relaxation always contains the lifted inputs
-- so it also gives ``-inf``), or with ``form="multiplier"`` the multiplier form of
:func:`multiplier_program` (an LMI in the multipliers: interior-point solvers whose cost
is driven by the number of multipliers; bound: the float64 check of the returned
multipliers).  The raw objective is never used.  ``sdp-ipm``
(:mod:`solvers.backends.sdp_ipm`): our structured interior-point solver on the
multiplier form, the default while it fits in memory (``benchmarks/results/sdp_ipm.md``:
the SDP optimum of 784-100-100-10 MNIST networks, side ~940 and ~1,500 multipliers, in
~27 iterations and ~20 CPU seconds); ``fo-sdp``: the first-order dual solver
:mod:`solvers.backends.fo_sdp` (rigorously checked bounds, ``O(n^2)`` memory), the
default beyond; it also solves batches (:func:`relax.sdp.method.sdp_bounds`).

Sizes measured on this machine (2 CPU cores shared with other jobs, 23 GB; one
disjunct row, CROWN bounds, Gaussian weights, ``eps = 0.05``; ``s = 1 + inputs +
hidden`` is the size of ``P``; times are rough):

* ``cvxpy-clarabel`` (interior point; the PSD block of its KKT system is dense in
  ``s(s+1)/2`` unknowns): ``s = 31`` (10-10-10-5) 1 s, ``s = 61`` (20-20-20-10) 14 s,
  ``s = 81`` (40-20-20-10) 34 s / 0.9 GB, ``s = 101`` (60-20-20-10) 160 s / 1.7 GB
  (the last three "optimal_inaccurate"; safe bounds agree with the objective to 4-5
  digits).
  Time grows like ``s^5``-``s^6``: largest practical ``s ~ 100`` (about 100 neurons
  including the inputs); no MNIST network (784-20-10 has ``s = 805``).
* ``cvxpy-scs`` (first order, one ``s x s`` eigendecomposition per iteration):
  ``s = 101`` 10 s, ``s = 171`` (100-50-20-10) 19 s (safe bound 0.006 below its
  objective), ``s = 251`` (200-50-10) hits a 300 s limit ("inaccurate", safe bound
  still above CROWN), 784-20-10 (``s = 805``, 324k variables) hits 300 s after 1550
  iterations with a safe bound far below CROWN's.  Largest practical ``s ~ 200``.
* ``cvxpy-mosek``: not licensed on this machine, not measured.
* ``fo-sdp`` (:mod:`solvers.backends.fo_sdp`).  Its matrix-free Adam method (memory
  O(n + weights), 5-8 ms per iteration at ``s = 805 / 985``) did not move from its
  CROWN-like start on 784-input networks (a degenerate zero eigenvalue at the start;
  see the solver's docstring).  The default below 4000 rows is now the spectral
  L-BFGS method (dense ``eigh`` of ``D`` per evaluation, smoothed ``lambda_min`` with a
  decreasing temperature, L-BFGS-B on the sign-constrained duals; O(s^2) memory):
  ``benchmarks/sdp.py`` (results in ``benchmarks/results/sdp.md``) measures it
  against SCS and Clarabel: it reaches Clarabel's optimum to ~1e-6 at ``s = 61``
  in ~3 s and beats SCS's inaccurate bounds at ``s = 101, 171`` in 10-25 s (one
  thread); on the MNIST networks it improves steadily but has not converged within
  the minutes available on this loaded machine (its bound at ``s = 835`` after 60 s
  is below CROWN's without cuts; with cuts it never drops below its CROWN-like start).
  Its hard limit is the dense final check (``dense_check_limit``, 6000).

:func:`relax.sdp.method.default_sdp_solver` picks ``sdp-ipm`` while its memory estimate fits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from relax.bounds import Bounds
from relax.errors import UsageError
from relax.network import Network
from solvers.program import ConicProgram, LayeredReluProgram, LinearProgram, PsdConstraint

__all__ = ["SdpEncoding", "encode_sdp", "layered_program", "triangle_index", "MultiplierEncoding",
           "multiplier_program"]

log = logging.getLogger(__name__)

_EPS = float(np.finfo(np.float64).eps)


def _require_relu(network: Network) -> None:
    if not network.is_relu:
        names = sorted({a.name for a in network.activations})
        raise UsageError(f"the SDP relaxation needs a ReLU network, got activations {names}")


def _boxes(network: Network, lower, upper, bounds: Bounds) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[lo_k, hi_k]`` of ``h_0 = x_0`` and ``h_{k+1} = a_k``: the input box and ``relu`` of
    the pre-activation bounds."""
    boxes = [(np.asarray(lower, np.float64), np.asarray(upper, np.float64))]
    for k in range(len(network.activations)):
        boxes.append((np.maximum(bounds.lower[k], 0.0), np.maximum(bounds.upper[k], 0.0)))
    return boxes


def _output_objective(network: Network, offsets: np.ndarray, n: int, row, offset: float):
    """``(c, c0)`` on ``x`` for the margin ``row^T (W_L h_L + b_L) - offset``."""
    last = network.affines[-1]
    row = np.asarray(row, np.float64)
    c = np.zeros(n)
    c[offsets[-2]:offsets[-1]] = np.asarray(last.weight.T @ row).ravel()
    return c, float(row @ last.bias - offset)


# -- the conic program ----------------------------------------------------------------------

def triangle_index(i: np.ndarray, j: np.ndarray, s: int) -> np.ndarray:
    """Variable index of ``P_ij`` (``i <= j``, not ``(0, 0)``) in the row-major upper triangle."""
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    return i * (2 * s - i + 1) // 2 + (j - i) - 1


@dataclass(frozen=True, eq=False)
class SdpEncoding:
    """The SDP's constraints (zero objective) and how to put a margin objective on it."""

    program: ConicProgram
    network: Network
    offsets: np.ndarray   # x[offsets[k]:offsets[k+1]] is h_k

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    def with_objective(self, row, offset: float) -> ConicProgram:
        """The program minimising ``row^T y - offset`` (the margin of one disjunct row)."""
        c_x, c0 = _output_objective(self.network, self.offsets, self.n, row, offset)
        lp = self.program.linear
        c = np.zeros(lp.num_variables)
        c[:self.n] = c_x
        return ConicProgram(lp.with_objective(c, c0), self.program.psd)


def _variable_bounds(lo: np.ndarray, hi: np.ndarray, I: np.ndarray, J: np.ndarray):
    """Implied boxes of all variables ``P_IJ`` (rounded outwards)."""
    m = np.maximum(np.abs(lo), np.abs(hi))
    up, down = 1 + 4 * _EPS, 1 - 4 * _EPS
    first, diag = I == 0, (I == J) & (I > 0)
    jm, im = J - 1, np.maximum(I - 1, 0)
    var_hi = np.where(first, hi[jm], m[im] * m[jm] * up)
    straddles = (lo <= 0) & (hi >= 0)
    square_lo = np.where(straddles, 0.0, np.minimum(lo * lo, hi * hi) * down)
    var_lo = np.where(first, lo[jm], np.where(diag, square_lo[jm], -var_hi))
    return var_lo, var_hi


def _rows(entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_rows: int, n_vars: int):
    """A CSR matrix from ``(row, column, value)`` triples."""
    r, c, v = (np.concatenate(parts) for parts in zip(*entries))
    return sp.csr_matrix((v, (r, c)), shape=(n_rows, n_vars))


def _relu_rows(W: sp.csr_matrix, b: np.ndarray, prev: int, cur: int, s: int, n_vars: int):
    """For one layer (``h_k`` at ``prev``, ``a_k`` at ``cur``): the rows ``a - W h >= b`` and
    ``X_aa - sum_j W_ij X_{h_j a_i} - b_i a_i = 0``."""
    coo = W.tocoo()
    m = W.shape[0]
    rows = np.arange(m)
    a_var = cur + rows                                          # x_p is variable p
    ineq = _rows([(rows, a_var, np.ones(m)), (coo.row, prev + coo.col, -coo.data)], m, n_vars)
    diag_var = triangle_index(a_var + 1, a_var + 1, s)
    cross_var = triangle_index(prev + coo.col + 1, cur + coo.row + 1, s)
    eq = _rows([(rows, diag_var, np.ones(m)), (coo.row, cross_var, -coo.data),
                (rows, a_var, -b)], m, n_vars)
    return ineq, eq


def _box_rows(lo: np.ndarray, hi: np.ndarray, s: int, n_vars: int):
    """``X_ii - (lo_i + hi_i) x_i <= -lo_i hi_i`` (+ rounding slack) for every ``i``."""
    n = lo.size
    i = np.arange(n)
    A = _rows([(i, triangle_index(i + 1, i + 1, s), np.ones(n)), (i, i, -(lo + hi))], n, n_vars)
    m2 = np.maximum(lo * lo, hi * hi)
    return A, -lo * hi + 4 * _EPS * m2


def _psd_constraint(I: np.ndarray, J: np.ndarray, s: int) -> PsdConstraint:
    """``P = sum_t x_t F_t - F_0`` with ``F_t = E_IJ + E_JI`` (``E_II`` on the diagonal) and
    ``F_0 = -E_00``."""
    t = np.arange(I.size)
    off = I != J
    rows = np.concatenate([I * s + J, (J * s + I)[off]])
    cols = np.concatenate([t, t[off]])
    G = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(s * s, I.size))
    constant = np.zeros(s * s)
    constant[0] = -1.0
    return PsdConstraint(s, G, constant)


def encode_sdp(network: Network, lower, upper, bounds: Bounds, cuts: bool = False,
               extra_cuts=None) -> SdpEncoding:
    """The SDP of the module docstring over the input box ``[lower, upper]`` with hidden
    pre-activation ``bounds`` (zero objective; see :meth:`SdpEncoding.with_objective`).
    ``extra_cuts = (A, hi)``: more rows ``A x <= hi`` over the triangle LP's variables,
    put on the first row of ``P`` like the cuts (e.g. :func:`relax.krelu.encode.dense_rows`)."""
    _require_relu(network)
    boxes = _boxes(network, lower, upper, bounds)
    lo, hi = np.concatenate([b[0] for b in boxes]), np.concatenate([b[1] for b in boxes])
    offsets = np.concatenate([[0], np.cumsum([b[0].size for b in boxes])]).astype(int)
    n = int(offsets[-1])
    s = n + 1
    I, J = np.triu_indices(s)
    I, J = I[1:].astype(np.int64), J[1:].astype(np.int64)
    n_vars = I.size
    blocks, row_lo, row_hi = [], [], []
    for k in range(len(network.activations)):
        affine = network.affines[k]
        ineq, eq = _relu_rows(sp.csr_matrix(affine.weight), affine.bias, offsets[k],
                              offsets[k + 1], s, n_vars)
        blocks += [ineq, eq]
        row_lo += [affine.bias, np.zeros(eq.shape[0])]
        row_hi += [np.full(ineq.shape[0], np.inf), np.zeros(eq.shape[0])]
    box, box_hi = _box_rows(lo, hi, s, n_vars)
    blocks.append(box), row_lo.append(np.full(n, -np.inf)), row_hi.append(box_hi)
    if cuts:
        _add_cuts(network, lower, upper, bounds, n_vars, blocks, row_lo, row_hi)
    if extra_cuts is not None:
        extra, extra_hi = extra_cuts
        blocks.append(sp.hstack([extra, sp.csr_matrix((extra.shape[0], n_vars - extra.shape[1]))], format="csr"))
        row_lo.append(np.full(extra.shape[0], -np.inf)), row_hi.append(np.asarray(extra_hi, float))
    var_lo, var_hi = _variable_bounds(lo, hi, I, J)
    A = sp.vstack(blocks, format="csr")
    linear = LinearProgram(np.zeros(n_vars), A, np.concatenate(row_lo), np.concatenate(row_hi),
                           var_lo, var_hi)
    log.debug("SDP of size %d: %d variables, %d rows", s, n_vars, A.shape[0])
    return SdpEncoding(ConicProgram(linear, (_psd_constraint(I, J, s),)), network, offsets)


def _add_cuts(network, lower, upper, bounds, n_vars, blocks, row_lo, row_hi) -> None:
    """The triangle LP's rows, on the first row of ``P`` (its variables are ``x``)."""
    from relax.lp.encode import encode_triangle

    tri = encode_triangle(network, lower, upper, bounds).program
    pad = sp.csr_matrix((tri.num_rows, n_vars - tri.num_variables))
    blocks.append(sp.hstack([tri.A, pad], format="csr"))
    row_lo.append(tri.row_lower), row_hi.append(tri.row_upper)


# -- the layered program (fo-sdp) -----------------------------------------------------------

def layered_program(network: Network, lower, upper, bounds: Bounds, row,
                    offset: float) -> LayeredReluProgram:
    """The :class:`LayeredReluProgram` minimising the margin ``row^T y - offset``."""
    _require_relu(network)
    boxes = _boxes(network, lower, upper, bounds)
    L = len(network.activations)
    offsets = np.concatenate([[0], np.cumsum([b[0].size for b in boxes])]).astype(int)
    c, c0 = _output_objective(network, offsets, int(offsets[-1]), row, offset)
    return LayeredReluProgram(
        tuple(network.affines[k].weight for k in range(L)),
        tuple(network.affines[k].bias for k in range(L)),
        tuple(b[0] for b in boxes), tuple(b[1] for b in boxes),
        tuple(np.asarray(bounds.lower[k], np.float64) for k in range(L)),
        tuple(np.asarray(bounds.upper[k], np.float64) for k in range(L)),
        c[offsets[-2]:], c0)


# -- the multiplier (dual LMI) form, for conic interior-point solvers ------------------------

@dataclass(frozen=True, eq=False)
class MultiplierEncoding:
    """The SDP's multiplier form (:mod:`solvers.backends.sdp_ipm.problem`) as a
    :class:`ConicProgram` in the multipliers ``y``: ``min -b^T y`` s.t.
    ``C - sum_j y_j A_j >= 0`` (written ``sum_j y_j (-A_j) - (-C) >= 0``), signs as
    variable bounds.  Its optimum is minus the SDP optimum, so the program's own safe
    bound is useless here: :meth:`certify` turns any ``y`` (e.g. ``Solution.x``) into a
    rigorous bound with fo-sdp's float64 check on the :class:`LayeredReluProgram`."""

    program: ConicProgram
    layered: LayeredReluProgram
    sdp: object       # solvers.backends.sdp_ipm.problem.MultiplierSdp
    cuts: bool

    def certify(self, y) -> float:
        """A rigorous lower bound on the margin from the multipliers ``y`` (signs clipped)."""
        from solvers.backends.fo_sdp import certified_bound
        from solvers.backends.sdp_ipm.problem import to_fo_sdp_params

        if y is None:
            return -np.inf
        sign = self.sdp.sign
        y = np.asarray(y, np.float64)
        y = np.where(sign > 0, np.maximum(y, 0.0), np.where(sign < 0, np.minimum(y, 0.0), y))
        return float(certified_bound(self.layered, to_fo_sdp_params(self.sdp, y), self.cuts))


def multiplier_program(network: Network, lower, upper, bounds: Bounds, row, offset: float,
                       cuts: bool = True) -> MultiplierEncoding:
    """The :class:`MultiplierEncoding` of the margin ``row^T y - offset`` (fixed coordinates
    and dead neurons eliminated, coordinates scaled to ``[-1, 1]``)."""
    from solvers.backends.sdp_ipm.problem import build

    layered = layered_program(network, lower, upper, bounds, row, offset)
    sdp = build(layered, cuts)
    s, m = sdp.side, sdp.m_neurons
    cols = []
    for c in range(m):                       # -A_c = -(u v^T + v u^T) / 2, vec row-major
        outer = np.outer(sdp.U[:, c], sdp.V[:, c])
        cols.append(sp.csr_matrix(-0.5 * (outer + outer.T).reshape(-1, 1)))
    diag = sp.csr_matrix((-np.ones(s), (np.arange(s) * (s + 1), np.arange(s))), shape=(s * s, s))
    G = sp.hstack(cols + [diag], format="csr") if cols else diag
    sign = sdp.sign
    lo = np.where(sign > 0, 0.0, -np.inf)
    hi = np.where(sign < 0, 0.0, np.inf)
    n_vars = m + s
    linear = LinearProgram(-sdp.b, sp.csr_matrix((0, n_vars)), np.zeros(0), np.zeros(0), lo, hi)
    psd = PsdConstraint(s, G, -sdp.C.reshape(-1))
    return MultiplierEncoding(ConicProgram(linear, (psd,)), layered, sdp, cuts)
