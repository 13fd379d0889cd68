"""Intermediate layer bounds tightened by branch and bound on each neuron (a MILP stand-in).

For an unstable neuron ``i`` of hidden layer ``k`` (``l_i < 0 < u_i``), ``min z_{k,i}`` over
the input box is the margin of a property of the network *cut after layer k's affine
map*: its outputs are ``z_k``, and the unsafe set ``{z_{k,i} <= 0}`` has margin
``z_{k,i}``.  beta-CROWN branch and bound on that cut network
(:func:`relax.search.beta_crown.torch_branch_and_bound`, the layers below ``k`` starting
from the current bounds) then either

- proves ``z_{k,i} > 0`` on the whole box: the neuron is stably active (``l_i`` becomes
  the search's bound, which is positive);
- finds an input with ``z_{k,i} <= 0`` (float64-checked on the cut network): that end
  cannot be tightened past 0, and the bound is kept;
- or stops at its time limit with a valid lower bound on ``min z_{k,i}`` (the least bound
  over its open domains and closed leaves), which ``l_i`` is raised to if higher.

The same with ``-z_{k,i}`` bounds ``u_i``.  Every new bound is a bound the search proved
with float64 CROWN bounds (sound for any slopes and multipliers), intersected with the
old one, so the result is never looser and always valid over the whole box.  This is the
role of alpha-beta-CROWN's MILP refinement of intermediate bounds (its VNN-COMP 2021
``bab-refine``, Gurobi): in the k-ReLU stage on mnistfc 256x4 prop_8_0.05 it takes layer 1
from 147 to 77 unstable neurons (6.5 s, one thread) and layer 2 from 23 to 0 (3.4 s), where
the stage's k-ReLU LP alone left 126 and 13 (``benchmarks/results/vnncomp_notes.md``, 16).

Each search's root keeps the layer bounds it is given (``BabSettings.root_refine=False``):
they are the stage's, already searched and LP-tightened, and re-bounding every
intermediate layer under each neuron's own slopes cost most of a search's time.  On eran
9x200 (spec 9841, the stage alone, one thread) that took layer 7 to 59 unstable neurons
instead of 105 in the same 250 s, and the stage alone proved the spec (notes, 17).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np

from relax.bounds import Bounds, refine_bounds
from relax.deadline import Deadline
from relax.errors import UnsupportedNetworkError, UsageError
from relax.network import Network
from relax.search.beta_crown import BabSettings, torch_branch_and_bound
from relax.spec import Conjunction, Spec

__all__ = ["search_layer_bounds"]

log = logging.getLogger(__name__)


def search_layer_bounds(network: Network, spec: Spec, bounds: Bounds, k: int, per_neuron: float,
                        deadline: Deadline, settings: BabSettings = BabSettings()) -> Bounds:
    """``bounds`` with layer ``k``'s unstable neurons tightened by branch and bound
    (module docstring; at most ``per_neuron`` seconds per end of a neuron, stopping at
    ``deadline``), the later layers' bounds re-propagated by CROWN and intersected.

    The neurons are taken in the order of ``min(-l, u) / (u - l)``, the nearest to stable
    first (so a deadline cuts the least promising ones); the end nearer to 0 is tried
    first; an end proved past 0 makes the neuron stable and the other end is skipped."""
    if k < 1:
        raise UsageError(f"layer {k}: layer 0's bounds are exact over the box; search layers >= 1")
    if any(a.name != "relu" for a in network.activations[:k]):
        raise UnsupportedNetworkError(f"layer {k}: the per-neuron search needs ReLU layers below it")
    start = time.monotonic()
    cut = Network(network.layers[: 2 * k + 1], network.input_shape)
    prior = Bounds(bounds.lower[:k], bounds.upper[:k], bounds.method)
    lower, upper = np.array(bounds.lower[k]), np.array(bounds.upper[k])
    settings = replace(settings, quiet=True, root_refine=False)
    unstable = bounds.unstable(k)
    nearness = np.minimum(-lower[unstable], upper[unstable]) / (upper[unstable] - lower[unstable])
    unstable = unstable[np.argsort(nearness, kind="stable")]  # likeliest to be proved stable first
    ends_by_outcome = {"proved": 0, "reached": 0, "time limit": 0}
    seconds_by_outcome = dict.fromkeys(ends_by_outcome, 0.0)
    for i in unstable:
        ends = (+1, -1) if -lower[i] <= upper[i] else (-1, +1)
        for sign in ends:
            if deadline.expired:
                break
            began = time.monotonic()
            least = _least_value(cut, spec, i, sign, prior, deadline.earliest(Deadline.after(per_neuron)), settings)
            outcome, took = _outcome(least), time.monotonic() - began
            ends_by_outcome[outcome] += 1
            seconds_by_outcome[outcome] += took
            log.debug("layer %d neuron %d end %+d: %s, %.4g (%.2f s)", k, i, sign, outcome, least, took)
            if sign > 0:
                lower[i] = max(lower[i], least)
            else:
                upper[i] = min(upper[i], -least)
            if least > 0:
                break
    lowers, uppers = list(bounds.lower), list(bounds.upper)
    lowers[k], uppers[k] = lower, upper
    tightened = refine_bounds(network, spec.lower, spec.upper, Bounds(tuple(lowers), tuple(uppers), bounds.method))
    log.info("layer %d: %d -> %d unstable by per-neuron search (%.2f s; ends past 0 proved %s, "
             "reached %s, at the time limit %s)", k, len(unstable), len(tightened.unstable(k)),
             time.monotonic() - start,
             *(f"{ends_by_outcome[o]} in {seconds_by_outcome[o]:.1f} s" for o in ends_by_outcome))
    return tightened


def _outcome(least: float) -> str:
    """What an end's search did: proved the end past 0, reached 0 (a checked input), or
    stopped at its time limit with ``least`` as the end's new bound."""
    return "proved" if least > 0 else "reached" if least == -np.inf else "time limit"


def _least_value(cut: Network, spec: Spec, i: int, sign: int, prior: Bounds, deadline: Deadline,
                 settings: BabSettings) -> float:
    """A lower bound on ``min sign * z_i`` over the box from the search on ``cut``
    (``-inf`` when the search finds an input with ``sign * z_i <= 0``)."""
    row = np.zeros((1, cut.output_size))
    row[0, i] = sign
    neuron = Spec(spec.lower, spec.upper, (Conjunction(row, np.zeros(1)),))
    outcome = torch_branch_and_bound(cut, neuron, deadline=deadline, settings=settings, prior=prior)
    return -np.inf if outcome.counterexample is not None else float(outcome.bound)
