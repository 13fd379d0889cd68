"""How :class:`~solvers.backend.SolveOptions` map onto each cvxpy solver's own keyword
arguments (time limit, tolerance, threads), and how ``SolveOptions.extra`` is merged
over them (``extra`` wins; dict-valued entries such as ``mosek_params`` are merged)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from solvers.backend import SolveOptions

__all__ = ["OPTION_MAPPERS", "OptionKeys", "no_options", "merge_extra"]

log = logging.getLogger("solvers.backends.cvxpy_backend")


@dataclass(frozen=True)
class OptionKeys:
    """One cvxpy solver's names for the time limit, the tolerance(s) and the thread count
    (``None``: not settable); ``nested`` puts them in one dict argument of that name
    (MOSEK's ``mosek_params``)."""

    time_limit: str | None = None
    tolerance: tuple[str, ...] = ()
    threads: str | None = None
    nested: str | None = None

    def __call__(self, o: SolveOptions) -> dict:
        kw: dict[str, Any] = {}
        if o.time_limit is not None and self.time_limit:
            kw[self.time_limit] = float(o.time_limit)
        if o.tolerance is not None:
            kw.update({key: float(o.tolerance) for key in self.tolerance})
        if o.threads is not None and self.threads:
            kw[self.threads] = int(o.threads)
        if self.nested:
            return {self.nested: kw} if kw else {}
        return kw


_MOSEK_TOLERANCES = ("MSK_DPAR_INTPNT_CO_TOL_PFEAS", "MSK_DPAR_INTPNT_CO_TOL_DFEAS",
                     "MSK_DPAR_INTPNT_CO_TOL_REL_GAP", "MSK_DPAR_INTPNT_TOL_PFEAS",
                     "MSK_DPAR_INTPNT_TOL_DFEAS", "MSK_DPAR_INTPNT_TOL_REL_GAP")


def no_options(o: SolveOptions) -> dict:
    if o.time_limit is not None or o.tolerance is not None or o.threads is not None:
        log.info("this cvxpy solver ignores time_limit/tolerance/threads; use extra")
    return {}


OPTION_MAPPERS: dict[str, Callable[[SolveOptions], dict]] = {
    "SCS": OptionKeys("time_limit_secs", ("eps_abs", "eps_rel")),
    "CLARABEL": OptionKeys("time_limit", ("tol_gap_abs", "tol_gap_rel", "tol_feas"), "max_threads"),
    "MOSEK": OptionKeys("MSK_DPAR_OPTIMIZER_MAX_TIME", _MOSEK_TOLERANCES, "MSK_IPAR_NUM_THREADS",
                        nested="mosek_params"),
    "HIGHS": OptionKeys("time_limit", ("primal_feasibility_tolerance",
                                       "dual_feasibility_tolerance"), "threads"),
    "OSQP": OptionKeys("time_limit", ("eps_abs", "eps_rel")),
}


def merge_extra(kw: dict, extra: dict) -> dict:
    """``extra`` over ``kw``; dict-valued entries (``mosek_params``) are merged."""
    out = dict(kw)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
