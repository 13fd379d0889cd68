"""The solver registry: names -> backend classes, preference order, plug-ins.

Built in: ``highs`` (highspy) and the cvxpy backends ``cvxpy-clarabel``,
``cvxpy-scs``, ``cvxpy-mosek``, ``cvxpy-highs`` (aliases ``clarabel``, ``scs``,
``mosek``), ``fo-sdp`` (the first-order SDP solver of
:mod:`solvers.backends.fo_sdp`, torch imported lazily) and ``sdp-ipm`` (the structured
interior-point SDP solver of :mod:`solvers.backends.sdp_ipm`); every other solver that
``cvxpy.installed_solvers()`` reports is added as ``cvxpy-<name>`` the first time
the full list is needed.  Registering imports
no solver library.

Plug-ins: each entry point of the group ``relax.solvers`` loads a
:class:`~solvers.backend.Backend` subclass, registered under its ``name`` (and
the entry point's name as an alias when different).  A plug-in that fails to
load is logged and listed as unavailable with its error; it never breaks the
registry.  Plug-ins are read once, on first use (:func:`load_plugins` re-reads).

Preference order (for :func:`list_solvers` and :func:`default_solver`): highs,
clarabel, scs, mosek, cvxpy-highs, then everything else in registration order.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from dataclasses import dataclass

from solvers.backend import Backend
from solvers.backends.cvxpy_backend import (CvxpyClarabel, CvxpyHighs, CvxpyMosek, CvxpyScs,
                                            installed_cvxpy_backends)
from solvers.backends.fo_sdp import FoSdpBackend
from solvers.backends.highs import HighsBackend
from solvers.backends.sdp_ipm import SdpIpmBackend
from solvers.errors import SolverUnavailable, UnknownSolver
from solvers.program import ProblemKind

__all__ = ["SolverInfo", "register", "unregister", "get_solver", "list_solvers",
           "default_solver", "load_plugins", "ENTRY_POINT_GROUP"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "relax.solvers"
_PREFERENCE = ("highs", "cvxpy-clarabel", "cvxpy-scs", "cvxpy-mosek", "cvxpy-highs")
_BUILTIN_ALIASES = {"clarabel": "cvxpy-clarabel", "scs": "cvxpy-scs", "mosek": "cvxpy-mosek"}


@dataclass(frozen=True)
class SolverInfo:
    """One registry entry: ``available`` is False with a ``reason`` when it cannot run."""

    name: str
    kinds: frozenset[ProblemKind]
    available: bool
    reason: str = ""
    aliases: tuple[str, ...] = ()


_lock = threading.RLock()
_backends: dict[str, type[Backend]] = {}
_aliases: dict[str, str] = dict(_BUILTIN_ALIASES)
_broken: dict[str, str] = {}  # plug-in name -> why it failed to load
_state = {"plugins": False, "cvxpy": False}


def register(backend_cls: type[Backend], *, aliases: tuple[str, ...] = ()) -> type[Backend]:
    """Register ``backend_cls`` under ``backend_cls.name`` (replacing an entry of that
    name) and ``aliases``; returns the class, so it also works as a decorator."""
    if not (isinstance(backend_cls, type) and issubclass(backend_cls, Backend)):
        raise TypeError(f"{backend_cls!r} is not a Backend subclass")
    if not backend_cls.name:
        raise ValueError(f"{backend_cls.__name__} has no name")
    with _lock:
        previous = _backends.get(backend_cls.name)
        if previous is not None and previous is not backend_cls:
            log.info("solver %r re-registered: %s replaces %s", backend_cls.name,
                     backend_cls.__qualname__, previous.__qualname__)
        _backends[backend_cls.name] = backend_cls
        _broken.pop(backend_cls.name, None)
        for alias in aliases:
            _aliases[alias] = backend_cls.name
    return backend_cls


def unregister(name: str) -> None:
    """Remove ``name`` (and the aliases pointing to it) if present."""
    with _lock:
        _backends.pop(name, None)
        _broken.pop(name, None)
        for alias in [a for a, target in _aliases.items() if target == name]:
            if alias not in _BUILTIN_ALIASES:
                del _aliases[alias]


def load_plugins(force: bool = False) -> None:
    """Register the backends of the ``relax.solvers`` entry points (once unless ``force``)."""
    with _lock:
        if _state["plugins"] and not force:
            return
        _state["plugins"] = True
        try:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken environment must not break the registry
            log.warning("could not read %s entry points: %s", ENTRY_POINT_GROUP, exc)
            return
        for entry_point in entry_points:
            _load_plugin(entry_point)


def _load_plugin(entry_point) -> None:
    try:
        backend_cls = entry_point.load()
        aliases = (entry_point.name,) if entry_point.name != getattr(backend_cls, "name", None) else ()
        register(backend_cls, aliases=aliases)
    except Exception as exc:
        reason = f"plug-in {entry_point.value!r} failed to load: {type(exc).__name__}: {exc}"
        log.warning("solver %s", reason)
        _broken[entry_point.name] = reason


def _discover_cvxpy() -> None:
    with _lock:
        if _state["cvxpy"]:
            return
        _state["cvxpy"] = True
        for backend_cls in installed_cvxpy_backends():
            if backend_cls.name not in _backends:
                register(backend_cls)


def _resolve(name: str) -> str | None:
    if name in _backends or name in _broken:
        return name
    return _aliases.get(name) if _aliases.get(name) in _backends else None


def get_solver(name: str) -> Backend:
    """A new instance of the backend registered as ``name`` (or an alias)."""
    load_plugins()
    key = _resolve(name)
    if key is None:
        _discover_cvxpy()
        key = _resolve(name)
    if key is None:
        known = ", ".join(_known_names())
        raise UnknownSolver(f"unknown solver {name!r}; known solvers: {known}")
    if key in _broken:
        raise SolverUnavailable(f"solver {name!r} is unavailable: {_broken[key]}")
    return _backends[key]()


def _known_names() -> list[str]:
    return sorted(set(_backends) | set(_broken) | {a for a, t in _aliases.items() if t in _backends})


def _ordered_classes() -> list[type[Backend]]:
    preferred = [_backends[n] for n in _PREFERENCE if n in _backends]
    return preferred + [cls for n, cls in _backends.items() if n not in _PREFERENCE]


def _availability(backend_cls: type[Backend]) -> tuple[bool, str]:
    try:
        available, reason = backend_cls.is_available()
    except Exception as exc:  # a plug-in's own check failed
        return False, f"availability check failed: {type(exc).__name__}: {exc}"
    return bool(available), str(reason or "")


def _info(backend_cls: type[Backend]) -> SolverInfo:
    available, reason = _availability(backend_cls)
    aliases = tuple(sorted(a for a, t in _aliases.items() if t == backend_cls.name))
    return SolverInfo(backend_cls.name, frozenset(backend_cls.kinds), available, reason, aliases)


def list_solvers() -> list[SolverInfo]:
    """Every registered solver, in preference order, with availability; broken
    plug-ins last (unavailable, with their error)."""
    load_plugins()
    _discover_cvxpy()
    with _lock:
        classes, broken = _ordered_classes(), dict(_broken)
    infos = [_info(cls) for cls in classes]
    return infos + [SolverInfo(n, frozenset(), False, reason) for n, reason in broken.items()]


def default_solver(kind: ProblemKind) -> Backend:
    """The first available solver (in preference order) that accepts ``kind``."""
    kind = ProblemKind(kind)
    load_plugins()
    for discovered in (False, True):
        if discovered:
            _discover_cvxpy()
        for backend_cls in _ordered_classes():
            if kind in backend_cls.kinds and _availability(backend_cls)[0]:
                return backend_cls()
    raise SolverUnavailable(f"no available solver accepts {kind.value} problems")


for _cls in (HighsBackend, CvxpyClarabel, CvxpyScs, CvxpyMosek, CvxpyHighs, FoSdpBackend,
             SdpIpmBackend):
    register(_cls)
