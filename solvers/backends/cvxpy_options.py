"""How :class:`~solvers.backend.SolveOptions` map onto each cvxpy solver's own keyword
arguments (time limit, tolerance, threads), and how ``SolveOptions.extra`` is merged
over them (``extra`` wins; dict-valued entries such as ``mosek_params`` are merged)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from solvers.backend import SolveOptions

__all__ = ["OPTION_MAPPERS", "no_options", "merge_extra"]

log = logging.getLogger("solvers.backends.cvxpy_backend")


def _scs_options(o: SolveOptions) -> dict:
    kw: dict[str, Any] = {}
    if o.time_limit is not None:
        kw["time_limit_secs"] = float(o.time_limit)
    if o.tolerance is not None:
        kw["eps_abs"] = kw["eps_rel"] = float(o.tolerance)
    return kw


def _clarabel_options(o: SolveOptions) -> dict:
    kw: dict[str, Any] = {}
    if o.time_limit is not None:
        kw["time_limit"] = float(o.time_limit)
    if o.tolerance is not None:
        kw["tol_gap_abs"] = kw["tol_gap_rel"] = kw["tol_feas"] = float(o.tolerance)
    if o.threads is not None:
        kw["max_threads"] = int(o.threads)
    return kw


def _mosek_options(o: SolveOptions) -> dict:
    params: dict[str, Any] = {}
    if o.time_limit is not None:
        params["MSK_DPAR_OPTIMIZER_MAX_TIME"] = float(o.time_limit)
    if o.tolerance is not None:
        for key in ("MSK_DPAR_INTPNT_CO_TOL_PFEAS", "MSK_DPAR_INTPNT_CO_TOL_DFEAS",
                    "MSK_DPAR_INTPNT_CO_TOL_REL_GAP", "MSK_DPAR_INTPNT_TOL_PFEAS",
                    "MSK_DPAR_INTPNT_TOL_DFEAS", "MSK_DPAR_INTPNT_TOL_REL_GAP"):
            params[key] = float(o.tolerance)
    if o.threads is not None:
        params["MSK_IPAR_NUM_THREADS"] = int(o.threads)
    return {"mosek_params": params} if params else {}


def _highs_options(o: SolveOptions) -> dict:
    kw: dict[str, Any] = {}
    if o.time_limit is not None:
        kw["time_limit"] = float(o.time_limit)
    if o.tolerance is not None:
        kw["primal_feasibility_tolerance"] = kw["dual_feasibility_tolerance"] = float(o.tolerance)
    if o.threads is not None:
        kw["threads"] = int(o.threads)
    return kw


def _osqp_options(o: SolveOptions) -> dict:
    kw: dict[str, Any] = {}
    if o.time_limit is not None:
        kw["time_limit"] = float(o.time_limit)
    if o.tolerance is not None:
        kw["eps_abs"] = kw["eps_rel"] = float(o.tolerance)
    return kw


def no_options(o: SolveOptions) -> dict:
    if o.time_limit is not None or o.tolerance is not None or o.threads is not None:
        log.info("this cvxpy solver ignores time_limit/tolerance/threads; use extra")
    return {}


OPTION_MAPPERS: dict[str, Callable[[SolveOptions], dict]] = {
    "SCS": _scs_options, "CLARABEL": _clarabel_options, "MOSEK": _mosek_options,
    "HIGHS": _highs_options, "OSQP": _osqp_options,
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
