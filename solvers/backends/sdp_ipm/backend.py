r"""``sdp-ipm``: the backend.  A :class:`~solvers.program.LayeredReluProgram` goes to
:func:`~.problem.build` (the multiplier form; with cuts, stably active neurons
substituted), :func:`~.start.feasible_start` and :func:`~.ipm.path_following`;
``Solution.bound`` is the largest float64 certificate (never the solver's objective) of
the last multipliers, the best ones and the linear (CROWN-like) multipliers of the start:
:func:`.reduced.certified_bound` for the substituted form,
:func:`solvers.backends.fo_sdp.certified_bound` for the full form and for the linear start
(fo-sdp's exact linear certificate), so it is never below that linear bound.

Options: :class:`IpmOptions` (pass it as ``SolveOptions(extra=(("ipm", IpmOptions(...)),))``;
the ``cuts`` key of ``extra`` (default True) is how ``relax.sdp`` asks for the triangle
cuts, and its ``device`` key overrides ``IpmOptions.device``).  ``SolveOptions.tolerance`` overrides ``IpmOptions.tolerance`` and
``time_limit`` bounds the iterations.  Warm start: a :class:`IpmWarmStart` (the best
multipliers) for the same layer sizes and ``cuts`` starts from a convex combination with
the linear start (IPM warm starts must stay interior), when its certified value is higher.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from solvers.backend import Backend, SolveOptions, torch_available
from solvers.program import LayeredReluProgram, ProblemKind
from solvers.solution import Solution, SolveStats, Status

__all__ = ["SdpIpmBackend", "IpmOptions", "IpmWarmStart", "memory_estimate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IpmOptions:
    """``device`` (torch device), ``max_iterations``, ``tolerance`` (relative gap and
    primal residual), ``fraction`` (of the step to the boundary), ``start``
    (``"linear"``: the CROWN-like multipliers, or ``"interval"``: all neuron multipliers
    0), ``tau`` (the start's distance from the boundary, ``Z >= tau I``, in units of the
    scaled objective), ``delta`` (signed multipliers start at least this far inside),
    ``centred`` (the primal start ``X = mu Z^-1`` on the central path, else
    ``X = primal_scale I``, see :mod:`.ipm`),
    ``active_cut`` (with cuts, also the cut ``z >= a`` of stably active neurons, i.e.
    ``a = z``: exactly fo-sdp's and the primal encoding's relaxation with cuts, but the
    primal may lose its interior and the method crawl, see :mod:`.problem`; ``None``, the
    default: with it, but when the relative gap after ``probe[0]`` iterations is still
    above ``probe[1]`` the run stops and the problem is solved again without it; the
    bound is the better certified one); ``eliminate`` (with cuts, the default): stably
    active neurons substituted instead (:mod:`.reduced`; ``active_cut`` is then moot): the
    primal keeps its interior, and the bound is :func:`.reduced.certified_bound`)."""

    device: str = "cpu"
    max_iterations: int = 150
    tolerance: float = 1e-7
    feasibility: float = 1e-7
    fraction: float = 0.95
    start: str = "linear"
    tau: float = 1e-2
    delta: float = 1e-3
    centred: bool = False
    active_cut: bool | None = None
    probe: tuple[int, float] = (20, 1e-4)
    eliminate: bool = True
    primal_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.start not in ("linear", "interval"):
            raise ValueError(f"IpmOptions.start must be 'linear' or 'interval', got {self.start!r}")
        if not 0 < self.fraction < 1:
            raise ValueError(f"IpmOptions.fraction must be in (0, 1), got {self.fraction}")


@dataclass(frozen=True, eq=False)
class IpmWarmStart:
    """The best multipliers of a run, in the solver's own (scaled) layout."""

    sizes: tuple[int, ...]
    cuts: bool
    y: np.ndarray
    scale: float
    factor: np.ndarray
    reduced: bool = False


