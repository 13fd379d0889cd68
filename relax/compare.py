"""Side-by-side comparison of bound methods on robustness properties.

``compare(network, images, labels, eps_values, methods)`` runs :func:`relax.verify`
for every (image, eps, method) and returns one :class:`Comparison` row each;
:func:`render_table` and :func:`legend` make the CLI's table.

The *exact value* of a row is what is soundly known of the property's true
minimum margin ``m*`` (:class:`ExactValue`):

- ``>= b``: the ``exact`` method proved the property with the bound ``b``;
- ``<= c``: the ``exact`` method found a float64-checked counterexample of margin ``c``;
- ``= v``: where ``exact`` did not decide (or did not run), the big-M MILP was solved
  to optimality within the time limit (``v`` rests on the MILP solver's tolerances:
  a reference, never a verdict);
- ``-``: none of these within the time limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from relax.network import Network
from relax.result import ReasonKind, Result, Verdict
from relax.spec import Spec, robustness
from relax.verify import BOUND_METHODS, VerifyOptions, verify

__all__ = ["Comparison", "ExactValue", "compare", "available_methods", "render_table", "legend",
           "write_csv", "ladder_breaks",
           "DEFAULT_EPS", "DEFAULT_METHODS"]

log = logging.getLogger(__name__)

DEFAULT_EPS = (0.03, 0.08)
# the default table: the whole ladder (the ones registered here; alpha-crown comes with
# the alpha-CROWN method)
DEFAULT_METHODS = ("ibp", "crown", "alpha-crown", "lp", "krelu", "sdp", "exact")


@dataclass(frozen=True)
class ExactValue:
    """What is known of the true minimum margin: ``relation`` is ``"="`` (MILP
    optimum), ``">="`` (a proof's bound), ``"<="`` (a counterexample's margin)."""

    relation: str
    value: float
    source: str

    def text(self) -> str:
        sign = "" if self.relation == "=" else self.relation
        return f"{sign}{self.value:+.3f}"


@dataclass(frozen=True)
class Comparison:
    """One (image, eps) row: the result of every method on that property."""

    image: int
    label: int
    predicted: int
    eps: float
    results: dict[str, Result]
    exact: ExactValue | None = None
    timeout: float | None = None
    #: the network is all ReLU (on smooth layers alpha-CROWN's optimised lines are not
    #: rows of the LP, so alpha-crown may legitimately beat lp there)
    relu: bool = True

    def timed_out(self, method: str) -> bool:
        """The method stopped at the time limit (its bound is the one it had then)."""
        r = self.results[method]
        late = self.timeout is not None and r.seconds >= self.timeout
        return late or any(x.kind is ReasonKind.TIME_LIMIT for x in r.reasons)

    @property
    def exact_value(self) -> float | None:
        """The MILP optimum when known (the ``=`` case), else ``None``."""
        return self.exact.value if self.exact is not None and self.exact.relation == "=" else None

    def to_json(self) -> dict:
        exact = None if self.exact is None else {"relation": self.exact.relation,
                                                 "value": self.exact.value,
                                                 "source": self.exact.source}
        return {"image": self.image, "label": self.label, "predicted": self.predicted,
                "eps": self.eps, "exact": exact,
                "results": {m: r.to_json() for m, r in self.results.items()}}


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
    """Run every method on every (image, eps) robustness property; relaxations in
    bound mode (:attr:`VerifyOptions.bound_only`), complete methods deciding.

    ``norm`` is ``"linf"`` or ``"l2"`` (then eps is an l2 radius: ``crc`` uses the
    ball, box-based methods its enclosing box, which is sound but looser).
    With ``exact_values`` each row gets an :class:`ExactValue` (module docstring);
    the MILP runs within ``timeout`` (ReLU networks, l-inf boxes only).
    """
    methods = list(methods or [m for m in DEFAULT_METHODS if m in available_methods()])
    specs = [(index, int(label), float(eps),
              robustness(image, int(label), eps, num_classes=network.output_size, norm=norm))
             for index, (image, label) in enumerate(zip(images, labels)) for eps in eps_values]
    rows = []
    for index, label, eps, spec in specs:
        predicted = int(np.argmax(network.forward(images[index])))
        results = {m: verify(network, spec, m, timeout, _mode(m, options)) for m in methods}
        exact = exact_value(network, spec, results.get("exact"), timeout) if exact_values else None
        rows.append(Comparison(index, label, predicted, eps, results, exact, timeout, network.is_relu))
        if progress is not None:
            progress()
    return rows


def _mode(method: str, options: VerifyOptions) -> VerifyOptions:
    """Bound mode for the relaxations (their own bound: no early exit, no attack);
    complete methods decide (their verdict feeds the exact value)."""
    from relax.methods import method_info

    return options if method_info(method).complete else replace(options, bound_only=True)


def exact_value(network: Network, spec: Spec, exact: Result | None,
                timeout: float | None) -> ExactValue | None:
    """What ``exact`` decided; where it did not (or did not run), the MILP optimum
    within ``timeout`` (module docstring)."""
    if exact is not None and exact.verdict is Verdict.HOLDS and exact.bound is not None:
        return ExactValue(">=", float(exact.bound), "exact")
    if exact is not None and exact.verdict is Verdict.VIOLATED and exact.counterexample is not None:
        x = np.asarray(exact.counterexample, dtype=np.float64)
        return ExactValue("<=", float(spec.margin(network.forward(x))[0]), "exact")
    value = _milp_value(network, spec, timeout)
    return None if value is None else ExactValue("=", value, "milp")


def _milp_value(network: Network, spec: Spec, timeout: float | None) -> float | None:
    """The big-M MILP's optimum over CROWN intermediate bounds, LP-tightened in the
    first half of ``timeout``; ``None`` when not solved to optimality in time."""
    from relax.bounds import bound_specs
    from relax.deadline import Deadline
    from relax.lp.tighten import tighten_bounds
    from relax.search.milp import milp_margin

    if not network.is_relu or spec.ball is not None or timeout is None:
        return None
    deadline = Deadline.after(timeout)
    bounds = bound_specs(network, [spec], "crown")[0].layers
    bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, None, deadline.share(0.5))
    return None if deadline.expired else milp_margin(network, spec, bounds,
                                                     time_limit=deadline.left())


def _cells(rows: Sequence[Comparison], methods: Sequence[str]) -> list[list[str]]:
    header = ["img", "label", "pred", "eps"]
    for m in methods:
        header += [f"{m} bound", f"{m} verdict", f"{m} s"]
    lines = [header + ["exact value", "order"]]
    for row in rows:
        cells = [str(row.image), str(row.label), str(row.predicted), f"{row.eps:g}"]
        for m in methods:
            r = row.results[m]
            bound = "-" if r.bound is None or not np.isfinite(r.bound) else f"{r.bound:+.3f}"
            cells += [bound + ("*" if row.timed_out(m) else ""), r.verdict.value, f"{r.seconds:.2f}"]
        cells.append("-" if row.exact is None else row.exact.text())
        cells.append(", ".join(f"{a}>{b}!" for a, b in ladder_breaks(row, methods)) or "ok")
        lines.append(cells)
    return lines


def render_table(rows: Sequence[Comparison], methods: Sequence[str], markdown: bool = False) -> str:
    """A plain-text (or Markdown) table: per method bound, verdict, seconds; the exact
    value; and ``order``: the pairs where a looser relaxation beat a tighter one."""
    lines = _cells(rows, methods)
    if markdown:
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines[1:]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


def write_csv(path, rows: Sequence[Comparison], methods: Sequence[str]) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(_cells(rows, methods))


#: the tightness order of the relaxations (each at least as tight as the ones before,
#: given the same intermediate bounds); the SDP is not ordered against the LP family
LADDER = (("ibp", "crown"), ("crown", "alpha-crown"), ("crown", "lp"), ("alpha-crown", "lp"),
          ("lp", "krelu"), ("crown", "sdp"))
#: pairs that hold on ReLU networks only: alpha-CROWN's optimised smooth lines are not
#: among the LP's tangent/chord rows
RELU_ONLY_PAIRS = (("alpha-crown", "lp"),)
LADDER_SLACK = 1e-6


def ladder_breaks(row: Comparison, methods: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs (looser, tighter) where the looser relaxation's bound is higher although
    the tighter one finished in time: a bug; also any bound above the known exact value."""
    bounds = {m: row.results[m].bound for m in methods if row.results[m].bound is not None}
    finished = {m for m in bounds if not row.timed_out(m)}
    ladder = [pair for pair in LADDER if row.relu or pair not in RELU_ONLY_PAIRS]
    breaks = [(a, b) for a, b in ladder if a in bounds and b in finished
              and np.isfinite(bounds[b]) and bounds[a] > bounds[b] + LADDER_SLACK]
    if row.exact is not None and row.exact.relation in ("=", "<="):
        breaks += [(m, "exact") for m, v in bounds.items() if v > row.exact.value + LADDER_SLACK]
    return breaks


def legend(total_seconds: float) -> str:
    return ("bound = sound lower bound on the margin (> 0 certifies). exact value = what is "
            "known of the true minimum margin: >=b proved by `exact`, <=c the margin of its "
            "checked counterexample, +v the MILP optimum where `exact` did not decide "
            f"(reference, within the time limit), - not known in time. * = time limit reached (the "
            "bound so far). order: pairs where a looser relaxation beat a tighter one that "
            f"finished (marked !). total {total_seconds:.1f} s")
