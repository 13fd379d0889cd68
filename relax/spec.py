"""Properties: an input box and an unsafe output set in the VNNLIB form.

The unsafe set is a disjunction of conjunctions ``A_d y <= b_d`` over the outputs
``y = f(x)``.  The property holds when every disjunct is empty over the box.

The *margin* of a disjunct at ``y`` is ``max_j (A_d y - b_d)_j``: it is positive
exactly when ``y`` lies outside the disjunct.  The margin of the property is the
minimum over disjuncts, so the property holds iff ``min_x margin(f(x)) > 0``.
A lower bound on a disjunct's margin follows from lower bounds ``L_j`` on each
row ``min_x (A_d f(x) - b_d)_j``: ``min_x max_j >= max_j L_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relax.errors import SpecError

__all__ = ["Conjunction", "L2Ball", "Spec", "robustness"]


def _readonly(array, ndim: int, what: str) -> np.ndarray:
    array = np.array(array, dtype=np.float64, copy=True)
    if array.ndim != ndim:
        raise SpecError(f"{what} must be {ndim}-D, got shape {array.shape}")
    if np.isnan(array).any():
        raise SpecError(f"{what} contains NaN")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Conjunction:
    """One disjunct of the unsafe set: ``{y : A y <= b}``."""

    A: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        A = _readonly(self.A, 2, "constraint matrix")
        b = _readonly(np.ravel(self.b), 1, "constraint bound")
        if A.shape[0] != b.shape[0] or A.shape[0] == 0:
            raise SpecError(f"a conjunction needs matching, non-empty A {A.shape} and b {b.shape}")
        if not np.all(np.isfinite(A)):
            raise SpecError("constraint matrix has infinite entries")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)

    def margin(self, y: np.ndarray) -> np.ndarray:
        """``max_j (A y - b)_j`` for one output or a batch (batch, n_out)."""
        return np.max(np.atleast_2d(y) @ self.A.T - self.b, axis=1)


@dataclass(frozen=True, eq=False)
class L2Ball:
    """``{x : ||x - center||_2 <= radius}``."""

    center: np.ndarray
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _readonly(np.ravel(self.center), 1, "ball centre"))
        if not (np.isfinite(self.radius) and self.radius >= 0):
            raise SpecError(f"ball radius must be finite and non-negative, got {self.radius}")
        object.__setattr__(self, "radius", float(self.radius))

    def contains(self, x: np.ndarray) -> bool:
        x = np.ravel(x)
        return x.shape == self.center.shape and bool(
            np.linalg.norm(x - self.center) <= self.radius)


@dataclass(frozen=True, eq=False)
class Spec:
    """An input box ``lower <= x <= upper`` and the unsafe disjuncts.

    With ``ball`` set the input set is the box intersected with the l2 ball; the box
    then encloses the ball, so every box-based method stays sound (only looser).
    """

    lower: np.ndarray
    upper: np.ndarray
    disjuncts: tuple[Conjunction, ...]
    ball: L2Ball | None = None

    def __post_init__(self) -> None:
        lower = _readonly(np.ravel(self.lower), 1, "input lower bound")
        upper = _readonly(np.ravel(self.upper), 1, "input upper bound")
        if lower.shape != upper.shape:
            raise SpecError(f"input bounds have shapes {lower.shape} and {upper.shape}")
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise SpecError("every input needs finite lower and upper bounds")
        if np.any(lower > upper):
            index = int(np.argmax(lower > upper))
            raise SpecError(f"empty input box: lower > upper at input {index}")
        disjuncts = tuple(self.disjuncts)
        if not disjuncts:
            raise SpecError("a property needs at least one unsafe disjunct")
        widths = {d.A.shape[1] for d in disjuncts}
        if len(widths) != 1:
            raise SpecError(f"disjuncts refer to different numbers of outputs: {sorted(widths)}")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "disjuncts", disjuncts)

    @property
    def input_size(self) -> int:
        return self.lower.size

    @property
    def output_size(self) -> int:
        return self.disjuncts[0].A.shape[1]

    def objectives(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All rows stacked: ``C`` (rows, n_out), ``d`` (rows,), owning disjunct (rows,).

        Row ``r`` is the function ``C_r y - d_r``; a lower bound on each row gives a
        lower bound on the property's margin via :meth:`combine`.
        """
        C = np.vstack([d.A for d in self.disjuncts])
        d = np.concatenate([d.b for d in self.disjuncts])
        owner = np.concatenate([np.full(len(dj.b), i) for i, dj in enumerate(self.disjuncts)])
        return C, d, owner

    def combine(self, row_bounds: np.ndarray) -> tuple[float, np.ndarray]:
        """From lower bounds per row to (property bound, per-disjunct bounds)."""
        _, _, owner = self.objectives()
        per_disjunct = np.full(len(self.disjuncts), -np.inf)
        np.maximum.at(per_disjunct, owner, np.asarray(row_bounds, dtype=np.float64))
        return float(per_disjunct.min()), per_disjunct

    def margin(self, y: np.ndarray) -> np.ndarray:
        """The property's margin ``min_d max_j (A_d y - b_d)_j`` (batch or single)."""
        return np.min(np.stack([d.margin(y) for d in self.disjuncts]), axis=0)

    def contains(self, x: np.ndarray) -> bool:
        x = np.ravel(x)
        in_box = x.shape == self.lower.shape and bool(np.all((self.lower <= x) & (x <= self.upper)))
        return in_box and (self.ball is None or self.ball.contains(x))

    def padded_rows(self, disjuncts) -> tuple[np.ndarray, np.ndarray]:
        """The rows ``(A, b)`` of the given disjuncts stacked as (disjuncts, rows, outputs)
        and (disjuncts, rows); short conjunctions are padded by repeating their first row,
        which leaves each disjunct's margin ``max_j (A y - b)_j`` unchanged."""
        disjuncts = list(disjuncts)
        count = max(len(self.disjuncts[j].b) for j in disjuncts)
        C = np.zeros((len(disjuncts), count, self.output_size))
        d = np.zeros((len(disjuncts), count))
        for n, j in enumerate(disjuncts):
            A, b = self.disjuncts[j].A, self.disjuncts[j].b
            C[n], d[n] = A[0], b[0]
            C[n, : len(b)], d[n, : len(b)] = A, b
        return C, d

    def is_violated_by(self, x: np.ndarray, y: np.ndarray) -> bool:
        """``x`` lies in the input set and ``y`` in some unsafe disjunct (non-strict)."""
        return self.contains(x) and bool(self.margin(np.ravel(y))[0] <= 0.0)

    def check_fits(self, input_size: int, output_size: int) -> None:
        if self.input_size != input_size:
            raise SpecError(
                f"the property constrains {self.input_size} inputs but the network has {input_size}"
            )
        if self.output_size != output_size:
            raise SpecError(
                f"the property refers to {self.output_size} outputs but the network has {output_size}"
            )


