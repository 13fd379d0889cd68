"""Random verification problems and independent references for the soundness checks.

Shared by ``tests/test_soundness.py`` (a few dozen cases in CI) and
``benchmarks/soundness.py`` (thousands).  A case is a small random network (ReLU,
sigmoid, tanh or softplus), a random input box and a random VNNLIB-style property
(a robustness property or general conjunctions ``A y <= b``).  Its reference is an
*upper* bound on the true minimum margin over the box: dense sampling (uniform
points and vertices) plus PGD on every disjunct, and for ReLU networks the exact
MILP minimum.  A sound lower bound never exceeds it; a *holds* verdict is wrong
when any reference point violates the property; a *violated* verdict must come with
a point of the box that violates it in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from relax.errors import RelaxError
from relax.network import Affine, Network
from relax.protocol import VerifyOptions
from relax.result import Verdict
from relax.spec import Conjunction, Spec, robustness
from relax.verify import FLOAT_SLACK, verify
from tests.helpers import random_network, sample_box

#: slack for comparing a bound with a reference value computed in float64
TOLERANCE = 1e-7


@dataclass(frozen=True)
class Case:
    network: Network
    spec: Spec
    activation: str


@dataclass(frozen=True)
class Reference:
    """``upper``: the smallest margin found at a point of the box (>= the true minimum);
    ``exact``: the MILP minimum for ReLU networks (``None`` when not computed)."""

    upper: float
    exact: float | None


def random_case(seed: int, activation: str) -> Case:
    """A network with 2-4 inputs, 1-2 hidden layers of 2-5 neurons, 2-3 outputs, and a
    property over a random box inside [-1, 1]."""
    rng = np.random.default_rng(seed)
    widths = [int(rng.integers(2, 5))]
    widths += [int(rng.integers(2, 6)) for _ in range(int(rng.integers(1, 3)))]
    widths.append(int(rng.integers(2, 4)))
    network = random_network(rng, widths, activation, scale=float(rng.uniform(0.5, 2.0)))
    centre = rng.uniform(-0.6, 0.6, widths[0])
    eps = float(rng.choice([0.02, 0.1, 0.25, 0.5]))
    if rng.random() < 0.5:
        top = int(np.argmax(network.forward(centre)))
        label = top if rng.random() < 0.8 else int(rng.integers(widths[-1]))
        spec = robustness(centre, label, eps, domain=(-1.0, 1.0), num_classes=widths[-1])
    else:
        spec = _general_spec(rng, network, centre, eps)
    return Case(network, spec, activation)


def _general_spec(rng, network: Network, centre: np.ndarray, eps: float) -> Spec:
    """1-2 disjuncts of 1-2 random rows ``a^T y <= b``, ``b`` placed near the value at the
    centre so that both outcomes occur."""
    y0 = network.forward(centre)
    disjuncts = []
    for _ in range(int(rng.integers(1, 3))):
        A = rng.normal(size=(int(rng.integers(1, 3)), y0.size))
        b = A @ y0 - rng.normal(scale=0.3, size=A.shape[0]) - 0.1
        disjuncts.append(Conjunction(A, b))
    lower, upper = np.clip(centre - eps, -1, 1), np.clip(centre + eps, -1, 1)
    return Spec(lower, upper, tuple(disjuncts))


def reference(case: Case, samples: int = 2000, exact: bool = True) -> Reference:
    """Sampled and attacked margins (and the MILP minimum for ReLU networks)."""
    spec, network = case.spec, case.network
    rng = np.random.default_rng(1)
    points = [sample_box(rng, spec.lower, spec.upper, samples)]
    for disjunct in spec.disjuncts:
        points.append(_descend(network, spec, disjunct, rng))
    upper = float(spec.margin(network.forward(np.vstack(points))).min())
    value = _milp_value(case) if exact and network.is_relu else None
    return Reference(upper, value)


def _torch_forward(network: Network, x):
    """The network in torch float64, written here independently of relax's own torch code."""
    import torch

    for layer in network.layers:
        if isinstance(layer, Affine):
            x = x @ torch.as_tensor(layer.dense_weight()).T + torch.as_tensor(layer.bias)
        else:
            x = getattr(torch.nn.functional, layer.name)(x)
    return x


def _descend(network: Network, spec: Spec, disjunct: Conjunction, rng, starts: int = 16,
             steps: int = 60) -> np.ndarray:
    """Projected signed-gradient descent on one disjunct's margin from random starts; the
    final points (violating or not) join the reference set."""
    import torch

    lower, upper = torch.tensor(spec.lower), torch.tensor(spec.upper)
    A, b = torch.tensor(disjunct.A), torch.tensor(disjunct.b)
    x = torch.as_tensor(rng.uniform(spec.lower, spec.upper, (starts, spec.lower.size)))
    for step in range(steps):
        x = x.detach().requires_grad_(True)
        margin = (_torch_forward(network, x) @ A.T - b).max(dim=1).values
        (grad,) = torch.autograd.grad(margin.sum(), x)
        size = 0.2 * (1 - step / steps) * (upper - lower)
        x = torch.minimum(torch.maximum(x - size * grad.sign(), lower), upper)
    return x.detach().numpy()


def _milp_value(case: Case) -> float | None:
    from relax.bounds import bound_specs
    from relax.search.milp import milp_margin

    bounds = bound_specs(case.network, [case.spec], "crown")[0].layers
    return milp_margin(case.network, case.spec, bounds, time_limit=30)


@dataclass(frozen=True)
class Check:
    """One method on one case: ``refused`` (a typed error), or the verdict and bound, and
    what is wrong with them (empty when sound)."""

    method: str
    refused: str | None
    verdict: Verdict | None
    bound: float
    problems: tuple[str, ...]


def check_method(case: Case, ref: Reference, method: str, timeout: float = 20.0) -> Check:
    """Run ``method`` through :func:`relax.verify` and compare it with the reference."""
    try:
        result = verify(case.network, case.spec, method, timeout=timeout, options=VerifyOptions())
    except RelaxError as error:  # a method may refuse a network it cannot bound soundly
        return Check(method, str(error), None, -math.inf, ())
    problems = []
    best = ref.upper if ref.exact is None else min(ref.upper, ref.exact)
    if not result.bound <= best + TOLERANCE * max(1.0, abs(best)):
        problems.append(f"bound {result.bound!r} above the reference minimum margin {best!r}")
    if math.isnan(result.bound):
        problems.append("bound is NaN")
    if result.verdict is Verdict.HOLDS and best <= 0:
        problems.append(f"holds, but a point of the box has margin {best!r}")
    if result.verdict is Verdict.HOLDS and not result.bound > FLOAT_SLACK:
        problems.append(f"holds with bound {result.bound!r}")
    if result.verdict is Verdict.VIOLATED:
        x = result.counterexample
        if x is None or not case.spec.is_violated_by(x, case.network.forward(x)):
            problems.append("violated without a float64-checked counterexample")
    return Check(method, None, result.verdict, result.bound, tuple(problems))
