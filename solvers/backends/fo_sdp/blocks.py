r"""A rigorous lower bound on ``lambda_min(D)`` at the cost of the layer blocks.

``D`` (fixed coordinates dropped) is block tridiagonal over the layers plus its first
row and column (:class:`~solvers.backends.fo_sdp.certificate.Blocks`): layer blocks
are *diagonal* (the only quadratic terms of the Lagrangian are ``gamma a_i^2`` and
``gamma a_i (W h)_i``, so a layer's block holds ``-gamma rad^2 - kappa`` on its
diagonal and nothing else; tested against the matrix-free operator), only
consecutive layers are coupled (``off[k]``), and the corner couples to everything.

Elimination order.  Layers of one parity (all even or all odd ``k``, whichever leaves
the cheaper rest) are not coupled to each other, so they go first: their Cholesky
factor is the square root of their diagonal, ``R_ke = A_ke / sqrt(a_k)`` for the
neighbours ``e = k +- 1``, and their Schur complement adds ``-R_ke^T R_ke'`` to the
blocks of the *other* parity (a dense ``n_e x n_e'``; for ``e = k - 1, e' = k + 1``
a new coupling between layers two apart).  What remains is again block tridiagonal
over the other parity, with dense diagonal blocks, plus the corner, and is factored
by the block Cholesky

    S_j = A_jj - (updates),  R_jj = chol(S_j),  R_{j,j'} = R_jj^{-T} C_{j'j}^T,
    S_{j'} -= R_{j,j'}^T R_{j,j'},
    r_j = R_jj^{-T} (row_j - R_{j-,j}^T r_{j-}),  rho^2 = A_cc - sum ||r||^2

(``j'`` the next remaining layer).  The cost is ``O(sum_e n_e^3 + sum_k n_k n_e^2)``
over the remaining layers ``e`` and eliminated layers ``k``: a 784-21,632-100 conv
network costs one ``784 x 784`` and one ``100 x 100`` Cholesky plus the products
``R_k0^T R_k0`` (``21,632 x 784``), never the ``21,632 x 21,632`` block.  Coupling
blocks may be dense arrays or scipy sparse matrices.

The argument (Demmel 1989; Higham, *Accuracy and Stability of Numerical
Algorithms*, Thm 10.3; Rump 2006, *Verification of positive definiteness*).  The
elimination above is the Cholesky factorisation of the symmetric permutation
``P^T A P`` (same eigenvalues), and computes every entry of ``R`` by the Cholesky
recurrence ``r_ij = (a_ij - sum_{k<i} r_ki r_kj) / r_ii`` with the sum in *some*
order: terms that are zero by the structure are zero in floating point too (a
product ``0 * x`` is exact, sparse products skip them); a first-parity entry is
``a_ij / sqrt(a_ii)`` by a division, as in the recurrence; LAPACK's
``potrf``/``trsm``, the Schur products and the separate subtractions only change the
order (Higham, Lemma 8.4 holds for any order of evaluation; conventional, not
Strassen-like, BLAS).  If it
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
import scipy.sparse as sp

from solvers.backends.fo_sdp.certificate import (
    Blocks,
    lagrangian_blocks,
    operation_count,
)
from solvers.backends.fo_sdp.problem import EPS, ProblemData

__all__ = ["block_cholesky", "block_flops", "block_lower_eigenvalue", "block_matvec",
           "first_parity", "kept_blocks", "lower_eigenvalue"]

log = logging.getLogger(__name__)


def kept_blocks(data: ProblemData, blocks: Blocks) -> Blocks:
    """The blocks restricted to the coordinates that are not fixed (``d > 0``)."""
    starts = np.concatenate([[0], np.cumsum(data.sizes)]).astype(int)
    keep = [data.d[a:b] > 0 for a, b in zip(starts[:-1], starts[1:])]
    return Blocks(blocks.corner, [r[m] for r, m in zip(blocks.row, keep)],
                  [d[m] for d, m in zip(blocks.diag, keep)],
                  [o[np.ix_(keep[k + 1], keep[k])] for k, o in enumerate(blocks.off)])


def _divide_rows(M, r: np.ndarray):
    """``M_ij / r_i`` (a division per entry, as in the Cholesky recurrence); ``M`` dense
    or scipy sparse (kept sparse)."""
    if sp.issparse(M):
        M = M.tocsr(copy=True)
        M.data = M.data / np.repeat(r, np.diff(M.indptr))
        return M
    return np.asarray(M) / r[:, None]


def _gram(A, B) -> np.ndarray:
    """``A^T B`` as a dense array (``A``, ``B`` dense or sparse)."""
    out = A.T @ B
    return out.toarray() if sp.issparse(out) else np.asarray(out)


def _square(M) -> float:
    """``||M||_F^2`` of a dense or sparse matrix."""
    values = M.data if sp.issparse(M) else M
    return float(np.sum(values * values))


def _max_abs(M) -> float:
    """``max |M_ij|`` (0 when empty) of a dense or sparse matrix."""
    values = M.data if sp.issparse(M) else np.asarray(M)
    return float(np.abs(values).max(initial=0.0))


def _flops(sizes, parity: int) -> float:
    """Flops of :func:`block_cholesky` eliminating ``parity`` first (dense couplings):
    the Schur products ``2 n_k (n_{k-1} + n_{k+1})^2`` and the dense chain
    ``n_e^3 / 3 + n_e^2 n_{e+2}`` per remaining layer."""
    size = lambda k: sizes[k] if 0 <= k < len(sizes) else 0  # noqa: E731
    total = 0.0
    for k, n in enumerate(sizes):
        if k % 2 == parity:
            total += 2.0 * n * (size(k - 1) + size(k + 1)) ** 2
        else:
            total += n ** 3 / 3.0 + 2.0 * n * n * size(k + 2)
    return total


def first_parity(sizes) -> int:
    """The parity of the layers eliminated first: the cheaper one (:func:`_flops`)."""
    return int(_flops(sizes, 1) < _flops(sizes, 0))


def block_flops(sizes) -> float:
    """Flops of one block factorisation for layers of ``sizes`` (the cheaper parity)."""
    return min(_flops(sizes, 0), _flops(sizes, 1))


def _eliminate_first(blocks: Blocks, s: float, parity: int):
    """Factor the layers of ``parity`` (diagonal, mutually uncoupled) and form the Schur
    complement on the others: ``(S, couple, row, square, column)`` with ``S[e]`` the
    dense diagonal blocks, ``couple[e]`` the block between layers ``e + 2`` (rows) and
    ``e``, ``row[e]`` the updated first row; None when a pivot is not positive."""
    count = len(blocks.diag)
    S = {e: np.diag(blocks.diag[e] - s) for e in range(count) if e % 2 != parity}
    row = {e: np.array(blocks.row[e], dtype=float) for e in S}
    couple, square, column = {}, 0.0, 0.0
    for k in range(parity, count, 2):
        a = blocks.diag[k] - s
        if not np.all(a > 0):
            return None
        r = np.sqrt(a)
        c = blocks.row[k] / r
        square, column = square + float(np.sum(r * r)), column + float(c @ c)
        left = _divide_rows(blocks.off[k - 1], r) if k > 0 else None          # R_{k,k-1}
        right = _divide_rows(blocks.off[k].T, r) if k + 1 < count else None   # R_{k,k+1}
        for e, R in ((k - 1, left), (k + 1, right)):
            if R is not None:
                S[e] -= _gram(R, R)
                row[e] -= np.asarray(R.T @ c).ravel()
                square += _square(R)
        if left is not None and right is not None:
            couple[k - 1] = -_gram(right, left)
    return S, couple, row, square, column


def block_cholesky(blocks: Blocks, s: float, parity: int | None = None) -> float | None:
    """``||Rhat||_F^2`` of the Cholesky factor of ``D - sI`` in the order of the module
    docstring (layers of ``parity`` first, default :func:`first_parity`), or None when
    a pivot is not positive (the factorisation does not complete)."""
    parity = first_parity([d.size for d in blocks.diag]) if parity is None else parity
    first = _eliminate_first(blocks, s, parity)
    if first is None:
        return None
    S, couple, row, square, column = first
    previous, carried = None, None
    for e in sorted(S):
        block = S[e] if previous is None else S[e] - previous.T @ previous
        if block.shape[0] == 0:
            previous, carried = None, None
            continue
        try:
            Lk = np.linalg.cholesky(block)              # S = Lk Lk^T, R_ee = Lk^T
        except np.linalg.LinAlgError:
            return None
        rhs = row[e] if carried is None else row[e] - previous.T @ carried
        carried = scipy.linalg.solve_triangular(Lk, rhs, lower=True)
        column += float(carried @ carried)
        square += float(np.sum(Lk * Lk))
        previous = (scipy.linalg.solve_triangular(Lk, couple[e].T, lower=True)
                    if e in couple else None)
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
    total += sum(2 * _square(o) for o in absolute.off)
    return (count + 1) * EPS * math.sqrt(total) * (1 + 4 * m * EPS)


def block_matvec(blocks: Blocks):
    """``v -> D v`` for rows ``v`` (b, m) from the blocks (torch in, torch out)."""
    import torch

    sizes = [d.size for d in blocks.diag]
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    diag = t(np.concatenate([[blocks.corner]] + blocks.diag))
    row = t(np.concatenate(blocks.row))
    off = [o if sp.issparse(o) else t(o) for o in blocks.off]

    def product(o, X, transpose: bool):
        """``X o^T`` (``X o`` when ``transpose``) for rows ``X``; ``o`` torch or scipy."""
        if sp.issparse(o):
            m = o.T if transpose else o
            return t(np.asarray(m @ X.numpy().T).T)
        return X @ o if transpose else X @ o.T

    def apply(V):
        out = diag * V
        out[:, 0] += V[:, 1:] @ row
        out[:, 1:] += V[:, :1] * row
        parts = list(torch.split(V[:, 1:], sizes, dim=1))
        outs = list(torch.split(out[:, 1:], sizes, dim=1))
        for k, o in enumerate(off):
            outs[k + 1] += product(o, parts[k], False)
            outs[k] += product(o, parts[k + 1], True)
        return torch.cat([out[:, :1]] + outs, dim=1)
    return apply, 1 + sum(sizes)


def _estimate(blocks: Blocks, steps: int = 120) -> float:
    """A Lanczos estimate (from above) of ``lambda_min`` of the restricted ``D``."""
    import torch

    from solvers.linalg import lanczos

    apply, m = block_matvec(blocks)
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
    values = [blocks.corner] + [_max_abs(x) for x in blocks.diag + blocks.row + blocks.off]
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
