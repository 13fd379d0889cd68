"""fo-sdp's options: one typed frozen dataclass, read once from ``SolveOptions.extra``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from solvers.backend import SolveOptions

__all__ = ["FoSdpOptions", "METHODS", "INITS"]

METHODS = ("auto", "lbfgs", "adam", "bm")
INITS = ("linear", "crown", "interval", "zeros", "lp")
_EIGS = ("auto", "lanczos", "dense")


@dataclass(frozen=True)
class FoSdpOptions:
    """Every fo-sdp setting (the module docstring of :mod:`solvers.backends.fo_sdp`
    explains the methods).

    Common: ``device``, ``dtype`` ("float64"/"float32": iterations only, certificates
    are float64), ``method`` ("auto": the spectral L-BFGS for ``1 + n < bm_above``, else
    Burer-Monteiro, then L-BFGS up to ``lbfgs_below`` rows ("bm"); "adam": the
    matrix-free Adam of :mod:`.adam`), ``max_iterations`` (evaluations), ``cuts`` (triangle cuts in the dual,
    on by default: the dual then contains CROWN's and the LP's bounds), ``init``
    ("linear": the better of the interval and the CROWN bound; "crown"; "lp": the
    best of those and the triangle LP's optimal duals; "interval"; "zeros"), ``check_every`` (certify every k-th
    iterate; 0: off), ``target`` (stop once the estimate reaches it), ``seed``,
    ``dense_check_limit`` (largest ``1 + n`` certified by a dense ``eigvalsh``; larger
    problems use the block LDL^T certificate), ``eliminate`` (with cuts, up to the dense
    limit: the relaxation sdp-ipm solves, stably active neurons with ``z = a`` lifted:
    substituted in the Burer-Monteiro primal, their equality's multiplier in the dense
    certificate, :mod:`.lift`).
    Adam: ``lr``, ``patience``, ``eig``, ``dense_below``, ``lanczos_steps``, ``ritz``,
    ``smooth_eig``.  L-BFGS: ``lbfgs_below``, ``memory``, ``smooth_stages``,
    ``stage_tol``, ``stage_gap``, ``stage_patience``.  ``method="bm"``: a
    rank-``rank`` Burer-Monteiro augmented Lagrangian (penalty ``bm_mu * scale / h``,
    ``h`` the number of hidden neurons, times ``bm_growth`` when the violation stalls;
    ``bm_inner`` L-BFGS steps per outer iteration; ``bm_outer`` outer iterations without
    a time limit; ``bm_momentum``: Nesterov's accelerated multiplier updates with
    adaptive restart) for ``bm_fraction`` of the time limit, its multipliers certified
    after every outer iteration with the Gershgorin ``kappa`` shift (:mod:`.repair`);
    the best of them start the spectral L-BFGS when they certify within ``bm_keep``
    (relative to ``max(1, |start|)``) of the start's bound; past ``dense_check_limit``
    rows every ``bm_shift_every``-th outer iteration's multipliers also get the
    matrix-free ``kappa`` repairs (costly); ``bm_background_checks``: up to the dense
    limit the checks run in a worker thread beside the next outer iteration;
    ``bm_escape``: up to the dense limit, whenever a check certifies less than the best
    so far, the negative ones among the current ``D``'s ``bm_escape`` smallest
    eigenvectors replace the factor's spare columns (:func:`.burer_monteiro.escape`;
    0: never).  Above
    ``lbfgs_below`` rows, or with stably active neurons lifted (``eliminate``), the
    Burer-Monteiro stage has the whole time limit and no L-BFGS follows (its eigenvalue
    problems would be dense; with the lift, measured, it gained nothing after it;
    ``method="lbfgs"`` alone does use the lift)."""

    device: str = "cpu"
    dtype: str = "float64"
    method: str = "auto"
    max_iterations: int = 3000
    cuts: bool = True
    init: str = "linear"
    check_every: int = 0
    target: float | None = None
    seed: int = 0
    dense_check_limit: int = 6000
    eliminate: bool = True
    lr: float = 0.05
    patience: int = 300
    eig: str = "auto"
    dense_below: int = 64
    lanczos_steps: int = 30
    ritz: int = 8
    smooth_eig: float = 0.003
    lbfgs_below: int = 4000
    bm_above: int = 300
    memory: int = 30
    smooth_stages: tuple[float, float] = (2, 7)
    stage_tol: float = 1e-5
    stage_gap: float = 0.05
    stage_patience: int = 50
    rank: int = 16
    bm_fraction: float = 0.7
    bm_mu: float = 40.0
    bm_momentum: bool = True
    bm_shift_every: int = 3
    bm_background_checks: bool = True
    bm_escape: int = 4
    bm_inner: int = 300
    bm_growth: float = 1.0
    bm_outer: int = 10
    bm_keep: float = 0.01

    def __post_init__(self) -> None:
        for name, allowed in (("method", METHODS), ("init", INITS), ("eig", _EIGS),
                              ("dtype", ("float64", "float32"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"fo-sdp: {name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        if self.max_iterations < 0 or self.lanczos_steps < 1 or self.ritz < 1:
            raise ValueError("fo-sdp: max_iterations >= 0, lanczos_steps >= 1, ritz >= 1")
        if (self.rank < 1 or self.bm_mu <= 0 or self.bm_inner < 1 or self.bm_growth < 1
                or self.bm_outer < 1 or self.bm_keep < 0 or not 0 <= self.bm_fraction <= 1
                or self.bm_shift_every < 1 or self.bm_escape < 0):
            raise ValueError("fo-sdp: rank >= 1, bm_mu > 0, bm_inner >= 1, bm_growth >= 1, "
                             "bm_outer >= 1, bm_keep >= 0, 0 <= bm_fraction <= 1, "
                             "bm_shift_every >= 1, bm_escape >= 0")
        object.__setattr__(self, "smooth_stages", tuple(self.smooth_stages))

    @classmethod
    def from_solve_options(cls, options: SolveOptions | None) -> "FoSdpOptions":
        """The options named in ``options.extra``; an unknown key is a ``ValueError``."""
        extra = (options or SolveOptions()).extra_dict
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(extra) - known)
        if unknown:
            raise ValueError(f"fo-sdp: unknown option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**extra)

    def solver_method(self, n1: int) -> str:
        """``"lbfgs"``, ``"bm"`` or ``"adam"`` for a problem with ``1 + n = n1`` rows."""
        if self.method == "auto":
            return "lbfgs" if n1 < self.bm_above else "bm"
        return self.method
