"""SDP-cert: the dual certificate of Raghunathan, Steinhardt & Liang (ICLR 2018).

For a one-hidden-layer ReLU network ``f(x) = V relu(W x + b) + c0`` and a box
``|x' - x0|_k <= r_k`` (an l-inf ball when all ``r_k = eps``) the change of the logit
difference ``f_ij = f_j - f_i`` (``v = V_j - V_i``) along the segment from ``x0`` to
``x'`` is, by the mean value theorem (ReLU is piecewise linear; its derivative is in
``[0, 1]`` almost everywhere),

    f_ij(x') - f_ij(x0) <= max_{s in [0,1]^m, t in [-1,1]^d}  t^T R W^T diag(v) s,

with ``R = diag(r)``; biases play no part.  Writing ``s = (1 + u) / 2`` with
``u in [-1,1]^m`` and ``y = (1, t, u)`` in ``{-1,1}^D`` (``D = 1 + d + m``; the
maximum of this multilinear form is attained at a vertex) the right side is
``(1/4) y^T M y`` with the symmetric

    M(v, W) = [[0,        v^T W R,  0          ],
               [R W^T v,  0,        R W^T diag(v)],
               [0,        diag(v) W R, 0        ]].

For any ``c`` in ``R^D`` and ``Y`` with ``Y >= 0`` (PSD) and ``diag(Y) = 1``,
``<M, Y> = <M - diag(c), Y> + 1^T c <= D lambda_max^+(M - diag(c)) + 1^T max(c, 0)``,
and ``y y^T`` is such a ``Y``.  Hence the certificate (paper, Theorem 1)

    f_ij(x') - f_ij(x0) <= (1/4) [D lambda_max^+(M - diag(c)) + 1^T max(c, 0)].

With ``R = eps I`` this is the paper's ``(eps/4) [D lambda^+(M(v, W) - diag c) + ...]``
(``M`` without ``R`` and ``c`` rescaled by ``1/eps``).  The bound is the same for
``v`` and ``-v`` (``M(-v) = S M(v) S`` with ``S = diag(1, -I, 1)``), so one
certificate serves the unordered class pair.

Soundness here: ``lambda_max`` is computed by dense float64 ``eigvalsh`` plus a
margin covering its backward error and the rounding in forming ``M``; the spec's
box (possibly clipped to the domain) is covered by the l-inf ball of radius
``max_k r_k`` around the box centre, so the eigenvalue part depends only on the
network, the class pair and that radius and is cached; each point then costs one
float64 forward pass.  Any ``c`` is valid: the method optimises ``c`` per pair by
subgradient steps on the (convex) certificate (dense float64 eigh for the top eigenvector),
and the final value is always re-evaluated rigorously.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.linalg

from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.network import Network, ReLU
from relax.spec import Spec
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions

__all__ = [
    "one_hidden_relu", "pair_matrix", "certificate_value", "safe_lambda_max",
    "shifted_certificate", "optimise_c", "pair_gains", "sdp_dual1_bounds", "sdp_dual1_method",
    "SdpDual1Options",
]

log = logging.getLogger(__name__)

_EIG_REL = 1e-11  # relative safety margin on float64 eigvalsh (n * u with slack)


def one_hidden_relu(network: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(W, b, V, c0)`` of a one-hidden-layer ReLU network, else :class:`UsageError`."""
    if len(network.affines) != 2 or not isinstance(network.activations[0], ReLU):
        raise UsageError(
            f"sdp-dual1 needs a one-hidden-layer ReLU network, got {network.describe()}"
        )
    first, last = network.affines
    return first.dense_weight(), first.bias, last.dense_weight(), last.bias


