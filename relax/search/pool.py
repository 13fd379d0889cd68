"""The open domains of a batched branch and bound, and the check of its counterexample candidates.

:class:`DomainPool` keeps the domains as a dict of batched tensors (a tensor, or a list of
per-layer tensors, per field; one row per domain); the searches of
:mod:`relax.search.beta_crown` and :mod:`relax.search.smooth_bab` pop the lowest-bound
ones, add children, and drop the closed ones.
"""

from __future__ import annotations

import math

import torch

from relax.bounds.torch_network import TorchNetwork
from relax.deadline import Deadline
from relax.result import FLOAT_SLACK
from relax.search.attack import AttackOptions, pgd_attack

__all__ = ["DomainPool", "take_fields", "doubled_fields", "record_bounds", "first_counterexample",
           "attack_lowest"]


class DomainPool:
    """Open domains as rows of batched tensors (``fields``: a tensor or a list of per-layer
    tensors per name; ``bound`` is each domain's safe bound).

    The rows live in storage that grows by doubling, with a mask of the live ones: popping
    the lowest-bound domains copies only those rows and frees their slots, children are
    written into free slots, and closing a domain clears its mask bit.  A search that
    keeps tens of thousands of open domains (each with per-row slopes of every layer, tens
    of kilobytes) thus no longer copies the whole pool three times per batch.

    ``stored`` keeps some fields in a narrower dtype (name: dtype; e.g. float16 for warm
    starts, whose precision does not matter for soundness): they are cast on the way in
    (float16 clamped to its finite range) and back to the dtype they came in on the way
    out, so the pool holds more domains in the same memory."""

    def __init__(self, fields: dict, stored: dict[str, torch.dtype] | None = None):
        stored = stored or {}
        self._dtypes = {k: (v[0] if isinstance(v, list) else v).dtype for k, v in fields.items() if k in stored}
        self._rows = {k: _map_one(v, lambda t, k=k: _narrow(t, stored[k]) if k in stored else t.clone())
                      for k, v in fields.items()}
        self._live = torch.ones(len(fields["bound"]), dtype=torch.bool)

    def _out(self, fields: dict) -> dict:
        """``fields`` (rows of the storage) with the narrowed ones cast back."""
        return {k: _map_one(v, lambda t, k=k: t.to(self._dtypes[k])) if k in self._dtypes else v
                for k, v in fields.items()}

    def __len__(self):
        return int(self._live.sum())

    def _live_index(self) -> torch.Tensor:
        return torch.nonzero(self._live).flatten()

    def least_bound(self) -> float:
        """The least bound of an open domain (``inf`` if none)."""
        return float(self._rows["bound"][self._live].min()) if len(self) else math.inf

    def bytes_per_domain(self) -> int:
        """The memory one domain's fields take."""
        return sum(t[:1].numel() * t.element_size() for value in self._rows.values()
                   for t in (value if isinstance(value, list) else [value]))

    def fields(self) -> dict:
        """A copy of the open domains' fields (one row per domain)."""
        return self._out(take_fields(self._rows, self._live_index()))

    def column(self, name: str) -> torch.Tensor:
        """The open domains' values of the (single-tensor) field ``name``."""
        column = self._rows[name][self._live]
        return column.to(self._dtypes[name]) if name in self._dtypes else column

    def chunks(self, size: int):
        """The open domains' fields, ``size`` domains at a time (copies of those rows)."""
        index = self._live_index()
        for start in range(0, len(index), size):
            yield self._out(take_fields(self._rows, index[start:start + size]))

    def take(self, mask) -> dict:
        """The open domains' fields at ``mask`` (a boolean mask over the open domains)."""
        return self._out(take_fields(self._rows, self._live_index()[mask]))

    def pop_lowest(self, count: int) -> dict:
        """Remove and return the ``count`` open domains of least bound."""
        return self._pop(count, largest=False)

    def pop_highest(self, count: int) -> dict:
        """Remove and return the ``count`` open domains of largest bound (the nearest to closing)."""
        return self._pop(count, largest=True)

    def _pop(self, count: int, largest: bool) -> dict:
        live = self._live_index()
        bounds = self._rows["bound"][live]
        chosen = live[torch.topk(bounds, min(count, len(bounds)), largest=largest, sorted=False).indices]
        chosen = chosen.sort().values  # storage order, as a mask would give
        self._live[chosen] = False
        return self._out(take_fields(self._rows, chosen))

    def add(self, fields: dict):
        """Write new domains into free slots (growing the storage when there are too few)."""
        m = len(fields["bound"])
        free = torch.nonzero(~self._live).flatten()
        if len(free) < m:
            self._grow(m - len(free))
            free = torch.nonzero(~self._live).flatten()
        slots = free[:m]
        for name, value in fields.items():
            stored = self._rows[name]
            for dest, src in (zip(stored, value) if isinstance(stored, list) else [(stored, value)]):
                narrowed = name in self._dtypes and src.dtype == self._dtypes[name]
                dest[slots] = _narrow(src, dest.dtype) if narrowed else src  # else dtypes must match
        self._live[slots] = True

    def _grow(self, extra: int):
        capacity = len(self._live)
        more = max(capacity, extra)
        self._rows = _map_fields(self._rows, lambda t: torch.cat([t, t.new_empty((more,) + t.shape[1:])]))
        self._live = torch.cat([self._live, torch.zeros(more, dtype=torch.bool)])

    def close_positive(self) -> float:
        """Drop the domains whose bound clears :data:`relax.result.FLOAT_SLACK` (so a search
        that closes them all proves the property); the least such bound (``inf`` if none)."""
        done = self._live & (self._rows["bound"] > FLOAT_SLACK)
        if not done.any():
            return math.inf
        least = float(self._rows["bound"][done].min())
        self._live &= ~done
        return least


