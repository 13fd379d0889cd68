r"""``fo-sdp``: a first-order, matrix-free solver for the dual of the ReLU SDP.

The method of Dathathri et al. (2020), *Enabling certification of
verification-agnostic networks via memory-efficient semidefinite programming*
(SDP-FO), for a :class:`~solvers.program.LayeredReluProgram`.

Problem
-------
``min c^T h_L + c0`` over ``h_{k+1} = relu(z_k)``, ``z_k = W_k h_k + b_k``, with
``lo_k <= h_k <= hi_k``.  ``x = [h_0; ...; h_L]`` has ``n`` entries.  Constraints
used, per hidden neuron ``a = h_{k+1,i}`` with pre-activation bounds ``[l, u]``:

* ``a >= 0`` (multiplier ``alpha >= 0``), ``a - z >= 0`` (``beta >= 0``),
  ``a (a - z) = 0`` (``gamma`` free);
* with the ``cuts`` option, the triangle LP's upper side ``s (z - l') - a >= 0``
  (``theta >= 0``): ``s = u / (u - l)`` (rounded up), ``l' = l`` when ``l < 0 < u``,
  ``s = 1, l' = 0`` when ``l >= 0``; none for ``u <= 0``;
* the box, through the normalisation ``x = ctr + rad * xt`` (``ctr``, ``rad`` the
  centre and half-width of ``[lo, hi]``), under which it reads ``xt_i^2 <= 1``
  (``xt_i = 0`` for a fixed coordinate).  ``[1; x] = T [1; xt]`` with
  ``T = [[1, 0], [ctr, diag(rad)]]``.

This is the SDP of Raghunathan, Steinhardt & Liang (2018) (``relax.sdp``) written
in normalised coordinates: both have the same optimum.

Dual bound (exact-penalty form)
-------------------------------
For multipliers ``lam`` (signs as above) the Lagrangian
``L(x) = f(x) - sum_k [alpha_k^T a_k + beta_k^T (a_k - z_k) + gamma_k^T (a_k (a_k - z_k))
+ theta_k^T (s_k (z_k - l'_k) - a_k)]`` is ``<= f(x)`` on the feasible set and equals
``[1; x]^T M [1; x] = [1; xt]^T Mt [1; xt]`` with ``Mt = T^T M T``.  For *any*
``kappa`` in ``R^{1+n}`` let ``D = Mt - diag(kappa)`` and ``q = lambda_min(D)``; then
``D - q I >= 0`` and for every ``P = [1; xt][1; xt]^T`` (``P_00 = 1``, ``0 <= P_ii <= d_i``)::

    f(x) >= <Mt, P> = <D - q I, P> + q + kappa_0 + sum_{i>=1} (kappa_i + q) P_ii
         >= kappa_0 + q + sum_{i>=1} d_i min(0, kappa_i + q)  =: F(lam, kappa)

with ``d_i >= max xt_i^2`` over the box (1 up to rounding, 0 for fixed coordinates,
which are dropped).  This is the paper's bound ``kappa_0 - mu + sum d_i min(0, kappa_i - mu)``,
``mu = max(0, -q)``, without the clipping of ``q`` at 0 (valid for either sign of ``q``,
never smaller, and free of the kink at ``q = 0``).  The argument uses only the lifted
constraints, so ``F`` bounds the SDP relaxation too and its supremum is the SDP
optimum.  ``F`` is concave and *every* ``(lam, kappa)`` with the right signs gives a
valid bound: iterates need no feasibility.  Multipliers are stored scaled
(``alpha = p / rho``, ``gamma = p / rho^2``, ``rho`` the half-width of the
pre-activation bounds) so that all parameters are in objective units.

Algorithm (``method="adam"``, matrix-free; the default above ``lbfgs_below`` rows)
-------------------------------------------------------------------------------
Projected Adam ascent on ``F``.  Start (``init``): ``"linear"`` (default) takes the
better of two dual points whose ``F`` is a linear bound (:func:`_linear_init`): the
interval bound of the last layer (``lam = 0``), and a CROWN-like backward pass (with
``cuts`` it reproduces the CROWN bound with 0/1 lower slopes exactly); ``"interval"``
only the first; ``"zeros"`` all duals 0; or a warm start.  Each step needs
the smallest eigenpairs of ``D``: Lanczos with full reorthogonalisation (our own
torch implementation, :func:`lanczos`), started from the previous step's
eigenvector plus a little noise.  Products with ``D`` are matrix-free
(:meth:`_Operator.apply`): one forward pass (``W_k u_k``) and one backward pass
(``W_k^T y_k``) per layer; no ``n x n`` matrix is formed.  (With ``eig="auto"``, the
default, problems with ``1 + n <= dense_below`` (64) instead form ``D`` by one
batched product with the identity and call ``eigh``: same pairs, less Python
overhead.)  The supergradient follows from ``d lambda = v^T dD v`` with
``u = T v``: ``dq/dbeta_k = u_0 (zh_k - u_{k+1})``, ``dq/dgamma_k = u_{k+1} (zh_k - u_{k+1})``,
``dq/dalpha_k = -u_0 u_{k+1}``, ``dq/dtheta_k = u_0 (u_{k+1} - s (zh_k - l' u_0))``,
``dq/dkappa_i = -v_i^2`` (``zh_k = W_k u_k + b_k u_0``).  Near the optimum the lowest
eigenvalues cluster, so the step uses a soft-min over the ``ritz`` lowest Ritz pairs
(weights ``softmax(-theta / tau)``, ``tau = smooth_eig * scale``).  The learning rate
(``lr * scale``, ``scale`` the objective's interval half-width) and ``tau`` halve after
``patience / 3`` iterations without improvement; the run stops after ``patience``
such iterations, at ``max_iterations``, at ``target`` or at the time limit.  Runs
on CPU in float64 by default; ``device="cuda"`` takes float32 or float64.

Spectral L-BFGS (``method="lbfgs"``, the default for ``1 + n <= lbfgs_below``)
-----------------------------------------------------------------------------
Why Adam stalls on MNIST-sized problems: at the CROWN-like start ``D`` is PSD with a
highly degenerate zero eigenvalue (every coordinate with a zero coefficient), so
``lambda_min`` is non-smooth exactly there and a soft-min over 8 Lanczos pairs sees
only a random slice of the eigenspace: steps on the ~``n`` box multipliers ``kappa``
(which dominate at 784 inputs) trade one zero eigenvalue for another and the
estimate oscillates around the start.  This method instead forms ``D`` densely (one
batched product with the identity, ``O(n^2)`` memory) and takes the *whole*
spectrum with ``eigh`` (numpy/LAPACK on CPU, torch on CUDA) at each evaluation.  It
maximises the equivalent bound ``F2 = kappa_0 + sum_i d_i kappa_i + T min(0, q)``
(``T = 1 + sum d_i`` bounds ``trace P``; valid for ``kappa_i <= 0``, and ``F >= F2``
there, so the rigorous check below is unchanged) smoothed as
``F2_tau = kappa_0 + sum d_i kappa_i - T tau log(1 + sum_j exp(-lambda_j / tau))``,
a concave lower bound of ``F2`` with gradient ``T sum_j w_j dlambda_j/dp``
(``w = softmax``, the rows ``sqrt(w_j) v_j`` through :meth:`_Operator.rayleigh`).
``scipy.optimize.minimize(method="L-BFGS-B")`` handles the sign constraints as
bounds (``alpha, beta, theta >= 0``, ``kappa_i <= 0``); ``tau = scale 10^-k / T``
for ``k`` in ``smooth_stages`` (2..7), each stage warm-started from the last and
ended when its smoothed value rose by less than
``max(stage_tol * scale, stage_gap * (F - F2_tau))`` over ``stage_patience``
evaluations.  Every evaluation also yields the exact (unsmoothed, float64 ``eigh``)
``F``; the best is kept and certified.  One evaluation costs one ``eigh`` of the
``(1+n)``-matrix (~0.1 s at ``n = 1134`` and ~1.3 s at ``n = 2584`` on 2 idle cores)
plus two batched passes through the network.  Options: ``method`` ("auto", "lbfgs",
"adam"), ``lbfgs_below`` (4000), ``memory`` (30, L-BFGS pairs), ``smooth_stages``
((2, 7)), ``stage_tol`` (1e-5), ``stage_gap`` (0.05), ``stage_patience`` (50);
``max_iterations`` counts evaluations.

Rigorous bound
--------------
The Lanczos value is an *upper* estimate of ``lambda_min`` and is never reported
(``Solution.dual_objective`` and ``FoSdpState.history`` carry estimates, marked as
such).  A reported bound is recomputed in float64 numpy: ``D`` is formed densely
(for ``1 + n <= dense_check_limit``, default 6000) and
``q >= eigvalsh(D)[0] - 64 (1+n) eps ||D||_F - K eps ||D_abs||_F``: the first margin
covers LAPACK's backward error, the second the rounding in forming ``D`` (``D_abs``
is the same computation on absolute values, ``K`` bounds the longest chain of
operations behind an entry).  ``F`` increases with ``q``; it is summed with
:func:`math.fsum` minus a relative allowance and rounded one ulp down.  Larger
problems get ``bound = -inf`` (no rigorous eigenvalue bound is implemented for
them).  ``Solution.bound`` is the largest rigorous value among the checked iterates:
the best estimated one, the last one and every ``check_every``-th.

Options (``SolveOptions.extra``)
-------------------------------
``device`` ("cpu"), ``dtype`` ("float64" or "float32"), ``max_iterations`` (3000),
``lr`` (0.05), ``patience`` (300), ``eig`` ("auto", "lanczos" or "dense"),
``dense_below`` (64), ``lanczos_steps`` (30), ``ritz`` (8), ``smooth_eig`` (0.003),
``cuts`` (False), ``init`` ("linear", "interval" or "zeros"), ``check_every`` (0: off),
``target`` (stop once the estimate reaches it), ``seed`` (0), ``dense_check_limit``
(6000).  ``SolveOptions.tolerance`` (1e-7) is the relative improvement that counts
for ``patience``; ``SolveOptions.time_limit`` bounds the iterations' wall time.

Warm start: ``Solution.warm_start`` is a :class:`FoSdpState` (the best duals, the
last eigenvector, the history and checks).  Passed back for a program with the same
layer sizes (and ``cuts`` setting) it initialises the duals and Lanczos' start
vector and starts with a quarter of the learning rate (Adam), or starts L-BFGS from
the duals (clipped to ``kappa_i <= 0``) two smoothing stages later; a mismatched
one is ignored.

Batches (:func:`solve_batch`)
-----------------------------
Several programs with the same layer sizes (the target classes of an image share
the network and box; several images differ in the box and hidden bounds) are solved
together: each keeps its own optimiser run -- the same L-BFGS-B or Adam iterations
as alone -- in its own thread, and a :class:`_Lockstep` gathers their eigenvalue
problems into one batched evaluation (:class:`_BatchOperator`: duals and data with a
leading batch dimension, one broadcast ``matmul`` per layer and direction for all
problems' vectors; the stacked ``D`` and one batched ``eigh`` for L-BFGS and dense
Adam, :func:`lanczos_batch` for matrix-free Adam; coordinates fixed in one problem
only are moved out of the way by a diagonal shift instead of being dropped).  Each
bound is still that problem's rigorous float64 check.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from solvers.backend import Backend, SolveOptions, error_solution
from solvers.program import LayeredReluProgram, ProblemKind
from solvers.solution import Solution, SolveStats, Status

__all__ = ["FoSdpBackend", "FoSdpState", "certified_bound", "lanczos", "lanczos_batch",
           "lanczos_min", "solve_batch"]

log = logging.getLogger(__name__)

_EPS = float(np.finfo(np.float64).eps)
_DEFAULTS = {"device": "cpu", "dtype": "float64", "max_iterations": 3000, "lr": 0.05,
             "patience": 300, "eig": "auto", "dense_below": 64, "lanczos_steps": 30,
             "ritz": 8, "smooth_eig": 0.003, "cuts": False, "init": "linear",
             "check_every": 0, "target": None, "seed": 0, "dense_check_limit": 6000,
             "method": "auto", "lbfgs_below": 4000, "memory": 30, "smooth_stages": (2, 7),
             "stage_tol": 1e-5, "stage_gap": 0.05,
             "stage_patience": 50}


def _method(opts: dict, n1: int) -> str:
    """``method``: ``"lbfgs"`` (dense spectral), ``"adam"`` (matrix-free), or ``"auto"``:
    L-BFGS when ``1 + n <= lbfgs_below``, else Adam."""
    method = str(opts["method"])
    if method == "auto":
        return "lbfgs" if n1 <= int(opts["lbfgs_below"]) else "adam"
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"fo-sdp: method must be 'auto', 'lbfgs' or 'adam', got {method!r}")
    return method


@dataclass(frozen=True, eq=False)
class FoSdpState:
    """The warm-start payload: scaled duals ``params`` (layout of :class:`_Layout`),
    the last eigenvector, and the run's record.  ``history[t]`` is the *estimated*
    (Lanczos) dual value at iteration ``t`` (not a bound); ``checks`` holds
    ``(iteration, rigorous bound)`` pairs."""

    sizes: tuple[int, ...]
    cuts: bool
    params: np.ndarray
    eigenvector: np.ndarray | None
    iterations: int
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    checks: tuple[tuple[int, float], ...] = ()


# -- problem data ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Data:
    """The program in float64 numpy: normalisation, cut data, scales, masks."""

    weights: tuple            # W_k, dense ndarray or CSR
    biases: tuple
    ctr: tuple                # box centres of h_0..h_L
    rad: tuple                # box half-widths
    d: np.ndarray             # d_i >= max xt_i^2 over the box, i = 1..n (0 if fixed)
    rho: tuple                # scale of layer k's constraints (> 0)
    slope: tuple              # cut slope s_k (0 where no cut)
    cut_offset: tuple         # l'_k
    cut_mask: tuple           # where a cut is valid
    pre_lower: tuple          # pre-activation bounds of the hidden layers
    pre_upper: tuple
    c: np.ndarray
    c0: float

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(r.size for r in self.rad)

    @property
    def n(self) -> int:
        return int(sum(self.sizes))


def _radius(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, half-width and ``d = max xt^2`` (rounded up) of the box ``[lo, hi]``."""
    ctr = np.where(lo == hi, lo, 0.5 * lo + 0.5 * hi)
    rad = np.where(lo == hi, 0.0, 0.5 * (hi - lo))
    rad = np.where((rad == 0) & (lo != hi), hi - lo, rad)
    safe = np.where(rad > 0, rad, 1.0)
    reach = np.maximum(np.abs(lo - ctr), np.abs(hi - ctr)) / safe
    d = np.where(rad > 0, reach * reach * (1 + 8 * _EPS), 0.0)
    return ctr, rad, d


