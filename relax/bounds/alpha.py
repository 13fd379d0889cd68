"""alpha-CROWN on batches of sub-domains (Xu et al. 2021), float64, in torch.

A *domain* is the input box together with valid pre-activation bounds
``l_k <= z_k <= u_k`` of every hidden layer (tighter than the box implies when
ReLUs were split: ``l = 0`` for an active split, ``u = 0`` for an inactive one).
For an unstable ReLU (``l < 0 < u``) any lower line ``alpha z`` with
``alpha in [0, 1]`` and the upper chord ``u (z - l) / (u - l)`` enclose
``relu`` on ``[l, u]``, so the CROWN backward pass (see :mod:`relax.bounds.crown`)

    Lambda <- Lambda W_k,  c <- c + Lambda b_k
    c <- c + Lambda^+ c_lo + Lambda^- c_up,
    Lambda <- Lambda^+ diag(a_lo) + Lambda^- diag(a_up)

gives, for *every* ``alpha``, a lower bound on ``C z_L`` over all inputs of the
box whose pre-activations lie in the domain's bounds.  alpha-CROWN maximises this
bound over ``alpha`` by projected gradient ascent (:mod:`relax.bounds.adam`,
exponentially decayed step).  Sigmoid, tanh and softplus layers get a lower and an
upper slope per neuron and row, each a fraction ``t in [0, 1]`` of the range of
``act'`` over the neuron's bounds, with exactly computed offsets
(:mod:`relax.bounds.smooth_lines`); they start at CROWN's tangent/chord lines and are
optimised with the ReLU slopes (their parameter has shape (batch, rows, 2 n_k)); every
neuron of a smooth layer counts as unstable (its relaxation has a gap).

Every objective row has its own slopes (``alpha`` has shape (batch, rows, n_k)):
the bound of each row is valid for any choice, so rows need not share.  With
``refine`` the unstable neurons of every intermediate layer ``t >= 1`` are
re-bounded by the same backward pass, each bound row (``+-e_i``) with its *own*
slopes of the layers below (``per_layer_alpha``; as auto_LiRPA does), and
intersected with the given bounds, so intermediate bounds tighten along with the
final one.  Because every ``alpha`` is sound, the best value seen over the
iterations is kept.  An empty domain (``l > u`` somewhere after intersection)
has bound ``+inf``.

Split constraints (beta-CROWN, Wang et al. 2021): a domain may also carry signs
``sigma_{k,i}`` (+1: split active, ``z >= 0``; -1: split inactive, ``z <= 0``; 0:
not split).  For ``beta >= 0`` and every input of the domain
``f(x) >= f(x) - sum beta sigma z(x)``, so adding ``-beta sigma`` to the backward
coefficients on ``z_k`` still gives a valid lower bound, now one that "sees" the
split constraints without recomputing intermediate bounds.  ``beta`` is optimised
with ``alpha``.  Splits at other points (smooth neurons, :mod:`relax.search.smooth_bab`)
carry two-sided signs and ``points`` (batch, 2 n_k): ``z >= p`` (sign +1, first half)
and ``z <= p`` (sign -1, second half); the term ``beta sigma (z - p)`` then also adds
``beta sigma p`` to the constant.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from relax.bounds.activations import RULES
from relax.bounds.adam import AdamGroup, ProjectedAdam
from relax.bounds.ibp import affine_interval
from relax.bounds.iterates import BestIterate
from relax.bounds.domains import AlphaSettings, DomainBounds, Domains
from relax.bounds.kernels import box_minimum, row_dot
from relax.bounds.smooth_lines import SmoothBase, initial_fraction, smooth_base, smooth_line, smooth_score
from relax.bounds.torch_network import TorchNetwork
from relax.deadline import NEVER, Deadline
from relax.errors import UnsupportedNetworkError

__all__ = ["AlphaSettings", "Domains", "DomainBounds", "alpha_crown", "check_activations"]


def check_activations(net: TorchNetwork) -> None:
    """Refuse activations without a sound relaxation here (typed error)."""
    for act in net.activations:
        if act.name not in RULES:
            raise UnsupportedNetworkError(f"alpha-CROWN has no relaxation for activation {act.name!r}")


def _layer_base(activation, l, u, span: str = "interval"):
    """Per-layer data that does not depend on ``alpha``: for ReLU (unstable, active,
    upper slope, upper offset); for a smooth activation its :class:`SmoothBase`."""
    if RULES[activation.name].smooth:
        return smooth_base(activation.name, l, u, span)
    unstable = (l < 0) & (u > 0)
    width = torch.where(unstable, u - l, torch.ones_like(u))
    up = torch.where(unstable, u / width, (l >= 0).to(l.dtype))
    offset = torch.where(unstable, -l * u / width, torch.zeros_like(u))
    return unstable, (l >= 0).to(l.dtype), up, offset


def _line(base, alpha):
    """(lower slope, lower offset or None, upper slope, upper offset); the lower slope of a
    ReLU layer is (batch, rows, n) from ``alpha``, the rest (batch, n); a smooth layer's
    four are (batch, rows, n) from its fractions ``alpha`` (batch, rows, 2n)."""
    if isinstance(base, SmoothBase):
        return smooth_line(base, alpha)
    unstable, active, up, offset = base
    lo = torch.where(unstable.unsqueeze(1), alpha.clamp(0.0, 1.0), active.unsqueeze(1))
    return lo, None, up, offset


def _backward(net: TorchNetwork, lines, objective, layer, lower, upper, keep=None, split=None):
    """Lower bounds (batch, rows) on ``objective @ z_layer``; with ``keep`` (a list), also
    records the coefficient on each activation output and returns the minimising input."""
    coeffs = objective
    const = torch.zeros(objective.shape[:2], dtype=objective.dtype, device=objective.device)
    for k in range(layer, -1, -1):
        const = const + coeffs @ net.biases[k]
        coeffs = net.back(k, coeffs)
        if k == 0:
            break
        lo, lo_offset, up, up_offset = lines[k - 1]
        if keep is not None:
            keep.insert(0, coeffs)
        positive = torch.relu(coeffs)  # one fused backward; ``coeffs - positive`` is exactly min(coeffs, 0)
        negative = coeffs - positive
        const = const + _offset_dot(negative, up_offset)
        if lo_offset is not None:
            const = const + _offset_dot(positive, lo_offset)
        lo = lo if lo.dim() == 3 else lo.unsqueeze(1)
        coeffs = positive * lo + negative * (up if up.dim() == 3 else up.unsqueeze(1))
        if split is not None:
            coeffs, const = _split_term(coeffs, const, split, k - 1)
    value = const + box_minimum(coeffs, lower, upper)
    if keep is None:
        return value, None
    return value, torch.where(coeffs[:, 0] > 0, lower, upper)  # minimiser of the first row


def _split_term(coeffs, const, split, k):
    """Add ``-beta sigma (z_k - p)`` of layer ``k``'s split constraints (one-sided at 0, or
    two-sided at ``points``) to the coefficients on ``z_k`` and the constant."""
    sign, beta = split[0][k], split[1][k]
    term = beta.clamp(min=0) * sign
    if split[2] is None:
        return coeffs - term.unsqueeze(1), const
    n = coeffs.shape[-1]
    coeffs = coeffs - (term[:, :n] + term[:, n:]).unsqueeze(1)
    return coeffs, const + (term * split[2][k]).sum(-1, keepdim=True)


def _offset_dot(coeffs, offset):
    """``coeffs . offset`` per row for offsets shared by the rows (batch, n) or per row."""
    return row_dot(coeffs, offset) if offset.dim() == 2 else (coeffs * offset).sum(-1)


def _refine_layer(net, bases, alphas, t, domains, idx):
    """Layer ``t``'s bounds with the neurons ``idx`` re-bounded under ``alphas`` (per-row
    slopes of the layers below for its ``[e_i; -e_i]`` rows, or shared)."""
    pl, pu = domains.prior_lower[t], domains.prior_upper[t]
    if not len(idx):
        return pl, pu
    eye = torch.zeros(len(idx), pl.shape[1], dtype=pl.dtype, device=pl.device)
    eye[torch.arange(len(idx)), idx] = 1.0
    rows = torch.cat([eye, -eye]).expand(pl.shape[0], -1, -1)
    lines = [_line(b, a) for b, a in zip(bases, alphas)]
    both, _ = _backward(net, lines, rows, t, domains.lower, domains.upper)
    l, u = pl.clone(), pu.clone()
    l[:, idx] = _straight_through(torch.maximum, pl[:, idx], both[:, : len(idx)])
    u[:, idx] = _straight_through(torch.minimum, pu[:, idx], -both[:, len(idx):])
    return l, u


def _straight_through(pick, prior, new):
    """The value ``pick(prior, new)`` (the intersection: sound, never looser) with the
    gradient of ``new``, so slopes keep being steered where the prior bound is tighter."""
    return new + (pick(prior, new) - new).detach()


def _unstable_index(activation, pl, pu):
    """The neurons whose relaxation has a gap in some domain: ``l < 0 < u`` for a ReLU,
    ``l < u`` for a smooth activation."""
    if RULES[activation.name].smooth:
        return torch.nonzero((pl < pu).any(0)).flatten()
    return torch.nonzero(((pl < 0) & (pu > 0)).any(0)).flatten()


def domain_bounds(net: TorchNetwork, domains: Domains, alpha, inter, indices, split=None,
                  fixed_bases=None, want_extras: bool = False):
    """One CROWN pass for a batch of domains with final slopes ``alpha[k]`` (batch, rows,
    n_k); unless ``fixed_bases`` are given, the neurons ``indices[t]`` of every layer
    ``t >= 1`` are re-bounded with slopes ``inter[t][k]`` (or, with ``inter=None``, ``alpha``).
    With ``domains.shared`` (and ``inter``) the layer bounds are computed once, on the
    first domain, and broadcast.
    Returns (row bounds, layer lowers, layer uppers, bases, backward coeffs, x)."""
    box = domains.head() if domains.shared and inter is not None else domains
    lowers, uppers, bases = [], [], []
    for k, (pl, pu) in enumerate(zip(box.prior_lower, box.prior_upper)):
        if fixed_bases is not None:
            l, u = pl, pu
        elif k == 0:
            l, u = affine_interval(net, 0, box.lower, box.upper)
            l, u = torch.maximum(l, pl), torch.minimum(u, pu)
        else:
            slopes = alpha[:k] if inter is None else inter[k]
            l, u = _refine_layer(net, bases, slopes, k, box, indices[k])
        lowers.append(l)
        uppers.append(u)
        bases.append(fixed_bases[k] if fixed_bases is not None else _layer_base(net.activations[k], l, u))
    keep = [] if want_extras else None
    lines = [_line(b, a) for b, a in zip(bases, alpha)]
    rows, x = _backward(net, lines, domains.objective, net.num_layers - 1, domains.lower,
                        domains.upper, keep, split)
    if domains.offsets is not None:
        rows = rows - domains.offsets
    return rows, lowers, uppers, bases, keep, x


def _score(bases, lowers, uppers, keep, alphas):
    """BaBSR-style intercept score ``-min(lambda, 0) * (-l u / (u - l))`` of each unstable
    ReLU for the first objective row: how much its upper chord costs the bound; for a
    smooth neuron :func:`relax.bounds.smooth_lines.smooth_score`."""
    out = []
    for base, l, u, coeffs, alpha in zip(bases, lowers, uppers, keep, alphas):
        if isinstance(base, SmoothBase):
            out.append(smooth_score(base, coeffs[:, 0], alpha[:, :1]))
            continue
        unstable, _, _, offset = base
        s = (-coeffs[:, 0].clamp(max=0)) * offset
        # a tiny width term breaks ties among neurons the chord does not yet penalise
        s = s + 1e-6 * (u - l)
        out.append(torch.where(unstable, s, torch.full_like(s, -1.0)))
    return out


def _initial_slopes(activation, pl, pu, span: str):
    """(batch, 1, n) CROWN's adaptive ReLU choice ``u > -l``, or (batch, 1, 2n) a smooth
    layer's fractions of CROWN's tangent/chord slopes."""
    if RULES[activation.name].smooth:
        return initial_fraction(smooth_base(activation.name, pl, pu, span))
    return (pu > -pl).to(pl.dtype).unsqueeze(1)


def _initial_alpha(activations, domains: Domains, rows: int, settings: AlphaSettings, alpha=None):
    """Final slopes (batch, rows, n_k) and intermediate ones ``inter[t][k]`` (batch, 2 s_t, n_k),
    all started from CROWN's choice (:func:`_initial_slopes`; or from ``alpha``); a smooth
    layer's have 2 n_k columns."""
    adaptive = [_initial_slopes(act, pl, pu, settings.smooth_span)
                for act, pl, pu in zip(activations, domains.prior_lower, domains.prior_upper)]
    if alpha is None:
        final = [a.expand(-1, rows, -1).clone() for a in adaptive]
    else:
        final = [a if a.dim() == 3 else a.unsqueeze(1).expand(-1, rows, -1).clone() for a in alpha]
    if not (settings.refine and settings.per_layer_alpha):
        return final, None
    inter = [None]
    if domains.shared:
        adaptive = [a[:1] for a in adaptive]
    for t in range(1, len(adaptive)):
        size = 2 * len(_unstable_index(activations[t], domains.prior_lower[t], domains.prior_upper[t]))
        inter.append([a.expand(-1, size, -1).clone() for a in adaptive[:t]])
    return final, inter


