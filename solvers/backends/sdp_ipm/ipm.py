r"""Primal-dual path following (HKM direction, Mehrotra predictor-corrector) for
:class:`~solvers.backends.sdp_ipm.problem.MultiplierSdp`.

Standard form: ``max b^T y`` s.t. ``Z = C - A^T y >= 0``, ``z = sign o y >= 0`` (the
sign-constrained multipliers); primal ``min <C, X>`` s.t. ``A(X) - sign o x = b``,
``X >= 0``, ``x >= 0``.  The dual iterates stay exactly feasible (``Z`` is recomputed
from ``y``; the start is strictly feasible), so every iterate's ``b^T y`` is a bound
(re-certified by the caller); the primal starts on the central path of the dual start,
``X = mu Z^-1``, ``x = mu / z`` with ``mu = N / (tr Z^-1 + sum 1 / z)`` (``centred``;
it diverged on a normally trained MNIST net) or, by default, ``X = xi I``, ``x = xi``
(``primal_scale``, ``IpmOptions.primal_scale``, default 1: with ``xi = 1`` the primal
steps stayed at 0.05-0.2 for 60 iterations on a normally trained 784-100-100-10, 81
iterations in all, against 23 with ``xi = 10``; but ``xi = 10`` took 50 instead of 26 on
the PGD net, see ``benchmarks/results/sdp_ipm.md``), and becomes feasible
along the way.  With ``mu = (<X, Z> + x^T z) / N`` and target ``sigma mu``::

    M dy = r_p + A(X) - sigma mu A(Z^-1) + A(K) + sign o (sigma mu / z - x - k)
    dZ = -A^T dy,  dz = sign o dy
    dX = sigma mu Z^-1 - X - K + sym(X (A^T dy) Z^-1),  dx = sigma mu / z - x - k - x dz / z

(``r_p = b - A(X) + sign o x``; ``K = sym(dX_a dZ_a Z^-1)``, ``k = dx_a dz_a / z`` the
corrector terms, 0 in the predictor; ``M`` from :mod:`.schur` plus ``x / z`` on the
signed diagonal).  ``sigma = (mu_aff / mu)^3``; steps ``step`` times the distance to the
boundary (from the lowest Ritz value of ``L^-1 dX L^-T``; a step
whose Cholesky fails is shortened).  Stops when the relative
gap ``N mu / (1 + |b^T y|)`` is below ``tolerance`` and the relative primal residual
below ``feasibility`` (the primal may have no interior: a stably active neuron, say),
at ``max_iterations``, at the time limit, when the steps stall, or when a gap below 1e-5
has not halved in 8 iterations (float64 rounding then bounds the accuracy: on a normally
trained 784-100-100-10 the gap reached 2e-8 in 22 iterations and stayed there for 65
more); that counts as converged when the gap and the residual are below 1e-6.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from solvers.backends.sdp_ipm.schur import Operator

__all__ = ["IpmRun", "path_following"]

#: below ``_NEAR``, stop when the relative gap has not halved over ``_STAGNATION``
#: iterations; converged if the gap and the residual are then below ``_ACCEPT``
_STAGNATION, _NEAR, _ACCEPT = 8, 1e-5, 1e-6

log = logging.getLogger(__name__)


@dataclass
class IpmRun:
    """The outcome: ``y`` (last), ``best_y`` (largest ``b^T y``), the primal ``X``,
    ``history`` of ``(b^T y, relative gap, primal residual, alpha_p, alpha_d)``."""

    y: np.ndarray
    best_y: np.ndarray
    best_value: float
    X: np.ndarray | None
    iterations: int = 0
    converged: bool = False
    timed_out: bool = False
    history: list = field(default_factory=list)
    seconds_per_iteration: float = 0.0


class _State:
    """Torch tensors of one run: data, iterate and the sign block."""

    def __init__(self, sdp, y0, device, centred: bool = False, primal_scale: float = 1.0):
        import torch

        self.torch = torch
        f64 = dict(dtype=torch.float64, device=device)
        self.C = torch.as_tensor(sdp.C, **f64)
        self.op = Operator(sdp.U, sdp.V, torch.float64, device)
        self.b = torch.as_tensor(sdp.b, **f64)
        sign = np.asarray(sdp.sign)
        self.signed = torch.as_tensor(np.flatnonzero(sign != 0), device=device)
        self.sg = torch.as_tensor(sign[sign != 0].astype(np.float64), **f64)
        self.y = torch.as_tensor(y0, **f64)
        self.s = self.C.shape[0]
        self.N = self.s + self.signed.numel()
        self.refresh_dual()
        if centred:                 # X Z = mu I and x z = mu: on the central path at once
            Zi = torch.cholesky_inverse(torch.linalg.cholesky(self.Z))
            mu = float(self.N / (torch.diagonal(Zi).sum() + (1.0 / self.z).sum()))
            self.X, self.x = mu * Zi, mu / self.z
        else:
            self.X = primal_scale * torch.eye(self.s, **f64)
            self.x = primal_scale * torch.ones(self.signed.numel(), **f64)

    def refresh_dual(self) -> None:
        self.Z = self.C - self.op.adjoint(self.y)
        self.z = self.sg * self.y[self.signed]

    def lp_full(self, values):
        out = self.torch.zeros_like(self.y)
        out[self.signed] = values
        return out


def _lowest_ritz(torch, matvec, n: int, dtype, device, steps: int) -> float:
    """The smallest Ritz value of the symmetric operator ``matvec`` after ``steps`` Lanczos steps (full
    reorthogonalisation, fixed start): an upper estimate of ``lambda_min(W)`` that is
    accurate for the extreme eigenvalue; the step it gives is checked by Cholesky."""
    steps = min(steps, n)
    gen = torch.Generator(device="cpu").manual_seed(0)
    q = torch.randn(n, generator=gen, dtype=dtype).to(device)
    Q = torch.zeros(steps, n, dtype=dtype, device=device)
    alpha, beta = [], []
    q = q / q.norm()
    for j in range(steps):
        Q[j] = q
        w = matvec(q)
        alpha.append(float(q @ w))
        w = w - Q[:j + 1].T @ (Q[:j + 1] @ w)
        w = w - Q[:j + 1].T @ (Q[:j + 1] @ w)
        nb = float(w.norm())
        if nb < 1e-12 * (abs(alpha[-1]) + 1e-300) or j == steps - 1:
            break
        beta.append(nb)
        q = w / nb
    T = np.diag(alpha) + np.diag(beta[:len(alpha) - 1], 1) + np.diag(beta[:len(alpha) - 1], -1)
    return float(np.linalg.eigvalsh(T)[0])


def _max_step(torch, L, D, steps: int = 24) -> float:
    """Largest ``t`` with ``L L^T + t D >= 0`` (``inf`` if none binds), estimated from the
    lowest Ritz value of ``L^-1 D L^-T`` (the caller backtracks on a failed Cholesky)."""
    def matvec(v):
        w = torch.linalg.solve_triangular(L.T, v[:, None], upper=True)
        return torch.linalg.solve_triangular(L, D @ w, upper=False)[:, 0]

    low = _lowest_ritz(torch, matvec, L.shape[0], L.dtype, L.device, steps)
    return math.inf if low >= 0 else -1.0 / low


def _ratio(v, dv) -> float:
    neg = dv < 0
    return math.inf if not bool(neg.any()) else float((-v[neg] / dv[neg]).min())


def _cholesky_solve(torch, M, r):
    """Solve ``M d = r`` (SPD), with growing diagonal jitter if Cholesky fails."""
    jitter = 0.0
    scale = float(M.diagonal().abs().max())
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(M + jitter * torch.eye(M.shape[0], dtype=M.dtype,
                                                                   device=M.device))
        if int(info) == 0:
            return lambda rhs: torch.cholesky_solve(rhs[:, None], L)[:, 0]
        jitter = max(jitter * 100, 1e-14 * scale)
    return lambda rhs: torch.linalg.lstsq(M, rhs[:, None]).solution[:, 0]


class _Iteration:
    """One predictor-corrector step at the current iterate of a :class:`_State`."""

    def __init__(self, st: _State, factors=None):
        torch = st.torch
        self.st, self.torch = st, torch
        self.LX, self.LZ = factors or (torch.linalg.cholesky(st.X), torch.linalg.cholesky(st.Z))
        self.Zi = torch.cholesky_inverse(self.LZ)
        self.mu = float(((st.X * st.Z).sum() + st.x @ st.z) / st.N)
        M = st.op.schur(st.X, self.Zi)
        idx = st.signed
        M[idx, idx] += st.x / st.z
        self.solve = _cholesky_solve(torch, M, None)
        self.AX, self.AZi = st.op.apply(st.X), st.op.apply(self.Zi)
        self.rp = st.b - self.AX + st.lp_full(st.sg * st.x)

    def direction(self, sigma: float, K=None, k=None):
        st, smu = self.st, sigma * self.mu
        lp = smu / st.z - st.x - (0 if k is None else k)
        r = self.rp + self.AX - smu * self.AZi + st.lp_full(st.sg * lp)
        if K is not None:
            r = r + st.op.apply(K)
        dy = self.solve(r)
        ATdy = st.op.adjoint(dy)
        G = st.X @ ATdy @ self.Zi
        dX = smu * self.Zi - st.X + 0.5 * (G + G.T) - (0 if K is None else K)
        dz = st.sg * dy[st.signed]
        dx = lp - st.x * dz / st.z
        return dX, dx, dy, -ATdy, dz

    def steps(self, dX, dx, dZ, dz, fraction: float):
        torch = self.torch
        limits = (_max_step(torch, self.LX, dX), _ratio(self.st.x, dx),
                  _max_step(torch, self.LZ, dZ), _ratio(self.st.z, dz))
        log.debug("ipm step limits: X %.3g x %.3g Z %.3g z %.3g", *limits)
        ap, ad = min(limits[:2]), min(limits[2:])
        return min(1.0, fraction * ap), min(1.0, fraction * ad)

    def predictor_corrector(self, fraction: float):
        st = self.st
        dX, dx, dy, dZ, dz = self.direction(0.0)
        ap, ad = self.steps(dX, dx, dZ, dz, 1.0)
        mu_aff = float(((st.X + ap * dX) * (st.Z + ad * dZ)).sum()
                       + (st.x + ap * dx) @ (st.z + ad * dz)) / st.N
        sigma = min(1.0, max(0.0, mu_aff / self.mu)) ** 3
        G = dX @ dZ @ self.Zi
        dX, dx, dy, dZ, dz = self.direction(sigma, 0.5 * (G + G.T), dx * dz / st.z)
        return (dX, dx, dy) + self.steps(dX, dx, dZ, dz, fraction)


def _backtrack(st: _State, dX, dy, ap: float, ad: float):
    """Shrink the steps (by 0.8) until ``X + ap dX`` and ``C - A^T (y + ad dy)`` factor;
    returns the steps and the two Cholesky factors (``None`` if one never factored)."""
    torch = st.torch
    LX = LZ = None
    for _ in range(30):
        L, info = torch.linalg.cholesky_ex(0.5 * (st.X + ap * dX + (st.X + ap * dX).T))
        if int(info) == 0:
            LX = L
            break
        ap *= 0.8
    for _ in range(30):
        L, info = torch.linalg.cholesky_ex(st.C - st.op.adjoint(st.y + ad * dy))
        if int(info) == 0:
            LZ = L
            break
        ad *= 0.8
    return ap, ad, (None if LX is None or LZ is None else (LX, LZ))


def path_following(sdp, y0: np.ndarray, device: str = "cpu", max_iterations: int = 80,
                   tolerance: float = 1e-9, fraction: float = 0.95,
                   feasibility: float = 1e-7, deadline: float | None = None,
                   centred: bool = False, give_up: tuple[int, float] | None = None,
                   first_seconds: float = 0.0, primal_scale: float = 1.0) -> IpmRun:
    """Run the method of the module docstring from the strictly feasible dual ``y0``;
    ``give_up = (k, g)``: stop at iteration ``k`` if the relative gap is still above ``g``.
    No iteration starts that would end after ``deadline`` by the last one's duration
    (``first_seconds``, an estimate, before the first)."""
    st = _State(sdp, y0, device, centred, primal_scale)
    b_np = np.asarray(sdp.b)
    best_y = np.asarray(y0, np.float64).copy()
    run = IpmRun(best_y, best_y, float(b_np @ best_y), None)
    bnorm = 1.0 + float(np.linalg.norm(b_np))
    start, stalls, factors, last = time.perf_counter(), 0, None, first_seconds
    for it in range(max_iterations):
        began = time.monotonic()
        if deadline is not None and began + last > deadline:   # the next one would end late
            run.timed_out = True
            break
        try:
            step = _Iteration(st, factors)
        except RuntimeError as exc:       # X or Z lost definiteness to rounding: stop here
            log.debug("ipm %d: stopped, %s", it, exc)
            break
        value = float(st.b @ st.y)
        gap = st.N * step.mu / (1.0 + abs(value))
        infeasible = float(step.rp.norm()) / bnorm
        if gap < tolerance and infeasible < feasibility:
            run.converged = True
            break
        if give_up is not None and it == give_up[0] and gap > give_up[1]:
            log.debug("ipm %d: gap %.2e still above %.2e: giving up", it, gap, give_up[1])
            break
        if gap < _NEAR and len(run.history) >= _STAGNATION \
                and gap > 0.5 * run.history[-_STAGNATION][1]:
            log.debug("ipm %d: the gap %.2e did not halve in %d iterations: stopping", it, gap,
                      _STAGNATION)
            run.converged = gap < _ACCEPT and infeasible < _ACCEPT
            break                         # rounding limits the accuracy: more is wasted
        dX, dx, dy, ap, ad = step.predictor_corrector(fraction)
        run.history.append((value, gap, infeasible, ap, ad))
        log.debug("ipm %d: dual %.10g gap %.2e infeas %.2e steps %.3f %.3f", it, value, gap,
                  infeasible, ap, ad)
        ap, ad, factors = _backtrack(st, dX, dy, ap, ad)
        st.X, st.x = st.X + ap * dX, st.x + ap * dx
        st.X = 0.5 * (st.X + st.X.T)
        st.y = st.y + ad * dy
        st.refresh_dual()
        run.iterations = it + 1
        value = float(st.b @ st.y)
        if value > run.best_value:
            run.best_value, run.best_y = value, st.y.cpu().numpy().copy()
        stalls = stalls + 1 if max(ap, ad) < 1e-6 else 0
        last = time.monotonic() - began
        if stalls >= 3:
            break
    run.y = st.y.cpu().numpy().copy()
    run.X = st.X.cpu().numpy()
    run.seconds_per_iteration = (time.perf_counter() - start) / max(run.iterations, 1)
    return run
