r"""The lifted equality of stably active neurons: in the dense certificate, and substituted
in the Burer-Monteiro primal (:func:`substitution`, :func:`expand`, :func:`chain`).

A stably active neuron ``j`` (pre-activation lower bound ``l_j >= 0``) of hidden layer
``k`` has ``z_j = a_j = W_j x_k + b_j`` on every input, so with ``p = [1; xt]`` (the
normalised coordinates of :mod:`.problem`) ``q_j^T p = 0`` for

    q_j = [W_j ctr_k + b_j - ctr_j ;  W_j * rad_k (layer k) ;  -rad_j (at z_j)] / rho_j.

Hence ``p^T (q_j y_j^T + y_j q_j^T) p = 0`` for *any* vector ``y_j``: the lifted
constraint ``(a_j - z_j) p = 0`` (what the interior-point path gets by substituting
these neurons, :mod:`solvers.backends.sdp_ipm.reduced`) has a free multiplier ``Y``, and
``D' = D + Q Y^T + Y Q^T`` may replace ``D`` in the certificate.  The best ``Y`` for
``lambda_min``: with ``P_R = Q G Q^T`` (``G = (Q^T Q)^{-1}``) the projector on
``range(Q)`` and ``P_N = I - P_R``,

    D' = P_N D P_N + c P_R,     Y = -D Q G + (1/2) Q (G Q^T D Q G) + (c/2) Q G,

whose smallest eigenvalue is ``min(lambda_min(P_N D P_N on range(P_N)), c)``: ``D``
restricted to the subspace the network can reach, and no less than ``lambda_min(D)``
for ``c >= lambda_max(D)`` (we take ``c = max_i sum_k |D_ik|``).

Rigour.  ``Q`` and ``Y`` are floating-point matrices; the certificate uses them as
given.  Only ``q_j^T p = 0`` needs care: the computed ``q_j`` differs from the exact one
by rounding, so on the feasible set ``|q_j^T p| <= e_j`` (:func:`active_vectors`) and
``p^T (Q Y^T + Y Q^T) p >= -2 sum_j e_j |y_j|^T sqrt(d)`` (``|p_i| <= sqrt(d_i)``,
``d_0 = 1``), which :func:`allowance` returns and the certificate subtracts.  The
rounding in forming ``D'`` from ``D, Q, Y`` is bounded by ``(2 m + 4) eps`` times the
same sum over absolute values (:func:`lifted`, ``m`` the number of such neurons).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from solvers.backends.fo_sdp.problem import EPS, ProblemData

__all__ = ["active_vectors", "lifted", "allowance", "projected_corner", "substitution",
           "expand", "chain"]


def active_vectors(data: ProblemData) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, e)``: the ``q_j`` of the substituted neurons (``data.active``) as columns on
    the kept coordinates (corner, then ``d_i > 0``), and the bounds ``e_j`` on
    ``|q_j^T p|`` over the feasible set (module docstring); ``Q`` has no columns when no
    neuron is substituted."""
    keep = np.concatenate([[True], data.d > 0])
    offsets = np.concatenate([[1], 1 + np.cumsum(data.sizes)]).astype(int)
    reach = np.sqrt(np.concatenate([[1.0], data.d]))
    columns, errors = [], []
    for k, active in enumerate(data.active):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            continue
        W = data.weights[k]
        W = (W.toarray() if sp.issparse(W) else np.asarray(W))[rows]
        rho, ctr, rad = data.rho[k][rows], data.ctr[k], data.rad[k]
        q = np.zeros((1 + data.n, rows.size))
        q[0] = (W @ ctr + data.biases[k][rows] - data.ctr[k + 1][rows]) / rho
        q[offsets[k]:offsets[k + 1]] = (W * rad).T / rho
        q[offsets[k + 1] + rows, np.arange(rows.size)] = -data.rad[k + 1][rows] / rho
        size = (np.abs(W) @ np.abs(ctr) + np.abs(data.biases[k][rows])
                + np.abs(data.ctr[k + 1][rows])) / rho
        columns.append(q)
        errors.append((W.shape[1] + 8) * EPS * size + 4 * EPS * (np.abs(q).T @ reach))
    if not columns:
        return np.zeros((int(keep.sum()), 0)), np.zeros(0)
    return np.concatenate(columns, axis=1)[keep], 2.0 * np.concatenate(errors)