class _Problem:
    """The fixed data of one alpha-CROWN batch in one dtype, evaluated for given slopes."""

    def __init__(self, net: TorchNetwork, domains: Domains, refine: bool, span: str = "interval"):
        if refine and span != "interval":
            raise ValueError("smooth_span='activation' needs refine=False")
        self.net, self.dtype, self.refine, self.span = net, net.dtype, refine, span
        self.domains = domains.to(net.dtype)
        self.indices = [_unstable_index(act, l, u)
                        for act, l, u in zip(net.activations, domains.prior_lower, domains.prior_upper)]
        self.fixed_bases = None
        if not refine:
            self.fixed_bases = [_layer_base(act, l, u, span) for act, l, u in zip(
                net.activations, self.domains.prior_lower, self.domains.prior_upper)]

    def cast(self, net: TorchNetwork) -> "_Problem":
        return _Problem(net, self.domains, self.refine, self.span)

    def evaluate(self, alpha, inter, beta, want_extras=False):
        split = None if self.domains.signs is None else (self.domains.signs, beta, self.domains.points)
        return domain_bounds(self.net, self.domains, alpha, inter, self.indices, split,
                             self.fixed_bases, want_extras)

    def tighten(self, lowers, uppers) -> None:
        """Intersect the layer bounds with ones valid for these domains (monotone refinement:
        every iterate's bounds are sound, so the best of them are too)."""
        if not self.refine:
            return
        self.domains = replace(self.domains,
                               prior_lower=[torch.maximum(p, l.detach()) for p, l in zip(self.domains.prior_lower, lowers)],
                               prior_upper=[torch.minimum(p, u.detach()) for p, u in zip(self.domains.prior_upper, uppers)])