def memory_estimate(side: int, neurons: int, cuts: bool = True) -> int:
    """Rough peak bytes for a matrix of side ``side = 1 + n`` and ``neurons`` hidden neurons
    (``m = side + 3 or 4 neurons`` multipliers): about 24 ``s x s``, 4 ``m x m`` and 6
    ``s x m`` float64 arrays."""
    m = side + (4 if cuts else 3) * neurons
    return 8 * (24 * side * side + 4 * m * m + 6 * side * m)


#: floating-point rate assumed for an iteration before one has been timed (2 CPU cores)
ASSUMED_FLOPS = 8e9


def iteration_flops(side: int, multipliers: int) -> float:
    """Floating-point operations of one iteration: the Schur complement
    (``2 s^2 m + 3 m^2 s``) and its Cholesky factorisation (``m^3 / 3``)."""
    s, m = float(side), float(multipliers)
    return 2 * s * s * m + 3 * m * m * s + m ** 3 / 3


def iteration_seconds(side: int, neurons: int, cuts: bool = True) -> float:
    """A rough time of one iteration before any has run (:data:`ASSUMED_FLOPS`)."""
    return iteration_flops(side, side + (4 if cuts else 3) * neurons) / ASSUMED_FLOPS


def _certify(problem, sdp, y, cuts: bool) -> float:
    from solvers.backends.fo_sdp import certified_bound
    from solvers.backends.sdp_ipm.problem import to_fo_sdp_params

    try:
        return float(certified_bound(problem, to_fo_sdp_params(sdp, y), cuts))
    except (ValueError, np.linalg.LinAlgError) as exc:
        log.warning("sdp-ipm: certification failed: %s", exc)
        return -math.inf


class SdpIpmBackend(Backend):
    """Our structured interior-point solver for the ReLU SDP (see the package docstring)."""

    name = "sdp-ipm"
    kinds = frozenset({ProblemKind.LAYERED_QCQP})

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return torch_available()

    def _solve(self, problem: LayeredReluProgram, options: SolveOptions, warm_start) -> Solution:
        extra = options.extra_dict
        opts = extra.get("ipm") or IpmOptions()
        if not isinstance(opts, IpmOptions):
            raise TypeError(f"sdp-ipm: option 'ipm' must be an IpmOptions, got {type(opts)}")
        cuts = bool(extra.get("cuts", True))
        if "device" in extra:
            opts = dataclasses.replace(opts, device=str(extra["device"]))
        deadline = None if options.time_limit is None else time.monotonic() + options.time_limit
        attempts = [True, False] if opts.active_cut is None else [opts.active_cut]
        eliminate = cuts and opts.eliminate
        if eliminate or not cuts:
            attempts = [eliminate]
        bound, tried, iterations = -math.inf, [], 0
        for active_cut in attempts:
            last = active_cut is attempts[-1]
            sdp, run, value = _attempt(problem, opts, options, cuts, active_cut, warm_start,
                                       deadline, None if last else opts.probe, eliminate)
            bound, iterations = max(bound, value), iterations + run.iterations
            what = "active neurons substituted" if eliminate else \
                f"active cut {'on' if active_cut else 'off'}"
            tried.append(f"{what}: {run.iterations} "
                         f"iterations, {'converged' if run.converged else 'not converged'}")
            if run.converged or (deadline is not None and time.monotonic() > deadline):
                break
        status = (Status.OPTIMAL if run.converged else
                  Status.TIME_LIMIT if run.timed_out else Status.ITERATION_LIMIT)
        message = (f"{run.iterations} iterations ({run.seconds_per_iteration:.3f} s each), "
                   f"side {sdp.side}, {sdp.m_neurons + sdp.side} multipliers; dual value "
                   f"{run.best_value * sdp.scale:.10g}, certified {bound:.10g} "
                   f"({'; '.join(tried)})")
        log.info("sdp-ipm: %s", message)
        warm = IpmWarmStart(tuple(sdp.sizes), cuts, run.best_y, sdp.scale, sdp.factor,
                            sdp.reduced)
        return Solution(status, None, bound, stats=SolveStats(iterations=iterations),
                        warm_start=warm, solver=self.name, message=message,
                        dual_objective=run.best_value * sdp.scale)


