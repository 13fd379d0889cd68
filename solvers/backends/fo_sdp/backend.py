"""The fo-sdp backend: options read once, a batch run, and the rigorous :class:`Solution`."""

from __future__ import annotations

import logging
import time

import numpy as np

from solvers.backend import Backend, SolveOptions, error_solution, torch_available
from solvers.backends.fo_sdp.batching import Batch
from solvers.backends.fo_sdp.options import FoSdpOptions
from solvers.backends.fo_sdp.problem import check_shapes
from solvers.backends.fo_sdp.record import FoSdpState, Record
from solvers.program import LayeredReluProgram, ProblemKind
from solvers.solution import Solution, SolveStats

__all__ = ["FoSdpBackend", "solve_batch"]

log = logging.getLogger(__name__)
NAME = "fo-sdp"


class FoSdpBackend(Backend):
    """SDP-FO (Dathathri et al. 2020) on :class:`~solvers.program.LayeredReluProgram`."""

    name = NAME
    kinds = frozenset({ProblemKind.LAYERED_QCQP})

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return torch_available()

    def _solve(self, problem: LayeredReluProgram, options: SolveOptions, warm_start) -> Solution:
        outcome, batch = _run([problem], options, [warm_start])
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return _solution(batch, 0, outcome[0])


def _run(problems, options: SolveOptions, warm_starts):
    opts = FoSdpOptions.from_solve_options(options)
    for problem in problems:
        check_shapes(problem)
    batch = Batch(problems, opts, options.tolerance or 1e-7, warm_starts)
    deadline = None
    if options.time_limit is not None:   # keep time for the final float64 checks
        reserve = len(problems) * 4 * _check_seconds(problems[0], opts.dense_check_limit)
        deadline = time.perf_counter() + max(0.0, options.time_limit - reserve)
    return batch.run(deadline), batch


#: floating-point rate assumed for the dense symmetric eigenvalue check (2 CPU cores)
CHECK_FLOPS = 4e9


def _check_seconds(problem: LayeredReluProgram, dense_limit: int) -> float:
    """A rough time of one rigorous check: ``s^3`` flops for the eigenvalues of the
    ``s x s`` matrix (``s = 1 + n``) up to ``dense_limit``, above it the block
    factorisation's flops (:func:`.blocks.block_flops`) twice (a retried shift)."""
    from solvers.backends.fo_sdp.blocks import block_flops

    sizes = [np.asarray(lo).size for lo in problem.lower]
    side = 1 + sum(sizes)
    if side <= dense_limit:
        return side ** 3 / CHECK_FLOPS
    return 2 * block_flops(sizes) / CHECK_FLOPS


def _solution(batch: Batch, i: int, rec: Record) -> Solution:
    """Problem ``i``'s :class:`Solution`: the bound is the largest rigorous float64 check
    among the recorded checks, the start (so never below the warm start), the best
    estimate (or its Gershgorin ``kappa`` shift, :mod:`.repair`, whichever certifies
    higher) and the last iterate.  The warm start carries the duals of the best
    certified bound when they are known (else the best estimate)."""
    final = [(-2, batch.certify(i, rec.start))]
    best = rec.best if rec.best is not None else rec.last
    if rec.best is not None:
        value, best = batch.improve(i, rec.best)
        final.append((-1, value))
    if rec.best is None or not np.array_equal(rec.last, rec.best):
        final.append((rec.iterations - 1, batch.certify(i, rec.last)))
    checks = rec.checks + final
    bound = max(b for _, b in checks)
    if rec.certified is not None and rec.certified[0] >= bound:
        best = rec.certified[1]
    state = FoSdpState(batch.datas[i].sizes, batch.options.cuts, np.array(best), rec.vector,
                       rec.iterations, np.asarray(rec.history), tuple(rec.checks),
                       tuple(rec.check_seconds))
    message = (f"{rec.stage}{rec.iterations} iterations in {rec.seconds:.2f}s; "
               f"estimated dual value "
               f"{rec.best_value:.6g}, certified {bound:.6g} (start {final[0][1]:.6g})")
    log.info("fo-sdp: %s", message)
    return Solution(rec.status, None, bound,
                    stats=SolveStats(seconds=rec.seconds, iterations=rec.iterations),
                    warm_start=state, solver=NAME, message=message,
                    dual_objective=rec.best_value)


def solve_batch(problems, options: SolveOptions | None = None,
                warm_starts=None) -> list[Solution]:
    """Solve several :class:`LayeredReluProgram` with the same layer sizes (e.g. every
    target class of an image, and several images) as one batch (:mod:`.batching`).

    The time limit applies to each problem (they run side by side).  A problem whose
    run failed gets an error :class:`Solution` (no bound).  One solution per problem,
    in order."""
    problems = list(problems)
    if not problems:
        return []
    options = options or SolveOptions()
    warm_starts = list(warm_starts) if warm_starts is not None else [None] * len(problems)
    if len(warm_starts) != len(problems):
        raise ValueError("solve_batch: one warm start (or None) per problem")
    sizes = {tuple(np.asarray(lo).size for lo in problem.lower) for problem in problems}
    if len(sizes) != 1:
        raise ValueError("solve_batch: all problems need the same layer sizes")
    outcome, batch = _run(problems, options, warm_starts)
    solutions = []
    for i, rec in enumerate(outcome):
        if isinstance(rec, BaseException):   # as Backend.solve: a failed solve gives no bound
            log.warning("fo-sdp batch: a problem failed: %s", rec)
            solutions.append(error_solution(NAME, f"{type(rec).__name__}: {rec}"))
        else:
            solutions.append(_solution(batch, i, rec))
    return solutions
