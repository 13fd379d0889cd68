"""The process-wide HiGHS start-up, and building and running one ``Highs`` model.

This module holds the only process-wide HiGHS state: :data:`_STARTED` (the first
``Highs`` object, built quietly by :func:`_start_quietly`) and :data:`_THREADS` (the
size of HiGHS's global thread pool, fixed by the first ``run``).  Every other module
of the backend reaches ``highspy`` through :func:`_highspy`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from solvers.backend import SolveOptions
from solvers.errors import SolverUnavailable, UnsupportedProblem
from solvers.program import ConicProgram, LinearProgram

log = logging.getLogger(__name__)


def _highspy():
    """The ``highspy`` module, after its one-time start-up (see :func:`_start_quietly`)."""
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - highspy is a dependency
        raise SolverUnavailable(f"highspy is not installed ({exc})") from exc
    _start_quietly(highspy)
    return highspy


_STARTED: dict[str, Any] = {}


def _start_quietly(highspy) -> None:
    """Create the process's first ``Highs`` object with file descriptor 1 sent to
    ``/dev/null``: HiGHS's C++ core prints its copyright banner on the process's standard
    output when the first instance is built, before any option can switch it off, and a
    library must never write to its caller's stdout (``relax verify --json`` prints one
    JSON object there)."""
    if _STARTED:
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            _STARTED["first"] = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


#: HiGHS's thread pool is global to the process and fixed by the first ``run``; setting
#: ``threads`` to another value afterwards makes every later ``run`` fail ("Not Set").
#: So the first request (or HiGHS's default) wins for the whole process.
_THREADS: dict[str, int] = {}


# -- building the model ----------------------------------------------------------------

def _check(status, what: str) -> None:
    if status.name == "kError":
        raise RuntimeError(f"HiGHS {what} failed")


def _pass_problem(h, problem: LinearProgram) -> None:
    """One bulk ``passModel`` from the CSC arrays of ``A`` (the positional overload,
    which takes numpy arrays without per-element conversion)."""
    highspy = _highspy()
    A = sp.csc_matrix(problem.A)
    A.sort_indices()
    integrality = problem.integer.astype(np.int32) * int(highspy.HighsVarType.kInteger)
    status = h.passModel(problem.num_variables, problem.num_rows, A.nnz,
                         int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize),
                         problem.c0, problem.c, problem.lower, problem.upper,
                         problem.row_lower, problem.row_upper, A.indptr.astype(np.int32),
                         A.indices.astype(np.int32), A.data.astype(np.float64), integrality)
    _check(status, "passModel")


def _set_option(h, key: str, value: Any) -> None:
    if h.setOptionValue(key, value).name == "kError":
        raise ValueError(f"HiGHS rejected option {key}={value!r}")


def _apply_options(h, options: SolveOptions, is_mip: bool) -> None:
    """Map :class:`SolveOptions` onto HiGHS options (``extra`` last, so it wins)."""
    _set_option(h, "output_flag", bool(options.verbose))
    if options.time_limit is not None:
        _set_option(h, "time_limit", float(options.time_limit))
    if options.tolerance is not None:
        tol = float(options.tolerance)
        for key in ("primal_feasibility_tolerance", "dual_feasibility_tolerance",
                    "ipm_optimality_tolerance"):
            _set_option(h, key, tol)
        if is_mip:
            _set_option(h, "mip_feasibility_tolerance", tol)
    if options.threads is not None:
        _request_threads(h, int(options.threads))
    for key, value in options.extra:
        _set_option(h, key, value)


def _request_threads(h, threads: int) -> None:
    """Set ``threads`` only while HiGHS's global pool has not started (see :data:`_THREADS`)."""
    fixed = _THREADS.get("pool")
    if fixed is None:
        _set_option(h, "threads", threads)
    elif fixed != threads:
        log.debug("HiGHS keeps its process-wide pool of %d threads (asked for %d)", fixed, threads)


def _option(h, key: str) -> Any:
    value = h.getOptionValue(key)
    return value[1] if isinstance(value, tuple) else value


def _as_linear(problem) -> LinearProgram:
    if isinstance(problem, ConicProgram):
        if problem.psd:
            raise UnsupportedProblem("HiGHS does not take PSD constraints")
        return problem.linear
    if not isinstance(problem, LinearProgram):
        raise UnsupportedProblem(f"HiGHS does not take {type(problem).__name__}")
    return problem


def _new_highs(options: SolveOptions, is_mip: bool):
    h = _highspy().Highs()
    h.setOptionValue("output_flag", False)
    _apply_options(h, options, is_mip)
    return h


# -- running it --------------------------------------------------------------------------

def _run(h) -> float:
    """``h.run()``; an 'unbounded or infeasible' verdict of presolve is re-checked
    without presolve.  Returns the seconds spent inside ``run``."""
    start = time.perf_counter()
    _THREADS.setdefault("pool", int(_option(h, "threads")))
    h.run()
    if h.getModelStatus().name == "kUnboundedOrInfeasible" and _option(h, "presolve") != "off":
        presolve = _option(h, "presolve")
        _set_option(h, "presolve", "off")
        try:
            h.run()
        finally:
            _set_option(h, "presolve", presolve)
    return time.perf_counter() - start