def _empty(domains: Domains, lowers, uppers) -> torch.Tensor:
    empty = torch.zeros(domains.lower.shape[0], dtype=torch.bool, device=domains.lower.device)
    for l, u in list(zip(domains.prior_lower, domains.prior_upper)) + list(zip(lowers, uppers)):
        empty |= (l > u).any(1)
    return empty


def alpha_crown(net: TorchNetwork, domains: Domains, settings: AlphaSettings = AlphaSettings(),
                alpha=None, beta=None, deadline: Deadline = NEVER,
                fast_net: TorchNetwork | None = None) -> DomainBounds:
    """Best-of-iterations alpha-CROWN bounds ``max_j rows_j`` for a batch of domains.

    The domain bound is the maximum over the objective rows (the margin of a
    conjunction is the maximum of its rows).  Layer bounds and ``alpha`` are those
    of the last evaluated iteration (all valid); the returned ``bound`` is the best.
    ``alpha`` (final slopes, (batch, rows, n_k) or (batch, n_k)) and ``beta`` (split
    multipliers) warm-start the search.  With ``fast_net`` (the same network in a
    cheaper dtype) the Adam steps run in that dtype and only the final evaluation,
    in ``net``'s dtype (float64), gives the returned bound: the optimisation only
    chooses ``alpha`` and ``beta``, and every choice is sound when evaluated in float64.
    On per-domain slopes (the search's children) that evaluation is at each domain's
    best iterate in the cheaper dtype (:class:`relax.bounds.iterates.BestIterate`), while
    the returned ``alpha`` and ``beta`` are the last iterate's, to warm-start the children.
    """
    check_activations(net)
    if not net.activations:  # nothing to optimise
        settings = replace(settings, iterations=0)
    exact = _Problem(net, domains, settings.refine, settings.smooth_span)
    work = exact if fast_net is None else exact.cast(fast_net)
    final, inter = _initial_alpha(net.activations, domains, domains.objective.shape[1], settings, alpha)
    params = [a.detach().to(work.dtype).clone().requires_grad_(True) for a in final]
    inter = None if inter is None else [None] + [
        [a.detach().to(work.dtype).clone().requires_grad_(True) for a in group] for group in inter[1:]]
    betas = None
    if domains.signs is not None:
        beta = beta if beta is not None else [torch.zeros_like(s, dtype=work.dtype) for s in domains.signs]
        betas = [b.detach().to(work.dtype).clone().requires_grad_(True) for b in beta]
    smooth = [RULES[act.name].smooth for act in net.activations]
    state = _Search(exact, work, params, inter, betas, settings, smooth)
    return state.run(deadline, _empty)


