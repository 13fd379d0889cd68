"""SDP-cert training (Raghunathan, Steinhardt & Liang, ICLR 2018) as a loss term.

For a one-hidden-layer ReLU model and every unordered class pair ``(i, j)`` the
certificate of :mod:`relax.sdp_dual1` bounds the worst-case growth of ``f_j - f_i``
over the l-inf ball of radius ``eps``:

    G_ij = (1/4) [D lambda_max^+(M(v_ij, eps W) - diag(c_ij)) + 1^T max(c_ij, 0)].

The term is the cross-entropy of the *certified worst-case logits*
``z_j = f_j(x) - f_y(x) + G_yj`` (``z_y = 0``), i.e. the paper's loss on the upper
bound of the adversarial logits; it upper-bounds the adversarial cross-entropy.

``lambda_max`` is differentiated through its eigenvector: ``d lambda = u^T dA u``.
The term keeps the top eigenvectors ``u_ij`` (refreshed every ``refresh`` steps by
warm-started, shifted power iteration, batched over pairs) and uses the Rayleigh quotient ``u^T A u`` (``<= lambda_max``, equal at the eigenvector)
as the differentiable estimate; ``M`` is never formed in torch:
``u^T M u = 2 eps sum_k (W u_t)_k v_k (u_0 + u_u,k)``.

The dual variables ``c_ij`` are ``nn.Parameter`` s of this module.  The training
loop's optimiser only sees the model's parameters, so the term steps its own Adam
on ``c`` at the start of the next call (the gradients come from the loop's
``backward``); at each refresh ``c`` is also shifted by ``lambda_max`` (which
zeroes the eigenvalue term and never raises the certificate).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor, nn

from relax.errors import UsageError
from relax.sdp_dual1 import pair_matrix

__all__ = ["SDPCertLoss", "two_layer_weights"]

log = logging.getLogger(__name__)


def two_layer_weights(model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """The two ``nn.Linear`` of a ``Linear, ReLU, Linear`` model (flatten allowed)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    others = [m for m in model.modules() if not isinstance(m, (nn.Linear, nn.ReLU, nn.Flatten, nn.Sequential))]
    if len(linears) != 2 or len(relus) != 1 or others:
        raise UsageError("SDP-cert training needs a Linear-ReLU-Linear model")
    return linears[0], linears[1]


