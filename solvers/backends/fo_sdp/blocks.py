r"""A rigorous lower bound on ``lambda_min(D)`` at the cost of the layer blocks.

``D`` (fixed coordinates dropped) is block tridiagonal over the layers plus its first
row and column (:class:`~solvers.backends.fo_sdp.certificate.Blocks`): layer blocks
are diagonal, only consecutive layers are coupled (``off[k]``), and the corner couples
to everything.  Ordered ``[layer 0, ..., layer L, corner]``, the Cholesky factor
``R`` (``A = R^T R``, upper) of ``A = D - sI`` has no fill outside the blocks
``R_kk``, ``R_{k,k+1}`` and the last column, so the block Cholesky

    S_0 = A_00,  R_kk = chol(S_k),  R_{k,k+1} = R_kk^{-T} off[k]^T,
    S_{k+1} = A_{k+1,k+1} - R_{k,k+1}^T R_{k,k+1},
    r_k = R_kk^{-T} (row_k - R_{k-1,k}^T r_{k-1}),  rho^2 = A_cc - sum_k ||r_k||^2

costs ``O(sum n_k^3 + n_k^2 n_{k+1})`` time and ``O(sum n_k n_{k+1})`` memory: the layer
blocks, never the whole matrix.

The argument (Demmel 1989; Higham, *Accuracy and Stability of Numerical
Algorithms*, Thm 10.3; Rump 2006, *Verification of positive definiteness*).  The
block algorithm computes every entry of ``R`` by the Cholesky recurrence
``r_ij = (a_ij - sum_{k<i} r_ki r_kj) / r_ii`` (terms that are zero by the structure
are zero in floating point too; LAPACK's ``potrf``/``trsm`` and the products only
change the order of summation, assuming conventional, not Strassen-like, BLAS).  If it
runs to completion on the float64 matrix ``Ahat`` (all pivots positive), then
``Rhat^T Rhat = Ahat + E`` with ``|E| <= gamma_{m+1} |Rhat^T| |Rhat|`` (``m = 1 + n`` bounds
every inner product's length, ``gamma_j = j u / (1 - j u)``), so
``||E||_2 <= gamma_{m+1} ||Rhat||_F^2``.  With ``A_true = D_true - sI`` and ``Ahat`` its
float64 version, ``|A_true - Ahat| <= (K + 1) u (|D|_abs + |s| I)`` entrywise (``K`` the
longest rounding chain behind an entry of ``D``, :func:`operation_count`; one more
rounding for the shift), hence

    A_true = Rhat^T Rhat - E + (A_true - Ahat) >= -(gamma_{m+1} ||Rhat||_F^2 + delta) I,
    delta = (K + 1) u ||(|D|_abs + |s| I)||_F,

i.e. ``lambda_min(D_true) >= s - gamma_{m+1} ||Rhat||_F^2 - delta``.  The norms are
computed in float64 and inflated by ``1 + 4 m u`` (their own rounding).  The shift
``s`` is an estimate of ``lambda_min`` (Lanczos, :func:`solvers.linalg.lanczos`, an
upper estimate) minus a gap that grows tenfold after each failed factorisation.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.linalg

from solvers.backends.fo_sdp.certificate import Blocks, lagrangian_blocks, operation_count
from solvers.backends.fo_sdp.problem import EPS, ProblemData

__all__ = ["block_lower_eigenvalue", "lower_eigenvalue", "block_cholesky", "kept_blocks"]

log = logging.getLogger(__name__)


def kept_blocks(data: ProblemData, blocks: Blocks) -> Blocks:
    """The blocks restricted to the coordinates that are not fixed (``d > 0``)."""
    starts = np.concatenate([[0], np.cumsum(data.sizes)]).astype(int)
    keep = [data.d[a:b] > 0 for a, b in zip(starts[:-1], starts[1:])]
    return Blocks(blocks.corner, [r[m] for r, m in zip(blocks.row, keep)],
                  [d[m] for d, m in zip(blocks.diag, keep)],
                  [o[np.ix_(keep[k + 1], keep[k])] for k, o in enumerate(blocks.off)])


def block_cholesky(blocks: Blocks, s: float) -> float | None:
    """``||Rhat||_F^2`` of the block Cholesky factor of ``D - sI`` (module docstring), or
    None when a pivot is not positive (the factorisation does not complete)."""
    square, column, previous, carried = 0.0, 0.0, None, None
    for k, diag in enumerate(blocks.diag):
        S = np.diag(diag - s)
        if previous is not None:
            S -= previous.T @ previous
        try:
            Lk = np.linalg.cholesky(S)                  # S = Lk Lk^T, R_kk = Lk^T
        except np.linalg.LinAlgError:
            return None
        rhs = blocks.row[k] if carried is None else blocks.row[k] - previous.T @ carried
        carried = scipy.linalg.solve_triangular(Lk, rhs, lower=True)
        column += float(carried @ carried)
        square += float(np.sum(Lk * Lk))
        previous = (scipy.linalg.solve_triangular(Lk, blocks.off[k].T, lower=True)
                    if k < len(blocks.off) else None)
        if previous is not None:
            square += float(np.sum(previous * previous))
    pivot = blocks.corner - s - column                  # R_cc^2
    if not (pivot > 0 and math.isfinite(square)):
        return None
    return square + column + pivot


def _forming_error(absolute: Blocks, s: float, count: int, m: int) -> float:
    """``delta = (K + 1) u ||(|D|_abs + |s| I)||_F`` (module docstring)."""
    total = (abs(absolute.corner) + abs(s)) ** 2
    total += sum(float(np.sum((np.abs(d) + abs(s)) ** 2)) for d in absolute.diag)
    total += sum(2 * float(np.sum(r * r)) for r in absolute.row)
    total += sum(2 * float(np.sum(o * o)) for o in absolute.off)
    return (count + 1) * EPS * math.sqrt(total) * (1 + 4 * m * EPS)


def _matvec(blocks: Blocks):
    """``v -> D v`` for rows ``v`` (b, m) from the blocks (torch in, torch out)."""
    import torch

    sizes = [d.size for d in blocks.diag]
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    diag = t(np.concatenate([[blocks.corner]] + blocks.diag))
    row, off = t(np.concatenate(blocks.row)), [t(o) for o in blocks.off]

    def apply(V):
        out = diag * V
        out[:, 0] += V[:, 1:] @ row
        out[:, 1:] += V[:, :1] * row
        parts = list(torch.split(V[:, 1:], sizes, dim=1))
        outs = list(torch.split(out[:, 1:], sizes, dim=1))
        for k, o in enumerate(off):
            outs[k + 1] += parts[k] @ o.T
            outs[k] += parts[k + 1] @ o
        return torch.cat([out[:, :1]] + outs, dim=1)
    return apply, 1 + sum(sizes)


def _estimate(blocks: Blocks, steps: int = 120) -> float:
    """A Lanczos estimate (from above) of ``lambda_min`` of the restricted ``D``."""
    import torch

    from solvers.linalg import lanczos

    apply, m = _matvec(blocks)
    start = torch.ones((1, m), dtype=torch.float64)
    values, _ = lanczos(apply, start, min(steps, m), 1)
    return float(values[0, 0])


def block_lower_eigenvalue(data: ProblemData, lams, kappa: np.ndarray,
                           estimate: float | None = None) -> float:
    """A rigorous ``q <= lambda_min(D)`` for the duals ``lams, kappa`` (fixed coordinates
    dropped), or ``-inf``."""
    blocks = kept_blocks(data, lagrangian_blocks(data, lams, kappa, absolute=False))
    absolute = kept_blocks(data, lagrangian_blocks(data, lams, kappa, absolute=True))
    return lower_eigenvalue(blocks, absolute, operation_count(data), estimate)


def lower_eigenvalue(blocks: Blocks, absolute: Blocks, count: int,
                     estimate: float | None = None, tries: int = 10) -> float:
    """A rigorous lower bound on ``lambda_min`` of the matrix of ``blocks``, whose
    entries carry rounding errors below ``count * u * absolute`` (module docstring)."""
    values = [blocks.corner] + [np.abs(x).max(initial=0.0) for x in blocks.diag + blocks.row]
    values += [np.abs(x).max(initial=0.0) for x in blocks.off]
    if not all(math.isfinite(v) for v in values):
        return -math.inf
    lam = _estimate(blocks) if estimate is None else float(estimate)
    m = 1 + sum(d.size for d in blocks.diag)
    gamma = (m + 1) * EPS / (1 - (m + 1) * EPS)
    gap = 1e-12 * max(1.0, abs(lam), max(abs(v) for v in values))
    for _ in range(tries):
        s = lam - gap
        square = block_cholesky(blocks, s)
        if square is not None:
            error = gamma * square * (1 + 4 * m * EPS) + _forming_error(absolute, s, count, m)
            return s - 1.01 * error
        gap *= 10.0
    log.info("fo-sdp: block certificate failed (estimate %.6g)", lam)
    return -math.inf
