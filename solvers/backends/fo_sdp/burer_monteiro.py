r"""A low-rank (Burer-Monteiro) primal with an augmented Lagrangian (``method="bm"``).

When the SDP is tight its solution ``P`` is nearly rank one (Chiu & Zhang 2023, "BM-r").
Write ``P = [1; xt][1; xt]^T``-like as ``P = V V^T`` with rows ``v_0 = e_1`` and ``v_i``
(``r`` columns, normalised coordinates) and lifted vectors ``U_i = ctr_i e_1 + rad_i v_i``
(so ``x_i = U_i[0]`` and ``X_ij = U_i . U_j``).  Per hidden neuron ``a`` with lifted
pre-activation ``Z = W U_prev + b e_1`` the SDP's constraints read

    g_alpha = a_0 >= 0,  g_beta = a_0 - Z_0 >= 0,  g_theta = s (Z_0 - l') - a_0 >= 0,
    h_gamma = U_a . (U_a - Z) = 0,   box: d_i - ||v_i||^2 >= 0,

scaled by ``rho`` (``rho^2`` for ``h``) as the dual parameters are.  The augmented
Lagrangian (penalty ``mu``) is minimised over ``V`` by L-BFGS (torch autograd: a few
products with ``W_k`` and ``W_k^T`` on ``r`` columns per evaluation), then the
multipliers are updated (``lam <- max(0, lam - mu g)``, ``gamma <- gamma - mu h``) and
``mu`` grows when the violation does not fall fast enough.  With stably active
neurons lifted (``data.active``, :mod:`.lift`) their rows of ``V`` are not variables:
``v_j = (W_j U_prev + (b_j - ctr_j) e_1) / rad_j`` (:func:`.lift.expand`, in layer order),
so ``z = a`` holds in ``P`` exactly and their beta, gamma and cut constraints vanish;
the gradient of a substituted row goes to the layer before (:func:`.lift.chain`).
The multiplier update is gradient ascent with step ``mu`` on the augmented dual ``g_mu(lam) = min_V L_mu(V, lam)``
(a ``1/mu``-smooth concave function); with ``momentum`` it is Nesterov's accelerated
ascent (the next inner problem is solved at ``lam+ + (t_k - 1)/t_{k+1} (lam+ - lam)``,
inequality multipliers clipped at 0), restarted (``t = 1``) whenever ``g_mu`` falls
(O'Donoghue & Candes' adaptive restart).  The certified multipliers are always the
plain update ``lam+``, never the extrapolated point.  The multipliers *are* the
dual parameters of :mod:`solvers.backends.fo_sdp` (``kappa_i = -nu_i``,
``kappa_0 = f + sum d_i nu_i``), so every outer iteration yields a rigorously
certifiable dual point; the run hands its best one to the spectral L-BFGS as a warm
start.  State is explicit: :class:`BmState`, ``init_state`` / ``update`` / ``run``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from solvers.backends.fo_sdp.lift import chain, expand, substitution
from solvers.backends.fo_sdp.problem import Layout, ProblemData

__all__ = ["BmProblem", "BmState", "centre_point", "penalty", "init_state", "update", "run",
           "escape", "to_params"]


@dataclass(frozen=True)
class BmProblem:
    """The torch data of one program (float64) and the rank."""

    data: ProblemData
    layout: Layout
    rank: int
    W: list
    b: list
    ctr: list
    rad: list
    rho: list
    slope: list
    offset: list
    cut: list
    d: list
    c: object
    scale: float
    substitution: tuple = ()    # per hidden layer k: (rows, M, offset) or None (.lift)

    @classmethod
    def build(cls, data: ProblemData, layout: Layout, rank: int, scale: float) -> "BmProblem":
        import torch

        t = lambda a: torch.as_tensor(np.array(a, np.float64))  # noqa: E731
        W = [t(w.toarray()) if hasattr(w, "toarray") else t(w) for w in data.weights]
        starts = np.concatenate([[0], np.cumsum(data.sizes)]).astype(int)
        d = [t(data.d[a:b]) for a, b in zip(starts[:-1], starts[1:])]
        return cls(data, layout, rank, W, [t(b) for b in data.biases],
                   [t(c) for c in data.ctr], [t(r) for r in data.rad], [t(r) for r in data.rho],
                   [t(s) for s in data.slope], [t(o) for o in data.cut_offset],
                   [t(m.astype(float)) for m in data.cut_mask], d, t(data.c), scale,
                   substitution(data, W))


@dataclass(frozen=True)
class BmState:
    """Low-rank factor ``V`` (per layer ``(n_k, r)``), multipliers per hidden layer
    ``(alpha, beta, gamma, theta)`` (scaled) and box ``nu`` per layer, penalty ``mu``,
    last violation, outer iterations and the last objective."""

    V: list
    lams: list
    nu: list
    mu: float
    violation: float
    outer: int
    objective: float = math.nan
    updated: tuple | None = None        # (lams, nu) of the last plain update (momentum)
    momentum: float = 1.0               # Nesterov's t_k
    dual_value: float = -math.inf       # g_mu at the last inner solution


def _lift(problem: BmProblem, V):
    """``U_k = ctr_k e_1 + rad_k v`` per layer."""
    out = []
    for c, r, v in zip(problem.ctr, problem.rad, V):
        u = r[:, None] * v
        u[:, 0] = u[:, 0] + c
        out.append(u)
    return out


def _constraints(problem: BmProblem, V):
    """Scaled ``(g_alpha, g_beta, h_gamma, g_theta)`` per hidden layer, the box slacks
    and the objective."""
    U = _lift(problem, V)
    cons = []
    for k, W in enumerate(problem.W):
        Z = W @ U[k]
        Z[:, 0] = Z[:, 0] + problem.b[k]
        A, r = U[k + 1], problem.rho[k]
        cut = problem.slope[k] * (Z[:, 0] - problem.offset[k]) - A[:, 0]
        cons.append((A[:, 0] / r, (A[:, 0] - Z[:, 0]) / r, (A * (A - Z)).sum(1) / (r * r),
                     cut / r * problem.cut[k]))
    box = [d - (v * v).sum(1) * (d > 0) for d, v in zip(problem.d, V)]
    return cons, box, problem.c @ U[-1][:, 0] + problem.data.c0


def _augmented(problem: BmProblem, state: BmState, V):
    """The augmented Lagrangian at ``V`` (scalar tensor)."""
    cons, box, f = _constraints(problem, V)
    mu, total = state.mu, f
    for (ga, gb, h, gt), (la, lb, lg, lt) in zip(cons, state.lams):
        for g, lam in ((ga, la), (gb, lb), (gt, lt)):
            total = total + ((lam - mu * g).clamp(min=0) ** 2 - lam ** 2).sum() / (2 * mu)
        total = total - lg @ h + 0.5 * mu * (h @ h)
    for g, lam in zip(box, state.nu):
        total = total + ((lam - mu * g).clamp(min=0) ** 2 - lam ** 2).sum() / (2 * mu)
    return total


def _augmented_and_gradient(problem: BmProblem, state: BmState, V, masks):
    r"""The augmented Lagrangian at ``V`` (rows of fixed coordinates masked) and its
    gradient, by hand: the same function as :func:`_augmented`, in about a fifth of the
    tensor operations (autograd's bookkeeping dominated the evaluation on MNIST nets).

    With ``psi(g, lam) = (max(0, lam - mu g)^2 - lam^2) / (2 mu)``, ``psi' = -max(0, lam
    - mu g)``; for ``h``: ``d/dh (-gamma h + mu h^2 / 2) = mu h - gamma``.  Per layer
    ``Z = W U_k + b e_1^T``, ``A = U_{k+1}``: ``dh/dA = (2A - Z) / rho^2``,
    ``dh/dZ = -A / rho^2``; ``dL/dU_k += W^T dL/dZ``; ``dL/dV = rad * dL/dU`` (rows)
    plus the box term ``-2 psi'_box V``."""
    import torch

    mu = state.mu
    V = [v * m for v, m in zip(V, masks)]
    U = _lift(problem, V)
    grads = [torch.zeros_like(u) for u in U]
    total = problem.c @ U[-1][:, 0] + problem.data.c0
    grads[-1][:, 0] += problem.c

    def inequality(g, lam):
        active = (lam - mu * g).clamp(min=0)
        return ((active ** 2 - lam ** 2).sum() / (2 * mu)), -active

    for k, W in enumerate(problem.W):
        Z = W @ U[k]
        Z[:, 0] += problem.b[k]
        A, r = U[k + 1], problem.rho[k]
        la, lb, lg, lt = state.lams[k]
        value_a, pa = inequality(A[:, 0] / r, la)
        value_b, pb = inequality((A[:, 0] - Z[:, 0]) / r, lb)
        cut = problem.cut[k]
        value_t, pt = inequality(cut * (problem.slope[k] * (Z[:, 0] - problem.offset[k])
                                        - A[:, 0]) / r, lt)
        h = (A * (A - Z)).sum(1) / (r * r)
        total = total + value_a + value_b + value_t - lg @ h + 0.5 * mu * (h @ h)
        ph = (mu * h - lg) / (r * r)
        dA = ph[:, None] * (2 * A - Z)
        dZ = -ph[:, None] * A
        dA[:, 0] += (pa + pb - pt * cut) / r
        dZ[:, 0] += (pt * cut * problem.slope[k] - pb) / r
        grads[k + 1] += dA
        grads[k] += W.T @ dZ
    out = []
    for v, g, d, rad, nu, m in zip(V, grads, problem.d, problem.rad, state.nu, masks):
        value_box, pbox = inequality(d - (v * v).sum(1) * (d > 0), nu)
        total = total + value_box
        out.append((rad[:, None] * g - 2 * (pbox * (d > 0))[:, None] * v) * m)
    return total, out


