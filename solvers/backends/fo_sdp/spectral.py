r"""Spectral L-BFGS on the smoothed dual (``method="lbfgs"``, default for ``1 + n <= lbfgs_below``).

Why not Adam on MNIST-sized problems: at the CROWN start ``D`` is PSD with a highly
degenerate zero eigenvalue, so a soft-min over a few Lanczos pairs sees a random
slice of the eigenspace.  Here ``D`` is formed densely and its whole spectrum taken
by ``eigh`` at each evaluation.  The objective is
``F2 = kappa_0 + sum_i d_i kappa_i + T min(0, q)`` (``T = 1 + sum d_i``; valid for
``kappa_i <= 0``, and ``F >= F2`` there), smoothed as
``F2_tau = kappa_0 + sum d_i kappa_i - T tau log(1 + sum_j exp(-lambda_j / tau))``, a
concave lower bound with gradient ``T sum_j w_j dlambda_j/dp`` (``w = softmax``).
``scipy.optimize.minimize(method="L-BFGS-B")`` handles the signs as bounds; ``tau =
scale 10^-k / T`` for ``k`` in ``smooth_stages``, each stage warm-started from the
last and ended when its smoothed value rose by less than
``max(stage_tol * scale, stage_gap * (F - F2_tau))`` over ``stage_patience``
evaluations.  Every evaluation also yields the exact ``F`` (unsmoothed); the best is
kept.  scipy drives the iterations, so this optimiser's state lives in its
:class:`SpectralRun`; the linear algebra is one call ``spectrum(p, tau)`` that a batch
gathers across problems (:mod:`.batching`) into :func:`spectra`.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from solvers.backends.fo_sdp.options import FoSdpOptions
from solvers.backends.fo_sdp.problem import Layout, ProblemData
from solvers.backends.fo_sdp.record import Record
from solvers.linalg import eigh_batch
from solvers.solution import Status

__all__ = ["SpectralRun", "spectra", "lifted_basis"]

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised inside the objective to end the run; its argument is the status."""


class _StageDone(Exception):
    """Raised inside the objective when a temperature stage stalls."""


def lifted_basis(op, rows, Q: np.ndarray, keep: np.ndarray):
    """An orthonormal basis (torch, on the coordinates ``rows``) of ``range(Q)``, ``Q``
    the lifted equalities' vectors on the problem's kept coordinates (``keep``, a mask
    over ``1 + n``; :func:`.lift.active_vectors`); None when there are none."""
    if Q.shape[1] == 0:
        return None
    full = np.zeros((keep.size, Q.shape[1]))
    full[np.flatnonzero(keep)] = Q
    basis, _ = np.linalg.qr(full[rows.cpu().numpy()])
    return op.t(basis)


def _project(D, basis, push):
    """``P_N D P_N + push P_R`` (``P_R = O O^T`` for the orthonormal ``basis`` O,
    ``P_N = I - P_R``): the lifted matrix of :mod:`.lift` with ``c = push``, whose
    eigenpairs below ``push`` are those of ``D`` restricted to ``range(P_N)``."""
    import torch

    DO = D @ basis
    inner = basis.T @ DO + push * torch.eye(basis.shape[1], dtype=D.dtype, device=D.device)
    return D - basis @ DO.T - DO @ basis.T + basis @ inner @ basis.T


def spectra(op, rows, fixed, ids, ps, taus, traces, bases=None):
    """For problems ``ids`` of the batched operator at duals ``ps`` (b, size): ascending
    eigenvalues of ``D`` on the coordinates ``rows`` (fixed ones pushed above the
    spectrum), the gradient of the smoothed minimum and the lowest eigenvector.  With
    ``bases[i]`` (:func:`lifted_basis`) problem ``i``'s ``D`` is first lifted
    (:func:`_project`): its eigenvectors below the push lie in ``range(P_N)``, where
    ``v^T D' v = v^T D v``, so the gradient formula is unchanged."""
    torch = op.torch
    idx = torch.as_tensor(ids, device=rows.device)
    op.set_params(ps, idx)
    D = op.dense(rows)
    push = 2 * D.shape[-1] * D.abs().amax(dim=(1, 2)) + 100 * taus + 1.0
    D = D + torch.diag_embed(fixed[idx].to(D.dtype) * push[:, None])
    for j, i in enumerate(ids):
        if bases is not None and bases[i] is not None:
            D[j] = _project(D[j], bases[i], push[j])
    values, vectors = eigh_batch(D)
    extended = torch.cat([values.new_zeros((len(ids), 1)), values], dim=1)
    weights = torch.softmax(-extended / taus[:, None], dim=1)[:, 1:]
    significant = weights > 1e-13 * weights.amax(dim=1, keepdim=True).clamp(min=1e-300)
    last = int(significant.sum(dim=1).max())              # the weights decrease with j
    n1 = op.keep.shape[1]
    grad = torch.zeros_like(ps)
    if last:
        scale = (weights[:, :last] * significant[:, :last]).sqrt()
        full = vectors.new_zeros((len(ids), last, n1))
        full[..., rows] = vectors[:, :, :last].transpose(1, 2) * scale[..., None]
        grad = traces[:, None] * op.gradient_sum(full)
    first = vectors.new_zeros((len(ids), n1))
    first[:, rows] = vectors[:, :, 0]
    return values, grad, first


