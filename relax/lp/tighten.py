"""Tighten intermediate pre-activation bounds with the triangle LP, layer by layer.

For layer ``k`` the LP of layers ``0..k-1`` (with the bounds found so far) is built
once; then for every *unstable* neuron ``i`` we minimise and maximise
``z_{k,i} = M_i v + g_i`` over it, re-using the loaded model (hot starts).  Each new
bound is a safe dual bound, so it is valid whatever the LP solver's tolerances.
After each layer, CROWN re-runs with the tightened bounds intersected in, so the
improvement reaches every later layer before its own LPs are built.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np

from relax.bounds import Bounds, refine_bounds
from relax.deadline import NEVER, Deadline
from relax.lp.encode import LpEncoding, encode_triangle
from relax.lp.runner import LpRunner
from relax.network import Network
from solvers.backend import SolveOptions

__all__ = ["tighten_bounds", "tighten_layer"]

log = logging.getLogger(__name__)


def tighten_bounds(
    network: Network,
    lower: np.ndarray,
    upper: np.ndarray,
    bounds: Bounds,
    solver: str | None = None,
    deadline: Deadline = NEVER,
    options: SolveOptions | None = None,
) -> Bounds:
    """LP-tightened copies of ``bounds`` (never looser: results are intersected); each LP
    gets the time left as its limit, and tightening stops at the deadline."""
    current = bounds
    for k in range(1, len(network.activations)):
        if deadline.expired:
            log.info("LP tightening stopped at layer %d: time limit", k)
            break
        current = _tighten_layer(network, lower, upper, current, k, solver, deadline, options)
        current = refine_bounds(network, lower, upper, current)
    return Bounds(current.lower, current.upper, f"{bounds.method}+lp")


def _tighten_layer(network, lower, upper, bounds: Bounds, k: int, solver, deadline, options) -> Bounds:
    encoding = encode_triangle(network, lower, upper, bounds, depth=k)
    smooth = network.activations[k].name != "relu"
    return tighten_layer(encoding, k, bounds, solver, deadline, options, smooth=smooth)


def tighten_layer(encoding: LpEncoding, k: int, bounds: Bounds, solver: str | None = None,
                  deadline: Deadline = NEVER, options: SolveOptions | None = None,
                  smooth: bool = False, partial: Callable[[np.ndarray, np.ndarray], bool] | None = None,
                  every: float | None = None) -> Bounds:
    """``bounds`` with layer ``k``'s unstable neurons tightened over ``encoding`` (an LP of
    the layers below ``k``, e.g. the triangle LP, possibly with extra valid rows):
    ``l_i = max(l_i, min z_i)`` and, while ``l_i < 0``, ``u_i = min(u_i, max z_i)``, each a
    safe dual bound; stops at ``deadline`` (the neurons left keep their bounds).  With
    ``smooth`` (layer ``k`` feeds a sigmoid/tanh/softplus, whose lines tighten with either
    end) every neuron with ``l_i < u_i`` gets both ends tightened.  ``partial(l_k, u_k)`` is
    called with the layer's bounds so far (copies, valid) every ``every`` seconds while
    neurons are left (e.g. to hand them to a search running beside); when it returns
    ``False`` the layer stops there (the neurons left keep their bounds)."""
    # minima and maxima in two hot-started models: each solve starts from the basis of the
    # same direction's last solve, not from the opposite objective's (2.7-2.9x fewer simplex
    # iterations on mnistfc 256x4's last layer: benchmarks/lp_tighten_order.py)
    minima = LpRunner(encoding.program, solver, options, deadline)
    maxima = LpRunner(encoding.program, solver, options, deadline)
    M, g = encoding.expressions[k]
    M = M.tocsr()
    l_k, u_k = np.array(bounds.lower[k]), np.array(bounds.upper[k])
    neurons = _chained(M, np.flatnonzero(l_k < u_k) if smooth else bounds.unstable(k))
    start = handed = time.monotonic()
    for done, i in enumerate(neurons, 1):
        if deadline.expired:
            log.info("layer %d: LP tightening stopped by the time limit", k)
            break
        row = M[i].toarray().ravel()
        l_k[i] = max(l_k[i], minima.lower_bound(row, g[i]))
        if smooth or l_k[i] < 0:  # a ReLU with l >= 0 is stable: its upper bound no longer matters
            u_k[i] = min(u_k[i], -maxima.lower_bound(-row, -g[i]))
        if partial is not None and every is not None and done < len(neurons) \
                and time.monotonic() - handed >= every:
            log.info("layer %d: %d of %d neurons LP-tightened; handing over the bounds so far",
                     k, done, len(neurons))
            if not partial(l_k.copy(), u_k.copy()):
                break
            handed = time.monotonic()
    log.info("layer %d: %d neurons LP-tightened (%.2f s); %d with l < 0 < u after", k, len(neurons),
             time.monotonic() - start, int(np.sum((l_k < 0) & (u_k > 0))))
    lowers, uppers = list(bounds.lower), list(bounds.upper)
    lowers[k], uppers[k] = l_k, u_k
    return Bounds(tuple(lowers), tuple(uppers), bounds.method)


CHAIN_LIMIT = 4000  # above this many neurons the O(n^2) order is skipped (solve in index order)


def _chained(M, neurons: np.ndarray) -> np.ndarray:
    """``neurons`` in a greedy nearest-neighbour chain of their objective rows: each next
    neuron is the one left whose row ``M_j`` has the largest cosine ``M_i . M_j / (|M_i|
    |M_j|)`` with the last one's, so that a hot start begins near the new optimum (1.11-1.15x
    fewer simplex iterations than index order on mnistfc 256x4: benchmarks/lp_tighten_order.py)."""
    if not 2 < neurons.size <= CHAIN_LIMIT:
        return neurons
    rows = M[neurons].toarray()
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    cosine = rows @ rows.T
    order, left = [0], np.ones(neurons.size, bool)
    left[0] = False
    for _ in range(neurons.size - 1):
        nearest = int(np.argmax(np.where(left, cosine[order[-1]], -np.inf)))
        order.append(nearest)
        left[nearest] = False
    return neurons[order]
