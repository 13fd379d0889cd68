r"""The ReLU SDP in multiplier form, as data for the interior-point solver.

Normalised coordinates (as in :mod:`solvers.backends.fo_sdp`): ``x = ctr + rad * xt`` with
``[lo, hi]`` the box of every coordinate of ``x = [h_0; ...; h_L]``; a linear function
``l(x) = l_0 + g^T x`` is the vector ``w = (l_0 + g^T ctr, rad * g)`` on ``[1; xt]``.
Per hidden neuron ``a = h_{k+1,j}`` with ``z = W_k[j] h_k + b_k[j]`` in ``[l, u]``:

* ``alpha``: ``a >= 0``          ``G = sym(e_0 w_a^T)``,                ``alpha >= 0``
* ``beta``:  ``a - z >= 0``      ``G = sym(e_0 (w_a - w_z)^T)``,        ``beta >= 0``
* ``gamma``: ``a (a - z) = 0``   ``G = sym(w_a (w_a - w_z)^T)``,         free
* ``theta`` (``cuts``): ``s (z - l') - a >= 0``, ``G = sym(e_0 (s (w_z - l' e_0) - w_a)^T)``,
  ``theta >= 0`` (``s = u / (u - l)`` rounded up, ``l' = l``; for ``l >= 0``: ``s = 1``,
  ``l' = 0``)

(``sym(u v^T) = (u v^T + v u^T) / 2``).  The objective ``f = c^T h_L + c0`` is
``C = sym(e_0 w_f^T)``.  The dual SDP (the multiplier form) is::

    max  kappa_0 + sum_i d_i kappa_i
    s.t. Z = C - sum_c lam_c G_c - diag(kappa) >= 0,  signs on lam,  kappa_i <= 0 (i >= 1)

whose value is the SDP optimum (its primal is the lifted ``P = [1; xt][1; xt]^T`` with
``P_00 = 1``, ``P_ii <= d_i`` and the lifted constraints).  ``D = Z`` is fo-sdp's
``Mt(lam) - diag(kappa)``.

Eliminations (they remove every interior point otherwise): coordinates with
``lo == hi`` (fixed inputs, dead neurons) are dropped (``xt_i = 0``; a dead neuron keeps
only ``beta``: ``-z >= 0``, its other constraints are trivial); for a stably active
neuron with ``cuts`` the pair ``beta``, ``theta`` (``a - z >= 0``, ``z - a >= 0``) becomes
one free multiplier of ``a - z = 0`` -- or, with ``active_cut=False``, that cut is left out
(``a - z >= 0`` only): with the equality the primal had no interior point on some
networks (normally trained 784-100-100-10, eps 0.05: the interior-point method crawled,
steps ~0.1, not converged in 80 iterations, against 30 iterations without it); the
relaxation is then the SDP with the triangle cuts of the unstable neurons.  With
``eliminate`` (sdp-ipm's default with cuts) a stably active neuron is instead substituted
(``a = z``, an affine function of the coordinates that stay; only ``a >= 0`` and
``a <= u`` are kept, type ``UPPER`` for the latter): a tighter SDP, certified by
:mod:`.reduced` (see there).  Scaling: every ``G_c`` is divided by
``|u_c| |v_c|`` and ``C`` by ``|w_f|`` (``scale``), so the solver sees entries of order one.

:func:`to_fo_sdp_params` maps the solver's multipliers to fo-sdp's parameter layout
(per layer ``[alpha, beta, gamma, theta]`` scaled by ``rho``, ``rho^2``, ``rho``, ``rho``,
``rho`` the half-width of the pre-activation bounds; then ``kappa`` over all ``1 + n``
coordinates, 0 on dropped ones), the input of the rigorous check
:func:`solvers.backends.fo_sdp.certified_bound`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from solvers.program import LayeredReluProgram
from solvers.backends.fo_sdp.problem import box_radius

__all__ = ["MultiplierSdp", "build", "to_fo_sdp_params", "ALPHA", "BETA", "GAMMA", "THETA",
           "UPPER"]

_EPS = float(np.finfo(np.float64).eps)
ALPHA, BETA, GAMMA, THETA, UPPER = 0, 1, 2, 3, 4


@dataclass(frozen=True, eq=False)
class MultiplierSdp:
    """``max b^T y`` s.t. ``C - sum_c y_c sym(U_c V_c^T) - diag(y_kappa) >= 0``, signs.

    ``U, V``: ``(s, m)`` neuron-constraint vectors (columns); ``C``: ``(s, s)``;
    ``b_kappa``: ``(s,)`` (``1, d_kept``); ``sign``: ``(m + s,)`` in ``{1, 0, -1}`` for
    ``y = [y_neurons; y_kappa]``.  ``owner[c] = (layer, neuron, type)``; ``factor[c]``
    turns ``y_c`` into fo-sdp's actual multiplier (times ``scale``); ``kept``: the
    coordinates of ``x`` (0-based) that are rows ``1..s-1``."""

    C: np.ndarray
    U: np.ndarray
    V: np.ndarray
    b_kappa: np.ndarray
    sign: np.ndarray
    owner: np.ndarray
    factor: np.ndarray
    kept: np.ndarray
    scale: float
    sizes: tuple[int, ...]
    rho: tuple[np.ndarray, ...]
    cuts: bool
    absolute: tuple | None = None

    @property
    def reduced(self) -> bool:
        """Stably active neurons substituted (certified by :mod:`.reduced`, not fo-sdp)."""
        return self.absolute is not None

    @property
    def side(self) -> int:
        return self.C.shape[0]

    @property
    def m_neurons(self) -> int:
        return self.U.shape[1]

    @property
    def b(self) -> np.ndarray:
        return np.concatenate([np.zeros(self.m_neurons), self.b_kappa])




def _rho(pl: np.ndarray, pu: np.ndarray) -> np.ndarray:
    half = 0.5 * (pu - pl)
    return np.maximum(half, 1e-9 * max(1.0, float(half.max(initial=0.0))))


class _Columns:
    """Accumulates constraint columns ``(u, v)`` on the full ``[1; xt]`` coordinates."""

    def __init__(self, n1: int):
        self.n1, self.u, self.v, self.owner, self.sign = n1, [], [], [], []

    def add(self, u: np.ndarray, v: np.ndarray, owner, sign: int) -> None:
        self.u.append(u), self.v.append(v), self.owner.append(owner), self.sign.append(sign)


def _neuron_vectors(W, b, ctr, rad, off, k: int, absolute: bool = False):
    """``w_z`` of every neuron of layer ``k`` as a dense ``(h, 1 + n)`` array: columns
    ``1 + off[k] ..`` hold ``rad_prev * W``; column 0 ``b + W ctr_prev`` (``absolute``:
    the same sums over absolute values, a bound on the rounding)."""
    n1 = 1 + int(off[-1])
    Wd = W.toarray() if sp.issparse(W) else np.asarray(W, np.float64)
    f = np.abs if absolute else (lambda a: a)
    Wd, b = f(Wd), f(b)
    h = Wd.shape[0]
    wz = np.zeros((h, n1))
    prev = slice(1 + off[k], 1 + off[k + 1])
    wz[:, prev] = Wd * rad[off[k]:off[k + 1]][None, :]
    wz[:, 0] = b + Wd @ f(ctr[off[k]:off[k + 1]])
    return wz


def _layer_columns(cols: _Columns, problem, k: int, ctr, rad, off, cuts: bool,
                   active_cut: bool, eliminated: np.ndarray, absolute: bool = False) -> None:
    """The constraints of hidden layer ``k`` (module docstring), eliminations included;
    ``eliminated[k][j]``: a stably active neuron substituted by its pre-activation (only
    ``a >= 0`` and ``a <= u`` stay, written with ``a``'s coordinate, substituted later).
    ``absolute``: every vector computed on absolute values (a bound on its rounding)."""
    pl, pu = (np.asarray(v[k], np.float64) for v in (problem.pre_lower, problem.pre_upper))
    wz = _neuron_vectors(problem.weights[k], np.asarray(problem.biases[k], np.float64),
                         ctr, rad, off, k, absolute)
    sg = 1.0 if absolute else -1.0
    e0 = np.zeros(cols.n1)
    e0[0] = 1.0
    for j in range(wz.shape[0]):
        a = 1 + off[k + 1] + j
        wa = np.zeros(cols.n1)
        wa[0], wa[a] = (abs(ctr[a - 1]) if absolute else ctr[a - 1]), rad[a - 1]
        dead, active = pu[j] <= 0, pl[j] >= 0
        if dead:
            cols.add(e0, wa + sg * wz[j], (k, j, BETA), 1)
            continue
        cols.add(e0, wa, (k, j, ALPHA), 1)
        if eliminated[k][j]:
            cols.add(e0, abs(pu[j]) * e0 + wa if absolute else pu[j] * e0 - wa,
                     (k, j, UPPER), 1)
            continue
        cols.add(e0, wa + sg * wz[j], (k, j, BETA), 0 if (active and active_cut) else 1)
        cols.add(wa, wa + sg * wz[j], (k, j, GAMMA), 0)
        if cuts and not active:
            slope = pu[j] / (pu[j] - pl[j]) * (1 + 4 * _EPS)
            shifted = wz[j] + abs(pl[j]) * e0 if absolute else wz[j] - pl[j] * e0
            cols.add(e0, slope * shifted + sg * wa, (k, j, THETA), 1)


def _substitution(problem, ctr, rad, off, eliminated, absolute: bool) -> np.ndarray:
    """``T`` (``n1 x n1``): row ``i`` expresses coordinate ``i`` of ``[1; xt]`` in the
    coordinates that stay: ``e_i`` for those, ``(w_z T - ctr_a e_0) / rad_a`` (layer by
    layer, so ``w_z``'s own eliminated coordinates are substituted already) for an
    eliminated neuron ``a``, exact on the feasible set since there ``a = z``."""
    n1 = 1 + int(off[-1])
    T = np.eye(n1)
    for k, gone in enumerate(eliminated):
        rows = 1 + off[k + 1] + np.flatnonzero(gone)
        if rows.size == 0:
            continue
        W = problem.weights[k]
        wz = _neuron_vectors(W[np.flatnonzero(gone)] if sp.issparse(W)
                             else np.asarray(W)[gone], np.asarray(problem.biases[k])[gone],
                             ctr, rad, off, k, absolute)
        source = np.concatenate([[0], np.arange(1 + off[k], 1 + off[k + 1])])
        T[rows] = wz[:, source] @ T[source]
        T[rows, 0] += np.abs(ctr[rows - 1]) if absolute else -ctr[rows - 1]
        T[rows] /= rad[rows - 1][:, None]
    return T


def _full_columns(problem, ctr, rad, off, cuts, active_cut, eliminated, absolute):
    """All constraint columns and the objective vector on ``[1; xt]``, then substituted."""
    cols = _Columns(1 + int(off[-1]))
    for k in range(len(problem.weights)):
        _layer_columns(cols, problem, k, ctr, rad, off, cuts, cuts and active_cut,
                       eliminated, absolute)
    f = np.abs if absolute else (lambda a: a)
    wf = np.zeros(cols.n1)
    c = f(np.asarray(problem.c, np.float64))
    wf[0] = f(float(problem.c0)) + c @ f(ctr[off[-2]:])
    wf[1 + off[-2]:] = rad[off[-2]:] * c
    U = np.array(cols.u).reshape(-1, cols.n1)
    V = np.array(cols.v).reshape(-1, cols.n1)
    if any(e.any() for e in eliminated):
        T = _substitution(problem, ctr, rad, off, eliminated, absolute)
        gone = np.flatnonzero(np.concatenate([np.zeros(1 + off[1], bool)] + eliminated))
        U, V = (M + M[:, gone] @ T[gone] for M in (U, V))
        wf = wf + wf[gone] @ T[gone]
    return cols, U, V, wf


def build(problem: LayeredReluProgram, cuts: bool, active_cut: bool = True,
          eliminate: bool = False) -> MultiplierSdp:
    """The :class:`MultiplierSdp` of ``problem`` (see the module docstring); ``active_cut``
    (with ``cuts``): the cut ``z - a >= 0`` of stably active neurons too; ``eliminate``
    (with ``cuts``): stably active neurons substituted (:mod:`.reduced`), with the
    absolute-value companions of ``U, V, C`` for its certificate."""
    boxes = [box_radius(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
             for lo, hi in zip(problem.lower, problem.upper)]
    sizes = tuple(int(bx[0].size) for bx in boxes)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    ctr, rad, d = (np.concatenate([bx[i] for bx in boxes]) for i in range(3))
    eliminated = [(np.asarray(pl, np.float64) >= 0) & (rad[off[k + 1]:off[k + 2]] > 0)
                  & bool(cuts and eliminate) for k, pl in enumerate(problem.pre_lower)]
    cols, U, V, wf = _full_columns(problem, ctr, rad, off, cuts, active_cut, eliminated, False)
    gone = np.concatenate([np.zeros(sizes[0], bool)] + eliminated)
    kept = np.flatnonzero((d > 0) & ~gone)
    rows = np.concatenate([[0], 1 + kept])
    U, V, wf = U[:, rows].T, V[:, rows].T, wf[rows]
    norms = np.linalg.norm(U, axis=0) * np.linalg.norm(V, axis=0)
    live = norms > 0
    factor = 1.0 / np.where(live, norms, 1.0)
    U, V = U[:, live] * factor[live], V[:, live]
    scale = max(float(np.linalg.norm(wf)), 1e-300)
    absolute = None
    if cuts and eliminate:
        _, Ua, Va, wfa = _full_columns(problem, ctr, rad, off, cuts, active_cut, eliminated,
                                       True)
        absolute = (Ua[:, rows].T[:, live] * factor[live], Va[:, rows].T[:, live],
                    _corner(wfa[rows] / scale))
    sign = np.concatenate([np.array(cols.sign, np.int8)[live],
                           np.concatenate([[0], -np.ones(kept.size, np.int8)])])
    rho = tuple(_rho(np.asarray(pl, np.float64), np.asarray(pu, np.float64))
                for pl, pu in zip(problem.pre_lower, problem.pre_upper))
    return MultiplierSdp(_corner(wf / scale), U, V, np.concatenate([[1.0], d[kept]]), sign,
                         np.array(cols.owner, np.int64).reshape(-1, 3)[live], factor[live],
                         kept, scale, sizes, rho, cuts, absolute)


def _corner(w: np.ndarray) -> np.ndarray:
    """``sym(e_0 w^T)``."""
    C = np.zeros((w.size, w.size))
    C[0, :] += 0.5 * w
    C[:, 0] += 0.5 * w
    return C


def to_fo_sdp_params(sdp: MultiplierSdp, y: np.ndarray) -> np.ndarray:
    """fo-sdp's scaled parameter vector (module docstring) for the multipliers ``y``."""
    hidden = sdp.sizes[1:]
    starts = np.concatenate([[0], np.cumsum([4 * h for h in hidden])]).astype(int)
    n = int(sum(sdp.sizes))
    p = np.zeros(int(starts[-1]) + n + 1)
    m = sdp.m_neurons
    lam = np.asarray(y[:m], np.float64) * sdp.factor * sdp.scale
    k, j, kind = sdp.owner.T
    rho = np.concatenate(sdp.rho) if sdp.rho else np.zeros(0)
    layer_start = np.concatenate([[0], np.cumsum(hidden)]).astype(int)
    r = rho[layer_start[k] + j] if m else np.zeros(0)
    # a free beta of a stably active neuron (cuts): its negative part is fo-sdp's theta
    negative = (kind == BETA) & (lam < 0)
    kind = np.where(negative, THETA, kind)
    lam = np.where(negative, -lam, lam)
    power = np.where(kind == GAMMA, 2, 1)
    np.add.at(p, starts[k] + kind * np.asarray(hidden)[k] + j if m else [], lam * r ** power)
    kappa = np.asarray(y[m:], np.float64) * sdp.scale
    p[starts[-1]] = kappa[0]
    p[starts[-1] + 1 + sdp.kept] = kappa[1:]
    return p
