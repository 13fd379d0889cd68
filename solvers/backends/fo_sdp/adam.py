r"""Projected Adam ascent on the dual bound ``F`` (matrix-free; ``method="adam"``).

``state = init_state(problem, params)``, ``state = update(problem, state)``,
``run(problem, state, deadline)``: the state (:class:`AdamState`) holds everything that
changes, with a leading batch dimension (one problem = a batch of one).  Each update
needs the ``ritz`` smallest eigenpairs of every ``D``: one batched Lanczos
(:func:`solvers.linalg.lanczos`) started from the last eigenvector plus a little
noise, or, with ``eig="dense"`` (``"auto"`` below ``dense_below`` rows), ``eigh`` of
``D`` formed by one batched product.  Near the optimum the lowest eigenvalues
cluster, so the ascent direction is a soft-min over the Ritz pairs (weights
``softmax(-theta / tau)``) of the Rayleigh quotients' gradients (:mod:`.operator`),
times ``dF/dq = 1 + sum_{kappa_i + q < 0} d_i``, plus ``dF/dkappa``.  The learning
rate (``lr * scale``) and ``tau`` (``smooth_eig * scale``) halve after ``patience / 3``
iterations without an improvement of ``tolerance`` (relative); a problem stops after
``patience`` such iterations, at ``target``, at ``max_iterations`` or at the deadline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from solvers.backends.fo_sdp.options import FoSdpOptions
from solvers.backends.fo_sdp.operator import Operator
from solvers.linalg import eigh_batch, lanczos
from solvers.optim import adam_moments

__all__ = ["AdamProblem", "AdamState", "init_state", "update", "run"]


@dataclass(frozen=True)
class AdamProblem:
    """What does not change: the operator, options, objective scales (b,), tolerance."""

    op: Operator
    options: FoSdpOptions
    scale: object
    tolerance: float
    generator: object


@dataclass(frozen=True)
class AdamState:
    """Duals ``params`` (b, size), Adam's moments, step count, per-problem learning rate
    and smoothing, last eigenvectors (b, 1+n), the best estimated value and its duals,
    stall counters, which problems still run, and the estimate history."""

    params: object
    m: object
    v: object
    step: int
    lr: object
    tau: object
    vector: object
    best_value: object
    best_params: object
    since_best: object
    plateau: object
    active: object
    history: tuple = field(default=())


def init_state(problem: AdamProblem, params, vector=None, warm=None) -> AdamState:
    """The state at ``params`` (b, size); ``vector`` (b, 1+n) starts Lanczos; a ``warm``
    start (b,) bool (near the optimum) takes a quarter of the learning rate and smoothing."""
    torch, op, opts = problem.op.torch, problem.op, problem.options
    b = params.shape[0]
    warm = torch.zeros(b, dtype=torch.bool) if warm is None else torch.as_tensor(warm)
    factor = torch.where(warm, 0.25, 1.0).to(params)
    noise = torch.randn(op.keep.shape, generator=problem.generator, dtype=torch.float64)
    noise = noise.to(params) / noise.norm(dim=1, keepdim=True).to(params)
    start = noise if vector is None else vector + 1e-3 * noise
    zeros = torch.zeros(b, dtype=torch.long, device=params.device)
    return AdamState(op.project(params), torch.zeros_like(params), torch.zeros_like(params),
                     0, opts.lr * problem.scale * factor, opts.smooth_eig * problem.scale * factor,
                     start * op.keep, torch.full_like(problem.scale, -math.inf), params.clone(),
                     zeros, zeros.clone(), torch.ones(b, dtype=torch.bool, device=params.device))


def _dense(problem: AdamProblem) -> bool:
    eig = problem.options.eig
    n1 = problem.op.keep.shape[1]
    return eig == "dense" or (eig == "auto" and n1 <= problem.options.dense_below)


def _pairs(problem: AdamProblem, state: AdamState):
    """Rayleigh quotients (b, r), their gradients (b, r, size) and Ritz vectors."""
    torch, op, opts = problem.op.torch, problem.op, problem.options
    op.set_params(state.params)
    if _dense(problem):
        n1 = op.keep.shape[1]
        D = op.dense(torch.arange(n1, device=op.keep.device))
        push = (1 - op.keep) * (D.abs().amax(dim=(1, 2)) + 1)[:, None]   # fixed coordinates
        values, vectors = eigh_batch(D + torch.diag_embed(push))
        vectors = vectors[:, :, :opts.ritz].transpose(1, 2)
    else:
        noise = torch.randn(state.vector.shape, generator=problem.generator,
                            dtype=torch.float64).to(state.vector)
        start = (state.vector + 1e-3 * noise / math.sqrt(noise.shape[1])) * op.keep
        _, vectors = lanczos(lambda v: op.apply(v[:, None])[:, 0], start, opts.lanczos_steps,
                             opts.ritz, op.keep)
    quotients, gradients = op.rayleigh(vectors)
    return quotients, gradients, vectors


def _ascent(problem: AdamProblem, state: AdamState):
    """Estimated ``F`` (b,) and its smoothed supergradient (b, size)."""
    torch, op = problem.op.torch, problem.op
    quotients, gradients, vectors = _pairs(problem, state)
    order = torch.argsort(quotients, dim=1)
    q = torch.gather(quotients, 1, order)
    weights = torch.softmax(-(q - q[:, :1]) / state.tau[:, None].clamp(min=1e-300), dim=1)
    grads = torch.gather(gradients, 1, order[..., None].expand_as(gradients))
    dq = (weights[..., None] * grads).sum(1)
    kappa, q0 = state.params[:, op.layout.kappa_start:], q[:, 0]
    active = ((kappa[:, 1:] + q0[:, None]) < 0).to(kappa.dtype) * op.d[op.idx]
    value = kappa[:, 0] + q0 + (op.d[op.idx] * torch.clamp(kappa[:, 1:] + q0[:, None],
                                                           max=0.0)).sum(1)
    grad = (1.0 + active.sum(1))[:, None] * dq
    grad[:, op.layout.kappa_start] += 1.0
    grad[:, op.layout.kappa_start + 1:] += active
    first = torch.gather(vectors, 1, order[:, :1, None].expand(-1, 1, vectors.shape[2]))[:, 0]
    return value, grad, first


def update(problem: AdamProblem, state: AdamState) -> AdamState:
    """One projected Adam step of every active problem (inactive ones stay put)."""
    torch, opts = problem.op.torch, problem.options
    value, grad, vector = _ascent(problem, state)
    step = state.step + 1
    m, v, direction = adam_moments(state.m, state.v, grad, step, 1e-12)
    move = state.lr[:, None] * direction
    on = state.active[:, None]
    params = torch.where(on, problem.op.project(state.params + move), state.params)
    best = state.best_value
    improved = value > best + problem.tolerance * torch.clamp(best.abs(), min=1.0)
    better = (value > best) & state.active
    since = torch.where(improved, 0, state.since_best + 1)
    plateau = torch.where(improved, 0, state.plateau + 1)
    halve = plateau >= max(10, opts.patience // 3)
    factor = torch.where(halve & state.active, 0.5, 1.0).to(state.lr)
    active = state.active & (since < opts.patience)
    if opts.target is not None:
        active = active & (torch.maximum(best, value) < opts.target)
    return replace(state, params=params, m=torch.where(on, m, state.m),
                   v=torch.where(on, v, state.v), step=step, lr=state.lr * factor,
                   tau=state.tau * factor, vector=torch.where(on, vector, state.vector),
                   best_value=torch.where(better, value, best),
                   best_params=torch.where(better[:, None], state.params, state.best_params),
                   since_best=since, plateau=torch.where(halve, 0, plateau), active=active,
                   history=state.history + (value,))


def run(problem: AdamProblem, state: AdamState, deadline: float | None = None,
        on_step=None) -> tuple[AdamState, str]:
    """Update until every problem stopped, ``max_iterations`` or the ``deadline``
    (``time.perf_counter()`` value); ``on_step(state)`` after each update.  Returns the
    state and why it ended: ``"converged"``, ``"iterations"`` or ``"time"``."""
    for _ in range(problem.options.max_iterations):
        state = update(problem, state)
        if on_step is not None:
            on_step(state)
        if not bool(state.active.any()):
            return state, "converged"
        if deadline is not None and time.perf_counter() > deadline:
            return state, "time"
    return state, "iterations"