def _linear_bound(problem, cuts: bool) -> float:
    """fo-sdp's certificate of the CROWN-like multipliers of the full form (exact: the
    linear certificate), the floor under every sdp-ipm bound."""
    from solvers.backends.sdp_ipm.problem import build
    from solvers.backends.sdp_ipm.start import feasible_start, linear_multipliers

    full = build(problem, cuts, True)
    y = feasible_start(full, linear_multipliers(problem, full), 0.0, 0.0, clip=False)
    return _certify(problem, full, y, cuts)


def _attempt(problem, opts: IpmOptions, options: SolveOptions, cuts: bool, active_cut: bool,
             warm_start, deadline, give_up, eliminate: bool = False):
    """One path-following run; returns the data, the run and its certified bound (the best
    of the last, the best and the linear start's multipliers)."""
    from solvers.backends.sdp_ipm.ipm import path_following
    from solvers.backends.sdp_ipm.problem import build
    from solvers.backends.sdp_ipm.reduced import certified_bound as reduced_bound
    from solvers.backends.sdp_ipm.start import feasible_start, linear_multipliers

    sdp = build(problem, cuts, active_cut, eliminate)
    certify = (lambda y: reduced_bound(sdp, y)) if sdp.reduced else \
        (lambda y: _certify(problem, sdp, y, cuts))
    y_n = (linear_multipliers(problem, sdp) if opts.start == "linear"
           else np.zeros(sdp.m_neurons))
    y0 = _blend_warm_start(sdp, feasible_start(sdp, y_n, opts.tau, opts.delta), warm_start)
    started = time.monotonic()
    start_bound = -math.inf
    if opts.start == "linear":           # the linear bound itself (Z >= 0, on the boundary)
        start_bound = _linear_bound(problem, cuts) if sdp.reduced else \
            certify(feasible_start(sdp, y_n, 0.0, 0.0, clip=False))
    check = time.monotonic() - started   # what one certificate costs: keep two for the end
    first = iteration_flops(sdp.side, y0.size) / ASSUMED_FLOPS
    run = path_following(sdp, y0, opts.device, opts.max_iterations,
                         options.tolerance or opts.tolerance, opts.fraction, opts.feasibility,
                         None if deadline is None else deadline - 2 * check, opts.centred, give_up,
                         first, opts.primal_scale)
    candidates = [run.best_y] if np.array_equal(run.best_y, run.y) else [run.best_y, run.y]
    return sdp, run, max([start_bound] + [certify(y) for y in candidates])


def _blend_warm_start(sdp, y0: np.ndarray, warm_start) -> np.ndarray:
    """``0.9 warm + 0.1 y0`` when ``warm_start`` fits (same sizes, cuts, multiplier count)
    and keeps ``Z`` positive definite; else ``y0``.  Convex combinations of dual feasible
    points are dual feasible; the ``y0`` part keeps it interior."""
    if not isinstance(warm_start, IpmWarmStart) or warm_start.sizes != tuple(sdp.sizes) \
            or warm_start.cuts != sdp.cuts or warm_start.y.size != y0.size \
            or warm_start.reduced != sdp.reduced:
        return y0
    m = sdp.m_neurons
    y = warm_start.y.copy()
    y[:m] *= (warm_start.factor * warm_start.scale) / (sdp.factor * sdp.scale)
    y[m:] *= warm_start.scale / sdp.scale
    blend = 0.9 * y + 0.1 * y0
    Z = sdp.C - 0.5 * ((sdp.U * blend[:m]) @ sdp.V.T + (sdp.V * blend[:m]) @ sdp.U.T) \
        - np.diag(blend[m:])
    try:
        np.linalg.cholesky(Z)
    except np.linalg.LinAlgError:
        return y0
    return blend
