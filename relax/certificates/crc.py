"""CRC: curvature-based robustness certificates (Singla & Feizi, ICML 2020).

Network: ``f(x) = V sigma(W x + b) + c0`` with a smooth ``sigma`` (sigmoid, tanh,
softplus).  For the labels ``y`` and ``t`` let ``h = f_t - f_y`` (``v = V_t - V_y``);
``h`` is a counterexample's witness when ``h(x') >= 0``.  Its Hessian is

    H(x) = W^T diag(v * sigma''(W x + b)) W.

With ``sigma''`` in ``[s_lo, s_hi]`` (``s_lo <= 0 <= s_hi``: sigmoid
``+-1/(6 sqrt 3)``, tanh ``+-4/(3 sqrt 3)``, softplus ``[0, 1/4]``), every entry
``v_k sigma''_k`` lies in ``[q_k, p_k]`` with ``p_k = max(v_k s_lo, v_k s_hi) >= 0`` and
``q_k = min(...) <= 0``; hence, for every ``x`` in ``R^d``,

    lambda_max(H(x)) <= K  = lambda_max(W^T diag(p) W) = ||diag(sqrt p) W||_2^2,
    lambda_min(H(x)) >= -K' with K' = lambda_max(W^T diag(-q) W).

(For ``-v`` the roles swap: ``K'(y, t) = K(t, y)``.)  Eigenvalues are computed in
float64 with a safety margin.

Certified l2 radius (the paper's dual).  The primal is
``min ||x' - x||^2 / 2  s.t.  h(x') >= 0``.  For ``eta >= 0`` the dual function
``d(eta) = min_x' F(x') = ||x' - x||^2 / 2 - eta h(x')`` satisfies ``d(eta) <=``
primal optimum (weak duality), and for ``eta < 1 / K`` ``F`` is
``mu = 1 - eta K`` strongly convex, so for any iterate ``x^``

    d(eta) >= F(x^) - ||grad F(x^)||^2 / (2 mu),

which is what we use (sound whatever the inner solver's accuracy).  Every point with
``h >= 0`` is then at distance ``>= sqrt(2 d(eta))``.  We search ``eta`` in
``(0, 1/K)`` by golden section (``d`` is concave), solve the inner problem by
accelerated gradient descent warm started across ``eta``, and keep the best sound
value; the closed-form curvature (Taylor) radius ``r`` with
``h(x) + ||grad h(x)|| r + K r^2 / 2 = 0`` is also sound and the larger one wins.
The radius of a point is the minimum over every class ``t != y``.

Margin bound over a ball of radius ``rho`` (for :func:`crc_method`): with
``g = -h`` and ``mu = 1 / eta``, Lagrangian duality gives
``min_{||x'-x|| <= rho} g(x') >= (d(eta) - rho^2 / 2) / eta``; the Taylor form is
``g(x) - ||grad g|| rho - K rho^2 / 2``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from relax.bounds.relaxations import activation_derivative, activation_value
from relax.errors import UsageError
from relax.bounds.activations import RULES, SMOOTH
from relax.network import Network
from relax.spec import Spec
from relax.deadline import Deadline
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason, ReasonKind

__all__ = [
    "SECOND_DERIVATIVE_RANGE", "smooth_two_layer", "curvature_bounds", "crc_pair_bounds",
    "crc_radii", "crc_method", "CrcOptions",
]

log = logging.getLogger(__name__)

#: ``[min, max]`` of the activation's second derivative over the real line (slightly
#: widened), from the activation rules
SECOND_DERIVATIVE_RANGE = {name: RULES[name].second_derivative_range for name in SMOOTH}


def smooth_two_layer(network: Network):
    """``(W, b, V, c0, activation name)`` of a one-hidden-layer smooth network."""
    if len(network.affines) != 2 or network.activations[0].name not in SMOOTH:
        raise UsageError(
            "crc needs a one-hidden-layer network with a sigmoid, tanh or softplus "
            f"activation, got {network.describe()}"
        )
    first, last = network.affines
    return (first.dense_weight(), first.bias, last.dense_weight(), last.bias,
            network.activations[0].name)


def curvature_bounds(W: np.ndarray, V: np.ndarray, activation: str) -> np.ndarray:
    """``K[y, t] >= lambda_max`` of the Hessian of ``f_t - f_y`` everywhere (float64,
    eigenvalues with margin).  ``K[t, y]`` bounds ``-lambda_min`` of the same Hessian."""
    lo, hi = SECOND_DERIVATIVE_RANGE[activation]
    n = V.shape[0]
    K = np.zeros((n, n))
    small_side = W.shape[0] <= W.shape[1]
    for y in range(n):
        for t in range(n):
            if t == y:
                continue
            v = V[t] - V[y]
            p = np.maximum(v * lo, v * hi)
            S = np.sqrt(p)[:, None] * W  # diag(sqrt p) W
            G = S @ S.T if small_side else S.T @ S
            top = float(np.linalg.eigvalsh(G)[-1])
            K[y, t] = max(top, 0.0) + 1e-11 * G.shape[0] * float(np.linalg.norm(G)) + 1e-300
    return K


def crc_pair_bounds(W, b, V, c0, activation: str, X: np.ndarray, ys: np.ndarray,
                    ts: np.ndarray, K: np.ndarray, rho: float | None = None,
                    eta_steps: int = 14, inner_steps: int = 30,
                    stop_at: float | None = None) -> np.ndarray:
    """Sound per-pair values for rows ``(X[k], ys[k], ts[k])`` (batched, float64).

    Without ``rho``: the certified l2 radius of the class pair (``0`` where
    ``h(x) >= 0``).  With ``rho``: a lower bound on ``min (f_y - f_t)`` over the l2
    ball of radius ``rho``.  ``stop_at``: rows whose Taylor value already reaches it
    skip the dual search.
    """
    dt = torch.float64
    Wt, bt = torch.as_tensor(W, dtype=dt), torch.as_tensor(b, dtype=dt)
    Vt, ct = torch.as_tensor(V, dtype=dt), torch.as_tensor(c0, dtype=dt)
    x = torch.as_tensor(np.asarray(X), dtype=dt)
    ys_t, ts_t = torch.as_tensor(ys), torch.as_tensor(ts)
    v = Vt[ts_t] - Vt[ys_t]
    const = ct[ts_t] - ct[ys_t]
    Kup = torch.as_tensor(K[ys, ts], dtype=dt)
    Klo = torch.as_tensor(K[ts, ys], dtype=dt)

    def h_and_grad(xp, rows=slice(None)):
        z = xp @ Wt.T + bt
        h = (activation_value(activation, z) * v[rows]).sum(1) + const[rows]
        g = (activation_derivative(activation, z) * v[rows]) @ Wt
        return h, g

    h0, g0 = h_and_grad(x)
    gn = g0.norm(dim=1)
    safe = 1e-9 * (1 + h0.abs() + gn)
    if rho is None:
        disc = torch.clamp(gn ** 2 - 2 * Kup * h0, min=0)
        taylor = torch.where(Kup > 0, (-gn + disc.sqrt()) / Kup.clamp(min=1e-300), -h0 / gn.clamp(min=1e-300))
        taylor = torch.where(h0 < 0, taylor * (1 - 1e-9), torch.zeros_like(h0))
    else:
        taylor = -h0 - gn * rho - 0.5 * Kup * rho ** 2 - safe
    best = taylor.clone()
    todo = torch.ones_like(h0, dtype=torch.bool) if stop_at is None else best < stop_at
    if rho is None:
        todo &= h0 < 0
    idx = torch.nonzero(todo).flatten()
    if len(idx) == 0:
        return best.numpy()
    best[idx] = _dual_search(h_and_grad, x, idx, Kup, Klo, rho, eta_steps, inner_steps,
                             best[idx], safe)
    return best.numpy()


def _dual_search(h_and_grad, x, idx, Kup, Klo, rho, eta_steps, inner_steps, start, safe):
    x0 = x[idx]
    K, Kl, sf = Kup[idx], Klo[idx], safe[idx]
    eta_max = (1 - 1e-3) / K.clamp(min=1e-12)

    def sub_hg(xp):
        return h_and_grad(xp, idx)

    best = start.clone()
    xp = x0.clone()

    def value(eta, xp):
        mu = 1 - eta * K
        L = 1 + eta * Kl
        kappa = L / mu
        beta = ((kappa.sqrt() - 1) / (kappa.sqrt() + 1))[:, None]
        y, prev = xp.clone(), xp.clone()
        for _ in range(inner_steps):
            _, g = sub_hg(y)
            new = y - ((y - x0) - eta[:, None] * g) / L[:, None]
            y = new + beta * (new - prev)
            prev = new
        h, g = sub_hg(prev)
        F = 0.5 * ((prev - x0) ** 2).sum(1) - eta * h
        grad = (prev - x0) - eta[:, None] * g
        d = F - (grad ** 2).sum(1) / (2 * mu) - sf
        if rho is None:
            out = torch.sqrt(torch.clamp(2 * d, min=0)) * (1 - 1e-9)
        else:
            out = (d - 0.5 * rho ** 2) / eta
        return out, prev

    # golden section on t in (0, 1): eta = t * eta_max
    phi = (math.sqrt(5) - 1) / 2
    a = torch.zeros_like(K)
    bnd = torch.ones_like(K)
    c1 = bnd - phi * (bnd - a)
    c2 = a + phi * (bnd - a)
    f1, xp = value(c1 * eta_max, xp)
    f2, xp2 = value(c2 * eta_max, xp)
    best = torch.maximum(best, torch.maximum(f1, f2))
    for _ in range(eta_steps):
        left = f1 > f2  # maximum lies in [a, c2]
        bnd = torch.where(left, c2, bnd)
        a = torch.where(left, a, c1)
        new_c1 = bnd - phi * (bnd - a)
        new_c2 = a + phi * (bnd - a)
        probe = torch.where(left, new_c1, new_c2)
        warm = torch.where(left[:, None], xp, xp2)
        fp, xq = value(probe * eta_max, warm)
        best = torch.maximum(best, fp)
        f1, f2 = torch.where(left, fp, f2), torch.where(left, f1, fp)
        xp, xp2 = torch.where(left[:, None], xq, xp2), torch.where(left[:, None], xp, xq)
        c1, c2 = torch.where(left, new_c1, c2), torch.where(left, c1, new_c2)
    return best


def crc_radii(W, b, V, c0, activation: str, X: np.ndarray, labels: np.ndarray,
              K: np.ndarray | None = None, stop_at: float | None = None,
              chunk: int = 4096, **search) -> np.ndarray:
    """Certified l2 radius of each point against every other class (``0`` if the
    point is misclassified).  ``stop_at``: a pair already certified to that radius by
    the Taylor form skips the dual search (the value returned may then be smaller
    than the dual's, never larger than sound)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels, dtype=np.int64)
    n = V.shape[0]
    K = curvature_bounds(W, V, activation) if K is None else K
    pts = np.repeat(np.arange(len(labels)), n - 1)
    ys = labels[pts]
    ts = np.concatenate([[t for t in range(n) if t != y] for y in labels]).astype(np.int64)
    values = np.empty(len(pts))
    for s in range(0, len(pts), chunk):
        sl = slice(s, s + chunk)
        values[sl] = crc_pair_bounds(W, b, V, c0, activation, X[pts[sl]], ys[sl], ts[sl], K,
                                     stop_at=stop_at, **search)
    return np.maximum(values.reshape(len(labels), n - 1).min(axis=1), 0.0)


def _ball(spec: Spec) -> tuple[np.ndarray, float]:
    """The spec's l2 ball, or the one circumscribing its box (sound: it contains it)."""
    if spec.ball is not None:
        return spec.ball.center, spec.ball.radius
    centre = 0.5 * (spec.lower + spec.upper)
    return centre, float(np.linalg.norm(0.5 * (spec.upper - spec.lower))) * (1 + 1e-12)


@dataclass(frozen=True)
class CrcOptions(MethodOptions):
    """Options of the ``crc`` method (the dual search of :func:`crc_pair_bounds`)."""

    eta_steps: int = option(14, "steps of the outer search over the dual variable eta")
    inner_steps: int = option(30, "steps of the inner minimisation per eta")

    def __post_init__(self):
        super().__post_init__()
        if self.eta_steps < 1 or self.inner_steps < 1:
            raise UsageError("crc.eta_steps and crc.inner_steps must be >= 1")


def crc_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
               options: VerifyOptions) -> list[BoundOutcome]:
    """Registered ``crc`` method: sound margin lower bounds over each spec's l2 ball."""
    settings = options.of(CrcOptions)
    W, b, V, c0, act = smooth_two_layer(network)
    K = curvature_bounds(W, V, act)
    outcomes = []
    for spec in specs:
        centre, rho = _ball(spec)
        C, d, _ = spec.objectives()
        ys, ts = [], []
        for row in C:
            pos, neg = np.flatnonzero(row > 0), np.flatnonzero(row < 0)
            if len(pos) != 1 or len(neg) != 1 or row[pos[0]] != 1.0 or row[neg[0]] != -1.0:
                raise UsageError("crc handles properties whose rows are y_i - y_j <= b")
            ys.append(int(pos[0]))
            ts.append(int(neg[0]))
        X = np.repeat(centre[None, :], len(ys), axis=0)
        lower = crc_pair_bounds(W, b, V, c0, act, X, np.array(ys), np.array(ts), K, rho=rho,
                                eta_steps=settings.eta_steps, inner_steps=settings.inner_steps)
        reason = None if spec.ball is not None else Reason(
            ReasonKind.RELAXED_INPUT, "no l2 ball in the property: used the ball around its box")
        outcomes.append(BoundOutcome(spec.combine(lower - d)[0], reason=reason))
    return outcomes
