"""Solving the SDP relaxation (:mod:`relax.sdp.encode`) and the ``sdp`` verification method."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from relax.bounds import Bounds, bound_specs
from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.network import Network
from relax.spec import Spec
from relax.options import MethodOptions, option
from relax.protocol import BoundOutcome, VerifyOptions
from relax.result import Reason
from solvers.backend import Backend, SolveOptions
from solvers.program import ProblemKind
from relax.sdp.encode import (SdpEncoding, _require_relu, encode_sdp, layered_program,
                              multiplier_program)
from solvers.solution import Solution

__all__ = ["SdpOptions", "solve_row", "sdp_bound", "sdp_bounds", "sdp_method", "default_sdp_solver",
           "sdp_backend", "IPM_MEMORY_SHARE"]

log = logging.getLogger(__name__)

IPM_MEMORY_SHARE = 0.5   # sdp-ipm is the default while its estimate fits this share of RAM
IPM_MAX_ITERATION_SECONDS = 10.0   # ... and one of its iterations takes at most this long (estimate)

# -- solving --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SdpOptions(MethodOptions):
    """Options of the ``sdp`` method; the last eight go to a layered backend (fo-sdp's
    settings; ``None``: its default; other backends ignore what they do not know)."""

    intermediate: Literal["crown", "lp"] = option("crown", "hidden-layer bounds: crown, or lp "
                                                           "(CROWN, then LP-tightened)")
    skip_proved: bool = option(True, "skip the SDP of disjuncts CROWN already proves")
    cuts: bool = option(True, "add the triangle cuts to the SDP (it then contains the LP)")
    form: Literal["primal", "multiplier"] = option(
        "primal", "encoding for a conic SDP solver: primal (one PSD matrix variable) or "
                  "multiplier (an LMI in the multipliers)")
    max_iterations: int | None = option(None, "fo-sdp: iterations")
    lr: float | None = option(None, "fo-sdp: step size")
    patience: int | None = option(None, "fo-sdp: iterations without progress before stopping")
    eig: str | None = option(None, "fo-sdp: eigenvalue method")
    lanczos_steps: int | None = option(None, "fo-sdp: Lanczos steps")
    init: str | None = option(None, "fo-sdp: dual initialisation")
    dtype: Literal["float64", "float32"] | None = option(None, "fo-sdp: working precision")
    method: str | None = option(None, "fo-sdp: optimiser")


def sdp_backend(solver: str) -> Backend:
    """The backend ``solver``, checked to take an SDP encoding: a
    :class:`~solvers.program.LayeredReluProgram` (``LAYERED_QCQP``, preferred: the
    structured form) or a :class:`~solvers.program.ConicProgram` (``SDP``)."""
    from solvers.registry import get_solver

    backend = get_solver(solver)
    if not backend.kinds & {ProblemKind.LAYERED_QCQP, ProblemKind.SDP}:
        accepted = ", ".join(sorted(k.value for k in backend.kinds)) or "nothing"
        raise UsageError(f"solver {solver!r} cannot solve the SDP: it takes {accepted}, not "
                         f"{ProblemKind.SDP.value} or {ProblemKind.LAYERED_QCQP.value}")
    return backend


def _layered(backend: Backend) -> bool:
    return ProblemKind.LAYERED_QCQP in backend.kinds


def _options_for(backend: Backend, options: SolveOptions | None, cuts: bool,
                 deadline: Deadline) -> SolveOptions:
    """``options`` with the deadline's time limit (and, for a layered backend, ``cuts``:
    the :class:`LayeredReluProgram` leaves the triangle cuts to the solver)."""
    options = deadline.solve_options(options)
    extra = dict(options.extra)
    if _layered(backend):
        extra["cuts"] = bool(cuts)
    return SolveOptions(options.time_limit, options.tolerance, options.threads, options.verbose,
                        tuple(extra.items()))


FORMS = ("primal", "multiplier")


def solve_row(network: Network, spec: Spec, bounds: Bounds, row, offset: float,
              solver: str = "cvxpy-clarabel", cuts: bool = False,
              deadline: Deadline = NEVER, options: SolveOptions | None = None,
              warm_start=None, encoding: SdpEncoding | None = None,
              form: str = "primal") -> Solution:
    """Solve the SDP for the margin ``row^T y - offset``; ``Solution.bound`` is sound.
    The encoding follows what the backend takes (:func:`sdp_backend`); a conic backend
    gets the primal encoding (:func:`encode_sdp`) or, with ``form="multiplier"``, the
    multiplier form (:func:`multiplier_program`: the bound is then the float64 check of
    the solver's multipliers ``Solution.x``, never its objective)."""
    if form not in FORMS:
        raise UsageError(f"SDP form must be one of {', '.join(FORMS)}, got {form!r}")
    backend = sdp_backend(solver)
    opts = _options_for(backend, options, cuts, deadline)
    if _layered(backend):
        program = layered_program(network, spec.lower, spec.upper, bounds, row, offset)
    elif form == "multiplier":
        dual = multiplier_program(network, spec.lower, spec.upper, bounds, row, offset, cuts)
        solution = backend.solve(dual.program, opts, warm_start)
        return dataclasses.replace(solution, bound=dual.certify(solution.x), objective=None,
                                   message=f"multiplier form; {solution.message}")
    else:
        encoding = encoding or encode_sdp(network, spec.lower, spec.upper, bounds, cuts)
        program = encoding.with_objective(row, offset)
    return backend.solve(program, opts, warm_start)


def _sound(solution: Solution) -> float:
    """The solution's safe bound, or ``-inf`` (also for a claimed infeasibility)."""
    bound = solution.bound
    if bound is None or math.isnan(bound) or bound == math.inf:
        if bound == math.inf:
            log.warning("SDP solver %s claims infeasibility; no bound taken", solution.solver)
        return -math.inf
    return float(bound)


def sdp_bound(network: Network, spec: Spec, bounds: Bounds, solver: str = "cvxpy-clarabel",
              cuts: bool = False, deadline: Deadline = NEVER,
              options: SolveOptions | None = None, batch: bool = True,
              form: str = "primal") -> np.ndarray:
    """Sound lower bounds on every disjunct's margin from the SDP (max over its rows).

    With a backend that solves batches (:func:`_batch_solver`) and ``batch`` (default) all
    rows are solved as one batch (:func:`sdp_bounds`); otherwise row by row."""
    _require_relu(network)
    backend = sdp_backend(solver)
    spec.check_fits(network.input_size, network.output_size)
    if batch and _batch_solver(backend) is not None:
        return sdp_bounds(network, [spec], [bounds], cuts, deadline, options, solver)[0]
    primal = not _layered(backend) and form == "primal"
    encoding = encode_sdp(network, spec.lower, spec.upper, bounds, cuts) if primal else None
    out = np.full(len(spec.disjuncts), -np.inf)
    for j, disjunct in enumerate(spec.disjuncts):
        for row, offset in zip(disjunct.A, disjunct.b):
            if deadline.expired:
                return out
            solution = solve_row(network, spec, bounds, row, offset, solver, cuts, deadline,
                                 options, encoding=encoding, form=form)
            log.debug("disjunct %d row: %s bound %.6g (%s)", j, solver, solution.bound,
                      solution.message)
            out[j] = max(out[j], _sound(solution))
    return out


def _batch_solver(backend: Backend):
    """The backend's ``solve_batch(problems, options)`` (a method, or a function of the
    backend's module, as fo-sdp's), or ``None``: the ability to solve several
    :class:`LayeredReluProgram` of the same layer sizes side by side."""
    if not _layered(backend):
        return None
    found = getattr(backend, "solve_batch", None)
    if found is None:
        found = getattr(sys.modules.get(type(backend).__module__), "solve_batch", None)
    return found if callable(found) else None


def sdp_bounds(network: Network, specs: Sequence[Spec], bounds: Sequence[Bounds],
               cuts: bool = False, deadline: Deadline = NEVER,
               options: SolveOptions | None = None, solver: str = "fo-sdp") -> list[np.ndarray]:
    """:func:`sdp_bound` for several specs (e.g. images) at once, with a backend that solves
    batches (default fo-sdp): every row of every spec's disjuncts (with that spec's box
    and hidden ``bounds``) is one problem of a single ``solve_batch`` call (the time limit
    applies to each problem; they run side by side).  One array of disjunct bounds per spec."""
    _require_relu(network)
    backend = sdp_backend(solver)
    solve_batch = _batch_solver(backend)
    if solve_batch is None:
        raise UsageError(f"solver {solver!r} does not solve batches; use sdp_bound")
    if len(specs) != len(bounds):
        raise UsageError(f"sdp_bounds: {len(specs)} specs but {len(bounds)} bound sets")
    programs, owners = [], []
    for i, (spec, layers) in enumerate(zip(specs, bounds)):
        spec.check_fits(network.input_size, network.output_size)
        for j, disjunct in enumerate(spec.disjuncts):
            for row, offset in zip(disjunct.A, disjunct.b):
                programs.append(layered_program(network, spec.lower, spec.upper, layers, row,
                                                offset))
                owners.append((i, j))
    out = [np.full(len(spec.disjuncts), -np.inf) for spec in specs]
    if not programs or deadline.expired:
        return out
    solutions = solve_batch(programs, _options_for(backend, options, cuts, deadline))
    for (i, j), solution in zip(owners, solutions):
        log.debug("spec %d disjunct %d row: batch bound %.6g (%s)", i, j, solution.bound,
                  solution.message)
        out[i][j] = max(out[i][j], _sound(solution))
    return out


# -- the verification method ----------------------------------------------------------------

def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def default_sdp_solver(network: Network, cuts: bool = True) -> str:
    """``sdp-ipm`` (the structured interior-point solver: the SDP's optimum) while its
    memory estimate (:func:`solvers.backends.sdp_ipm.memory_estimate`, before eliminating
    fixed coordinates) fits :data:`IPM_MEMORY_SHARE` of the physical memory, else
    ``fo-sdp`` (first order, ``O(n^2)`` memory); also ``fo-sdp`` where one interior-point
    iteration would take more than :data:`IPM_MAX_ITERATION_SECONDS` (estimated from its
    flop count: eran 9x200's ~9,000 multipliers need about two minutes per iteration)."""
    from solvers.backends.sdp_ipm.backend import iteration_seconds, memory_estimate

    neurons = int(sum(network.hidden_sizes))
    side = 1 + network.input_size + neurons
    memory = _physical_memory()
    fits = memory is None or memory_estimate(side, neurons, cuts) <= IPM_MEMORY_SHARE * memory
    return "sdp-ipm" if fits and iteration_seconds(side, neurons, cuts) <= IPM_MAX_ITERATION_SECONDS \
        else "fo-sdp"


_LAYERED_KEYS = ("max_iterations", "lr", "patience", "eig", "lanczos_steps", "init", "dtype",
                 "method")


def _method_options(backend: Backend, options: VerifyOptions) -> SolveOptions:
    """A layered backend gets ``options.device`` and the :data:`_LAYERED_KEYS` fields of
    :class:`SdpOptions` that are set (fo-sdp's settings; other backends ignore keys they
    do not know)."""
    extra = {}
    if _layered(backend):
        settings = options.of(SdpOptions)
        extra["device"] = options.device
        extra.update({k: getattr(settings, k) for k in _LAYERED_KEYS
                      if getattr(settings, k) is not None})
    return SolveOptions(extra=tuple(extra.items()))


def sdp_method(network: Network, specs: Sequence[Spec], deadline: Deadline,
               options: VerifyOptions) -> list[BoundOutcome]:
    """The ``sdp`` verification method.

    Per spec: CROWN bounds (hidden layers and disjuncts); if CROWN does not prove the
    spec, PGD first (a checked counterexample ends the spec: bound = CROWN's); then
    the SDP of every disjunct that CROWN did not prove (every disjunct with option
    ``skip_proved=False``), with hidden bounds from option ``intermediate`` (``crown``,
    default, or ``lp``: LP-tightened), solver ``options.solver`` (default
    :func:`default_sdp_solver`; any backend taking a layered program or a conic SDP, see
    :func:`sdp_backend`) and option ``cuts`` (True: the triangle cuts, so the SDP contains
    the LP); a conic backend gets the primal encoding or, with option ``form``
    ``"multiplier"``, the multiplier form.  A disjunct's bound is the max of the SDP's and
    CROWN's (both sound).  With
    ``options.bound_only`` the SDP of every disjunct is solved (no CROWN shortcut, no
    attack): the relaxation's own value.  Options: :class:`SdpOptions`; a layered backend
    gets ``options.device`` and its last eight fields that are set."""
    _require_relu(network)
    settings = options.of(SdpOptions)
    source = settings.intermediate
    solver = options.solver or default_sdp_solver(network, settings.cuts)
    sdp_backend(solver)                              # a UsageError if it cannot
    return [_sdp_one(network, spec, deadline, options, source, solver) for spec in specs]


def _sdp_one(network, spec, deadline, options, source, solver) -> BoundOutcome:
    from relax.search.attack import pgd_attack

    settings = options.of(SdpOptions)
    skip_proved = settings.skip_proved and not options.bound_only
    crown = bound_specs(network, [spec], "crown", device=options.device)[0]
    if crown.bound > 0 and skip_proved:
        return BoundOutcome(crown.bound, solver)
    attack = crown.bound <= 0 and not options.bound_only
    cex = pgd_attack(network, spec, options.attack, deadline) if attack else None
    if cex is not None:
        return BoundOutcome(crown.bound, solver, cex)
    bounds = crown.layers
    if source == "lp":
        from relax.lp.runner import DEFAULT_LP_SOLVER
        from relax.lp.tighten import tighten_bounds

        bounds = tighten_bounds(network, spec.lower, spec.upper, bounds, DEFAULT_LP_SOLVER,
                                deadline)
    todo = [j for j, b in enumerate(crown.disjunct_bounds) if b <= 0 or not skip_proved]
    per = np.array(crown.disjunct_bounds, dtype=np.float64)
    if todo:
        sub = Spec(spec.lower, spec.upper, tuple(spec.disjuncts[j] for j in todo))
        sdp = sdp_bound(network, sub, bounds, solver, settings.cuts, deadline,
                        _method_options(sdp_backend(solver), options), form=settings.form)
        per[todo] = np.maximum(per[todo], sdp)
    return BoundOutcome(float(per.min()), solver,
                        reason=Reason.time_limit() if deadline.expired else None)
