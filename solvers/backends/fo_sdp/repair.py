r"""A better ``kappa`` for given multipliers: the Gershgorin shift of ``D``'s negative part.

The certificate (:mod:`.certificate`) pays for a negative ``q = lambda_min(D)`` with a
*uniform* shift: ``F = kappa_0 + q + sum_i d_i min(0, kappa_i + q)`` loses about
``T |q|`` (``T = 1 + sum d_i``, ~950 on MNIST).  Near the optimum the negative
eigenvectors of ``D`` live on a few hundred hidden coordinates, not on the 784 inputs,
so a shift placed where they live is far cheaper.  With ``D = sum_j w_j u_j u_j^T``
let ``N = sum_{w_j < 0} |w_j| u_j u_j^T`` (PSD, and ``D + N >= 0``) and
``r_i = sum_k |N_ik|``.  ``diag(r) - N`` is symmetric and diagonally dominant with a
nonnegative diagonal, hence PSD (Gershgorin), so ``D + diag(r) >= D + N >= 0``:
the duals with ``kappa' = kappa - r`` have ``lambda_min(D') ~ 0`` and
``F(kappa') ~ kappa_0 - r_0 + sum_i d_i min(0, kappa_i - r_i)``, which costs about
``sum_i d_i r_i`` instead of ``T |q|``.

This is only a *choice* of duals (eigenpairs in floating point); the bound of the new
duals is proved, as every bound, by the float64 certificate.  :func:`improve` keeps
whichever of the two duals certifies higher.

The shift never *raises* ``kappa_0``, and the Burer-Monteiro multipliers set
``kappa_0`` from the (slightly infeasible) primal value, so the bound is capped there.
:func:`best_corner` then sets ``kappa_0`` to the largest value with ``D >= 0`` given the
other entries: with ``D = [[D_00, s^T], [s, R]]`` and ``R > 0`` (after the shift),
``D >= 0`` iff ``D_00 >= s^T R^{-1} s`` (Schur complement), so ``kappa_0`` rises by
``D_00 - s^T R^{-1} s``.  ``F`` gains that much less what ``q`` loses (``q >= 0`` may
fall to 0, and ``q`` counts ``1 + sum d_i`` times), so :func:`improve` certifies both.  It needs the dense ``D`` and is used
for ``1 + n <= dense_check_limit`` only (above it ``improve(..., matrix_free=True)``
uses the following instead).

Above it, :func:`lowrank_shift` is the matrix-free version: ``N`` is built from the
``count`` most negative *Ritz* pairs of ``D`` (Lanczos on the block operator of
:mod:`.blocks`, never the dense ``D``), ``N = sum_j |w_j| u_j u_j^T`` with ``w_j < 0``.
Two diagonal majorants of this low-rank ``N`` (each ``diag(r) >= N``):

* ``rule="rows"``: Gershgorin as above, ``r_i = sum_k |N_ik|`` (``N`` formed a block of
  rows at a time: ``O(m^2 count)`` flops, ``O(m * chunk)`` memory);
* ``rule="weighted"``: per rank-one term, Cauchy-Schwarz
  ``(u^T x)^2 <= sum_i u_i^2 x_i^2 / p_i`` for any ``p > 0`` with ``sum p_i = 1``; with
  ``p_i ~ |u_i| sqrt(d_i)`` (``d_0 = 1`` for the corner) the shift
  ``r_i = sum_j |w_j| |u_ij| S_j / sqrt(d_i)``, ``S_j = sum_k |u_kj| sqrt(d_k)``, costs
  ``sum_i d_i r_i = sum_j |w_j| S_j^2``, the least over such ``p``; ``O(m count)``.

Ritz pairs only approximate the negative part (more negative eigenvalues than
``count``, or inexact ones, leave ``D'`` slightly indefinite), so the shift is repeated
for ``rounds`` on the shifted ``D``.  Again only a choice of duals: the block
certificate proves whatever bound they give.
"""

from __future__ import annotations

import numpy as np

from solvers.backends.fo_sdp.certificate import certify, dense_lagrangian
from solvers.backends.fo_sdp.problem import Layout, ProblemData, split_numpy

__all__ = ["best_corner", "gershgorin_shift", "improve", "lowrank_shift", "negative_directions"]


