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
relaxation is then the SDP with the triangle cuts of the unstable neurons.  Scaling: every ``G_c`` is divided by
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

__all__ = ["MultiplierSdp", "build", "to_fo_sdp_params", "ALPHA", "BETA", "GAMMA", "THETA"]

_EPS = float(np.finfo(np.float64).eps)
ALPHA, BETA, GAMMA, THETA = 0, 1, 2, 3


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


def _neuron_vectors(W, b, ctr, rad, off, k: int):
    """``w_z`` of every neuron of layer ``k`` as a dense ``(h, 1 + n)`` array: columns
    ``1 + off[k] ..`` hold ``rad_prev * W``; column 0 ``b + W ctr_prev``."""
    n1 = 1 + int(off[-1])
    Wd = W.toarray() if sp.issparse(W) else np.asarray(W, np.float64)
    h = Wd.shape[0]
    wz = np.zeros((h, n1))
    prev = slice(1 + off[k], 1 + off[k + 1])
    wz[:, prev] = Wd * rad[off[k]:off[k + 1]][None, :]
    wz[:, 0] = b + Wd @ ctr[off[k]:off[k + 1]]
    return wz


def _layer_columns(cols: _Columns, problem, k: int, ctr, rad, off, cuts: bool,
                   active_cut: bool) -> None:
    """The constraints of hidden layer ``k`` (module docstring), eliminations included."""
    pl, pu = (np.asarray(v[k], np.float64) for v in (problem.pre_lower, problem.pre_upper))
    wz = _neuron_vectors(problem.weights[k], np.asarray(problem.biases[k], np.float64),
                         ctr, rad, off, k)
    e0 = np.zeros(cols.n1)
    e0[0] = 1.0
    for j in range(wz.shape[0]):
        a = 1 + off[k + 1] + j
        wa = np.zeros(cols.n1)
        wa[0], wa[a] = ctr[a - 1], rad[a - 1]
        dead, active = pu[j] <= 0, pl[j] >= 0
        if dead:
            cols.add(e0, wa - wz[j], (k, j, BETA), 1)
            continue
        cols.add(e0, wa, (k, j, ALPHA), 1)
        cols.add(e0, wa - wz[j], (k, j, BETA), 0 if (active and active_cut) else 1)
        cols.add(wa, wa - wz[j], (k, j, GAMMA), 0)
        if cuts and not active:
            slope = pu[j] / (pu[j] - pl[j]) * (1 + 4 * _EPS)
            cols.add(e0, slope * (wz[j] - pl[j] * e0) - wa, (k, j, THETA), 1)


def build(problem: LayeredReluProgram, cuts: bool, active_cut: bool = True) -> MultiplierSdp:
    """The :class:`MultiplierSdp` of ``problem`` (see the module docstring); ``active_cut``
    (with ``cuts``): the cut ``z - a >= 0`` of stably active neurons too."""
    boxes = [box_radius(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
             for lo, hi in zip(problem.lower, problem.upper)]
    sizes = tuple(int(bx[0].size) for bx in boxes)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    ctr, rad, d = (np.concatenate([bx[i] for bx in boxes]) for i in range(3))
    cols = _Columns(1 + int(off[-1]))
    for k in range(len(problem.weights)):
        _layer_columns(cols, problem, k, ctr, rad, off, cuts, cuts and active_cut)
    kept = np.flatnonzero(d > 0)
    rows = np.concatenate([[0], 1 + kept])
    U = np.array(cols.u).reshape(-1, cols.n1)[:, rows].T
    V = np.array(cols.v).reshape(-1, cols.n1)[:, rows].T
    norms = np.linalg.norm(U, axis=0) * np.linalg.norm(V, axis=0)
    live = norms > 0
    factor = 1.0 / np.where(live, norms, 1.0)
    U, V = U[:, live] * factor[live], V[:, live]
    wf = np.zeros(cols.n1)
    c = np.asarray(problem.c, np.float64)
    wf[0] = float(problem.c0) + c @ ctr[off[-2]:]
    wf[1 + off[-2]:] = rad[off[-2]:] * c
    wf = wf[rows]
    scale = max(float(np.linalg.norm(wf)), 1e-300)
    C = np.zeros((rows.size, rows.size))
    C[0, :] += 0.5 * wf / scale
    C[:, 0] += 0.5 * wf / scale
    sign = np.concatenate([np.array(cols.sign, np.int8)[live],
                           np.concatenate([[0], -np.ones(kept.size, np.int8)])])
    rho = tuple(_rho(np.asarray(pl, np.float64), np.asarray(pu, np.float64))
                for pl, pu in zip(problem.pre_lower, problem.pre_upper))
    return MultiplierSdp(C, U, V, np.concatenate([[1.0], d[kept]]), sign,
                         np.array(cols.owner, np.int64).reshape(-1, 3)[live], factor[live],
                         kept, scale, sizes, rho, cuts)


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