def _cut_data(pl: np.ndarray, pu: np.ndarray, cuts: bool):
    """Slope (rounded up), offset and validity mask of the triangle cuts of one layer."""
    unstable, active = (pl < 0) & (pu > 0), pl >= 0
    width = np.where(unstable, pu - pl, 1.0)
    slope = np.where(unstable, pu / width * (1 + 4 * _EPS), np.where(active, 1.0, 0.0))
    offset = np.where(unstable, pl, 0.0)
    mask = (unstable | active) & cuts
    return slope, offset, mask


def _prepare(problem: LayeredReluProgram, cuts: bool) -> _Data:
    """Float64 data of ``problem`` (see :class:`_Data`)."""
    boxes = [_radius(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
             for lo, hi in zip(problem.lower, problem.upper)]
    rho, slope, offset, mask = [], [], [], []
    for pl, pu in zip(problem.pre_lower, problem.pre_upper):
        pl, pu = np.asarray(pl, np.float64), np.asarray(pu, np.float64)
        half = 0.5 * (pu - pl)
        floor = 1e-9 * max(1.0, float(half.max(initial=0.0)))
        rho.append(np.maximum(half, floor))
        s, o, m = _cut_data(pl, pu, cuts)
        slope.append(s), offset.append(o), mask.append(m)
    weights = tuple(sp.csr_matrix(w, dtype=np.float64) if sp.issparse(w)
                    else np.asarray(w, np.float64) for w in problem.weights)
    return _Data(weights, tuple(np.asarray(b, np.float64) for b in problem.biases),
                 tuple(b[0] for b in boxes), tuple(b[1] for b in boxes),
                 np.concatenate([b[2] for b in boxes]), tuple(rho), tuple(slope),
                 tuple(offset), tuple(mask),
                 tuple(np.asarray(v, np.float64) for v in problem.pre_lower),
                 tuple(np.asarray(v, np.float64) for v in problem.pre_upper),
                 np.asarray(problem.c, np.float64), float(problem.c0))


def _check_shapes(problem: LayeredReluProgram) -> None:
    L = len(problem.weights)
    counts = (len(problem.biases), len(problem.pre_lower), len(problem.pre_upper))
    if counts != (L, L, L) or len(problem.lower) != L + 1 or len(problem.upper) != L + 1:
        raise ValueError("LayeredReluProgram: need L weights/biases/pre-bounds and L+1 boxes")
    if np.asarray(problem.c).size != np.asarray(problem.lower[-1]).size:
        raise ValueError("LayeredReluProgram: c must match the last layer's size")


class _Layout:
    """Flat parameter vector: per layer ``[alpha, beta, gamma, theta]`` (scaled), then ``kappa``."""

    def __init__(self, data: _Data):
        hidden = data.sizes[1:]
        self.hidden = hidden
        self.starts = np.concatenate([[0], np.cumsum([4 * h for h in hidden])]).astype(int)
        self.kappa_start = int(self.starts[-1])
        self.size = self.kappa_start + data.n + 1
        nonneg = np.zeros(self.size, bool)
        free = np.ones(self.size, bool)
        for k, h in enumerate(hidden):
            s = self.starts[k]
            nonneg[s:s + 2 * h] = True                # alpha, beta
            nonneg[s + 3 * h:s + 4 * h] = True        # theta
            free[s + 3 * h:s + 4 * h] = data.cut_mask[k]
        free[self.kappa_start + 1:] = data.d > 0       # kappa of fixed coordinates is 0
        self.nonneg, self.free = nonneg, free


    def split(self, p, k: int):
        """``(alpha, beta, gamma, theta)`` parameter slices of layer ``k``."""
        s, h = self.starts[k], self.hidden[k]
        return p[s:s + h], p[s + h:s + 2 * h], p[s + 2 * h:s + 3 * h], p[s + 3 * h:s + 4 * h]

    def project(self, p: np.ndarray) -> np.ndarray:
        """Signs and masks: ``alpha, beta, theta >= 0``; masked entries 0."""
        p = np.where(self.free, p, 0.0)
        return np.where(self.nonneg, np.maximum(p, 0.0), p)


def _multipliers(layout: _Layout, data: _Data, p: np.ndarray, k: int):
    """Actual multipliers of layer ``k`` from the scaled parameters: ``alpha = p / rho``,
    ``beta = p / rho``, ``gamma = p / rho^2``, ``theta = p / rho``."""
    rho = data.rho[k]
    alpha, beta, gamma, theta = layout.split(p, k)
    return alpha / rho, beta / rho, gamma / (rho * rho), theta / rho


# -- the rigorous float64 check ---------------------------------------------------------------

def _linear_part(data: _Data, lams, absolute: bool):
    """``m00`` and the linear coefficients ``g_k`` of ``L(x) = m00 + g^T x + x^T H x``
    (``absolute``: the same sums over absolute values, for rounding bounds)."""
    f = np.abs if absolute else (lambda a: a)
    sg = 1.0 if absolute else -1.0
    g = [np.zeros(r.size) for r in data.rad]
    g[-1] = g[-1] + f(data.c)
    m00 = abs(data.c0) if absolute else data.c0
    for k, (alpha, beta, gamma, theta) in enumerate(lams):
        W, b, s, off = f(data.weights[k]), f(data.biases[k]), f(data.slope[k]), data.cut_offset[k]
        ts = f(theta) * s
        g[k + 1] = g[k + 1] + sg * f(alpha) + sg * f(beta) + f(gamma) * b + f(theta)
        g[k] = g[k] + np.asarray(W.T @ (f(beta) + sg * ts)).ravel()
        m00 = m00 + f(beta) @ b + sg * (ts @ (b + sg * f(off)))
    return m00, g


def _dense_lagrangian(data: _Data, lams, kappa: np.ndarray, absolute: bool) -> np.ndarray:
    """``D = Mt - diag(kappa)`` as a dense float64 matrix (or its absolute companion)."""
    f = np.abs if absolute else (lambda a: a)
    sg = 1.0 if absolute else -1.0
    m00, g = _linear_part(data, lams, absolute)
    offsets = np.concatenate([[1], 1 + np.cumsum(data.sizes)]).astype(int)
    D = np.zeros((data.n + 1, data.n + 1))
    rad, ctr = data.rad, [f(c) for c in data.ctr]
    hc = [np.zeros(r.size) for r in rad]
    for k, (_, _, gamma, _) in enumerate(lams):
        W = data.weights[k].toarray() if sp.issparse(data.weights[k]) else data.weights[k]
        block = 0.5 * f(gamma)[:, None] * f(W)
        hc[k + 1] = hc[k + 1] + sg * f(gamma) * ctr[k + 1] + block @ ctr[k]
        hc[k] = hc[k] + block.T @ ctr[k + 1]
        rows, cols = slice(offsets[k + 1], offsets[k + 2]), slice(offsets[k], offsets[k + 1])
        D[rows, cols] = rad[k + 1][:, None] * block * rad[k][None, :]
        D[cols, rows] = D[rows, cols].T
        idx = np.arange(offsets[k + 1], offsets[k + 2])
        D[idx, idx] += sg * f(gamma) * rad[k + 1] ** 2
    rad_all, ctr_all = np.concatenate(rad), np.concatenate(ctr)
    g_all, hc_all = np.concatenate(g), np.concatenate(hc)
    D[0, 1:] = D[1:, 0] = rad_all * (0.5 * g_all + hc_all)
    D[0, 0] = m00 + ctr_all @ g_all + ctr_all @ hc_all
    D[np.diag_indices(data.n + 1)] += sg * f(kappa)
    return D


def _operation_count(data: _Data) -> int:
    """A bound on the longest chain of roundings behind one entry of ``D``."""
    widest = max([1] + [max(w.shape) for w in data.weights])
    return 2 * (data.n + 1) + 2 * widest + 32


def _split_numpy(layout: _Layout, data: _Data, params: np.ndarray):
    p = layout.project(np.asarray(params, np.float64))
    lams = [_multipliers(layout, data, p, k) for k in range(len(layout.hidden))]
    return lams, p[layout.kappa_start:]


def _bound_from_eigenvalue(kappa: np.ndarray, d: np.ndarray, lam_low: float) -> float:
    """``F = kappa_0 + q + sum d_i min(0, kappa_i + q)`` at ``q = lam_low`` (a lower bound
    on ``lambda_min``; ``F`` increases with ``q``), summed safely and rounded down."""
    q = lam_low
    terms = np.concatenate([[kappa[0], q], d * np.minimum(0.0, kappa[1:] + q)])
    value = math.fsum(terms) - (1e-12 + 8 * _EPS) * float(np.abs(terms).sum())
    return math.nextafter(value, -math.inf) if math.isfinite(value) else -math.inf


def _certify(data: _Data, layout: _Layout, params: np.ndarray, limit: int) -> float:
    """A rigorous lower bound from the scaled duals ``params`` (see the module docstring)."""
    if data.n + 1 > limit:
        return -math.inf
    lams, kappa = _split_numpy(layout, data, params)
    keep = np.concatenate([[True], data.d > 0])    # fixed coordinates: zero rows, xt_i = 0
    D = _dense_lagrangian(data, lams, kappa, absolute=False)[np.ix_(keep, keep)]
    if not np.isfinite(D).all():
        return -math.inf
    D_abs = _dense_lagrangian(data, lams, kappa, absolute=True)[np.ix_(keep, keep)]
    lam_hat = float(np.linalg.eigvalsh(D)[0])
    margin = 64 * D.shape[0] * _EPS * float(np.linalg.norm(D))
    margin += _operation_count(data) * _EPS * float(np.linalg.norm(D_abs))
    return _bound_from_eigenvalue(kappa, data.d, lam_hat - 1.01 * margin)


def certified_bound(problem: LayeredReluProgram, params: np.ndarray, cuts: bool = False,
                    dense_check_limit: int = _DEFAULTS["dense_check_limit"]) -> float:
    """The rigorous float64 bound of :class:`FoSdpState` parameters for ``problem``."""
    data = _prepare(problem, cuts)
    return _certify(data, _Layout(data), params, dense_check_limit)


# -- the torch operator ---------------------------------------------------------------------

class _Operator:
    """Matrix-free ``D = Mt(lam) - diag(kappa)`` and its supergradients, in torch."""

    def __init__(self, data: _Data, layout: _Layout, device, dtype):
        import torch

        self.torch, self.data, self.layout = torch, data, layout
        def t(a):
            return torch.as_tensor(np.array(a, np.float64), dtype=dtype, device=device)

        self.W = [self._weight(w, device, dtype) for w in data.weights]
        self.WT = [self._weight(w.T.tocsr(), device, dtype) if sp.issparse(w) else None
                   for w in data.weights]      # sparse CSR cannot be transposed in torch
        self.b = [t(b) for b in data.biases]
        self.ctr, self.rad = [t(c) for c in data.ctr], [t(r) for r in data.rad]
        self.slope, self.offset = [t(s) for s in data.slope], [t(o) for o in data.cut_offset]
        self.rho = [t(r) for r in data.rho]
        self.c, self.c0 = t(data.c), data.c0
        self.d = t(data.d)
        self.sizes = list(data.sizes)
        self.t = t
        self.keep = t(np.concatenate([[1.0], (data.d > 0).astype(float)]))
        self.free = torch.as_tensor(layout.free, device=device)
        self.nonneg = torch.as_tensor(layout.nonneg, device=device)

    def project(self, p):
        """:meth:`_Layout.project` in torch."""
        p = p.masked_fill(~self.free, 0.0)
        return self.torch.where(self.nonneg, p.clamp(min=0.0), p)

    def _weight(self, w, device, dtype):
        """A torch copy of ``W`` (sparse CSR when ``w`` is scipy sparse)."""
        torch = self.torch
        if not sp.issparse(w):
            return torch.as_tensor(np.array(w), dtype=dtype, device=device)
        with warnings.catch_warnings():          # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(torch.as_tensor(w.indptr.astype(np.int64)),
                                           torch.as_tensor(w.indices.astype(np.int64)),
                                           torch.as_tensor(w.data), size=w.shape, dtype=dtype,
                                           device=device)

    def fwd(self, k: int, U):
        """``W_k u`` for the rows ``u`` of ``U`` (batch, n_k)."""
        if self.WT[k] is not None:
            return (self.W[k] @ U.T.contiguous()).T
        return U @ self.W[k].T

    def bwd(self, k: int, Y):
        """``W_k^T y`` for the rows of ``Y`` (batch, n_{k+1})."""
        if self.WT[k] is not None:
            return (self.WT[k] @ Y.T.contiguous()).T
        return Y @ self.W[k]

    def set_params(self, p) -> None:
        """Fix the duals: multipliers per layer, ``kappa``, and the linear part ``m00, g``."""
        layout, L = self.layout, len(self.sizes) - 1
        self.lams = []
        for k in range(L):
            alpha, beta, gamma, theta = layout.split(p, k)
            r = self.rho[k]
            self.lams.append((alpha / r, beta / r, gamma / (r * r), theta / r))
        self.kappa = p[layout.kappa_start:]
        g = [self.torch.zeros_like(r) for r in self.rad]
        g[-1] = g[-1] + self.c
        m00 = self.c0 + 0.0 * p.sum()
        for k, (alpha, beta, gamma, theta) in enumerate(self.lams):
            ts = theta * self.slope[k]
            g[k + 1] = g[k + 1] - alpha - beta + gamma * self.b[k] + theta
            g[k] = g[k] + self.bwd(k, (beta - ts)[None])[0]
            m00 = m00 + beta @ self.b[k] - ts @ (self.b[k] - self.offset[k])
        self.m00, self.g = m00, g

    def _lift(self, V):
        """``u = T v`` for a batch ``V`` (batch, 1+n): ``(u_0, [u_k])``."""
        v0 = V[:, :1]
        parts = self.torch.split(V[:, 1:], self.sizes, dim=1)
        return v0, [c * v0 + r * x for c, r, x in zip(self.ctr, self.rad, parts)]

    def apply(self, V):
        """``D V`` for a batch ``V`` (batch, 1+n): forward and backward passes only."""
        v0, u = self._lift(V)
        w0 = self.m00 * v0 + 0.5 * sum((uk @ gk)[:, None] for uk, gk in zip(u, self.g))
        w = [0.5 * gk * v0 for gk in self.g]
        for k, (_, _, gamma, _) in enumerate(self.lams):
            w[k + 1] = w[k + 1] - gamma * u[k + 1] + 0.5 * gamma * self.fwd(k, u[k])
            w[k] = w[k] + 0.5 * self.bwd(k, gamma * u[k + 1])
        out0 = w0 + sum((wk @ ck)[:, None] for wk, ck in zip(w, self.ctr))
        out = self.torch.cat([out0] + [r * wk for r, wk in zip(self.rad, w)], dim=1)
        return out - self.kappa * V

    def rayleigh(self, V):
        """Rayleigh quotients ``q_j = v_j^T D v_j`` of the unit rows ``v_j`` of ``V`` and
        their gradients ``dq_j/dp`` (rows; scaled parameters), from one forward pass."""
        torch = self.torch
        u0, u = self._lift(V)
        q = (self.m00 * u0 * u0)[:, 0] + u0[:, 0] * sum(uk @ gk for uk, gk in zip(u, self.g))
        grads = []
        for k, (alpha, beta, gamma, theta) in enumerate(self.lams):
            wu = self.fwd(k, u[k])
            zh, a = wu + self.b[k] * u0, u[k + 1]
            q = q + (a * (wu - a)) @ gamma
            r = self.rho[k]
            cut = u0 * (a - self.slope[k] * (zh - self.offset[k] * u0))
            grads += [-u0 * a / r, u0 * (zh - a) / r, a * (zh - a) / (r * r), cut / r]
        q = q - (V * V) @ self.kappa
        grads.append(-(V * V))
        return q, torch.cat(grads, dim=1)