def pair_matrix(W: np.ndarray, v: np.ndarray, radius=1.0) -> np.ndarray:
    """The dense symmetric ``M(v, W R)`` of the module docstring (order ``1, t, u``)."""
    W = np.asarray(W, dtype=np.float64) * np.broadcast_to(radius, (W.shape[1],))[None, :]
    m, d = W.shape
    D = 1 + d + m
    M = np.zeros((D, D))
    wv = W.T @ v
    M[0, 1:1 + d] = wv
    M[1:1 + d, 0] = wv
    block = W.T * v[None, :]  # W^T diag(v): (d, m)
    M[1:1 + d, 1 + d:] = block
    M[1 + d:, 1:1 + d] = block.T
    return M


def safe_lambda_max(A: np.ndarray) -> float:
    """An upper bound on ``lambda_max(A)`` for symmetric ``A``: float64 eigvalsh plus a
    margin of ``1e-11 * ||A||_F`` (eigvalsh is backward stable: error <= ~n u ||A||_2)."""
    top = float(np.linalg.eigvalsh(A)[-1])
    return top + _EIG_REL * float(np.linalg.norm(A)) * max(1.0, A.shape[0] / 1000.0) + 1e-300


def certificate_value(M: np.ndarray, c: np.ndarray) -> float:
    """Sound ``(1/4)[D lambda_max^+(M - diag c) + 1^T max(c, 0)]``."""
    D = M.shape[0]
    lam = safe_lambda_max(M - np.diag(c))
    value = 0.25 * (D * max(lam, 0.0) + float(np.maximum(c, 0.0).sum()))
    return value * (1.0 + 1e-12) + 1e-12


def shifted_certificate(M: np.ndarray, c: np.ndarray) -> float:
    """The certificate at ``c' = c + lambda^ 1`` with ``lambda^`` a sound upper bound on
    ``lambda_max(M - diag c)``: then ``lambda_max(M - diag c') <= 0`` and the value is
    ``(1/4) 1^T max(c', 0)`` (never above the value at ``c``; one eigvalsh)."""
    shifted = c + safe_lambda_max(M - np.diag(c))
    return 0.25 * float(np.maximum(shifted, 0.0).sum()) * (1.0 + 1e-12) + 1e-12


def optimise_c(M: np.ndarray, c0: np.ndarray | None = None, iterations: int = 60,
               lr: float = 0.05, deadline: Deadline = NEVER) -> np.ndarray:
    """Subgradient (Adam) descent on ``D lambda_max(M - diag c) + 1^T c``.

    Starts from ``c0`` or the Gershgorin point (``c_k = sum_l |M_kl|``, where the
    certificate equals the elementwise l1 bound).  The subgradient is ``1 - D u^2``
    with ``u`` the top unit eigenvector (dense float64 ``eigh``).  Returns the best ``c``
    seen after the shift that zeroes the eigenvalue term; past ``deadline`` it stops
    early (any ``c`` is valid, only looser).
    """
    D = M.shape[0]
    c = np.abs(M).sum(axis=1) if c0 is None else np.array(c0, dtype=np.float64)
    scale = float(np.abs(c).mean()) or 1.0
    m1 = np.zeros(D)
    m2 = np.zeros(D)
    best_c, best = None, np.inf
    for it in range(1, iterations + 1):
        if deadline.expired:
            break
        w, Q = scipy.linalg.eigh(M - np.diag(c), subset_by_index=[D - 1, D - 1])
        lam, u = float(w[-1]), Q[:, -1]
        value = D * lam + c.sum()
        if value < best:
            best, best_c = value, c + lam
        grad = 1.0 - D * u * u
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad * grad
        step = lr * scale * (m1 / (1 - 0.9 ** it)) / (np.sqrt(m2 / (1 - 0.999 ** it)) + 1e-12)
        c = c - step
    return c if best_c is None else best_c