class SDPCertLoss(nn.Module):
    """``weight * CE(certified worst-case logits)`` at radius ``eps`` (ramped in over the
    first ``ramp`` fraction of training), plus ``(1 - weight) * CE(clean logits)``."""

    name = "sdp-cert"

    def __init__(self, eps: float, num_classes: int = 10, weight: float = 1.0, ramp: float = 0.3,
                 refresh: int = 1, lr_c: float = 1e-3, power_steps: int = 10):
        super().__init__()
        self.eps, self.weight, self.ramp, self.refresh = float(eps), float(weight), float(ramp), int(refresh)
        self.num_classes = num_classes
        pairs = [(i, j) for i in range(num_classes) for j in range(i + 1, num_classes)]
        self.register_buffer("pairs", torch.tensor(pairs, dtype=torch.long))
        self.c: nn.Parameter | None = None
        self.register_buffer("u", torch.zeros(0))
        self.lr_c, self.power_steps = lr_c, power_steps
        self._opt = None
        self._calls = 0

    # -- certificate ------------------------------------------------------------------
    def _matrices(self, W: np.ndarray, V: np.ndarray):
        for p, (i, j) in enumerate(self.pairs.tolist()):
            yield p, pair_matrix(W, V[j] - V[i], self.eps)

    @torch.no_grad()
    def _initialise(self, first: nn.Linear, last: nn.Linear) -> None:
        W = first.weight.detach().double().cpu().numpy()
        V = last.weight.detach().double().cpu().numpy()
        c = np.stack([np.abs(M).sum(axis=1) for _, M in self._matrices(W, V)])
        self.c = nn.Parameter(torch.as_tensor(c, dtype=first.weight.dtype, device=first.weight.device))
        self.u = torch.zeros_like(self.c)
        self._opt = torch.optim.Adam([self.c], lr=self.lr_c)

    def _matvec(self, W: Tensor, v: Tensor, u: Tensor) -> Tensor:
        """``(M(v, eps W) - diag(c)) u`` per pair without forming ``M``."""
        d = W.shape[1]
        u0, ut, uu = u[:, :1], u[:, 1:1 + d], u[:, 1 + d:]
        Wt = self.eps * (ut @ W.T)  # (P, m)
        out0 = (Wt * v).sum(1, keepdim=True)
        outt = self.eps * ((v * (u0 + uu)) @ W)
        outu = v * Wt
        return torch.cat([out0, outt, outu], 1) - self.c * u

    @torch.no_grad()
    def refresh_eigenvectors(self, first: nn.Linear, last: nn.Linear, steps: int = 30) -> Tensor:
        """Top eigenvectors of ``M - diag(c)`` per pair by power iteration on
        ``A + sigma I`` (``sigma`` a Gershgorin bound on ``-lambda_min``), warm started;
        then shifts ``c`` by the Rayleigh quotient (an estimate of ``lambda_max``)."""
        W, V = first.weight.detach(), last.weight.detach()
        v = V[self.pairs[:, 1]] - V[self.pairs[:, 0]]
        absW = W.abs()
        rows0 = self.eps * (absW.T @ v.abs().T).T.sum(1)  # row 0 of |M|
        sigma = (3 * rows0 + self.c.detach().abs().max(1).values)[:, None] + 1e-12
        u = self.u
        if not torch.any(u):
            u.copy_(torch.randn_like(u))
        u.div_(u.norm(dim=1, keepdim=True))
        for _ in range(steps):
            u.copy_(self._matvec(W, v, u) + sigma * u)
            u.div_(u.norm(dim=1, keepdim=True))
        lam = (u * self._matvec(W, v, u)).sum(1)
        self.c.data.add_(lam[:, None])
        return lam

    def gains(self, first: nn.Linear, last: nn.Linear) -> Tensor:
        """Differentiable ``G`` (num_classes x num_classes, symmetric, zero diagonal)."""
        W, V = first.weight, last.weight
        d = W.shape[1]
        u = self.u
        u0, ut, uu = u[:, 0], u[:, 1:1 + d], u[:, 1 + d:]
        v = V[self.pairs[:, 1]] - V[self.pairs[:, 0]]  # (P, m)
        Wu = ut @ W.T  # (P, m)
        quad = 2 * self.eps * (Wu * v * (u0[:, None] + uu)).sum(1)
        rayleigh = quad - (self.c * u * u).sum(1)
        D = u.shape[1]
        cert = 0.25 * (D * torch.relu(rayleigh) + torch.relu(self.c).sum(1))
        G = W.new_zeros(self.num_classes, self.num_classes)
        G = G.index_put((self.pairs[:, 0], self.pairs[:, 1]), cert)
        return G + G.T

    # -- LossTerm ----------------------------------------------------------------------
    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:  # type: ignore[override]
        first, last = two_layer_weights(model)
        if self.c is None:
            self._initialise(first, last)
        elif self.c.grad is not None:  # the loop's backward filled it: step the duals
            self._opt.step()
            self._opt.zero_grad(set_to_none=True)
        if self._calls % self.refresh == 0:
            self.refresh_eigenvectors(first, last, 100 if self._calls == 0 else self.power_steps)
        self._calls += 1
        scale = min(1.0, progress / self.ramp) if self.ramp > 0 else 1.0
        logits = model(x)
        clean = nn.functional.cross_entropy(logits, y)
        G = self.gains(first, last)
        worst = logits - logits.gather(1, y[:, None]) + scale * G[y]
        robust = nn.functional.cross_entropy(worst, y)
        return self.weight * robust + (1 - self.weight) * clean
