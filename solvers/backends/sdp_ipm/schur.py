r"""The constraint operator of :class:`~solvers.backends.sdp_ipm.problem.MultiplierSdp`
and its Schur complement, in torch.

Constraint ``c`` (a neuron multiplier) has ``A_c = sym(u_c v_c^T)`` with
``u_c = u0_c e_0 + ua_c e_{a_c}`` (row 0 and the neuron's own row: every constraint is a
rank-one or rank-two update of one row/column of ``P``) and ``v_c`` dense over the
previous layer; ``kappa_i`` has ``A = E_ii``.  So ``A(Y)_c = u_c^T Y v_c`` and
``A^T y = sym(U diag(y_N) V^T) + diag(y_kappa)`` cost ``O(m s)`` given ``Y``'s rows
``0`` and ``a_c`` (gathers).  The Schur complement of the HKM direction,
``M_cd = tr(A_c X A_d Z^-1)``, expands (four ``u v^T`` products) to::

    M_NN = (T + T^T + (V^T X V) o (U^T Zi U) + (U^T X U) o (V^T Zi V)) / 4,
           T = (V^T X U) o (U^T Zi V)
    M_Nk[c, i] = ((Zi U)_ic (X V)_ic + (Zi V)_ic (X U)_ic) / 2
    M_kk = X o Zi

(``o`` the entrywise product).  Dense work: ``X V``, ``Zi V`` (``2 s^2 m``) and
``V^T (X U)``, ``V^T (X V)``, ``V^T (Zi V)`` (``3 m^2 s``); everything with ``U`` is a
gather.  Then one ``O(m^3)`` Cholesky; the sign block adds ``x_j / z_j`` on the diagonal.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Operator"]


def _sparse_u(U: np.ndarray):
    """``(u0, ua, a)`` with ``U[:, c] = u0_c e_0 + ua_c e_{a_c}``; checks the pattern."""
    rest = np.abs(U[1:])
    a = 1 + np.argmax(rest, axis=0) if U.shape[0] > 1 else np.zeros(U.shape[1], int)
    cols = np.arange(U.shape[1])
    ua = U[a, cols] if U.shape[0] > 1 else np.zeros(U.shape[1])
    check = U.copy()
    check[0] = 0.0
    if U.shape[0] > 1:
        check[a, cols] = 0.0
    if np.abs(check).max(initial=0.0) > 0:
        raise ValueError("sdp-ipm: a constraint's u has more than rows 0 and its neuron")
    return U[0].copy(), ua, a


class Operator:
    """``U`` (as ``u0, ua, a``) and ``V`` (``s x m_N``) on a torch device."""

    def __init__(self, U: np.ndarray, V: np.ndarray, dtype, device):
        import torch

        u0, ua, a = _sparse_u(np.asarray(U))
        as_t = lambda v: torch.as_tensor(v, dtype=dtype, device=device)  # noqa: E731
        self.u0, self.ua, self.V = as_t(u0), as_t(ua), as_t(V)
        self.a = torch.as_tensor(a, dtype=torch.long, device=device)
        self.m = V.shape[1]

    def times_u(self, Y):
        """``Y U`` for ``Y`` (``s x s``), by gathering columns."""
        return Y[:, :1] * self.u0 + Y[:, self.a] * self.ua

    def u_times(self, Y):
        """``U^T Y`` for ``Y`` (``s x k``), by gathering rows."""
        return self.u0[:, None] * Y[0] + self.ua[:, None] * Y[self.a]

    def apply(self, Y):
        """``A(Y)`` for symmetric ``Y``: ``u_c^T Y v_c`` and ``diag(Y)``."""
        import torch

        uY = self.u_times(Y)                          # m x s
        return torch.cat([(uY * self.V.T).sum(1), torch.diagonal(Y)])

    def adjoint(self, y):
        """``A^T y`` (symmetric ``s x s``)."""
        import torch

        yn = y[:self.m]
        half = torch.zeros(self.V.shape[0], self.V.shape[0], dtype=y.dtype, device=y.device)
        half[0] = self.V @ (self.u0 * yn)
        half.index_add_(0, self.a, (self.ua * yn)[:, None] * self.V.T)
        return 0.5 * (half + half.T) + torch.diag(y[self.m:])

    def schur(self, X, Zi):
        """``M`` (SDP part) of the module docstring."""
        import torch

        V = self.V
        XU, ZU = self.times_u(X), self.times_u(Zi)
        XV, ZV = X @ V, Zi @ V
        T = (V.T @ XU) * self.u_times(ZV)
        nn = 0.25 * (T + T.T + (V.T @ XV) * self.u_times(ZU)
                     + self.u_times(XU) * (V.T @ ZV))
        nk = 0.5 * (ZU * XV + ZV * XU).T
        return torch.cat([torch.cat([nn, nk], 1), torch.cat([nk.T, X * Zi], 1)], 0)
