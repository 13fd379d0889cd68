"""fo-sdp's problem data: the program in float64 numpy (normalised box, cut data,
scales) and the layout of the flat dual vector.

Normalisation: ``x = ctr + rad * xt`` with ``ctr``, ``rad`` the centre and half-width
of ``[lo, hi]``, so that the box reads ``xt_i^2 <= d_i`` (``d_i`` is 1 rounded up; 0
for a fixed coordinate).  Cuts (the triangle LP's upper side ``s (z - l') - a >= 0``):
``s = u / (u - l)`` rounded up and ``l' = l`` for an unstable neuron (``l < 0 < u``),
``s = 1, l' = 0`` for an active one (``l >= 0``), none for ``u <= 0``.  Multipliers
are stored scaled by ``rho``, the half-width of the pre-activation bounds
(``alpha = p / rho``, ``gamma = p / rho^2``), so that all parameters are in
objective units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from solvers.program import LayeredReluProgram

__all__ = ["ProblemData", "Layout", "prepare", "check_shapes", "multipliers", "split_numpy",
           "EPS"]

EPS = float(np.finfo(np.float64).eps)
_EPS = EPS


@dataclass(frozen=True, eq=False)
class ProblemData:
    """The program in float64 numpy: normalisation, cut data, scales, masks."""

    weights: tuple            # W_k, dense ndarray or CSR
    biases: tuple
    ctr: tuple                # box centres of h_0..h_L
    rad: tuple                # box half-widths
    d: np.ndarray             # d_i >= max xt_i^2 over the box, i = 1..n (0 if fixed)
    rho: tuple                # scale of layer k's constraints (> 0)
    slope: tuple              # cut slope s_k (0 where no cut)
    cut_offset: tuple         # l'_k
    cut_mask: tuple           # where a cut is valid
    pre_lower: tuple          # pre-activation bounds of the hidden layers
    pre_upper: tuple
    c: np.ndarray
    c0: float
    active: tuple = ()        # per hidden layer: stably active neurons whose lifted
    #                           equality (a - z) p = 0 is used (:mod:`.lift`); () none

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(r.size for r in self.rad)

    @property
    def lifted(self) -> bool:
        """Whether some stably active neuron's lifted equality is used."""
        return any(bool(a.any()) for a in self.active)

    @property
    def n(self) -> int:
        return int(sum(self.sizes))


