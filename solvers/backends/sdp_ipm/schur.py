r"""The constraint operator of :class:`~solvers.backends.sdp_ipm.problem.MultiplierSdp`
and its Schur complement, in torch.

Constraint ``c`` (a neuron multiplier) has ``A_c = sym(u_c v_c^T)``; ``kappa_i`` has
``A = E_ii``.  ``A(Y)_c = u_c^T Y v_c`` (``Y`` symmetric), ``A(Y)_kappa = diag(Y)``,
``A^T y = sym(U diag(y_N) V^T) + diag(y_kappa)``.  The Schur complement of the HKM
direction, ``M_cd = tr(A_c X A_d Z^-1)``, expands (four terms of ``u v^T`` products) to::

    M_NN = (T + T^T + (V^T X V) o (U^T Zi U) + (U^T X U) o (V^T Zi V)) / 4,
           T = (V^T X U) o (U^T Zi V)
    M_Nk[c, i] = ((Zi U)_ic (X V)_ic + (Zi V)_ic (X U)_ic) / 2
    M_kk = X o Zi

(``o`` the entrywise product): ``O(m s^2 + m^2 s)`` in matrix products, then one
``O(m^3)`` Cholesky.  The linear (sign) block adds ``x_j / z_j`` on the diagonal.
"""

from __future__ import annotations

__all__ = ["Operator"]


class Operator:
    """``U, V`` (``s x m_N``) on a torch device; see the module docstring."""

    def __init__(self, U, V):
        self.U, self.V = U, V
        self.m = U.shape[1]

    def apply(self, Y):
        """``A(Y)`` for symmetric ``Y``."""
        import torch

        return torch.cat([(self.U * (Y @ self.V)).sum(0), torch.diagonal(Y)])

    def apply_products(self, YV):
        """``A(Y)`` from ``Y V`` already computed (neuron part only)."""
        return (self.U * YV).sum(0)

    def adjoint(self, y):
        """``A^T y`` (symmetric ``s x s``)."""
        import torch

        half = (self.U * y[:self.m]) @ self.V.T
        return 0.5 * (half + half.T) + torch.diag(y[self.m:])

    def schur(self, X, Zi):
        """``M`` (SDP part) and the products ``X V``, ``Zi V`` (reused by the caller)."""
        import torch

        U, V = self.U, self.V
        XU, XV, ZU, ZV = X @ U, X @ V, Zi @ U, Zi @ V
        T = (V.T @ XU) * (U.T @ ZV)
        nn = 0.25 * (T + T.T + (V.T @ XV) * (U.T @ ZU) + (U.T @ XU) * (V.T @ ZV))
        nk = 0.5 * (ZU * XV + ZV * XU).T
        kk = X * Zi
        M = torch.cat([torch.cat([nn, nk], 1), torch.cat([nk.T, kk], 1)], 0)
        return M, XV, ZV