def centre_point(data: ProblemData) -> list:
    """The network's forward pass from the input box's centre, in normalised coordinates
    per layer (a feasible rank-one point)."""
    import torch

    x, out = data.ctr[0], []
    for k in range(len(data.sizes)):
        if k:
            x = np.maximum(np.asarray(data.weights[k - 1] @ x).ravel() + data.biases[k - 1], 0.0)
        safe = np.where(data.rad[k] > 0, data.rad[k], 1.0)
        out.append(torch.as_tensor(np.clip((x - data.ctr[k]) / safe, -1, 1)
                                   * (data.rad[k] > 0)))
    return out


def penalty(data: ProblemData, per_neuron: float) -> float:
    """The ALM penalty in units of the objective's scale: ``per_neuron / h``, ``h`` the
    hidden neurons (0.2 on 784-100-100-10 and 0.0018 on the 21,732-ReLU conv net for
    ``per_neuron = 40``, the values measured best there)."""
    return per_neuron / max(1, data.n - data.sizes[0])


def init_state(problem: BmProblem, params: np.ndarray, point: list, seed: int = 0,
               mu: float = 0.2) -> BmState:
    """Start at the rank-one lift of ``point`` (normalised coordinates per layer, e.g. a
    forward pass) plus small noise in the other columns, with multipliers from the dual
    ``params`` (e.g. CROWN's) and penalty ``mu * scale`` (``scale = sum_i |c_i| rad_i``,
    the objective's range over the output box: measured on the MNIST nets, the best
    fixed penalty grows with it, 0.2 scale at eps 0.02 and 0.05 alike)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    V = []
    for xt, d in zip(point, problem.d):
        v = 1e-2 * torch.randn((xt.numel(), problem.rank), generator=generator,
                               dtype=torch.float64)
        v[:, 0] = xt
        V.append(v * (d > 0)[:, None])
    p = torch.as_tensor(params)
    lams = [tuple(x.clone() for x in problem.layout.split(p, k))
            for k in range(len(problem.W))]
    kappa = p[problem.layout.kappa_start + 1:]
    nu = list(torch.split((-kappa).clamp(min=0), list(problem.data.sizes)))
    return BmState(V, lams, nu, mu * problem.scale, math.inf, 0)


def _minimise(problem: BmProblem, state: BmState, iterations: int) -> list:
    """L-BFGS on the augmented Lagrangian over ``V`` from ``state.V``."""
    import torch

    V = [v.clone().requires_grad_(True) for v in state.V]
    masks = [(d > 0)[:, None].to(v) for d, v in zip(problem.d, state.V)]
    optimiser = torch.optim.LBFGS(V, max_iter=iterations, history_size=20,
                                  tolerance_grad=1e-12, tolerance_change=1e-15,
                                  line_search_fn="strong_wolfe")

    def closure():
        with torch.no_grad():
            full = expand(problem.substitution, V)
            value, grads = _augmented_and_gradient(problem, state, full, masks)
        for v, g in zip(V, chain(problem.substitution, grads)):
            v.grad = g
        return value

    optimiser.step(closure)
    with torch.no_grad():
        return [(v * m).detach() for v, m in zip(expand(problem.substitution, V), masks)]


def _largest(x) -> float:
    """``max |x|`` (0 for an empty tensor)."""
    return float(x.abs().max()) if x.numel() else 0.0


def update(problem: BmProblem, state: BmState, inner: int = 300,
           growth: float = 1.0, momentum: bool = False) -> BmState:
    """One outer iteration: minimise (``inner`` L-BFGS iterations), update the
    multipliers (with ``momentum``: extrapolate them, module docstring), and multiply
    the penalty by ``growth`` when the violation fell by less than a factor 4
    (``growth = 1``: a fixed penalty, which keeps the subproblems well conditioned and
    the multipliers -- the certificate -- accurate)."""
    import torch

    V = _minimise(problem, state, inner)
    with torch.no_grad():
        value = float(_augmented(problem, state, V))
        cons, box, f = _constraints(problem, V)
        mu, lams, worst = state.mu, [], 0.0
        for (ga, gb, h, gt), (la, lb, lg, lt) in zip(cons, state.lams):
            lams.append(((la - mu * ga).clamp(min=0), (lb - mu * gb).clamp(min=0),
                         lg - mu * h, (lt - mu * gt).clamp(min=0)))
            worst = max([worst, _largest(h)] + [_largest(torch.minimum(g, lam / mu))
                                                for g, lam in ((ga, la), (gb, lb), (gt, lt))])
        nu = [(lam - mu * g).clamp(min=0) for g, lam in zip(box, state.nu)]
        worst = max([worst] + [_largest(torch.minimum(g, lam / mu))
                               for g, lam in zip(box, state.nu)])
    grow = worst > 0.25 * state.violation
    new = replace(state, V=V, lams=lams, nu=nu, mu=mu * (growth if grow else 1.0),
                  violation=worst, outer=state.outer + 1, objective=float(f),
                  dual_value=value, updated=None, momentum=1.0)
    return _extrapolate(state, new) if momentum else new


def _extrapolate(old: BmState, new: BmState) -> BmState:
    """Nesterov's step from the last plain update to ``new``'s (restart: none, when the
    augmented dual value fell or the penalty changed)."""
    previous = old.updated or (old.lams, old.nu)
    if new.dual_value < old.dual_value or new.mu != old.mu:
        return replace(new, updated=(new.lams, new.nu), momentum=1.0)
    t = (1.0 + math.sqrt(1.0 + 4.0 * old.momentum ** 2)) / 2.0
    beta = (old.momentum - 1.0) / t
    lams = [tuple(x if j == 2 else x.clamp(min=0) for j, x in
                  enumerate(a + beta * (a - b) for a, b in zip(now, before)))
            for now, before in zip(new.lams, previous[0])]
    nu = [(a + beta * (a - b)).clamp(min=0) for a, b in zip(new.nu, previous[1])]
    return replace(new, lams=lams, nu=nu, updated=(new.lams, new.nu), momentum=t)


def escape(problem: BmProblem, state: BmState, vectors: np.ndarray) -> BmState:
    r"""``state`` with its spare columns (the smallest, never the first) replaced by the
    unit ``vectors`` (columns over the ``1 + n`` coordinates, corner first: the negative
    eigenvectors of the multipliers' ``D``, :func:`.repair.negative_directions`).

    Why: ``D`` of the updated multipliers is the augmented Lagrangian's gradient in
    ``P`` (a column ``t w`` changes it by ``t^2 w^T D w``).  Measured on MNIST nets, the
    factor's numerical rank is about 3: the other columns keep their initial noise
    (~1e-2) unchanged for tens of outer iterations, since their gradient ``2 D v`` is
    tiny.  When the multipliers then drift so that ``D`` gets small negative
    eigenvalues there (about -2e-5, ~12 of them), ``P`` cannot follow, and the
    certificate pays about ``(1 + sum d_i) |lambda|`` for them: the certified bound
    falls while the ALM's own dual value keeps rising.  A unit column along ``w``
    (its hidden coordinates; the corner row of ``V`` is fixed) gives the next inner
    solve mass to move there (the rank-escape step of Burer-Monteiro methods, e.g.
    Journee et al. 2010; scales 0.1 and 0.01 did not help in a scratch trace of one
    row, not a benchmark).  Only the primal changes; the multipliers stay."""
    import torch

    if vectors.shape[1] == 0:
        return state
    V = [v.clone() for v in state.V]
    norms = torch.cat(V).norm(dim=0)
    norms[0] = math.inf
    columns = torch.argsort(norms)[:min(vectors.shape[1], problem.rank - 1)].tolist()
    starts = np.concatenate([[1], 1 + np.cumsum(problem.data.sizes)]).astype(int)
    for column, w in zip(columns, vectors.T):
        for k, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
            V[k][:, column] = torch.as_tensor(w[a:b]) * (problem.d[k] > 0)
    return replace(state, V=V)


def to_params(problem: BmProblem, state: BmState) -> np.ndarray:
    """The dual parameters of the multipliers (``kappa_i = -nu_i``,
    ``kappa_0 = f + sum d_i nu_i``)."""
    layout, data = problem.layout, problem.data
    lams, nus = state.updated or (state.lams, state.nu)
    p = np.zeros(layout.size)
    for k, lam in enumerate(lams):
        for part, value in zip(layout.split(p, k), lam):
            part[:] = value.numpy()
    nu = np.concatenate([v.numpy() for v in nus])
    p[layout.kappa_start + 1:] = -nu
    p[layout.kappa_start] = state.objective + float(data.d @ nu)
    return layout.project(p)


def run(problem: BmProblem, state: BmState, deadline: float | None, outer: int = 200,
        on_step=None, inner: int = 300, growth: float = 1.0,
        momentum: bool = False) -> BmState:
    """Outer iterations until ``outer``, a violation below 1e-9, or the deadline: an
    iteration (with its ``on_step``) starts only when the longest one so far would
    still fit (``on_step`` may be costlier on some iterations than on others).
    ``on_step(state)`` may return a state to go on from (e.g. :func:`escape`'s)."""
    longest = 0.0
    for _ in range(outer):
        started = time.perf_counter()
        state = update(problem, state, inner, growth, momentum)
        if on_step is not None:
            state = on_step(state) or state
        longest = max(longest, time.perf_counter() - started)
        if state.violation < 1e-9 or (deadline is not None
                                      and time.perf_counter() + longest > deadline):
            break
    return state