def _map_fields(fields: dict, fn) -> dict:
    return {k: _map_one(v, fn) for k, v in fields.items()}


def _map_one(value, fn):
    return [fn(t) for t in value] if isinstance(value, list) else fn(value)


def _narrow(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` cast to ``dtype`` (a copy), float16 clamped to its finite range."""
    if dtype == torch.float16:
        t = t.clamp(-torch.finfo(dtype).max, torch.finfo(dtype).max)
    return t.to(dtype, copy=True)


def take_fields(fields: dict, mask) -> dict:
    """The rows ``mask`` (a boolean mask, indices or a slice) of every field."""
    return {k: ([t[mask] for t in v] if isinstance(v, list) else v[mask]) for k, v in fields.items()}


def first_counterexample(network, spec, xs: torch.Tensor, net: TorchNetwork, C, d):
    """The first float64-confirmed counterexample among candidate inputs, or ``None``.

    Candidates are screened with the torch float64 forward pass against every
    disjunct (``C``, ``d`` of all disjuncts), then confirmed with the IR's forward pass.
    """
    lower, upper = net.tensor(spec.lower), net.tensor(spec.upper)
    xs = torch.minimum(torch.maximum(xs, lower), upper)
    with torch.no_grad():
        y = net.forward(xs)
        margins = ((y[:, None, None, :] * C[None]).sum(-1) - d[None]).max(2).values.min(1).values
    for i in torch.argsort(margins)[:4].tolist():
        if margins[i] > 1e-9:
            break
        x = xs[i].numpy()
        if spec.is_violated_by(x, network.forward(x)):
            return x
    return None


def doubled_fields(fields: dict) -> dict:
    """Every field twice over (rows ``r`` and ``r + m`` of ``m``): the two children of each
    domain before their split is written in."""
    return {k: ([torch.cat([t, t]) for t in v] if isinstance(v, list) else torch.cat([v, v]))
            for k, v in fields.items()}


def record_bounds(fields: dict, result) -> None:
    """Store an alpha/beta-CROWN ``result`` (:class:`relax.bounds.domains.DomainBounds`) in
    the domains' fields: the better of the new and the inherited bound (both are safe for
    the domain), and the slopes, multipliers and scores to warm-start and branch from."""
    fields["bound"] = torch.maximum(result.bound, fields["bound"])
    fields["alpha"] = [a.float() for a in result.alpha]
    fields["beta"] = [b.float() for b in result.beta]
    fields["score"] = [s.float() for s in result.score]


def attack_lowest(network, spec, net: TorchNetwork, xs: torch.Tensor, bounds: torch.Tensor,
                  starts: int, steps: int, deadline: Deadline):
    """PGD (``steps``) from the minimising inputs ``xs`` of the ``starts`` lowest-bound
    domains: a float64-checked counterexample or ``None``."""
    count = min(starts, len(bounds))
    if count == 0:
        return None
    return pgd_attack(network, spec, AttackOptions(steps=steps), deadline, net, xs[torch.argsort(bounds)[:count]])