# -- eigenvalues ----------------------------------------------------------------------------

def lanczos(matvec, start, steps: int, count: int = 1, mask=None):
    """The ``count`` smallest Ritz pairs ``(values, rows of vectors)`` of a symmetric
    operator after at most ``steps`` Lanczos steps from ``start``, with full
    reorthogonalisation.  On breakdown (an invariant subspace) it continues from a
    random vector orthogonal to the basis (restricted to ``mask`` when given), so with
    ``steps = n`` it recovers the whole spectrum.  Ritz values are upper estimates:
    ``values[0] >= lambda_min``."""
    import torch

    n = start.numel()
    k = max(1, min(int(steps), n if mask is None else int(mask.sum())))
    generator = torch.Generator().manual_seed(n)
    Q = start.new_zeros((k, n))
    if float(start.norm()) == 0.0:
        start = torch.randn(n, generator=generator, dtype=torch.float64).to(start)
        start = start if mask is None else start * mask
    q = start / start.norm()
    alphas, betas = [], []
    scale = 0.0
    for j in range(k):
        Q[j] = q
        w = matvec(q)
        alphas.append(q @ w)
        w = _orthogonalise(w, Q[:j + 1])
        beta = w.norm()
        scale = max(scale, float(alphas[-1].abs()), float(beta))
        if j == k - 1:
            break
        if float(beta) <= 1e-10 * max(scale, 1e-300):
            w = torch.randn(n, generator=generator, dtype=torch.float64).to(start)
            w = _orthogonalise(w if mask is None else w * mask, Q[:j + 1])
            if float(w.norm()) < 1e-8:
                break
            q, beta = w / w.norm(), torch.zeros_like(beta)
        else:
            q = w / beta
        betas.append(beta)
    m = len(alphas)
    T = torch.diag(torch.stack(alphas))
    if m > 1:
        off = torch.stack(betas[:m - 1])
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    values, vectors = torch.linalg.eigh(T)
    ritz = (Q[:m].T @ vectors[:, :count]).T
    return values[:count], ritz / ritz.norm(dim=1, keepdim=True)