def pair_gains(W: np.ndarray, V: np.ndarray, eps: float, c: dict | None = None,
               iterations: int = 60, deadline: Deadline = NEVER) -> np.ndarray:
    """``G[i, j]``: sound bound on ``max (f_j - f_i)(x') - (f_j - f_i)(x0)`` over the
    l-inf ball of radius ``eps`` (symmetric; zero diagonal).  ``c[(i, j)]`` (i < j) is an
    optional dual start, in the units of ``M(v, eps W)``."""
    K = V.shape[0]
    G = np.zeros((K, K))
    for i in range(K):
        for j in range(i + 1, K):
            M = pair_matrix(W, V[j] - V[i], eps)
            start = None if c is None else c.get((i, j))
            if start is not None and not np.all(np.isfinite(start)):
                start = None
            if iterations:
                start = optimise_c(M, start, iterations, deadline=deadline)
            elif start is None:
                start = np.abs(M).sum(axis=1)
            G[i, j] = G[j, i] = shifted_certificate(M, start)
    return G


@dataclass(frozen=True)
class SdpDual1Options(MethodOptions):
    """Options of the ``sdp-dual1`` method."""

    iterations: int = option(60, "Adam steps on each class pair's dual vector c (0: the start)")
    start: dict | None = option(None, "dual starts {(i, j): c} (e.g. from SDP-cert training)",
                                settable=False)


#: [(network, eps, settings, gains)]: the entries hold the network and the settings, so
#: comparing them by identity is safe (no id() of a collected object can be reused)
_CACHE: list = []


def _gains_for(network: Network, eps: float, settings: SdpDual1Options,
               deadline: Deadline = NEVER) -> np.ndarray:
    """Gains for (network, eps, settings), computed once; the last few are kept.  Gains
    whose optimisation of ``c`` was cut short by the deadline are valid but not cached."""
    for net, e, s, gains in _CACHE:
        if net is network and e == float(eps) and s.iterations == settings.iterations \
                and s.start is settings.start:
            return gains
    W, _, V, _ = one_hidden_relu(network)
    gains = pair_gains(W, V, eps, settings.start, settings.iterations, deadline=deadline)
    if deadline.expired:
        log.info("sdp-dual1: time limit reached while optimising the duals; bounds are looser")
        return gains
    _CACHE.append((network, float(eps), settings, gains))
    del _CACHE[:-4]
    return gains


def sdp_dual1_bounds(network: Network, spec: Spec, gains: np.ndarray, eps: float) -> float:
    """Sound lower bound on the spec's margin from the pairwise gains at radius ``eps``.

    Each disjunct row ``a^T y - b`` must be a class difference ``y_i - y_j`` (as in
    :func:`relax.spec.robustness`); its value over the box is at least
    ``(y_i - y_j)(x0) - G[i, j] - b``.
    """
    x0 = 0.5 * (spec.lower + spec.upper)
    y0 = network.forward(x0)
    slack = 1e-9 * (1.0 + float(np.abs(y0).max()))
    C, d, _ = spec.objectives()
    rows = np.empty(len(d))
    for r, (row, offset) in enumerate(zip(C, d)):
        pos, neg = np.flatnonzero(row > 0), np.flatnonzero(row < 0)
        if len(pos) != 1 or len(neg) != 1 or row[pos[0]] != 1.0 or row[neg[0]] != -1.0:
            raise UsageError("sdp-dual1 handles properties whose rows are y_i - y_j <= b")
        i, j = int(pos[0]), int(neg[0])
        rows[r] = y0[i] - y0[j] - gains[i, j] - offset - slack
    return spec.combine(rows)[0]


def sdp_dual1_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
                     options: VerifyOptions) -> list[BoundOutcome]:
    """Registered ``sdp-dual1`` bound method (see the module docstring)."""
    one_hidden_relu(network)
    outcomes = []
    for spec in specs:
        eps = float(np.max(0.5 * (spec.upper - spec.lower)))
        gains = _gains_for(network, eps, options.of(SdpDual1Options), deadline)
        outcomes.append(BoundOutcome(sdp_dual1_bounds(network, spec, gains, eps)))
    return outcomes
