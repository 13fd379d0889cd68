"""Side-by-side comparison of bound methods on robustness properties.

``compare(network, images, labels, eps_values, methods)`` runs :func:`relax.verify`
for every (image, eps, method) and returns one :class:`Comparison` row each.
The CLI's ``relax compare`` renders them as a table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from relax.network import Network
from relax.result import Result
from relax.spec import robustness
from relax.verify import BOUND_METHODS, VerifyOptions, verify

__all__ = ["Comparison", "compare", "available_methods", "DEFAULT_EPS", "DEFAULT_METHODS"]

log = logging.getLogger(__name__)

DEFAULT_EPS = (0.03, 0.08)
# methods of the default table: the ones that finish in seconds on the embedded network
# (the SDP is much slower on CPU and runs when asked for with --methods)
DEFAULT_METHODS = ("ibp", "crown", "lp", "exact")
EXACT_VALUE_SECONDS = 2.0  # the MILP's exact value is shown only where it is this cheap


@dataclass(frozen=True)
class Comparison:
    """One (image, eps) row: the result of every method on that property."""

    image: int
    label: int
    predicted: int
    eps: float
    results: dict[str, Result]
    exact_value: float | None = None


def available_methods() -> list[str]:
    """The verification methods registered in this installation, in table order."""
    return list(BOUND_METHODS)


def compare(
    network: Network,
    images: np.ndarray,
    labels: Sequence[int],
    eps_values: Iterable[float] = DEFAULT_EPS,
    methods: Sequence[str] | None = None,
    timeout: float | None = None,
    options: VerifyOptions = VerifyOptions(),
    progress: Callable[[], None] | None = None,
    exact_values: bool = True,
    norm: str = "linf",
) -> list[Comparison]:
    """Run every method on every (image, eps) robustness property.

    ``norm`` is ``"linf"`` or ``"l2"`` (then eps is an l2 radius: ``crc`` uses the
    ball, box-based methods its enclosing box, which is sound but looser).

    With ``exact_values`` (ReLU networks only) each row also gets the exact minimum
    margin from the MILP, a reference value that rests on the MILP solver's
    tolerances (verdicts never do).
    """
    methods = list(methods or [m for m in DEFAULT_METHODS if m in available_methods()])
    rows = []
    for index, (image, label) in enumerate(zip(images, labels)):
        predicted = int(np.argmax(network.forward(image)))
        for eps in eps_values:
            spec = robustness(image, int(label), eps, num_classes=network.output_size, norm=norm)
            results = {m: verify(network, spec, m, timeout, options) for m in methods}
            # the MILP's exact value is over the box, so only an l-inf row gets one
            value = _exact_value(network, spec, timeout) if exact_values and spec.ball is None else None
            rows.append(Comparison(index, int(label), predicted, float(eps), results, value))
            if progress is not None:
                progress()
    return rows


def _exact_value(network: Network, spec, timeout: float | None) -> float | None:
    """The MILP's exact margin, or ``None`` when it is not cheap (non-ReLU, time limit)."""
    from relax.lp.method import intermediate_bounds
    from relax.search.milp import milp_margin

    if not network.is_relu:
        return None
    bounds = intermediate_bounds(network, spec, "lp", None)
    return milp_margin(network, spec, bounds, time_limit=min(timeout or EXACT_VALUE_SECONDS, EXACT_VALUE_SECONDS))
