"""What each verification method is, for help texts and up-front option checks.

One :class:`MethodInfo` per name of :data:`relax.verify.BOUND_METHODS`: a one-line
summary, whether it is complete (given time), the activations it takes, and the
problem kinds it hands to a solver (empty: it uses no solver, so ``--solver`` is
refused).  A ``--solver`` fits a method when the backend declares at least one
of those kinds (:func:`check_solver`); no solver name is compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from solvers.program import ProblemKind

__all__ = ["MethodInfo", "METHOD_INFO", "method_info", "check_solver", "describe_methods"]

_ALL = "relu, sigmoid, tanh, softplus"


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str
    complete: bool
    activations: str
    solver_kinds: frozenset[ProblemKind] = frozenset()


METHOD_INFO: dict[str, MethodInfo] = {m.name: m for m in (
    MethodInfo("ibp", "interval bound propagation", False, _ALL),
    MethodInfo("crown", "backward linear bounds (CROWN)", False, _ALL),
    MethodInfo("alpha-crown", "CROWN with optimised ReLU slopes and smooth lines", False, _ALL),
    MethodInfo("lp", "triangle LP (tangent/chord rows for smooth neurons), LP-tightened bounds", False, _ALL,
               frozenset({ProblemKind.LP})),
    MethodInfo("krelu", "triangle LP + multi-neuron k-ReLU hull rows on ReLU layers (option k, "
               "default 3; tangent/chord rows for smooth neurons)", False, _ALL, frozenset({ProblemKind.LP})),
    MethodInfo("sdp", "SDP relaxation (Raghunathan et al. 2018)", False, "relu",
               frozenset({ProblemKind.SDP, ProblemKind.LAYERED_QCQP})),
    MethodInfo("sdp-dual1", "one-hidden-layer SDP dual certificate", False,
               "relu (one hidden layer)"),
    MethodInfo("crc", "curvature l2 certificate (Singla & Feizi 2020)", False,
               "sigmoid, tanh, softplus (one hidden layer)"),
    MethodInfo("exact", "CROWN, attack, alpha/beta-CROWN branch and bound (ReLU splits, or smooth "
               "neurons' intervals; input splitting for few inputs)", True, _ALL,
               frozenset({ProblemKind.LP})),
    MethodInfo("milp", "CROWN, attack, big-M MILP counterexample search (ReLU), then exact", True, _ALL,
               frozenset({ProblemKind.MILP})),
)}


def method_info(name: str) -> MethodInfo:
    """The entry of ``name``; a method registered elsewhere gets a neutral entry
    (no declared solver kinds, so any solver is left to the method to check)."""
    return METHOD_INFO.get(name) or MethodInfo(name, "(registered by a plug-in)", False, "?",
                                               frozenset(ProblemKind))


def check_solver(method: str, solver: str | None) -> None:
    """Raise :class:`~relax.errors.UsageError` (or the registry's typed error) when
    ``solver`` is unknown, unusable here or takes none of ``method``'s problem kinds."""
    if solver is None:
        return
    from relax.errors import UsageError
    from solvers import get_solver
    from solvers.errors import SolverUnavailable

    kinds = method_info(method).solver_kinds
    if not kinds:
        raise UsageError(f"method {method!r} uses no solver; drop --solver")
    backend = get_solver(solver)
    if not kinds & backend.kinds:
        wanted = " or ".join(sorted(k.value.upper() for k in kinds))
        accepts = ", ".join(sorted(k.value for k in backend.kinds))
        raise UsageError(f"solver {solver!r} cannot take {wanted} problems, which method "
                         f"{method!r} solves (it accepts: {accepts})")
    available, reason = backend.is_available()
    if not available:
        raise SolverUnavailable(f"solver {solver!r} is not usable here: {reason}")


def describe_methods(names) -> str:
    """One line per method: name, summary, complete?, activations."""
    lines = []
    for name in names:
        info = method_info(name)
        kind = "complete" if info.complete else "incomplete"
        lines.append(f"  {name:<12} {info.summary}; {kind}; {info.activations}")
    return "\n".join(lines)