def box_radius(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, half-width and ``d = max xt^2`` (rounded up) of the box ``[lo, hi]``."""
    ctr = np.where(lo == hi, lo, 0.5 * lo + 0.5 * hi)
    rad = np.where(lo == hi, 0.0, 0.5 * (hi - lo))
    rad = np.where((rad == 0) & (lo != hi), hi - lo, rad)
    safe = np.where(rad > 0, rad, 1.0)
    reach = np.maximum(np.abs(lo - ctr), np.abs(hi - ctr)) / safe
    d = np.where(rad > 0, reach * reach * (1 + 8 * _EPS), 0.0)
    return ctr, rad, d


def _cut_data(pl: np.ndarray, pu: np.ndarray, cuts: bool):
    """Slope (rounded up), offset and validity mask of the triangle cuts of one layer."""
    unstable, active = (pl < 0) & (pu > 0), pl >= 0
    width = np.where(unstable, pu - pl, 1.0)
    slope = np.where(unstable, pu / width * (1 + 4 * _EPS), np.where(active, 1.0, 0.0))
    offset = np.where(unstable, pl, 0.0)
    mask = (unstable | active) & cuts
    return slope, offset, mask


def prepare(problem: LayeredReluProgram, cuts: bool, eliminate: bool = False) -> ProblemData:
    """Float64 data of ``problem`` (see :class:`ProblemData`); ``eliminate`` (with
    ``cuts`` only, the relaxation :mod:`solvers.backends.sdp_ipm` solves by default):
    the stably active neurons (``l >= 0``, a box of positive width) are marked
    ``active``, so that the dense certificate (:mod:`.lift`) and the Burer-Monteiro
    primal use ``z = a``."""
    boxes = [box_radius(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
             for lo, hi in zip(problem.lower, problem.upper)]
    rho, slope, offset, mask = [], [], [], []
    for pl, pu in zip(problem.pre_lower, problem.pre_upper):
        pl, pu = np.asarray(pl, np.float64), np.asarray(pu, np.float64)
        half = 0.5 * (pu - pl)
        floor = 1e-9 * max(1.0, float(half.max(initial=0.0)))
        rho.append(np.maximum(half, floor))
        s, o, m = _cut_data(pl, pu, cuts)
        slope.append(s), offset.append(o), mask.append(m)
    weights = tuple(sp.csr_matrix(w, dtype=np.float64) if sp.issparse(w)
                    else np.asarray(w, np.float64) for w in problem.weights)
    return ProblemData(weights, tuple(np.asarray(b, np.float64) for b in problem.biases),
                 tuple(b[0] for b in boxes), tuple(b[1] for b in boxes),
                 np.concatenate([b[2] for b in boxes]), tuple(rho), tuple(slope),
                 tuple(offset), tuple(mask),
                 tuple(np.asarray(v, np.float64) for v in problem.pre_lower),
                 tuple(np.asarray(v, np.float64) for v in problem.pre_upper),
                 np.asarray(problem.c, np.float64), float(problem.c0),
                 _active(problem, boxes) if cuts and eliminate else ())


def _active(problem: LayeredReluProgram, boxes) -> tuple:
    """Per hidden layer: ``l >= 0`` and the neuron's box has positive width."""
    return tuple((np.asarray(pl, np.float64) >= 0) & (box[1] > 0)
                 for pl, box in zip(problem.pre_lower, boxes[1:]))


def check_shapes(problem: LayeredReluProgram) -> None:
    L = len(problem.weights)
    counts = (len(problem.biases), len(problem.pre_lower), len(problem.pre_upper))
    if counts != (L, L, L) or len(problem.lower) != L + 1 or len(problem.upper) != L + 1:
        raise ValueError("LayeredReluProgram: need L weights/biases/pre-bounds and L+1 boxes")
    if np.asarray(problem.c).size != np.asarray(problem.lower[-1]).size:
        raise ValueError("LayeredReluProgram: c must match the last layer's size")


class Layout:
    """Flat parameter vector: per layer ``[alpha, beta, gamma, theta]`` (scaled), then ``kappa``."""

    def __init__(self, data: ProblemData):
        hidden = data.sizes[1:]
        self.hidden = hidden
        self.starts = np.concatenate([[0], np.cumsum([4 * h for h in hidden])]).astype(int)
        self.kappa_start = int(self.starts[-1])
        self.size = self.kappa_start + data.n + 1
        nonneg = np.zeros(self.size, bool)
        free = np.ones(self.size, bool)
        for k, h in enumerate(hidden):
            s = self.starts[k]
            nonneg[s:s + 2 * h] = True                # alpha, beta
            nonneg[s + 3 * h:s + 4 * h] = True        # theta
            free[s + 3 * h:s + 4 * h] = data.cut_mask[k]
        free[self.kappa_start + 1:] = data.d > 0       # kappa of fixed coordinates is 0
        self.nonneg, self.free = nonneg, free


    def split(self, p, k: int):
        """``(alpha, beta, gamma, theta)`` parameter slices of layer ``k``."""
        s, h = self.starts[k], self.hidden[k]
        return p[s:s + h], p[s + h:s + 2 * h], p[s + 2 * h:s + 3 * h], p[s + 3 * h:s + 4 * h]

    def project(self, p: np.ndarray) -> np.ndarray:
        """Signs and masks: ``alpha, beta, theta >= 0``; masked entries 0."""
        p = np.where(self.free, p, 0.0)
        return np.where(self.nonneg, np.maximum(p, 0.0), p)


def multipliers(layout: Layout, data: ProblemData, p: np.ndarray, k: int):
    """Actual multipliers of layer ``k`` from the scaled parameters: ``alpha = p / rho``,
    ``beta = p / rho``, ``gamma = p / rho^2``, ``theta = p / rho``."""
    rho = data.rho[k]
    alpha, beta, gamma, theta = layout.split(p, k)
    return alpha / rho, beta / rho, gamma / (rho * rho), theta / rho


def split_numpy(layout: Layout, data: ProblemData, params: np.ndarray):
    """Projected multipliers ``[(alpha, beta, gamma, theta)]`` per layer and ``kappa``."""
    p = layout.project(np.asarray(params, np.float64))
    lams = [multipliers(layout, data, p, k) for k in range(len(layout.hidden))]
    return lams, p[layout.kappa_start:]
