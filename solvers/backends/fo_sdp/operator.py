r"""The one matrix-free operator of fo-sdp: ``D = Mt(lam) - diag(kappa)`` for a batch.

For ``B`` problems with the same layer sizes every per-problem vector has a leading
batch dimension; a call works on a subset ``idx`` (``b`` problems) set by
:meth:`Operator.set_params`, with vectors ``V`` of shape ``(b, m, 1 + n)``.  A single
problem is a batch of one.  Products with ``D`` need one forward pass (``W_k u_k``)
and one backward pass (``W_k^T y_k``) per layer: with ``u = T v`` (``u_0 = v_0``,
``u_k = ctr_k v_0 + rad_k v_k``) and the Lagrangian ``m00 + g^T x + x^T H x``
(``H`` holds ``-gamma_k a_k^2 + gamma_k a_k (W_k h_k)`` per layer),
``D v = T^T M u - kappa * v``.  The Rayleigh quotient ``q = v^T D v`` is affine in the
duals; its gradient (scaled parameters) is
``dq/dalpha_k = -u_0 a / rho``, ``dq/dbeta_k = u_0 (zh - a) / rho``,
``dq/dgamma_k = a (zh - a) / rho^2``, ``dq/dtheta_k = u_0 (a - s (zh - l' u_0)) / rho``,
``dq/dkappa = -v^2`` (``zh = W_k u_k + b_k u_0``, ``a = u_{k+1}``).

Weights shared by the whole batch stay as given (a torch sparse CSR copy of a scipy
sparse matrix, so convolutional layers never become dense); otherwise they are
stacked dense ``(B, n_{k+1}, n_k)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from solvers.backends.fo_sdp.problem import Layout, ProblemData

__all__ = ["Operator"]


def _same(a, b) -> bool:
    if sp.issparse(a) != sp.issparse(b) or a.shape != b.shape:
        return False
    return (a != b).nnz == 0 if sp.issparse(a) else bool(np.array_equal(a, b))


class Operator:
    """Matrix-free ``D`` and its supergradients for a batch of problems, in torch."""

    def __init__(self, datas: list[ProblemData], layouts: list[Layout], device, dtype):
        import torch

        self.torch, self.layout, self.sizes = torch, layouts[0], list(datas[0].sizes)
        self.t = lambda a: torch.as_tensor(np.array(a, np.float64), dtype=dtype,  # noqa: E731
                                           device=device)
        stack = lambda get: [self.t(np.stack([get(d)[k] for d in datas]))  # noqa: E731
                             for k in range(len(get(datas[0])))]
        self.b, self.ctr, self.rad = (stack(lambda d: d.biases), stack(lambda d: d.ctr),
                                      stack(lambda d: d.rad))
        self.slope, self.offset = stack(lambda d: d.slope), stack(lambda d: d.cut_offset)
        self.rho = stack(lambda d: d.rho)
        self.c = self.t(np.stack([d.c for d in datas]))
        self.c0 = self.t([d.c0 for d in datas])
        self.d = self.t(np.stack([d.d for d in datas]))
        self.keep = self.t(np.stack([np.concatenate([[1.0], (d.d > 0).astype(float)])
                                     for d in datas]))
        self.free = torch.as_tensor(np.stack([lay.free for lay in layouts]), device=device)
        self.nonneg = torch.as_tensor(np.stack([lay.nonneg for lay in layouts]), device=device)
        self.W, self.WT = [], []
        for k in range(len(datas[0].weights)):
            ws = [d.weights[k] for d in datas]
            if all(_same(ws[0], w) for w in ws[1:]):
                self.W.append(self._tensor(ws[0], device, dtype))
                self.WT.append(self._tensor(ws[0].T.tocsr(), device, dtype)
                               if sp.issparse(ws[0]) else None)
            else:
                dense = [w.toarray() if sp.issparse(w) else w for w in ws]
                self.W.append(self.t(np.stack(dense)))
                self.WT.append(None)
        self.idx = torch.arange(len(datas), device=device)

    @staticmethod
    def _tensor(w, device, dtype):
        """A torch copy of ``W`` (sparse CSR when ``w`` is scipy sparse)."""
        import torch

        if not sp.issparse(w):
            return torch.as_tensor(np.array(w), dtype=dtype, device=device)
        with warnings.catch_warnings():          # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(torch.as_tensor(w.indptr.astype(np.int64)),
                                           torch.as_tensor(w.indices.astype(np.int64)),
                                           torch.as_tensor(w.data), size=w.shape, dtype=dtype,
                                           device=device)

    def project(self, p, idx=None):
        """Signs and masks of the duals ``p`` (b, size): ``alpha, beta, theta >= 0``."""
        idx = self.idx if idx is None else idx
        p = p.masked_fill(~self.free[idx], 0.0)
        return self.torch.where(self.nonneg[idx], p.clamp(min=0.0), p)

    def _sparse(self, M, X):
        """``X @ M^T`` for a torch sparse ``M`` and ``X`` (..., n)."""
        flat = X.reshape(-1, X.shape[-1])
        return (M @ flat.T.contiguous()).T.reshape(*X.shape[:-1], M.shape[0])

    def fwd(self, k: int, U):
        """``W_k u`` for ``U`` (b, m, n_k)."""
        W = self.W[k]
        if self.WT[k] is not None:
            return self._sparse(W, U)
        return U @ (W if W.dim() == 2 else W[self.idx]).transpose(-1, -2)

    def bwd(self, k: int, Y):
        """``W_k^T y`` for ``Y`` (b, m, n_{k+1})."""
        W = self.W[k]
        if self.WT[k] is not None:
            return self._sparse(self.WT[k], Y)
        return Y @ (W if W.dim() == 2 else W[self.idx])

    def set_params(self, p, idx=None) -> None:
        """Duals ``p`` (b, size) of the problems ``idx`` (all when None): multipliers per
        layer, ``kappa``, and the linear part ``m00, g`` of the Lagrangian."""
        torch, layout = self.torch, self.layout
        self.idx = self.idx.new_tensor(range(p.shape[0])) if idx is None else idx
        idx = self.idx
        self.lams = []
        for k in range(len(self.sizes) - 1):
            alpha, beta, gamma, theta = layout.split(p.T, k)
            r = self.rho[k][idx]
            self.lams.append((alpha.T / r, beta.T / r, gamma.T / (r * r), theta.T / r))
        self.kappa = p[:, layout.kappa_start:]
        g = [torch.zeros_like(r[idx]) for r in self.rad]
        g[-1] = g[-1] + self.c[idx]
        m00 = self.c0[idx].clone()
        for k, (alpha, beta, gamma, theta) in enumerate(self.lams):
            ts = theta * self.slope[k][idx]
            b = self.b[k][idx]
            g[k + 1] = g[k + 1] - alpha - beta + gamma * b + theta
            g[k] = g[k] + self.bwd(k, (beta - ts)[:, None])[:, 0]
            m00 = m00 + (beta * b).sum(1) - (ts * (b - self.offset[k][idx])).sum(1)
        self.m00, self.g = m00, g

    def _lift(self, V):
        v0 = V[..., :1]
        parts = self.torch.split(V[..., 1:], self.sizes, dim=-1)
        return v0, [c[self.idx, None] * v0 + r[self.idx, None] * x
                    for c, r, x in zip(self.ctr, self.rad, parts)]

    def apply(self, V):
        """``D V`` per problem, ``V`` (b, m, 1+n)."""
        v0, u = self._lift(V)
        w0 = self.m00[:, None, None] * v0 + 0.5 * sum(
            (uk * gk[:, None]).sum(-1, keepdim=True) for uk, gk in zip(u, self.g))
        w = [0.5 * gk[:, None] * v0 for gk in self.g]
        for k, (_, _, gamma, _) in enumerate(self.lams):
            gm = gamma[:, None]
            w[k + 1] = w[k + 1] - gm * u[k + 1] + 0.5 * gm * self.fwd(k, u[k])
            w[k] = w[k] + 0.5 * self.bwd(k, gm * u[k + 1])
        out0 = w0 + sum((wk * ck[self.idx, None]).sum(-1, keepdim=True)
                        for wk, ck in zip(w, self.ctr))
        out = self.torch.cat([out0] + [r[self.idx, None] * wk for r, wk in zip(self.rad, w)],
                             dim=-1)
        return out - self.kappa[:, None] * V

    def rayleigh(self, V):
        """Quotients (b, m) and gradients (b, m, size) of the unit rows of ``V`` (b, m, 1+n)."""
        u0, u = self._lift(V)
        q = self.m00[:, None] * u0[..., 0] ** 2 + u0[..., 0] * sum(
            (uk * gk[:, None]).sum(-1) for uk, gk in zip(u, self.g))
        grads = []
        for k, (alpha, beta, gamma, theta) in enumerate(self.lams):
            wu = self.fwd(k, u[k])
            zh, a = wu + self.b[k][self.idx, None] * u0, u[k + 1]
            q = q + (a * (wu - a) * gamma[:, None]).sum(-1)
            r = self.rho[k][self.idx, None]
            cut = u0 * (a - self.slope[k][self.idx, None]
                        * (zh - self.offset[k][self.idx, None] * u0))
            grads += [-u0 * a / r, u0 * (zh - a) / r, a * (zh - a) / (r * r), cut / r]
        q = q - (V * V * self.kappa[:, None]).sum(-1)
        grads.append(-(V * V))
        return q, self.torch.cat(grads, dim=-1)

    def gradient_sum(self, V):
        """``sum_j dq_j/dp`` over the rows of ``V`` (b, m, 1+n), i.e. ``rayleigh(V)[1].sum(1)``
        without forming the per-row gradients (sums over rows are batched products)."""
        u0, u = self._lift(V)
        u0t, square = u0.transpose(1, 2), (u0 * u0).sum(dim=(1, 2))[:, None]
        parts = []
        for k in range(len(self.lams)):
            zh, a = self.fwd(k, u[k]) + self.b[k][self.idx, None] * u0, u[k + 1]
            r = self.rho[k][self.idx]
            ua, uz = (u0t @ a)[:, 0], (u0t @ zh)[:, 0]
            cut = ua - self.slope[k][self.idx] * (uz - self.offset[k][self.idx] * square)
            parts += [-ua / r, (uz - ua) / r, (a * (zh - a)).sum(1) / (r * r), cut / r]
        parts.append(-(V * V).sum(1))
        return self.torch.cat(parts, dim=-1)

    def dense(self, rows):
        """``D`` of each problem restricted to the coordinates ``rows`` (b, m, m), formed
        by products with the identity's columns ``rows`` (after :meth:`set_params`)."""
        n1 = self.keep.shape[1]
        eye = self.keep.new_zeros((len(rows), n1))
        eye[self.torch.arange(len(rows)), rows] = 1.0
        D = self.apply(eye.expand(self.idx.numel(), -1, -1))[..., rows]
        return 0.5 * (D + D.transpose(1, 2))