def _multiplier(D: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """The best ``Y`` of the module docstring for ``D`` (``c = ||D||_inf``)."""
    G = np.linalg.inv(Q.T @ Q)
    QG = Q @ G
    DQG = D @ QG
    c = float(np.abs(D).sum(axis=1).max())
    return -DQG + 0.5 * QG @ (QG.T @ DQG) + 0.5 * c * QG


def lifted(D: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(D', Y, r)``: ``D' = D + Q Y^T + Y Q^T`` with the best ``Y`` and ``r``, a bound on
    the rounding in forming ``D'`` from ``D`` (Frobenius norm); ``(D, empty, 0)`` when
    ``Q`` has no columns."""
    if Q.shape[1] == 0:
        return D, np.zeros_like(Q), 0.0
    Y = _multiplier(D, Q)
    update = Q @ Y.T
    magnitude = np.abs(Q) @ np.abs(Y).T
    size = np.abs(D) + magnitude + magnitude.T
    rounding = (2 * Q.shape[1] + 4) * EPS * float(np.linalg.norm(size))
    return D + update + update.T, Y, rounding


def allowance(Y: np.ndarray, errors: np.ndarray, d: np.ndarray) -> float:
    """``2 sum_j e_j |y_j|^T sqrt(d)`` (module docstring; ``d`` on the kept coordinates,
    corner first), rounded up generously."""
    if Y.shape[1] == 0:
        return 0.0
    reach = np.sqrt(np.concatenate([[1.0], d]))
    return 2.0 * float(errors @ (np.abs(Y).T @ reach)) * (1 + 1e-6)


def projected_corner(Q: np.ndarray) -> np.ndarray:
    """``u = P_N e_0``: how ``kappa_0`` enters ``D'`` (``D'(kappa_0 + t) = D' - t u u^T``)."""
    e0 = np.zeros(Q.shape[0])
    e0[0] = 1.0
    if Q.shape[1] == 0:
        return e0
    return e0 - Q @ np.linalg.solve(Q.T @ Q, Q[0])


def substitution(data: ProblemData, W: list) -> tuple:
    """Per hidden layer ``k``: for its stably active neurons marked in ``data.active``
    (rows ``j``) in the Burer-Monteiro factor, ``v_j = M v_k + o e_1`` with
    ``M = W_j rad_k / rad_j`` and ``o = (W_j ctr_k + b_j - ctr_j) / rad_j`` (``z_j = a_j`` in the lifted coordinates
    ``U = ctr e_1 + rad v``); None where there are none."""
    import torch

    out = []
    for k, active in enumerate(data.active):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            out.append(None)
            continue
        rad = data.rad[k + 1][rows]
        M = W[k][rows] * torch.as_tensor(data.rad[k])[None, :] / torch.as_tensor(rad)[:, None]
        weights = np.asarray(data.weights[k].toarray() if hasattr(data.weights[k], "toarray")
                             else data.weights[k])[rows]
        offset = (weights @ data.ctr[k] + data.biases[k][rows] - data.ctr[k + 1][rows]) / rad
        out.append((torch.as_tensor(rows), M, torch.as_tensor(offset)))
    return tuple(out)


def expand(substitution: tuple, V: list) -> list:
    """``V`` (per layer) with the substituted rows set from the layer before (in layer
    order; ``substitution`` from :func:`substitution`)."""
    if not any(substitution):
        return V
    V = list(V)
    for k, sub in enumerate(substitution):
        if sub is not None:
            rows, M, offset = sub
            block = M @ V[k]
            block[:, 0] += offset
            V[k + 1] = V[k + 1].index_put((rows,), block)
    return V


def chain(substitution: tuple, grads: list) -> list:
    """The gradient with respect to the free rows: each substituted row's gradient is
    passed to the layer before (in reverse layer order) and zeroed."""
    if not any(substitution):
        return grads
    grads = list(grads)
    for k in reversed(range(len(substitution))):
        sub = substitution[k]
        if sub is not None:
            rows, M, _ = sub
            grads[k] = grads[k] + M.T @ grads[k + 1][rows]
            zeros = grads[k + 1].new_zeros((rows.numel(), grads[k + 1].shape[1]))
            grads[k + 1] = grads[k + 1].index_put((rows,), zeros)
    return grads