class SpectralRun:
    """One problem's L-BFGS-B run over the free duals (module docstring)."""

    def __init__(self, data: ProblemData, layout: Layout, options: FoSdpOptions, spectrum,
                 to_tensor, scale: float, certify):
        """``certify(p)`` returns ``(rigorous bound, the duals it proves)``."""
        self.data, self.layout, self.opts, self.spectrum = data, layout, options, spectrum
        self.t, self.scale, self.certify = to_tensor, scale, certify
        self.trace = 1.0 + float(data.d.sum())
        self.free_idx = np.flatnonzero(layout.free)
        lower = np.where(layout.nonneg, 0.0, -np.inf)
        upper = np.full(layout.size, np.inf)
        upper[layout.kappa_start + 1:] = 0.0
        self.lower, self.upper = lower, upper
        self.bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
                       for lo, hi in zip(lower[self.free_idx], upper[self.free_idx])]

    def _full(self, x: np.ndarray) -> np.ndarray:
        p = np.zeros(self.layout.size)
        p[self.free_idx] = x
        return p

    def _evaluate(self, x: np.ndarray, tau: float, rec: Record):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _Stop(Status.TIME_LIMIT)
        if rec.iterations >= self.opts.max_iterations:
            raise _Stop(Status.ITERATION_LIMIT)
        p = self._full(x)
        values, grad, vector = self.spectrum(self.t(p), tau)
        exact, smooth = self._values(p, values.detach().cpu().double().numpy(), tau)
        grad = grad.detach().cpu().double().numpy()
        grad[self.layout.kappa_start] += 1.0
        grad[self.layout.kappa_start + 1:] += self.data.d
        self._record(rec, p, exact, smooth, vector)
        if self.opts.target is not None and rec.best_value >= self.opts.target:
            raise _Stop(Status.OPTIMAL)
        window, trail = self.opts.stage_patience, self.stage_values
        if (len(trail) > window and trail[-1] - trail[-1 - window]
                <= max(self.opts.stage_tol * self.scale, self.opts.stage_gap * (exact - smooth))):
            self.stage_x = x
            raise _StageDone
        return -smooth, -grad[self.free_idx]

    def _values(self, p, values, tau):
        """Exact ``F`` (at ``q = lambda_min``) and the smoothed ``F2_tau``."""
        kappa, d, q = p[self.layout.kappa_start:], self.data.d, values[0]
        exact = kappa[0] + q + d @ np.minimum(kappa[1:] + q, 0.0)
        extended = np.concatenate([[0.0], values]) / -tau
        top = extended.max()
        smin = -tau * (top + math.log(np.exp(extended - top).sum()))
        return float(exact), float(kappa[0] + d @ kappa[1:] + self.trace * smin)

    def _record(self, rec: Record, p, exact: float, smooth: float, vector) -> None:
        self.stage_values.append(max(smooth, self.stage_values[-1] if self.stage_values
                                     else -math.inf))
        rec.history.append(exact)
        rec.iterations += 1
        if exact > rec.best_value:
            rec.best_value, rec.best = exact, p
        every = self.opts.check_every
        if every and (rec.iterations - 1) % every == 0:
            rec.add_check(rec.iterations - 1, *self.certify(p))
        rec.last, rec.vector = p, vector.detach().cpu().double().numpy()

    def run(self, rec: Record, warm: bool, deadline: float | None, x0=None) -> Record:
        """L-BFGS-B stage by stage from ``x0`` (default ``rec.start``); fills ``rec``."""
        from scipy.optimize import minimize

        self.deadline = deadline
        x = np.clip(rec.start if x0 is None else x0, self.lower, self.upper)[self.free_idx]
        rec.status = Status.OPTIMAL
        try:
            for tau in self._temperatures(warm):
                left = self.opts.max_iterations - rec.iterations
                if left <= 0:
                    rec.status = Status.ITERATION_LIMIT
                    break
                self.stage_values = []
                try:
                    x = minimize(self._evaluate, x, args=(tau, rec), jac=True, method="L-BFGS-B",
                                 bounds=self.bounds, options={"maxfun": left, "maxiter": left,
                                 "maxcor": self.opts.memory, "ftol": 1e-15, "gtol": 0.0}).x
                except _StageDone:
                    x = self.stage_x
                log.debug("fo-sdp lbfgs: tau %.3g, %d evaluations, best %.8g", tau,
                          rec.iterations, rec.best_value)
        except _Stop as stop:
            rec.status = stop.args[0]
        return rec

    def _temperatures(self, warm: bool) -> list[float]:
        """``tau_k = scale * 10^-k / T`` for ``k = first..last`` (two stages later when warm)."""
        first, last = (float(v) for v in self.opts.smooth_stages)
        ks = np.arange(first + (2.0 if warm else 0.0), last + 0.5)
        return [self.scale * 10.0 ** (-k) / self.trace for k in ks]
