"""Branch and bound over ReLU phases with safe LP bounds on every node.

The LP is the relaxation of the big-M MILP (:func:`relax.lp.encode.encode_milp`): one
variable ``d in [0, 1]`` per unstable neuron.  Branching fixes ``d`` to 0
(inactive: ``a = 0``, ``z <= 0``) or 1 (active: ``a = z``, ``z >= 0``) through
*variable bounds only*, so the model stays loaded and each node is a hot start.
At the root the relaxation projects onto the triangle LP.

- A node is *closed* when its safe bound (from the dual vector, see
  :func:`solvers.lp_safe_bound`) is positive, or when the LP is infeasible and the
  backend's infeasibility was certified.
- Each node's LP optimum is a candidate input; it becomes a counterexample only
  after the float64 check of :meth:`relax.spec.Spec.is_violated_by`.
- Nodes are explored best-first (lowest bound); the neuron to split is the one
  whose relaxation is most exploited at the node's optimum, ``a - relu(z)``.

The bound reported at any moment is the minimum over open nodes and closed
leaves, a valid lower bound on the disjunct's margin.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from relax.bounds import Bounds
from relax.deadline import NEVER, Deadline
from relax.lp.encode import encode_milp
from relax.lp.runner import LpRunner
from relax.network import Network
from relax.lp.objectives import disjunct_objective
from relax.result import Reason, ReasonKind
from relax.spec import Conjunction, Spec

__all__ = ["BabOutcome", "DisjunctTree", "branch_and_bound"]

log = logging.getLogger(__name__)

RELU_TOLERANCE = 1e-7


@dataclass(frozen=True)
class BabOutcome:
    """``bound > 0`` proves the disjunct empty; ``counterexample`` is float64-checked."""

    bound: float
    counterexample: np.ndarray | None
    nodes: int
    complete: bool
    reason: Reason | None = None


@dataclass(order=True)
class _Node:
    bound: float
    order: int
    fixed: dict
    x: np.ndarray


class DisjunctTree:
    """The LP, the binary bookkeeping and the candidate check for one disjunct: the big-M
    MILP's relaxation over the box, re-solved (hot) with ReLU phases fixed by
    :meth:`solve`; also used by beta-CROWN to close fully split domains."""

    def __init__(self, network: Network, spec: Spec, disjunct: Conjunction, bounds: Bounds,
                 solver: str | None, options, augment=None, deadline: Deadline = NEVER,
                 check_network: Network | None = None):
        encoding = encode_milp(network, spec.lower, spec.upper, bounds)
        if augment is not None:  # extra rows valid at every node (e.g. k-ReLU hull rows)
            encoding = augment(encoding)
        objective = disjunct_objective(encoding, disjunct)
        # candidates are checked on ``check_network`` (default ``network``): a reduced
        # network's LP (:mod:`relax.search.live`) checks them on the full network
        self.network, self.spec = check_network or network, spec
        self.c, self.c0 = objective.c, objective.c0
        self.runner = LpRunner(objective.program.relaxed(), solver, options, deadline)
        self.lower0 = np.array(self.runner.program.lower)
        self.upper0 = np.array(self.runner.program.upper)
        self.binaries = np.arange(objective.program.block("binary").start,
                                  objective.program.block("binary").stop)
        neurons = encoding.binary_neurons
        self.neurons = [(int(k), int(i)) for k, i in neurons]
        self.post = np.array([encoding.post_activation_index(k, i) for k, i in neurons], dtype=int)
        pre_rows = [encoding.expressions[k][0][i] for k, i in neurons]
        width = objective.program.num_variables
        self.pre = (sp.vstack(pre_rows, format="csr") if pre_rows else sp.csr_matrix((0, width)))
        self.pre = sp.hstack([self.pre, sp.csr_matrix((self.pre.shape[0], width - self.pre.shape[1]))],
                             format="csr")
        self.pre_offset = np.array([encoding.expressions[k][1][i] for k, i in neurons])
        self.width = np.array([bounds.upper[k][i] - bounds.lower[k][i] for k, i in neurons])
        self.inputs = objective.program.block("input").indices

    def solve(self, fixed: dict) -> tuple[float, np.ndarray | None]:
        lower, upper = self.lower0.copy(), self.upper0.copy()
        for index, value in fixed.items():
            lower[self.binaries[index]] = upper[self.binaries[index]] = value
        self.runner.set_bounds(lower, upper)
        solution = self.runner.minimize(self.c, self.c0)
        return solution.bound, solution.x

    def counterexample(self, x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        candidate = np.clip(x[self.inputs], self.spec.lower, self.spec.upper)
        if self.spec.is_violated_by(candidate, self.network.forward(candidate)):
            return candidate
        return None

    def branching_neuron(self, x: np.ndarray, fixed: dict) -> int | None:
        """The unfixed binary with the largest ``(a - relu(z)) * (u - l)`` at the LP optimum:
        the ReLU relaxation the LP exploits most, weighted by how wide the neuron's
        interval is (this closed the hard mnistfc instances about twice as fast as the
        plain violation, the triangle height, or layer-first orders)."""
        if x is None or not len(self.binaries):
            return None
        violation = x[self.post] - np.maximum(self.pre @ x + self.pre_offset, 0.0)
        score = np.where(violation > RELU_TOLERANCE, violation * self.width, -1.0)
        score[list(fixed)] = -np.inf
        best = int(np.argmax(score))
        if score[best] > 0:
            return best
        free = [j for j in range(len(self.binaries)) if j not in fixed]
        return free[0] if free else None


def branch_and_bound(
    network: Network,
    spec: Spec,
    disjunct: Conjunction,
    bounds: Bounds,
    solver: str | None = None,
    deadline: Deadline = NEVER,
    options=None,
    augment=None,
) -> BabOutcome:
    """Decide whether ``disjunct`` is empty over ``spec``'s box (see module docstring).

    ``augment`` (optional) maps the MILP encoding to one with extra rows that are valid
    for the whole box, e.g. ``lambda e: relax.krelu.add_rows(e, layers)``."""
    tree = DisjunctTree(network, spec, disjunct, bounds, solver, options, augment, deadline)
    counter = itertools.count()
    bound, x = tree.solve({})
    heap = [_Node(bound, next(counter), {}, x)]
    closed_min, nodes = math.inf, 1
    while heap:
        if heap[0].bound > 0:
            closed_min = min(closed_min, heap[0].bound)
            heapq.heappop(heap)
            continue
        if deadline.expired:
            return BabOutcome(min(heap[0].bound, closed_min), None, nodes, False, Reason.time_limit())
        node = heapq.heappop(heap)
        cex = tree.counterexample(node.x)
        if cex is not None:
            return BabOutcome(node.bound, cex, nodes, True)
        j = tree.branching_neuron(node.x, node.fixed)
        if j is None:
            reason = Reason(ReasonKind.NOT_APPLICABLE, "all ReLUs fixed at a node with a non-positive "
                            "bound but no checked counterexample")
            return BabOutcome(node.bound, None, nodes, False, reason)
        for value in (0.0, 1.0):
            fixed = {**node.fixed, j: value}
            child_bound, child_x = tree.solve(fixed)
            nodes += 1
            heapq.heappush(heap, _Node(child_bound, next(counter), fixed, child_x))
    log.info("branch and bound closed %d nodes", nodes)
    return BabOutcome(closed_min, None, nodes, True)