def _orthogonalise(w, basis):
    """``w`` minus its projection on the rows of ``basis`` (twice, for stability)."""
    w = w - basis.T @ (basis @ w)
    return w - basis.T @ (basis @ w)


def lanczos_min(matvec, start, steps: int):
    """The smallest Ritz pair ``(theta, v)`` (see :func:`lanczos`)."""
    values, vectors = lanczos(matvec, start, steps, 1)
    return values[0], vectors[0]


def _dense_eigen(op: _Operator, count: int):
    """Smallest eigenpairs from the matrix formed by one batched product (tiny problems)."""
    torch = op.torch
    eye = torch.diag(op.keep)
    D = op.apply(eye)
    push = torch.diag(1 - op.keep) * (D.abs().max() + 1)    # fixed coordinates out of the way
    values, vectors = torch.linalg.eigh(0.5 * (D + D.T) + push)
    return values[:count], vectors[:, :count].T


def _soft_min(values, tau: float):
    """``-tau log sum exp(-values / tau) <= min(values)`` and its weights (softmax)."""
    import torch

    if tau <= 0 or values.numel() == 1:
        weights = torch.zeros_like(values)
        weights[0] = 1.0
        return values[0], weights
    shifted = -(values - values[0]) / tau
    weights = torch.softmax(shifted, dim=0)
    return values[0] - tau * torch.logsumexp(shifted, dim=0), weights


# -- the solver -----------------------------------------------------------------------------

@dataclass
class _Run:
    """Mutable state of one solve."""

    params: Any
    vector: Any
    best_value: float = -math.inf
    best_params: Any = None
    history: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    iterations: int = 0
    status: Status = Status.ITERATION_LIMIT


def _dual_value(op: _Operator, q, kappa):
    """``F = kappa_0 + q + sum_i d_i min(0, kappa_i + q)`` at ``q ~ lambda_min(D)``, with
    ``dF/dq`` and the direct part of ``dF/dkappa``."""
    torch = op.torch
    active = ((kappa[1:] + q) < 0).to(kappa.dtype) * op.d
    value = kappa[0] + q + op.d @ torch.clamp(kappa[1:] + q, max=0.0)
    return value, 1.0 + active.sum(), torch.cat([torch.ones_like(kappa[:1]), active])


def _linear_init(data: _Data, layout: _Layout, propagate: bool) -> np.ndarray:
    """Duals (``gamma = 0``) whose bound ``F`` equals a linear bound.

    With ``propagate``, a CROWN-like backward pass: the objective's coefficient ``g_i``
    on ``a_i`` is moved to the previous layer through ``a >= z`` (``beta = g_i``; for
    ``g_i > 0`` and ``l >= 0`` or ``u >= -l``), dropped with ``a >= 0`` (``alpha = g_i``,
    other ``g_i > 0``), or, for ``g_i < 0`` with ``cuts``, moved through the triangle cut
    (``theta = -g_i``); what is left on each coordinate is bounded by its box.  Without
    ``propagate`` all multipliers are 0 (the interval bound of the last layer).  The
    box part: with the Lagrangian ``m00 + g^T x`` and ``ct = rad * g``,
    ``kappa_i = -|ct_i| / 2``, ``kappa_0 = m00 + g^T ctr - sum |ct_i| / 2`` make
    ``D = [[sum |ct| / 2, ct^T / 2], [ct / 2, diag(|ct| / 2)]] >= 0`` with ``q = 0``, so
    ``F = m00 + g^T ctr - sum |ct_i|``."""
    p = np.zeros(layout.size)
    coefficient = np.asarray(data.c, np.float64)
    for k in reversed(range(len(layout.hidden)) if propagate else ()):
        pl, pu = data.pre_lower[k], data.pre_upper[k]
        positive = coefficient > 0
        through = positive & ((pl >= 0) | ((pl < 0) & (pu > 0) & (pu >= -pl)))
        dropped = positive & (pl < 0) & (pu > 0) & ~through
        cut = (coefficient < 0) & data.cut_mask[k]
        alpha, beta, gamma, theta = layout.split(p, k)
        alpha[:] = np.where(dropped, coefficient, 0.0) * data.rho[k]
        beta[:] = np.where(through, coefficient, 0.0) * data.rho[k]
        theta[:] = np.where(cut, -coefficient, 0.0) * data.rho[k]
        passed = np.where(through, coefficient, 0.0)
        passed = passed + np.where(cut, coefficient, 0.0) * data.slope[k]
        coefficient = np.asarray(data.weights[k].T @ passed).ravel()
    lams, _ = _split_numpy(layout, data, p)
    m00, g = _linear_part(data, lams, absolute=False)
    g, rad, ctr = np.concatenate(g), np.concatenate(data.rad), np.concatenate(data.ctr)
    ct = rad * g
    p[layout.kappa_start + 1:] = -0.5 * np.abs(ct)
    p[layout.kappa_start] = m00 + g @ ctr - 0.5 * np.abs(ct).sum()
    return p


def _initial_duals(data: _Data, layout: _Layout, init: str) -> np.ndarray:
    """``init="zeros"``, ``"interval"``, or ``"linear"``: the better (by the value of ``F``,
    known in closed form, see :func:`_linear_init`) of the interval and the backward init."""
    if init == "zeros":
        return np.zeros(layout.size)
    candidates = [_linear_init(data, layout, False)]
    if init == "linear":
        candidates.append(_linear_init(data, layout, True))
    value = lambda p: p[layout.kappa_start] + p[layout.kappa_start + 1:] @ data.d  # noqa: E731
    return max(candidates, key=value)