def robustness(
    x: np.ndarray,
    label: int,
    eps: float,
    domain: tuple[float, float] | None = (0.0, 1.0),
    num_classes: int = 10,
    norm: str = "linf",
) -> Spec:
    """L-infinity robustness: every ``x'`` with ``|x' - x| <= eps`` (clipped to ``domain``)
    keeps ``label`` strictly on top.  Unsafe disjunct for class ``j``: ``y_label - y_j <= 0``.
    With ``norm="l2"`` the set is ``||x' - x||_2 <= eps`` (within ``domain``): the spec's
    box is the enclosing l-inf box and ``ball`` holds the l2 ball.
    """
    if norm not in ("linf", "l2"):
        raise SpecError(f"norm must be 'linf' or 'l2', got {norm!r}")
    x = np.ravel(np.asarray(x, dtype=np.float64))
    if not 0 <= label < num_classes:
        raise SpecError(f"label {label} is not in 0..{num_classes - 1}")
    if not eps >= 0:
        raise SpecError(f"eps must be non-negative, got {eps}")
    lower, upper = x - eps, x + eps
    if domain is not None:
        lower, upper = np.clip(lower, *domain), np.clip(upper, *domain)
    disjuncts = []
    for j in range(num_classes):
        if j != label:
            row = np.zeros((1, num_classes))
            row[0, label], row[0, j] = 1.0, -1.0
            disjuncts.append(Conjunction(row, np.zeros(1)))
    ball = L2Ball(x, eps) if norm == "l2" else None
    return Spec(lower, upper, tuple(disjuncts), ball)