class _Search:
    """Projected Adam ascent on the slopes with best-of-iterations bookkeeping."""

    def __init__(self, exact, work, params, inter, betas, settings: AlphaSettings, smooth: list[bool]):
        self.exact, self.work, self.params, self.inter, self.betas = exact, work, params, inter, betas
        alphas = list(zip(params, smooth)) + [
            (a, smooth[k]) for group in (inter or [None])[1:] for k, a in enumerate(group)]
        groups = [AdamGroup([a for a, s in alphas if not s], settings.lr, 0.0, 1.0),
                  AdamGroup([a for a, s in alphas if s], settings.lr_smooth, 0.0, 1.0)]
        if betas is not None:
            groups.append(AdamGroup(betas, settings.lr_beta, 0.0, None))
        self.iterations = max(settings.iterations, 0)
        self.stop_when_positive = settings.stop_when_positive
        self.optimiser = ProjectedAdam(groups, settings.lr_decay)

    def _final_params(self):
        if self.work is self.exact:
            return self.params, self.inter, self.betas
        cast = (lambda ts: [t.detach().to(self.exact.dtype) for t in ts])
        inter = None if self.inter is None else [None] + [cast(g) for g in self.inter[1:]]
        return cast(self.params), inter, None if self.betas is None else cast(self.betas)

    def run(self, deadline: Deadline, empty_of) -> DomainBounds:
        domains = self.exact.domains
        best = torch.full((domains.lower.shape[0],), -torch.inf, dtype=domains.lower.dtype)
        best_rows, positive = None, False
        iterate = BestIterate(self.params, self.betas) if self._tracks_iterates() else None
        for step in range(self.iterations + 1):
            last = step == self.iterations or deadline.expired or positive
            if last and iterate is not None and step > 0:
                with torch.no_grad():  # the last iterate's value in the working dtype
                    iterate.offer(self.work.evaluate(self.params, None, self.betas)[0].max(1).values,
                                  self.params, self.betas)
            problem = self.exact if last else self.work
            params, inter, betas = self._final_params() if last else (self.params, self.inter, self.betas)
            if last and iterate is not None:
                params, betas = iterate.cast(self.exact.dtype)
            with torch.set_grad_enabled(not last):
                rows, lowers, uppers, bases, keep, x = problem.evaluate(params, inter, betas, last)
                value = rows.max(1).values
            if last or self.work is self.exact:
                self.exact.tighten(lowers, uppers)
                better = value.detach() > best
                best = torch.where(better, value.detach(), best)
                best_rows = rows.detach() if best_rows is None else torch.where(
                    better.unsqueeze(1), rows.detach(), best_rows)
            if last:
                break
            if iterate is not None:
                iterate.offer(value.detach(), self.params, self.betas)
            positive = self.stop_when_positive and bool((value.detach() > 0).all())
            if not positive:
                self._step(value)
        best = torch.where(empty_of(domains, lowers, uppers), torch.full_like(best, torch.inf), best)
        size = domains.lower.shape[0]
        lowers = [l.expand(size, -1) for l in lowers]
        uppers = [u.expand(size, -1) for u in uppers]
        score = _score(bases, lowers, uppers, keep, params)
        if iterate is not None:  # the children start from the last iterate, not the best
            params, betas = self._final_params()[::2]
        return DomainBounds(best, best_rows, [l.detach() for l in lowers], [u.detach() for u in uppers],
                            [p.detach() for p in params], x.detach(), score,
                            None if betas is None else [b.detach() for b in betas])

    def _tracks_iterates(self) -> bool:
        """Whether the Adam steps run in a cheaper dtype on per-domain slopes (the search's
        children): then the float64 bound is taken at each domain's best iterate."""
        size = self.exact.domains.lower.shape[0]
        return (self.work is not self.exact and self.inter is None
                and all(p.shape[0] == size for p in self.params + (self.betas or [])))

    def _step(self, value):
        self.optimiser.zero_grad()
        (-value.sum()).backward()
        self.optimiser.step()
