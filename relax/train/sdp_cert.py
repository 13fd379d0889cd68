"""SDP-cert training (Raghunathan, Steinhardt & Liang, ICLR 2018) as a loss term.

For a one-hidden-layer ReLU model and every unordered class pair ``(i, j)`` the
certificate of :mod:`relax.sdp.dual1` bounds the worst-case growth of ``f_j - f_i``
over the l-inf ball of radius ``eps``.  With ``A = M(v_ij, eps W) - diag(c_ij)``
(``D = 1 + d + m``) training uses its shift-invariant form

    G_ij = (1/4) [D lambda_max(A) + 1^T c_ij],

valid for every ``c`` (``<M, Y> = <A, Y> + 1^T c <= lambda_max(A) tr Y + 1^T c`` for
``Y >= 0`` with ``diag Y = 1``); it is unchanged by ``c -> c + t 1``, and after the
shift ``t = lambda_max(A)`` it equals the paper's
``(1/4)[D lambda_max^+(A) + 1^T max(c, 0)]`` (then ``lambda_max(A) = 0``, and
``c >= 0`` because ``lambda_max(A)`` is at least every diagonal entry ``A_kk = -c_k``).  Each call shifts ``c`` that way, so the ``c`` handed to the sound
certifier (:func:`relax.sdp.dual1.shifted_certificate`) loses nothing.  Unlike the
paper's form it has no kink at ``lambda_max = 0``, so the weights get a gradient at
every step.

The term is the cross-entropy of the *certified worst-case logits*
``z_j = f_j(x) - f_y(x) + s G_yj`` (``z_y = 0``; ``s`` ramps from 0 to 1), i.e. the
paper's loss on an upper bound of the adversarial logits, mixed with the clean
cross-entropy: ``weight * robust + (1 - weight) * clean``.

``lambda_max`` is differentiated through its eigenvector (``d lambda = u^T dA u``):
the top eigenvectors ``u_ij`` come from batched Lanczos with full
reorthogonalisation (:func:`relax.train.lanczos.lanczos_top`, in float64, warm
started from the previous step's vectors, never forming ``M``:
``u^T M u = 2 eps sum_k (W u_t)_k v_k (u_0 + u_u,k)``), and the Rayleigh quotient
``u^T A u`` (``<= lambda_max``, equal at the eigenvector) is the differentiable
estimate.  The certificate does not depend on the input, so large batches amortise
this eigen work.

The dual variables are ``c = c_scale * c_hat`` with ``c_hat`` an ``nn.Parameter`` of
this module and ``c_scale`` the mean Gershgorin value per pair at the start (so the
learning rate ``lr_c`` is relative).  The training loop's optimiser only sees the
model's parameters, so the term steps its own Adam on ``c_hat`` at the start of the
next call (the gradients come from the loop's ``backward``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor, nn

from relax.errors import UsageError
from relax.sdp.dual1 import pair_matrix
from relax.train.lanczos import lanczos_top

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


def pair_matvec(W: Tensor, v: Tensor, c: Tensor, u: Tensor, eps: float) -> Tensor:
    """``(M(v_p, eps W) - diag(c_p)) u_p`` for every pair ``p`` without forming ``M``
    (``W``: ``(m, d)``; ``v``, ``c``, ``u``: ``(P, m)``, ``(P, D)``, ``(P, D)``)."""
    d = W.shape[1]
    u0, ut, uu = u[:, :1], u[:, 1:1 + d], u[:, 1 + d:]
    Wt = eps * (ut @ W.T)  # (P, m)
    out0 = (Wt * v).sum(1, keepdim=True)
    outt = eps * ((v * (u0 + uu)) @ W)
    outu = v * Wt
    return torch.cat([out0, outt, outu], 1) - c * u


class SDPCertLoss(nn.Module):
    """``weight * CE(certified worst-case logits)`` at radius ``eps`` (ramped in over the
    first ``ramp`` fraction of training), plus ``(1 - weight) * CE(clean logits)``.

    ``lanczos_steps`` Lanczos steps per refresh (every ``refresh`` calls; four times as
    many at the first call, from a random start); ``lr_c``: Adam step on ``c`` relative
    to its initial scale.
    """

    name = "sdp-cert"

    def __init__(self, eps: float, num_classes: int = 10, weight: float = 1.0, ramp: float = 0.3,
                 refresh: int = 1, lr_c: float = 1e-2, lanczos_steps: int = 20,
                 lr_decay_at: tuple[float, ...] = (), lr_decay: float = 0.1):
        super().__init__()
        if eps <= 0 or refresh < 1 or lanczos_steps < 1:
            raise UsageError("SDPCertLoss needs eps > 0, refresh >= 1 and lanczos_steps >= 1")
        self.eps, self.weight, self.ramp, self.refresh = float(eps), float(weight), float(ramp), int(refresh)
        self.num_classes = num_classes
        pairs = [(i, j) for i in range(num_classes) for j in range(i + 1, num_classes)]
        self.register_buffer("pairs", torch.tensor(pairs, dtype=torch.long))
        self.c_hat: nn.Parameter | None = None
        self.register_buffer("c_scale", torch.zeros(0))
        self.register_buffer("u", torch.zeros(0, dtype=torch.float64))
        self.lr_c, self.lanczos_steps = lr_c, int(lanczos_steps)
        self.lr_decay_at, self.lr_decay = tuple(lr_decay_at), float(lr_decay)
        self._opt = None
        self._calls = 0
        self.last_lambda: Tensor | None = None  # Lanczos estimate of lambda_max before the last shift

    @property
    def c(self) -> Tensor:
        """The dual variables ``c`` (``(P, D)``, in the units of ``M(v, eps W)``)."""
        if self.c_hat is None:
            raise UsageError("SDPCertLoss has no duals before its first call")
        return self.c_hat * self.c_scale

    def duals(self) -> dict[tuple[int, int], np.ndarray]:
        """``{(i, j): c_ij}`` in float64, the ``sdp_c`` start of :mod:`relax.sdp.dual1`."""
        c = self.c.detach().double().cpu().numpy()
        return {tuple(p): c[k] for k, p in enumerate(self.pairs.tolist())}

    # -- certificate ------------------------------------------------------------------
    @torch.no_grad()
    def _initialise(self, first: nn.Linear, last: nn.Linear) -> None:
        W = first.weight.detach().double().cpu().numpy()
        V = last.weight.detach().double().cpu().numpy()
        c = np.stack([np.abs(pair_matrix(W, V[j] - V[i], self.eps)).sum(axis=1)
                      for i, j in self.pairs.tolist()])
        c = torch.as_tensor(c, dtype=first.weight.dtype, device=first.weight.device)
        self.c_scale = c.mean(1, keepdim=True).clamp_min(1e-30)
        self.c_hat = nn.Parameter(c / self.c_scale)
        self.u = torch.zeros(c.shape, dtype=torch.float64, device=c.device)
        self._opt = torch.optim.Adam([self.c_hat], lr=self.lr_c)

    @torch.no_grad()
    def refresh_eigenvectors(self, first: nn.Linear, last: nn.Linear, steps: int | None = None) -> Tensor:
        """Top eigenvectors of ``M - diag(c)`` per pair by ``steps`` batched Lanczos
        steps (float64, warm started); then shifts ``c`` by the top Ritz value (an
        estimate of ``lambda_max``, from below), which leaves ``G`` unchanged.
        Returns that estimate (before the shift)."""
        if self.c_hat is None:
            self._initialise(first, last)
        W = first.weight.detach().double()
        V = last.weight.detach().double()
        v = V[self.pairs[:, 1]] - V[self.pairs[:, 0]]
        c = self.c.detach().double()
        steps = self.lanczos_steps if steps is None else int(steps)
        lam, u = lanczos_top(lambda q: pair_matvec(W, v, c, q, self.eps), self.u, steps)
        self.u = u
        self.c_hat.data.add_((lam[:, None] / self.c_scale.double()).to(self.c_hat.dtype))
        self.last_lambda = lam
        return lam

    def gains(self, first: nn.Linear, last: nn.Linear) -> Tensor:
        """Differentiable ``G`` (num_classes x num_classes, symmetric, zero diagonal):
        ``(1/4)[D u^T (M - diag c) u + 1^T c]`` with the tracked eigenvectors ``u``."""
        cert = self.pair_gains(first.weight, last.weight)
        G = cert.new_zeros(self.num_classes, self.num_classes)
        G = G.index_put((self.pairs[:, 0], self.pairs[:, 1]), cert)
        return G + G.T

    def pair_gains(self, W: Tensor, V: Tensor) -> Tensor:
        """The certificate estimate per pair (``(P,)``, in the order of ``pairs``) for
        first-layer weights ``W`` and last-layer weights ``V``."""
        d = W.shape[1]
        u = self.u.to(W.dtype)
        c = self.c
        u0, ut, uu = u[:, 0], u[:, 1:1 + d], u[:, 1 + d:]
        v = V[self.pairs[:, 1]] - V[self.pairs[:, 0]]  # (P, m)
        Wu = ut @ W.T  # (P, m)
        quad = 2 * self.eps * (Wu * v * (u0[:, None] + uu)).sum(1)
        rayleigh = quad - (c * u * u).sum(1)
        D = u.shape[1]
        return 0.25 * (D * rayleigh + c.sum(1))

    def tighten_duals(self, model: nn.Module, steps: int, lr: float | None = None) -> Tensor:
        """``steps`` Adam steps on ``c`` alone (model fixed), each after a Lanczos
        refresh, minimising ``sum_ij G_ij``; returns the final ``G``.  Any ``c`` is
        valid, so this only tightens the certificate of the trained model."""
        first, last = two_layer_weights(model)
        if self.c_hat is None:
            self._initialise(first, last)
        opt = torch.optim.Adam([self.c_hat], lr=self.lr_c if lr is None else lr)
        for _ in range(steps):
            self.refresh_eigenvectors(first, last)
            opt.zero_grad(set_to_none=True)
            self.pair_gains(first.weight.detach(), last.weight.detach()).sum().backward()
            opt.step()
        self.c_hat.grad = None
        self.refresh_eigenvectors(first, last)
        with torch.no_grad():
            return self.gains(first, last)

    # -- LossTerm ----------------------------------------------------------------------
    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:  # type: ignore[override]
        first, last = two_layer_weights(model)
        if self.c_hat is None:
            self._initialise(first, last)
        elif self.c_hat.grad is not None:  # the loop's backward filled it: step the duals
            for group in self._opt.param_groups:
                group["lr"] = self.lr_c * self.lr_decay ** sum(progress >= f for f in self.lr_decay_at)
            self._opt.step()
            self._opt.zero_grad(set_to_none=True)
        if self._calls % self.refresh == 0:
            self.refresh_eigenvectors(first, last, self.lanczos_steps * (4 if self._calls == 0 else 1))
        self._calls += 1
        scale = min(1.0, progress / self.ramp) if self.ramp > 0 else 1.0
        logits = model(x)
        clean = nn.functional.cross_entropy(logits, y)
        G = self.gains(first, last)
        worst = logits - logits.gather(1, y[:, None]) + scale * G[y]
        robust = nn.functional.cross_entropy(worst, y)
        return self.weight * robust + (1 - self.weight) * clean
