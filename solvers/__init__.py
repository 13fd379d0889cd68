"""The solver layer: solver-neutral problems, one answer type, interchangeable backends.

Independent of ``relax`` (it imports nothing from it).  Typical use::

    from solvers import LinearProgram, get_solver, default_solver, SolveOptions
    solution = get_solver("highs").solve(problem, SolveOptions(time_limit=10))
    solution.bound   # a sound lower bound on the optimum

Backends import their libraries lazily; :func:`list_solvers` says which can run.
"""

from solvers.backend import Backend, SolveOptions
from solvers.errors import (InvalidProblem, SolverError, SolverUnavailable, UnknownSolver,
                            UnsupportedProblem)
from solvers.program import (ConicProgram, LayeredReluProgram, LinearProgram, ProblemKind,
                             PsdConstraint, VariableBlock)
from solvers.registry import (SolverInfo, default_solver, get_solver, list_solvers,
                              load_plugins, register, unregister)
from solvers.safe_bound import conic_safe_bound, lp_safe_bound
from solvers.solution import Solution, SolveStats, Status

__all__ = [
    # problems
    "ProblemKind", "VariableBlock", "LinearProgram", "ConicProgram", "PsdConstraint",
    "LayeredReluProgram",
    # answers
    "Solution", "SolveStats", "Status",
    # backends and registry
    "Backend", "SolveOptions", "SolverInfo", "get_solver", "list_solvers", "default_solver",
    "register", "unregister", "load_plugins",
    # sound bounds
    "lp_safe_bound", "conic_safe_bound",
    # errors
    "SolverError", "SolverUnavailable", "UnknownSolver", "UnsupportedProblem", "InvalidProblem",
]