def _kept_dense(data: ProblemData, layout: Layout, params: np.ndarray):
    """``(projected params, kept coordinates, dense D' on them, u)``: ``D' = D`` or, with
    stably active neurons marked, ``D`` with the best multiplier of their lifted
    equality, and ``u = P_N e_0`` (:mod:`.lift`; ``e_0`` without them)."""
    from solvers.backends.fo_sdp.lift import active_vectors, lifted, projected_corner

    params = layout.project(np.asarray(params, np.float64))
    lams, kappa = split_numpy(layout, data, params)
    keep = np.concatenate([[True], data.d > 0])
    D = dense_lagrangian(data, lams, kappa, absolute=False)[np.ix_(keep, keep)]
    Q, _ = active_vectors(data)
    if not np.isfinite(D).all():
        return params, keep, D, projected_corner(Q)
    return params, keep, lifted(D, Q)[0], projected_corner(Q)


def _reflected(D: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``H D H`` for the Householder reflection ``H`` with ``H u = ||u|| e_0``."""
    w = u / np.linalg.norm(u)
    w[0] -= 1.0
    size = float(w @ w)
    if size < 1e-24:
        return D
    tau = 2.0 / size
    Dw = D @ w
    return (D - tau * np.outer(w, Dw) - tau * np.outer(Dw, w)
            + tau * tau * float(w @ Dw) * np.outer(w, w))


def gershgorin_shift(data: ProblemData, layout: Layout, params: np.ndarray) -> np.ndarray:
    """``params`` with ``kappa - r`` (module docstring); unchanged when ``D`` is PSD in
    floating point or not finite."""
    params, keep, D, _ = _kept_dense(data, layout, params)
    if not np.isfinite(D).all():
        return params
    values, vectors = np.linalg.eigh(D)
    negative = values < 0
    if not negative.any():
        return params
    part = vectors[:, negative]
    N = (part * -values[negative]) @ part.T
    shift = np.zeros(1 + data.n)
    shift[keep] = np.abs(N).sum(axis=1)
    out = params.copy()
    out[layout.kappa_start:] -= shift
    return layout.project(out)


def negative_directions(data: ProblemData, layout: Layout, params: np.ndarray,
                        count: int) -> np.ndarray:
    """The negative ones among the ``count`` smallest eigenvectors of the dense ``D'``
    (lifted as in the certificate), as columns over all ``1 + n`` coordinates (zero on
    the fixed ones).  Not a bound: the directions in which a Burer-Monteiro factor can
    still descend (:func:`.burer_monteiro.escape`)."""
    import scipy.linalg

    _, keep, D, _ = _kept_dense(data, layout, params)
    if not np.isfinite(D).all() or count < 1:
        return np.zeros((1 + data.n, 0))
    values, vectors = scipy.linalg.eigh(D, subset_by_index=[0, min(count, D.shape[0]) - 1])
    negative = values < 0
    full = np.zeros((1 + data.n, int(negative.sum())))
    full[keep] = vectors[:, negative]
    return full


def best_corner(data: ProblemData, layout: Layout, params: np.ndarray) -> np.ndarray:
    """``params`` with the largest ``kappa_0`` for which ``D >= 0`` given the other
    entries (module docstring); unchanged when ``R`` is not positive definite in floating
    point (its Cholesky factorisation fails) or not finite.  With the lifted equality of
    stably active neurons (:mod:`.lift`) ``kappa_0`` enters ``D'`` as ``- kappa_0 u u^T``
    (``u = P_N e_0``): in the basis of a Householder reflection ``H u = ||u|| e_0`` the
    same Schur complement gives the rise, divided by ``||u||^2``."""
    params, _, D, u = _kept_dense(data, layout, params)
    if not np.isfinite(D).all():
        return params
    B = _reflected(D, u)
    try:
        factor = np.linalg.cholesky(B[1:, 1:])
    except np.linalg.LinAlgError:
        return params
    half = np.linalg.solve(factor, B[1:, 0])          # R^{-1} = L^-T L^-1
    out = params.copy()
    out[layout.kappa_start] += (B[0, 0] - float(half @ half)) / float(u @ u)
    return layout.project(out)


def _negative_ritz(blocks, count: int, steps: int):
    """The negative ones among the ``count`` smallest Ritz pairs of the matrix of
    ``blocks`` after ``steps`` Lanczos steps: values (j,) and unit vectors (j, m)."""
    import torch

    from solvers.backends.fo_sdp.blocks import block_matvec
    from solvers.linalg import lanczos

    apply, m = block_matvec(blocks)
    start = torch.randn((1, m), generator=torch.Generator().manual_seed(m),
                        dtype=torch.float64)
    values, vectors = lanczos(apply, start, min(steps, m), count)
    values, vectors = values[0].numpy(), vectors[0].numpy()
    negative = values < 0
    return values[negative], vectors[negative]


def _majorant(values: np.ndarray, vectors: np.ndarray, weights: np.ndarray, rule: str,
              chunk: int = 512) -> np.ndarray:
    """A diagonal ``r`` with ``diag(r) >= N = sum_j |w_j| u_j u_j^T`` (module
    docstring; ``weights``: ``d`` on the kept coordinates, 1 for the corner)."""
    if rule == "weighted":
        root = np.sqrt(weights)
        S = np.abs(vectors) @ root                                   # (j,)
        return (np.abs(vectors) * (-values * S)[:, None]).sum(0) / root
    if rule != "rows":
        raise ValueError(f"unknown shift rule {rule!r}")
    A = vectors.T * np.sqrt(-values)                                 # N = A A^T
    return np.concatenate([np.abs(A[i:i + chunk] @ A.T).sum(1)
                           for i in range(0, A.shape[0], chunk)])


def lowrank_shift(data: ProblemData, layout: Layout, params: np.ndarray, count: int = 32,
                  steps: int = 200, rounds: int = 3, rule: str = "weighted") -> np.ndarray:
    """``params`` with ``kappa - r`` for the low-rank negative part of ``D`` (module
    docstring), matrix-free; unchanged where Lanczos finds no negative Ritz value."""
    from solvers.backends.fo_sdp.blocks import kept_blocks
    from solvers.backends.fo_sdp.certificate import lagrangian_blocks

    out = layout.project(np.asarray(params, np.float64)).copy()
    keep = np.concatenate([[True], data.d > 0])
    weights = np.concatenate([[1.0], data.d[data.d > 0]])
    for _ in range(rounds):
        lams, kappa = split_numpy(layout, data, out)
        blocks = kept_blocks(data, lagrangian_blocks(data, lams, kappa, absolute=False))
        if not (np.isfinite(blocks.corner) and all(np.isfinite(d).all() for d in blocks.diag)):
            break
        values, vectors = _negative_ritz(blocks, count, steps)
        if values.size == 0:
            break
        shift = np.zeros(1 + data.n)
        shift[keep] = _majorant(values, vectors, weights, rule)
        out[layout.kappa_start:] -= shift
        out = layout.project(out)
    return out


def improve(data: ProblemData, layout: Layout, params: np.ndarray, limit: int,
            bound: float | None = None, matrix_free: bool = False) -> tuple[float, np.ndarray]:
    """``(bound, duals)``: the better-certified of ``params`` (whose certified bound may
    be given as ``bound``), its :func:`gershgorin_shift` and that one's
    :func:`best_corner` (``1 + n <= limit``) or, when
    ``matrix_free``, above the limit its :func:`lowrank_shift` and the ``rows`` shift of
    its inner-SDP ``kappa`` (:func:`.kappa.inner_duals`, 1,000 steps); off by default:
    on the 21,732-ReLU conv net they take 20-80 s each, so the Burer-Monteiro stage
    asks for them every few outer iterations only; above the limit without it the
    duals are returned unchanged."""
    params = layout.project(np.asarray(params, np.float64))
    if bound is None:
        bound = certify(data, layout, params, limit)
    if data.n + 1 <= limit:
        shifted = gershgorin_shift(data, layout, params)
        candidates = [shifted, best_corner(data, layout, shifted)]
    elif matrix_free:
        from solvers.backends.fo_sdp.kappa import inner_duals

        candidates = [lowrank_shift(data, layout, params),
                      lowrank_shift(data, layout, inner_duals(data, layout, params, steps=1000),
                                    rule="rows")]
    else:
        return bound, params
    for other in candidates:
        value = certify(data, layout, other, limit)
        if value > bound:
            bound, params = value, other
    return bound, params