def _adam_step(state: dict, grad, lr: float):
    """Adam's step (betas 0.9, 0.999) for *ascent* along ``grad``; updates ``state``."""
    state["t"] += 1
    state["m"].mul_(0.9).add_(grad, alpha=0.1)
    state["v"].mul_(0.999).addcmul_(grad, grad, value=0.001)
    m_hat = state["m"] / (1 - 0.9 ** state["t"])
    v_hat = state["v"] / (1 - 0.999 ** state["t"])
    return lr * m_hat / (v_hat.sqrt() + 1e-12)


class _Solver:
    """Projected Adam on ``F`` with Lanczos eigenvalues (see the module docstring)."""

    def __init__(self, problem: LayeredReluProgram, options: SolveOptions, warm_start):
        import torch

        self.torch = torch
        self.opts = {**_DEFAULTS, **options.extra_dict}
        self.time_limit = options.time_limit
        self.tolerance = options.tolerance or 1e-7
        self.data = _prepare(problem, bool(self.opts["cuts"]))
        self.layout = _Layout(self.data)
        dtype = {"float64": torch.float64, "float32": torch.float32}[str(self.opts["dtype"])]
        self.op = _Operator(self.data, self.layout, self.opts["device"], dtype)
        self.generator = torch.Generator(device="cpu").manual_seed(int(self.opts["seed"]))
        self.warm = self._accept(warm_start)
        ct = self.data.rad[-1] * self.data.c
        self.scale = max(float(np.abs(ct).sum()), 1e-9 * max(1.0, abs(self.data.c0)))

    def _accept(self, warm_start) -> FoSdpState | None:
        if warm_start is None:
            return None
        if (not isinstance(warm_start, FoSdpState) or warm_start.sizes != self.data.sizes
                or warm_start.cuts != bool(self.opts["cuts"])):
            log.info("fo-sdp: warm start ignored (different layout)")
            return None
        return warm_start

    def _start(self) -> _Run:
        if self.warm is not None:
            params = self.warm.params
        else:
            params = _initial_duals(self.data, self.layout, str(self.opts["init"]))
        vector = self.warm.eigenvector if self.warm is not None else None
        n1 = self.data.n + 1
        noise = self.torch.randn(n1, generator=self.generator, dtype=self.torch.float64)
        start = noise / noise.norm() * (1e-3 if vector is not None else 1.0)
        if vector is not None and vector.size == n1:
            start = start + self.torch.as_tensor(vector, dtype=self.torch.float64)
        return _Run(self.op.t(self.layout.project(params)),
                    self.op.t(start.numpy()) * self.op.keep)

    @property
    def dense(self) -> bool:
        """Whether eigenpairs come from a dense ``eigh`` (``eig="dense"``, or ``"auto"`` below
        ``dense_below`` rows) rather than Lanczos."""
        eig = self.opts["eig"]
        return eig == "dense" or (eig == "auto" and self.data.n + 1 <= int(self.opts["dense_below"]))

    def _lanczos_start(self, run: _Run):
        """Lanczos' start: the last eigenvector plus a little noise."""
        noise = self.torch.randn(run.vector.shape, generator=self.generator,
                                 dtype=self.torch.float64).to(run.vector)
        return (run.vector + 1e-3 * noise / math.sqrt(run.vector.numel())) * self.op.keep

    def _pairs(self, run: _Run):
        """Rayleigh quotients, their gradients and the rows of the ``ritz`` smallest (Ritz)
        pairs of ``D(run.params)``: Lanczos, or ``eigh`` of ``D`` formed by one batched product
        (:attr:`dense`).  :class:`_LockstepAdam` replaces this by a batched call."""
        self.op.set_params(run.params)
        _, vectors = self._eigen(run, int(self.opts["ritz"]))
        quotients, gradients = self.op.rayleigh(vectors)
        return quotients, gradients, vectors

    def _eigen(self, run: _Run, count: int):
        """The ``count`` smallest (Ritz) pairs of ``D`` (set by ``op.set_params``)."""
        if self.dense:
            return _dense_eigen(self.op, count)
        return lanczos(lambda v: self.op.apply(v[None])[0], self._lanczos_start(run),
                       int(self.opts["lanczos_steps"]), count, self.op.keep)

    def _step(self, run: _Run, adam: dict, lr: float) -> float:
        """One projected Adam ascent step; returns the estimated dual value."""
        op, torch = self.op, self.torch
        quotients, gradients, vectors = self._pairs(run)
        run.vector = vectors[0]
        order = torch.argsort(quotients)
        _, weights = _soft_min(quotients[order], self.tau_eig)
        dq = weights @ gradients[order]
        value, dF_dq, dkappa = _dual_value(op, quotients[order[0]],
                                           run.params[self.layout.kappa_start:])
        grad = dF_dq * dq
        grad[self.layout.kappa_start:] += dkappa
        run.params = op.project(run.params + _adam_step(adam, grad, lr))
        return float(value)

    def _record(self, run: _Run, value: float, params) -> bool:
        """Track the best estimate; True when it improved by more than the tolerance."""
        improved = value > run.best_value + self.tolerance * max(1.0, abs(run.best_value))
        if value > run.best_value:
            run.best_value, run.best_params = value, params
        return improved

    def run(self) -> tuple[_Run, float]:
        """Adam ascent; the learning rate and the eigenvalue smoothing halve after
        ``patience / 3`` iterations without improvement, the run stops after ``patience``."""
        run = self._start()
        torch, start_time = self.torch, time.perf_counter()
        adam = {"t": 0, "m": torch.zeros_like(run.params), "v": torch.zeros_like(run.params)}
        warm = 0.25 if self.warm is not None else 1.0        # a warm start is near the optimum
        lr = float(self.opts["lr"]) * self.scale * warm
        self.tau_eig = float(self.opts["smooth_eig"]) * self.scale * warm
        since_best, plateau = 0, 0
        for it in range(int(self.opts["max_iterations"])):
            current = run.params
            value = self._step(run, adam, lr)
            run.history.append(value)
            run.iterations = it + 1
            improved = self._record(run, value, current)
            since_best, plateau = (0, 0) if improved else (since_best + 1, plateau + 1)
            if plateau >= max(10, int(self.opts["patience"]) // 3):
                lr, plateau, self.tau_eig = lr * 0.5, 0, self.tau_eig * 0.5
            self._maybe_check(run, it, current)
            if self._stop(run, since_best, start_time):
                break
        return run, time.perf_counter() - start_time

    def _maybe_check(self, run: _Run, it: int, params) -> None:
        every = int(self.opts["check_every"] or 0)
        if every and it % every == 0:
            run.checks.append((it, self.certify(params)))

    def _stop(self, run: _Run, since_best: int, start_time: float) -> bool:
        target = self.opts["target"]
        if target is not None and run.best_value >= float(target):
            run.status = Status.OPTIMAL
            return True
        if since_best >= int(self.opts["patience"]):
            run.status = Status.OPTIMAL
            return True
        if self.time_limit is not None and time.perf_counter() - start_time > self.time_limit:
            run.status = Status.TIME_LIMIT
            return True
        return False

    def certify(self, params) -> float:
        return _certify(self.data, self.layout, params.detach().cpu().double().numpy(),
                        int(self.opts["dense_check_limit"]))


class _TimeUp(Exception):
    """Raised inside the objective to end the run (time or evaluation limit, or the
    target reached); its argument is the run's status."""


class _StageDone(Exception):
    """Raised inside the objective when a temperature stage stalls."""


class _SpectralSolver:
    r"""Smoothed dual ascent with dense eigendecompositions and L-BFGS-B
    (``method="lbfgs"``; see "Spectral L-BFGS" in the module docstring).

    Maximises ``F_tau = kappa_0 + sum_i d_i kappa_i + T smin_tau(0, lambda(D))`` over the
    scaled duals with ``alpha, beta, theta >= 0`` and ``kappa_i <= 0`` (``i >= 1``),
    ``T = 1 + sum d_i``, ``smin_tau(0, lambda) = -tau log(1 + sum_j exp(-lambda_j / tau))
    <= min(0, lambda_min)``, for a decreasing sequence of temperatures ``tau``."""

    def __init__(self, problem: LayeredReluProgram, options: SolveOptions, warm_start):
        self.base = _Solver(problem, options, warm_start)
        b = self.base
        self.torch, self.op, self.layout, self.data = b.torch, b.op, b.layout, b.data
        self.opts, self.time_limit = b.opts, b.time_limit
        torch = self.torch
        keep = np.concatenate([[True], self.data.d > 0])
        self.idx = torch.as_tensor(np.flatnonzero(keep), device=self.op.keep.device)
        m = self.idx.numel()
        self.basis = torch.zeros((m, self.data.n + 1), dtype=self.op.keep.dtype,
                                 device=self.op.keep.device)
        self.basis[torch.arange(m), self.idx] = 1.0
        self.trace = 1.0 + float(self.data.d.sum())
        free = self.layout.free
        self.free_idx = np.flatnonzero(free)
        lower = np.where(self.layout.nonneg, 0.0, -np.inf)
        upper = np.full(self.layout.size, np.inf)
        upper[self.layout.kappa_start + 1:] = 0.0
        self.bounds = list(zip(np.where(np.isinf(lower), None, lower)[self.free_idx],
                               np.where(np.isinf(upper), None, upper)[self.free_idx]))
        self.lower, self.upper = lower, upper

    def _full(self, x: np.ndarray) -> np.ndarray:
        p = np.zeros(self.layout.size)
        p[self.free_idx] = x
        return p

    def _eigen(self, p):
        """Eigenvalues (ascending) and eigenvectors (rows, in the full ``1 + n`` space) of
        ``D`` restricted to the non-fixed coordinates."""
        torch = self.torch
        self.op.set_params(p)
        D = self.op.apply(self.basis)[:, self.idx]
        D = 0.5 * (D + D.T)
        if D.device.type == "cpu":        # numpy's LAPACK eigh is ~2x faster here than torch's
            values, vectors = np.linalg.eigh(D.numpy())
            return torch.from_numpy(values).to(D), torch.from_numpy(vectors).to(D)
        values, vectors = torch.linalg.eigh(D)
        return values, vectors

    def _spectrum(self, p, tau: float):
        """Eigenvalues of ``D(p)`` (ascending, non-fixed coordinates), the gradient
        ``T sum_j w_j dlambda_j/dp`` of the smoothed minimum (``w = softmax`` of
        ``(0, -lambda) / tau`` without its first entry) and the lowest eigenvector (full
        ``1 + n`` space).  :class:`_LockstepSpectral` replaces this by a batched call."""
        values, vectors = self._eigen(p)
        extended = self.torch.cat([values.new_zeros(1), values])
        weights = self.torch.softmax(-extended / tau, dim=0)[1:]
        sel = self.torch.nonzero(weights > 1e-13 * max(float(weights.max()), 1e-300)).ravel()
        grad = self.torch.zeros_like(p)
        if sel.numel():
            rows = vectors[:, sel].T * weights[sel].sqrt()[:, None]
            full = rows.new_zeros((rows.shape[0], self.data.n + 1))
            full[:, self.idx] = rows
            _, grads = self.op.rayleigh(full)
            grad = self.trace * grads.sum(dim=0)
        vector = vectors.new_zeros(self.data.n + 1)
        vector[self.idx] = vectors[:, 0]
        return values, grad, vector

    def _evaluate(self, x: np.ndarray, tau: float, run: _Run):
        torch, op = self.torch, self.op
        if self.time_limit is not None and time.perf_counter() - self.start > self.time_limit:
            raise _TimeUp(Status.TIME_LIMIT)
        if run.iterations >= int(self.opts["max_iterations"]):
            raise _TimeUp(Status.ITERATION_LIMIT)
        self.last_x = np.array(x)
        p = op.t(self._full(x))
        values, grad, vector = self._spectrum(p, tau)
        kappa, d = p[self.layout.kappa_start:], op.d
        q = values[0]
        exact = kappa[0] + q + d @ torch.clamp(kappa[1:] + q, max=0.0)
        extended = torch.cat([values.new_zeros(1), values])
        smin = -tau * torch.logsumexp(-extended / tau, dim=0)
        value = kappa[0] + d @ kappa[1:] + self.trace * smin
        grad[self.layout.kappa_start] += 1.0
        grad[self.layout.kappa_start + 1:] += d
        exact, smooth = float(exact), float(value)
        self.stage_values.append(max(smooth, self.stage_values[-1] if self.stage_values
                                     else -math.inf))
        run.history.append(exact)
        run.iterations += 1
        self.base._record(run, exact, p)
        every = int(self.opts["check_every"] or 0)
        if every and (run.iterations - 1) % every == 0:
            run.checks.append((run.iterations - 1, self.base.certify(p)))
        target = self.opts["target"]
        if target is not None and run.best_value >= float(target):
            raise _TimeUp(Status.OPTIMAL)
        self.last_vector = vector
        window = int(self.opts["stage_patience"])
        values = self.stage_values
        if (len(values) > window and values[-1] - values[-1 - window]
                <= max(float(self.opts["stage_tol"]) * self.base.scale,
                       float(self.opts["stage_gap"]) * (exact - smooth))):
            self.stage_x = x
            raise _StageDone
        g = grad.detach().cpu().double().numpy()[self.free_idx]
        return -smooth, -g

    def run(self) -> tuple[_Run, float]:
        from scipy.optimize import minimize

        b = self.base
        run = b._start()
        self.start = time.perf_counter()
        p0 = np.clip(run.params.detach().cpu().double().numpy(), self.lower, self.upper)
        x = p0[self.free_idx]
        budget = int(self.opts["max_iterations"])
        taus = self._temperatures()
        status = Status.ITERATION_LIMIT
        try:
            for tau in taus:
                left = budget - run.iterations
                if left <= 0:
                    break
                self.stage_values = []
                try:
                    result = minimize(self._evaluate, x, args=(tau, run), jac=True,
                                      method="L-BFGS-B", bounds=self.bounds,
                                      options={"maxfun": left, "maxiter": left,
                                               "maxcor": int(self.opts["memory"]),
                                               "ftol": 1e-15, "gtol": 0.0})
                    x, message = result.x, result.message
                except _StageDone:
                    x, message = self.stage_x, "stalled"
                log.debug("fo-sdp lbfgs: tau %.3g, %d evaluations, smoothed %.8g, best %.8g "
                          "(%s) %.1fs", tau, run.iterations, (self.stage_values or [math.nan])[-1], run.best_value,
                          message, time.perf_counter() - self.start)
            else:
                status = Status.OPTIMAL
        except _TimeUp as stop:
            status = stop.args[0]
        run.params = self.op.t(self._full(getattr(self, "last_x", x)))
        if hasattr(self, "last_vector"):
            run.vector = self.last_vector
        run.status = status
        return run, time.perf_counter() - self.start

    def _temperatures(self) -> list[float]:
        """``tau_k = scale * 10^-k / T`` for ``k = first..last`` (``smooth_stages``)."""
        first, last = (float(v) for v in self.opts["smooth_stages"])
        warm = 2.0 if self.base.warm is not None else 0.0
        ks = np.arange(first + warm, last + 0.5)
        return [self.base.scale * 10.0 ** (-k) / self.trace for k in ks]

    def certify(self, params) -> float:
        return self.base.certify(params)


class FoSdpBackend(Backend):
    """SDP-FO (Dathathri et al. 2020) on :class:`~solvers.program.LayeredReluProgram`."""

    name = "fo-sdp"
    kinds = frozenset({ProblemKind.LAYERED_QCQP})

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            return False, f"torch is not installed ({exc})"
        return True, ""

    def _solve(self, problem: LayeredReluProgram, options: SolveOptions, warm_start) -> Solution:
        _check_shapes(problem)
        solver = _Solver(problem, options, warm_start)
        if _method(solver.opts, solver.data.n + 1) == "lbfgs":
            solver = _SpectralSolver(problem, options, warm_start)
        run, seconds = solver.run()
        return _solution(self.name, solver, run, seconds)


def _solution(name: str, solver, run: _Run, seconds: float) -> Solution:
    """The :class:`Solution` of a finished run: the rigorous bound is the largest float64
    check among the recorded checks, the last and the best iterate."""
    final = [(run.iterations - 1, solver.certify(run.params))]
    if run.best_params is not None:
        final.append((-1, solver.certify(run.best_params)))
    checks = run.checks + final
    bound = max(b for _, b in checks)
    state = FoSdpState(solver.data.sizes, bool(solver.opts["cuts"]),
                       run.best_params.detach().cpu().double().numpy()
                       if run.best_params is not None else run.params.cpu().double().numpy(),
                       run.vector.detach().cpu().double().numpy(), run.iterations,
                       np.asarray(run.history), tuple(run.checks))
    message = (f"{run.iterations} iterations in {seconds:.2f}s; estimated dual value "
               f"{run.best_value:.6g}, certified {bound:.6g}")
    log.info("fo-sdp: %s", message)
    return Solution(run.status, None, bound, stats=SolveStats(iterations=run.iterations),
                    warm_start=state, solver=name, message=message,
                    dual_objective=run.best_value)


# -- batches --------------------------------------------------------------------------------

class _BatchOperator:
    """:class:`_Operator` for ``B`` problems with the same layer sizes at once: every
    per-problem vector gets a leading batch dimension, vectors to multiply are
    ``(b, m, 1 + n)`` for a subset ``idx`` (``b`` problems) of the batch, and each
    ``W_k`` product is one (broadcast) ``matmul`` for all of them.  The weights are
    shared when all problems have the same ones (the rows of one image), stacked
    ``(B, n_{k+1}, n_k)`` otherwise; sparse weights are made dense."""

    def __init__(self, ops: list[_Operator]):
        torch = ops[0].torch
        self.torch, self.layout, self.sizes = torch, ops[0].layout, ops[0].sizes
        stack = lambda get: [torch.stack([get(o)[k] for o in ops])  # noqa: E731
                             for k in range(len(get(ops[0])))]
        self.b, self.ctr, self.rad = stack(lambda o: o.b), stack(lambda o: o.ctr), stack(lambda o: o.rad)
        self.slope, self.offset = stack(lambda o: o.slope), stack(lambda o: o.offset)
        self.rho = stack(lambda o: o.rho)
        self.c = torch.stack([o.c for o in ops])
        self.c0 = torch.tensor([o.c0 for o in ops], dtype=self.c.dtype, device=self.c.device)
        self.d = torch.stack([o.d for o in ops])
        self.keep = torch.stack([o.keep for o in ops])
        self.W = []
        for k in range(len(ops[0].W)):
            dense = [o.W[k].to_dense() if o.WT[k] is not None else o.W[k] for o in ops]
            shared = all(torch.equal(dense[0], w) for w in dense[1:])
            self.W.append(dense[0] if shared else torch.stack(dense))

    def _w(self, k: int):
        W = self.W[k]
        return W if W.dim() == 2 else W[self.idx]

    def fwd(self, k: int, U):
        """``W_k u`` for ``U`` (b, m, n_k)."""
        return U @ self._w(k).transpose(-1, -2)

    def bwd(self, k: int, Y):
        """``W_k^T y`` for ``Y`` (b, m, n_{k+1})."""
        return Y @ self._w(k)

    def set_params(self, p, idx) -> None:
        """Duals ``p`` (b, size) of the problems ``idx`` (see :meth:`_Operator.set_params`)."""
        torch, layout = self.torch, self.layout
        self.idx = idx
        self.lams = []
        for k in range(len(self.sizes) - 1):
            alpha, beta, gamma, theta = layout.split(p.T, k)
            r = self.rho[k][idx]
            self.lams.append((alpha.T / r, beta.T / r, gamma.T / (r * r), theta.T / r))
        self.kappa = p[:, layout.kappa_start:]
        g = [torch.zeros_like(r[idx]) for r in self.rad]
        g[-1] = g[-1] + self.c[idx]
        m00 = self.c0[idx].clone()
        for k, (alpha, beta, gamma, theta) in enumerate(self.lams):
            ts = theta * self.slope[k][idx]
            b = self.b[k][idx]
            g[k + 1] = g[k + 1] - alpha - beta + gamma * b + theta
            g[k] = g[k] + self.bwd(k, (beta - ts)[:, None])[:, 0]
            m00 = m00 + (beta * b).sum(1) - (ts * (b - self.offset[k][idx])).sum(1)
        self.m00, self.g = m00, g

    def _lift(self, V):
        v0 = V[..., :1]
        parts = self.torch.split(V[..., 1:], self.sizes, dim=-1)
        return v0, [c[self.idx, None] * v0 + r[self.idx, None] * x
                    for c, r, x in zip(self.ctr, self.rad, parts)]

    def apply(self, V):
        """``D V`` per problem, ``V`` (b, m, 1+n)."""
        v0, u = self._lift(V)
        w0 = self.m00[:, None, None] * v0 + 0.5 * sum(
            (uk * gk[:, None]).sum(-1, keepdim=True) for uk, gk in zip(u, self.g))
        w = [0.5 * gk[:, None] * v0 for gk in self.g]
        for k, (_, _, gamma, _) in enumerate(self.lams):
            gm = gamma[:, None]
            w[k + 1] = w[k + 1] - gm * u[k + 1] + 0.5 * gm * self.fwd(k, u[k])
            w[k] = w[k] + 0.5 * self.bwd(k, gm * u[k + 1])
        out0 = w0 + sum((wk * ck[self.idx, None]).sum(-1, keepdim=True)
                        for wk, ck in zip(w, self.ctr))
        out = self.torch.cat([out0] + [r[self.idx, None] * wk for r, wk in zip(self.rad, w)],
                             dim=-1)
        return out - self.kappa[:, None] * V

    def rayleigh(self, V):
        """Quotients (b, m) and gradients (b, m, size) of the unit rows of ``V`` (b, m, 1+n)."""
        u0, u = self._lift(V)
        q = self.m00[:, None] * u0[..., 0] ** 2 + u0[..., 0] * sum(
            (uk * gk[:, None]).sum(-1) for uk, gk in zip(u, self.g))
        grads = []
        for k, (alpha, beta, gamma, theta) in enumerate(self.lams):
            wu = self.fwd(k, u[k])
            zh, a = wu + self.b[k][self.idx, None] * u0, u[k + 1]
            q = q + (a * (wu - a) * gamma[:, None]).sum(-1)
            r = self.rho[k][self.idx, None]
            cut = u0 * (a - self.slope[k][self.idx, None]
                        * (zh - self.offset[k][self.idx, None] * u0))
            grads += [-u0 * a / r, u0 * (zh - a) / r, a * (zh - a) / (r * r), cut / r]
        q = q - (V * V * self.kappa[:, None]).sum(-1)
        grads.append(-(V * V))
        return q, self.torch.cat(grads, dim=-1)

    def gradient_sum(self, V):
        """``sum_j dq_j/dp`` over the rows of ``V`` (b, m, 1+n), i.e. ``rayleigh(V)[1].sum(1)``
        without forming the per-row gradients (sums over rows are batched products)."""
        u0, u = self._lift(V)
        u0t, square = u0.transpose(1, 2), (u0 * u0).sum(dim=(1, 2))[:, None]
        parts = []
        for k in range(len(self.lams)):
            zh, a = self.fwd(k, u[k]) + self.b[k][self.idx, None] * u0, u[k + 1]
            r = self.rho[k][self.idx]
            ua, uz = (u0t @ a)[:, 0], (u0t @ zh)[:, 0]
            cut = ua - self.slope[k][self.idx] * (uz - self.offset[k][self.idx] * square)
            parts += [-ua / r, (uz - ua) / r, (a * (zh - a)).sum(1) / (r * r), cut / r]
        parts.append(-(V * V).sum(1))
        return self.torch.cat(parts, dim=-1)

    def dense(self, rows):
        """``D`` of each problem restricted to the coordinates ``rows`` (b, m, m), in closed
        form (as :func:`_dense_lagrangian`; only the blocks ``gamma_k W_k`` are nonzero
        off the first row and the diagonal), after :meth:`set_params`."""
        torch, idx = self.torch, self.idx
        n1 = self.keep.shape[1]
        D = self.c.new_zeros((idx.numel(), n1, n1))
        diag = D.diagonal(dim1=1, dim2=2)
        offsets = np.concatenate([[1], 1 + np.cumsum(self.sizes)]).astype(int)
        ctr, rad = [c[idx] for c in self.ctr], [r[idx] for r in self.rad]
        hc = [torch.zeros_like(r) for r in rad]
        for k, (_, _, gamma, _) in enumerate(self.lams):
            block = 0.5 * gamma[:, :, None] * self._w(k)                # (b, n_{k+1}, n_k)
            hc[k + 1] = hc[k + 1] - gamma * ctr[k + 1] + (block @ ctr[k][:, :, None])[..., 0]
            hc[k] = hc[k] + (ctr[k + 1][:, None, :] @ block)[:, 0]
            r, c = slice(offsets[k + 1], offsets[k + 2]), slice(offsets[k], offsets[k + 1])
            D[:, r, c] = rad[k + 1][:, :, None] * block * rad[k][:, None, :]
            D[:, c, r] = D[:, r, c].transpose(1, 2)
            diag[:, r] -= gamma * rad[k + 1] ** 2
        rad_all, ctr_all = torch.cat(rad, dim=1), torch.cat(ctr, dim=1)
        g_all, hc_all = torch.cat(self.g, dim=1), torch.cat(hc, dim=1)
        D[:, 0, 1:] = rad_all * (0.5 * g_all + hc_all)
        D[:, 1:, 0] = D[:, 0, 1:]
        D[:, 0, 0] = self.m00 + (ctr_all * g_all).sum(1) + (ctr_all * hc_all).sum(1)
        diag -= self.kappa
        return D[:, rows][:, :, rows]


def _push_fixed(D, fixed, push):
    """``D`` with ``push`` (one per problem) added on the diagonal entries ``fixed`` (b, m),
    in place.  Their rows and columns are zero, so this moves their eigenvalues to
    ``push`` without changing the other eigenpairs (the batch's stand-in for dropping
    them, as the sequential path does: the problems of a batch may fix different
    coordinates)."""
    if bool(fixed.any()):
        diag = D.diagonal(dim1=-2, dim2=-1)
        diag += fixed.to(D.dtype) * push[:, None]
    return D


def _batch_eigh(D):
    """Ascending eigenvalues (b, m) and eigenvectors (b, m, m; columns) of a stack."""
    import torch

    if D.device.type == "cpu":
        values, vectors = np.linalg.eigh(D.numpy())
        return torch.from_numpy(values).to(D), torch.from_numpy(vectors).to(D)
    return torch.linalg.eigh(D)


def lanczos_batch(matvec, start, steps: int, count: int = 1, mask=None):
    """:func:`lanczos` for a batch: ``start`` (b, n), ``matvec`` maps (b, n) to (b, n) (one
    product per problem, all at once); full reorthogonalisation per problem by batched
    products; a breakdown continues from a random vector orthogonal to that problem's
    basis.  Returns Ritz values (b, count) and vectors (b, count, n)."""
    import torch

    b, n = start.shape
    limit = n if mask is None else int(mask.sum(dim=1).min())
    k = max(1, min(int(steps), limit))
    generator = torch.Generator().manual_seed(n)
    Q = start.new_zeros((b, k, n))
    q = start / start.norm(dim=1, keepdim=True).clamp(min=1e-300)
    alphas, betas = [], []
    scale = start.new_zeros(b)

    def orthogonalise(w, basis):
        for _ in range(2):
            w = w - ((basis @ w[:, :, None]).transpose(1, 2) @ basis)[:, 0]
        return w

    for j in range(k):
        Q[:, j] = q
        w = matvec(q)
        alphas.append((q * w).sum(1))
        w = orthogonalise(w, Q[:, :j + 1])
        beta = w.norm(dim=1)
        scale = torch.maximum(scale, torch.maximum(alphas[-1].abs(), beta))
        if j == k - 1:
            break
        broken = beta <= 1e-10 * scale.clamp(min=1e-300)
        if bool(broken.any()):
            fresh = torch.randn((b, n), generator=generator, dtype=torch.float64).to(start)
            fresh = orthogonalise(fresh if mask is None else fresh * mask, Q[:, :j + 1])
            fresh = fresh / fresh.norm(dim=1, keepdim=True).clamp(min=1e-300)
            q = torch.where(broken[:, None], fresh, w / beta.clamp(min=1e-300)[:, None])
            beta = torch.where(broken, torch.zeros_like(beta), beta)
        else:
            q = w / beta[:, None]
        betas.append(beta)
    m = len(alphas)
    T = torch.diag_embed(torch.stack(alphas, dim=1))
    if m > 1:
        off = torch.stack(betas[:m - 1], dim=1)
        T = T + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    values, vectors = torch.linalg.eigh(T)
    ritz = vectors[:, :, :count].transpose(1, 2) @ Q[:, :m]
    return values[:, :count], ritz / ritz.norm(dim=2, keepdim=True)


class _Lockstep:
    """Runs one thread per problem and gathers their expensive calls into batches.

    Each thread runs its problem's own (sequential) solver; where that solver needs
    eigenpairs it calls :meth:`call`, which waits until every live thread has called
    (or finished), evaluates all the waiting requests with one batched ``evaluate(ids,
    requests)`` (in the last thread to arrive) and hands each thread its answer.  So
    the optimisers (L-BFGS-B's Fortran/C state, Adam's schedule, the stopping rules)
    stay per problem and unchanged, and only the linear algebra is batched."""

    def __init__(self, count: int, evaluate):
        import threading

        self.cond = threading.Condition()
        self.live = set(range(count))
        self.pending: dict[int, Any] = {}
        self.answers: dict[int, Any] = {}
        self.evaluate = evaluate
        self.failure: BaseException | None = None
        self.batches = 0

    def call(self, i: int, request):
        with self.cond:
            self.pending[i] = request
            self._flush()
            while i not in self.answers and self.failure is None:
                self.cond.wait()
            if self.failure is not None and i not in self.answers:
                raise RuntimeError(f"fo-sdp batch evaluation failed: {self.failure!r}") \
                    from self.failure
            return self.answers.pop(i)

    def leave(self, i: int) -> None:
        with self.cond:
            self.live.discard(i)
            self._flush()

    def _flush(self) -> None:
        if not self.pending or set(self.pending) != self.live:
            return
        ids = sorted(self.pending)
        requests = [self.pending.pop(i) for i in ids]
        try:
            self.answers.update(zip(ids, self.evaluate(ids, requests)))
            self.batches += 1
        except BaseException as exc:  # noqa: BLE001 -- handed to every waiting thread
            self.failure = exc
        self.cond.notify_all()

    def run(self, jobs) -> tuple[list, list]:
        """Run ``jobs[i]()`` in thread ``i``; their results and exceptions (or None)."""
        import threading

        results: list = [None] * len(jobs)
        errors: list = [None] * len(jobs)

        def work(i):
            try:
                results[i] = jobs[i]()
            except BaseException as exc:  # noqa: BLE001
                errors[i] = exc
            finally:
                self.leave(i)

        threads = [threading.Thread(target=work, args=(i,), daemon=True)
                   for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results, errors


class _LockstepSpectral(_SpectralSolver):
    """:class:`_SpectralSolver` whose eigen-decompositions go through a :class:`_Lockstep`."""

    def __init__(self, problem, options, warm_start, gather: _Lockstep, index: int):
        super().__init__(problem, options, warm_start)
        self.gather, self.index = gather, index

    def _spectrum(self, p, tau: float):
        return self.gather.call(self.index, (p, tau))


class _LockstepAdam(_Solver):
    """:class:`_Solver` (Adam) whose eigenpairs go through a :class:`_Lockstep`."""

    def __init__(self, problem, options, warm_start, gather: _Lockstep, index: int):
        super().__init__(problem, options, warm_start)
        self.gather, self.index = gather, index

    def _pairs(self, run: _Run):
        start = None if self.dense else self._lanczos_start(run)
        return self.gather.call(self.index, (run.params, start))


class _BatchEvaluator:
    """The batched linear algebra behind :func:`solve_batch` (one :class:`_BatchOperator`)."""

    def __init__(self, solvers: list):
        import torch

        self.torch = torch
        self.solvers = solvers
        self.bases = [getattr(s, "base", s) for s in solvers]
        self.op = _BatchOperator([b.op for b in self.bases])
        keep = self.op.keep > 0
        self.rows = torch.nonzero(keep.any(dim=0)).ravel()      # free in some problem
        self.fixed = ~keep[:, self.rows]                         # (B, m) fixed per problem

    def spectral(self, ids: list[int], requests: list) -> list:
        """For :class:`_LockstepSpectral`: what :meth:`_SpectralSolver._spectrum` returns,
        from one batched ``eigh`` of the stacked ``D``."""
        torch, op = self.torch, self.op
        idx = torch.as_tensor(ids, device=self.rows.device)
        p = torch.stack([r[0] for r in requests])
        tau = torch.tensor([r[1] for r in requests], dtype=p.dtype, device=p.device)
        op.set_params(p, idx)
        D = op.dense(self.rows)
        # above every eigenvalue (Gershgorin) by 100 tau: weight < e^-100 in the soft-min
        D = _push_fixed(D, self.fixed[idx], 2 * D.shape[-1] * D.abs().amax(dim=(1, 2))
                        + 100 * tau + 1.0)
        values, vectors = _batch_eigh(D)
        extended = torch.cat([values.new_zeros((len(ids), 1)), values], dim=1)
        weights = torch.softmax(-extended / tau[:, None], dim=1)[:, 1:]
        significant = weights > 1e-13 * weights.amax(dim=1, keepdim=True).clamp(min=1e-300)
        last = int(significant.sum(dim=1).max())              # the weights decrease with j
        n1 = op.keep.shape[1]
        grad = torch.zeros_like(p)
        if last:
            scale = (weights[:, :last] * significant[:, :last]).sqrt()
            rows = vectors[:, :, :last].transpose(1, 2) * scale[..., None]
            full = rows.new_zeros((len(ids), last, n1))
            full[..., self.rows] = rows
            trace = torch.tensor([self.solvers[i].trace for i in ids], dtype=p.dtype,
                                 device=p.device)
            grad = trace[:, None] * op.gradient_sum(full)
        first = vectors.new_zeros((len(ids), n1))
        first[:, self.rows] = vectors[:, :, 0]
        return [(values[j], grad[j], first[j]) for j in range(len(ids))]

    def adam(self, ids: list[int], requests: list) -> list:
        """For :class:`_LockstepAdam`: what :meth:`_Solver._pairs` returns, from one batched
        ``eigh`` (dense) or one batched Lanczos run."""
        torch, op = self.torch, self.op
        idx = torch.as_tensor(ids, device=self.rows.device)
        p = torch.stack([r[0] for r in requests])
        op.set_params(p, idx)
        first = self.bases[ids[0]]
        count = int(first.opts["ritz"])
        if requests[0][1] is None:                               # dense
            n1 = op.keep.shape[1]
            everything = torch.arange(n1, device=self.rows.device)
            D = op.dense(everything)
            D = _push_fixed(D, op.keep[idx] == 0, D.abs().amax(dim=(1, 2)) + 1)  # as _dense_eigen
            values, vectors = _batch_eigh(D)
            vectors = vectors[:, :, :count].transpose(1, 2)
        else:
            start = torch.stack([r[1] for r in requests])
            _, vectors = lanczos_batch(lambda v: op.apply(v[:, None])[:, 0], start,
                                       int(first.opts["lanczos_steps"]), count, op.keep[idx])
        quotients, gradients = op.rayleigh(vectors)
        return [(quotients[j], gradients[j], vectors[j]) for j in range(len(ids))]


def solve_batch(problems, options: SolveOptions | None = None,
                warm_starts=None) -> list[Solution]:
    """Solve several :class:`LayeredReluProgram` with the same layer sizes (e.g. every
    target class of an image, and several images) as one batch.

    Each problem keeps its own optimiser run -- exactly the sequential algorithm of
    :meth:`FoSdpBackend.solve`, L-BFGS-B (spectral) or Adam by ``method`` -- in its own
    thread; their eigenvalue problems are gathered (:class:`_Lockstep`) and solved
    together: the stacked ``D`` of all waiting problems by one batched product per
    layer and one batched ``eigh``, or one batched Lanczos run (Adam above
    ``dense_below``).  Every bound is the per-problem rigorous float64 check.  The time
    limit applies to each problem (they run side by side).  Returns one
    :class:`Solution` per problem, in order."""
    problems = list(problems)
    if not problems:
        return []
    options = options or SolveOptions()
    warm_starts = list(warm_starts) if warm_starts is not None else [None] * len(problems)
    if len(warm_starts) != len(problems):
        raise ValueError("solve_batch: one warm start (or None) per problem")
    for problem in problems:
        _check_shapes(problem)
    sizes = {tuple(np.asarray(lo).size for lo in problem.lower) for problem in problems}
    if len(sizes) != 1:
        raise ValueError("solve_batch: all problems need the same layer sizes")
    start = time.perf_counter()
    method = _method({**_DEFAULTS, **options.extra_dict}, 1 + sum(sizes.pop()))
    gather = _Lockstep(len(problems), None)
    cls = _LockstepSpectral if method == "lbfgs" else _LockstepAdam
    solvers = [cls(problem, options, warm, gather, i)
               for i, (problem, warm) in enumerate(zip(problems, warm_starts))]
    evaluator = _BatchEvaluator(solvers)
    gather.evaluate = evaluator.spectral if method == "lbfgs" else evaluator.adam
    runs, errors = gather.run([s.run for s in solvers])
    log.info("fo-sdp batch: %d problems, %d batched evaluations, %.2fs", len(problems),
             gather.batches, time.perf_counter() - start)
    solutions = []
    for solver, outcome, error in zip(solvers, runs, errors):
        if error is not None:         # as Backend.solve: a failed solve gives no bound
            log.warning("fo-sdp batch: a problem failed: %s", error)
            solutions.append(error_solution(FoSdpBackend.name,
                                            f"{type(error).__name__}: {error}"))
            continue
        solution = _solution(FoSdpBackend.name, solver, *outcome)
        stats = dataclasses.replace(solution.stats, seconds=outcome[1])
        solutions.append(dataclasses.replace(solution, stats=stats))
    return solutions
