"""Falsification by projected gradient descent (PGD) on the property's margin.

For each unsafe disjunct ``d`` and restart we minimise ``max_j (A_d f(x) - b_d)_j``
over the input box with signed-gradient steps and projection onto the box.  A
candidate becomes a counterexample only after a float64 forward pass of the IR
confirms that it lies in the box and that its outputs satisfy every constraint
of some disjunct.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from relax.bounds.torch_network import TorchNetwork
from relax.deadline import NEVER, Deadline
from relax.network import Network
from relax.spec import Spec

__all__ = ["AttackOptions", "pgd_attack"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackOptions:
    """PGD settings: ``steps`` per restart, ``restarts`` per disjunct, step size
    ``step_fraction * (upper - lower)`` decayed linearly to a tenth."""

    steps: int = 40
    restarts: int = 8
    step_fraction: float = 0.25
    seed: int = 0


def pgd_attack(
    network: Network,
    spec: Spec,
    options: AttackOptions = AttackOptions(),
    deadline: Deadline = NEVER,
    net: TorchNetwork | None = None,
    starts: torch.Tensor | None = None,
) -> np.ndarray | None:
    """A float64-checked counterexample inside ``spec``'s box, or ``None``.

    ``starts`` (n, n_in): start every disjunct's descent from these points (one restart
    each, e.g. the inputs minimising a search's lowest domain bounds) instead of the box
    centre and random points."""
    net = net or TorchNetwork.from_network(network, "cpu", torch.float64)
    lower, upper = net.tensor(spec.lower), net.tensor(spec.upper)
    if starts is None:
        generator = torch.Generator(device="cpu").manual_seed(options.seed)
        x = _initial_points(lower, upper, len(spec.disjuncts), options.restarts, generator, net)
        restarts = options.restarts
    else:
        x = torch.minimum(torch.maximum(starts.to(net.dtype), lower), upper).repeat(len(spec.disjuncts), 1)
        restarts = len(starts)
    A, b = _disjunct_rows(spec, net, restarts)
    width = upper - lower
    for step in range(options.steps):
        if deadline.expired:
            break
        x = x.detach().requires_grad_(True)
        margins = _disjunct_margins(net, x, A, b)
        found = _confirmed(network, spec, x.detach(), margins.detach())
        if found is not None:
            log.debug("PGD found a counterexample at step %d", step)
            return found
        (grad,) = torch.autograd.grad(margins.sum(), x)
        scale = options.step_fraction * (1 - 0.9 * step / max(options.steps - 1, 1))
        x = torch.minimum(torch.maximum(x - scale * width * grad.sign(), lower), upper)
    with torch.no_grad():
        return _confirmed(network, spec, x.detach(), _disjunct_margins(net, x, A, b))


def _initial_points(lower, upper, n_disjuncts, restarts, generator, net):
    """Restart 0 starts at the box centre, the others uniformly at random."""
    shape = (n_disjuncts * restarts, lower.numel())
    u = torch.rand(shape, generator=generator, dtype=net.dtype).to(net.device)
    u[::restarts] = 0.5
    return lower + u * (upper - lower)


def _disjunct_rows(spec: Spec, net: TorchNetwork, restarts: int):
    """Each disjunct's rows padded to a common count with rows ``0 y <= -inf``-like neutrals."""
    n_rows = max(len(d.b) for d in spec.disjuncts)
    A = np.zeros((len(spec.disjuncts), n_rows, spec.output_size))
    b = np.full((len(spec.disjuncts), n_rows), np.inf)
    for i, d in enumerate(spec.disjuncts):
        A[i, : len(d.b)], b[i, : len(d.b)] = d.A, d.b
    repeat = lambda a: net.tensor(np.repeat(a, restarts, axis=0))  # noqa: E731
    return repeat(A), repeat(b)


def _disjunct_margins(net: TorchNetwork, x, A, b):
    """``max_j (A_d f(x) - b_d)_j`` per point; padded rows contribute ``-inf``."""
    y = net.forward(x)
    return ((A @ y.unsqueeze(-1)).squeeze(-1) - b).amax(dim=1)


def _confirmed(network: Network, spec: Spec, x, margins) -> np.ndarray | None:
    """Check the most promising candidates with the float64 IR forward pass."""
    order = torch.argsort(margins)[:4]
    if margins[order[0]] > 1e-3 * (1 + margins.abs().max()):
        return None
    for index in order.tolist():
        candidate = x[index].cpu().numpy().astype(np.float64)
        candidate = np.clip(candidate, spec.lower, spec.upper)
        if spec.is_violated_by(candidate, network.forward(candidate)):
            return candidate
    return None
