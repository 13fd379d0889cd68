"""alpha-CROWN on batches of ReLU sub-domains (Xu et al. 2021), float64, in torch.

A *domain* is the input box together with valid pre-activation bounds
``l_k <= z_k <= u_k`` of every hidden layer (tighter than the box implies when
ReLUs were split: ``l = 0`` for an active split, ``u = 0`` for an inactive one).
For an unstable ReLU (``l < 0 < u``) any lower line ``alpha z`` with
``alpha in [0, 1]`` and the upper chord ``u (z - l) / (u - l)`` enclose
``relu`` on ``[l, u]``, so the CROWN backward pass (see :mod:`relax.bounds.crown`)

    Lambda <- Lambda W_k,  c <- c + Lambda b_k
    c <- c + Lambda^- c_up,  Lambda <- Lambda^+ diag(alpha) + Lambda^- diag(a_up)

gives, for *every* ``alpha``, a lower bound on ``C z_L`` over all inputs of the
box whose pre-activations lie in the domain's bounds.  alpha-CROWN maximises this
bound over ``alpha`` by projected gradient ascent (Adam).  One ``alpha`` per
domain and neuron is shared by the final objective and every intermediate layer
(whose bounds are recomputed with the same ``alpha``, for the neurons that are
unstable in the given bounds), so intermediate bounds tighten along with the
final one.  Because every ``alpha`` is sound, the best value seen over the
iterations is kept.  An empty domain (``l > u`` somewhere after intersection)
has bound ``+inf``.

Split constraints (beta-CROWN, Wang et al. 2021): a domain may also carry signs
``sigma_{k,i}`` (+1: split active, ``z >= 0``; -1: split inactive, ``z <= 0``; 0:
not split).  For ``beta >= 0`` and every input of the domain
``f(x) >= f(x) - sum beta sigma z(x)``, so adding ``-beta sigma`` to the backward
coefficients on ``z_k`` still gives a valid lower bound, now one that "sees" the
split constraints without recomputing intermediate bounds.  ``beta`` is optimised
with ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from relax.bounds.ibp import affine_interval
from relax.deadline import NEVER, Deadline
from relax.bounds.torch_network import TorchNetwork

__all__ = ["DomainBounds", "alpha_crown", "domain_bounds"]


@dataclass
class DomainBounds:
    """Result for a batch of domains: best ``bound`` (batch,), row bounds (batch, rows),
    the layer bounds and ``alpha`` that go with the last iteration, the input point
    minimising the final linear bound, and a per-neuron branching score."""

    bound: torch.Tensor
    rows: torch.Tensor
    lower: list[torch.Tensor]
    upper: list[torch.Tensor]
    alpha: list[torch.Tensor]
    x: torch.Tensor
    score: list[torch.Tensor]
    beta: list[torch.Tensor] | None = None


def _relu_lines(l, u, alpha):
    """(lower slope, upper slope, upper offset) of each ReLU on ``[l, u]``."""
    unstable = (l < 0) & (u > 0)
    active = (l >= 0).to(l.dtype)
    width = torch.where(unstable, u - l, torch.ones_like(u))
    up_slope = torch.where(unstable, u / width, active)
    up_offset = torch.where(unstable, -l * u / width, torch.zeros_like(u))
    lo_slope = torch.where(unstable, alpha.clamp(0.0, 1.0), active)
    return lo_slope, up_slope, up_offset


def _backward(net: TorchNetwork, lines, objective, layer, lower, upper, keep=None, split=None):
    """Lower bounds (batch, rows) on ``objective @ z_layer``; with ``keep`` (a list),
    also records the coefficient on each ReLU output and returns the minimising input."""
    coeffs = objective
    const = torch.zeros(objective.shape[:2], dtype=objective.dtype, device=objective.device)
    for k in range(layer, -1, -1):
        const = const + coeffs @ net.biases[k]
        coeffs = net.back(k, coeffs)
        if k > 0:
            lo, up, offset = lines[k - 1]
            if keep is not None:
                keep.insert(0, coeffs)
            negative = coeffs.clamp(max=0)
            const = const + (negative @ offset.unsqueeze(-1)).squeeze(-1)
            coeffs = coeffs.clamp(min=0) * lo.unsqueeze(1) + negative * up.unsqueeze(1)
            if split is not None:
                sign, beta = split[0][k - 1], split[1][k - 1]
                coeffs = coeffs - (beta.clamp(min=0) * sign).unsqueeze(1)
    centre = ((lower + upper) / 2).unsqueeze(-1)
    radius = ((upper - lower) / 2).unsqueeze(-1)
    value = const + (coeffs @ centre).squeeze(-1) - (coeffs.abs() @ radius).squeeze(-1)
    if keep is None:
        return value, None
    x = torch.where(coeffs[:, 0] > 0, lower, upper)  # minimiser of the first row
    return value, x


def domain_bounds(net: TorchNetwork, lower, upper, objective, prior_lower, prior_upper, alpha,
                  want_extras: bool = False, refine: bool = True, split=None, fixed_lines=None):
    """One CROWN pass with slopes ``alpha`` for a batch of domains.

    ``lower, upper`` (batch, n_in); ``objective`` (batch, rows, n_out);
    ``prior_lower/upper[k]`` (batch, n_k) valid bounds of hidden layer ``k``;
    ``refine``: recompute the unstable neurons' bounds of layers ``k >= 1``;
    ``split``: optional (signs, betas) lists for the split constraints;
    ``fixed_lines``: precomputed (unstable, active, upper slope, upper offset) per layer
    (valid when the layer bounds are not refined).
    Returns (row bounds, layer lowers, layer uppers, lines, backward coeffs, x).
    """
    lowers, uppers, lines = [], [], []
    for k in range(len(prior_lower)):
        pl, pu = prior_lower[k], prior_upper[k]
        if k == 0 and refine:
            l, u = affine_interval(net, 0, lower, upper)
            l, u = torch.maximum(l, pl), torch.minimum(u, pu)
        elif not refine or k == 0:
            l, u = pl, pu
        else:
            l, u = pl, pu
            idx = torch.nonzero(((pl < 0) & (pu > 0)).any(0)).flatten()
            if len(idx):
                eye = torch.zeros(len(idx), pl.shape[1], dtype=pl.dtype, device=pl.device)
                eye[torch.arange(len(idx)), idx] = 1.0
                rows = torch.cat([eye, -eye]).expand(pl.shape[0], -1, -1)
                both, _ = _backward(net, lines, rows, k, lower, upper)
                l, u = pl.clone(), pu.clone()
                l[:, idx] = torch.maximum(pl[:, idx], both[:, : len(idx)])
                u[:, idx] = torch.minimum(pu[:, idx], -both[:, len(idx):])
        lowers.append(l)
        uppers.append(u)
        if fixed_lines is not None:
            unstable, active, up, offset = fixed_lines[k]
            lines.append((torch.where(unstable, alpha[k].clamp(0.0, 1.0), active), up, offset))
        else:
            lines.append(_relu_lines(l, u, alpha[k]))
    keep = [] if want_extras else None
    rows, x = _backward(net, lines, objective, net.num_layers - 1, lower, upper, keep, split)
    return rows, lowers, uppers, lines, keep, x


def _score(lines, lowers, uppers, keep):
    """BaBSR-style intercept score ``-min(lambda, 0) * (-l u / (u - l))`` of each unstable
    ReLU for the first objective row: how much its upper chord costs the bound."""
    out = []
    for (_, _, offset), l, u, coeffs in zip(lines, lowers, uppers, keep):
        unstable = (l < 0) & (u > 0)
        s = (-coeffs[:, 0].clamp(max=0)) * offset
        # a tiny width term breaks ties among neurons the chord does not yet penalise
        s = s + 1e-6 * (u - l)
        out.append(torch.where(unstable, s, torch.full_like(s, -1.0)))
    return out


def alpha_crown(net: TorchNetwork, lower, upper, objective, prior_lower, prior_upper,
                alpha=None, iterations: int = 20, lr: float = 0.1,
                deadline: Deadline = NEVER, offsets=None, refine: bool = True,
                signs=None, beta=None, lr_beta: float = 0.05,
                fast_net: TorchNetwork | None = None) -> DomainBounds:
    """Best-of-iterations alpha-CROWN bounds ``max_j rows_j`` for a batch of domains.

    The domain bound is the maximum over the objective rows (the margin of a
    conjunction is the maximum of its rows).  Layer bounds and ``alpha`` are those
    of the last evaluated iteration (all valid); the returned ``bound`` is the best.
    ``offsets`` (batch, rows) are subtracted from the rows (objective ``C y - d``).
    With ``signs`` (list of (batch, n_k) in {-1, 0, 1}) the split constraints enter
    through ``beta`` (optimised from ``beta`` or zero).

    With ``fast_net`` (the same network in a cheaper dtype, e.g. float32) the Adam
    steps run in that dtype and only the final evaluation, in ``net``'s dtype
    (float64), gives the returned bound: the optimisation only chooses ``alpha`` and
    ``beta``, and every choice is sound when evaluated in float64.
    """
    empty = torch.zeros(lower.shape[0], dtype=torch.bool, device=lower.device)
    for pl, pu in zip(prior_lower, prior_upper):
        empty |= (pl > pu).any(1)
    if alpha is None:
        alpha = [((pu > -pl)).to(pl.dtype) for pl, pu in zip(prior_lower, prior_upper)]
    exact = _Problem(net, lower, upper, objective, prior_lower, prior_upper, offsets, signs, refine)
    work = exact if fast_net is None else exact.cast(fast_net)
    params = [a.detach().to(work.dtype).clone().requires_grad_(True) for a in alpha]
    groups = [{"params": params, "lr": lr}]
    betas = None
    if signs is not None:
        if beta is None:
            beta = [torch.zeros_like(a) for a in params]
        betas = [b.detach().to(work.dtype).clone().requires_grad_(True) for b in beta]
        groups.append({"params": betas, "lr": lr_beta})
    optimiser = torch.optim.Adam(groups) if iterations > 0 else None
    best = torch.full((lower.shape[0],), -torch.inf, dtype=lower.dtype, device=lower.device)
    best_rows = None
    for step in range(max(iterations, 0) + 1):
        last = step == max(iterations, 0) or deadline.expired
        problem = exact if last else work
        if last and work is not exact:
            params = [p.detach().to(exact.dtype) for p in params]
            betas = None if betas is None else [b.detach().to(exact.dtype) for b in betas]
        with torch.set_grad_enabled(not last):
            rows, lowers, uppers, lines, keep, x = problem.evaluate(params, betas, want_extras=last)
            value = rows.max(1).values
        if last or work is exact:
            better = value.detach() > best
            best = torch.where(better, value.detach(), best)
            best_rows = rows.detach() if best_rows is None else torch.where(
                better.unsqueeze(1), rows.detach(), best_rows)
        if last:
            break
        optimiser.zero_grad()
        (-value.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            for p in params:
                p.clamp_(0.0, 1.0)
            for b in betas or ():
                b.clamp_(min=0.0)
    for l, u in zip(lowers, uppers):
        empty |= (l > u).any(1)
    best = torch.where(empty, torch.full_like(best, torch.inf), best)
    betas = None if betas is None else [b.detach() for b in betas]
    return DomainBounds(best, best_rows, [l.detach() for l in lowers], [u.detach() for u in uppers],
                        [p.detach() for p in params], x.detach(), _score(lines, lowers, uppers, keep),
                        betas)


class _Problem:
    """The fixed data of one alpha-CROWN batch in one dtype."""

    def __init__(self, net, lower, upper, objective, prior_lower, prior_upper, offsets, signs, refine):
        self.net, self.dtype = net, net.dtype
        cast = (lambda t: None if t is None else t.to(net.dtype))
        self.lower, self.upper, self.objective = cast(lower), cast(upper), cast(objective)
        self.prior_lower = [cast(t) for t in prior_lower]
        self.prior_upper = [cast(t) for t in prior_upper]
        self.offsets, self.refine = cast(offsets), refine
        self.signs = None if signs is None else [cast(t) for t in signs]
        self.raw = (lower, upper, objective, prior_lower, prior_upper, offsets, signs, refine)
        self.fixed_lines = None
        if not refine:
            self.fixed_lines = []
            for l, u in zip(self.prior_lower, self.prior_upper):
                _, up, offset = _relu_lines(l, u, torch.zeros_like(l))
                self.fixed_lines.append(((l < 0) & (u > 0), (l >= 0).to(l.dtype), up, offset))

    def cast(self, net) -> "_Problem":
        return _Problem(net, *self.raw)

    def evaluate(self, alpha, beta, want_extras):
        split = None if self.signs is None else (self.signs, beta)
        rows, lowers, uppers, lines, keep, x = domain_bounds(
            self.net, self.lower, self.upper, self.objective, self.prior_lower, self.prior_upper,
            alpha, want_extras=want_extras, refine=self.refine, split=split,
            fixed_lines=self.fixed_lines)
        if self.offsets is not None:
            rows = rows - self.offsets
        return rows, lowers, uppers, lines, keep, x
