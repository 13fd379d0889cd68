"""Errors of the solver layer (independent of relax)."""

from __future__ import annotations


class SolverError(Exception):
    """Base class of solver-layer errors."""


class SolverUnavailable(SolverError):
    """The backend's library or licence is missing; the message says which."""


class UnknownSolver(SolverError):
    """No backend is registered under that name."""


class UnsupportedProblem(SolverError):
    """The backend cannot take this problem kind (for example SCS and a MILP)."""


class InvalidProblem(SolverError):
    """A malformed problem (shapes, NaN, inconsistent bounds)."""
