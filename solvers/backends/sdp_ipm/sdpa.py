r"""The multiplier form in SDPA sparse format, and DSDP 5 (``dsdp5``) or SDPA (PyPI
``sdpa-python``, extra ``relax[sdpa]``) on it: the external references for :mod:`.ipm`
at MNIST size (``benchmarks/sdp.py --dsdp-limit / --sdpa``).

SDPA's primal is ``min c^T x`` s.t. ``sum_i F_i x_i - F_0 >= 0``; the multiplier form
``max b^T y`` s.t. ``C - sum_c y_c A_c - diag(kappa) >= 0`` with signs
(:class:`~.problem.MultiplierSdp`) is that with ``x = y``, ``c = -b``, ``F_0 = -C``,
``F_i = -A_i`` in block 1 and, in a diagonal block 2, ``sign_i`` on the row of every
sign-constrained multiplier (``sign_i y_i >= 0``).  ``A_c = sym(u_c v_c^T)`` has only
rows and columns ``0`` and ``a_c`` (:mod:`.schur`), about ``2 s`` entries each.  The
value DSDP reports is the solver's own objective, a reference only (not a bound).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solvers.backends.sdp_ipm.problem import MultiplierSdp

__all__ = ["write_sdpa", "run_dsdp", "DsdpResult", "dsdp_available", "run_sdpa", "SdpaResult",
           "sdpa_available"]


def _entries(sdp: MultiplierSdp):
    """``(matrix, block, i, j, value)`` rows (1-based, upper triangle) of the data."""
    s, m = sdp.side, sdp.m_neurons
    out = []
    iu = np.triu_indices(s)
    C = -sdp.C
    keep = C[iu] != 0
    out.append(np.column_stack([np.zeros(keep.sum()), np.ones(keep.sum()),
                                iu[0][keep] + 1, iu[1][keep] + 1, C[iu][keep]]))
    for c in range(m):                    # A = E + E^T, E = u v^T / 2 (rows of u only)
        rows = np.flatnonzero(sdp.U[:, c])
        E = 0.5 * sdp.U[rows, c][:, None] * sdp.V[:, c][None, :]
        r, j = np.repeat(rows, s), np.tile(np.arange(s), rows.size)
        value = E.ravel() * np.where(r == j, 2.0, 1.0)
        key = np.minimum(r, j) * s + np.maximum(r, j)
        uniq, inv = np.unique(key[value != 0], return_inverse=True)
        total = np.zeros(uniq.size)
        np.add.at(total, inv, -value[value != 0])
        out.append(np.column_stack([np.full(uniq.size, c + 1), np.ones(uniq.size),
                                    uniq // s + 1, uniq % s + 1, total]))
    for i in range(s):
        out.append(np.array([[m + i + 1, 1, i + 1, i + 1, -1.0]]))
    signed = np.flatnonzero(sdp.sign != 0)
    out.append(np.column_stack([signed + 1, np.full(signed.size, 2),
                                np.arange(1, signed.size + 1), np.arange(1, signed.size + 1),
                                sdp.sign[signed].astype(float)]))
    return np.concatenate(out), signed.size


def write_sdpa(sdp: MultiplierSdp, path: Path) -> None:
    """``sdp`` in SDPA sparse format (module docstring) at ``path``."""
    entries, signed = _entries(sdp)
    m = sdp.m_neurons + sdp.side
    with open(path, "w") as handle:
        handle.write(f'"relax multiplier form, side {sdp.side}\n{m}\n')
        handle.write(f"{2 if signed else 1}\n{sdp.side}" + (f" -{signed}" if signed else "") + "\n")
        handle.write(" ".join(f"{v:.17g}" for v in -sdp.b) + "\n")
        np.savetxt(handle, entries, fmt=["%d", "%d", "%d", "%d", "%.17g"])


def dsdp_available() -> tuple[bool, str]:
    """Whether ``dsdp5`` (Debian package ``dsdp``) is on the ``PATH``."""
    return (True, "") if shutil.which("dsdp5") else \
        (False, "dsdp5 not installed (Debian package dsdp)")


@dataclass(frozen=True)
class DsdpResult:
    """DSDP's objective in the multiplier form's units (``scale`` applied), its wall
    seconds, iterations, whether it reported convergence and the last lines of its log."""

    value: float
    seconds: float
    iterations: int
    log: str
    converged: bool = False


def run_dsdp(sdp: MultiplierSdp, workdir: Path, timeout: float, gaptol: float = 1e-7) -> DsdpResult:
    """Write ``sdp`` and run ``dsdp5`` on it; ``value = scale * b^T y`` of DSDP's answer
    (DSDP reports ``b^T y`` of its dual, which is this form)."""
    path = Path(workdir) / "multiplier.dat-s"
    write_sdpa(sdp, path)
    started = time.perf_counter()
    done = subprocess.run(["dsdp5", str(path), "-gaptol", str(gaptol), "-print", "1"],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=workdir)           # dsdp5 appends a results file to its cwd
    seconds = time.perf_counter() - started
    text = done.stdout + done.stderr
    found = re.search(r"DSDP Solution:\s*([-+0-9.eE]+)", text) or \
        re.search(r"Dual\s+Objective\s*[:=]\s*([-+0-9.eE]+)", text)
    iterations = re.findall(r"^\s*(\d+)\s", text, re.M)
    value = float(found.group(1)) * sdp.scale if found else float("nan")
    return DsdpResult(value, seconds, int(iterations[-1]) if iterations else 0, text[-1500:],
                      converged="Converged" in text)


def sdpa_available() -> tuple[bool, str]:
    """Whether SDPA's Python binding ``sdpap`` (PyPI ``sdpa-python``) imports."""
    try:
        import sdpap  # noqa: F401
    except ImportError:
        return False, "sdpa-python not installed (pip install 'relax[sdpa]')"
    return True, ""


@dataclass(frozen=True)
class SdpaResult:
    """SDPA's primal and dual objectives in the multiplier form's units (``scale``
    applied; references, not bounds), its wall seconds, iterations and phase."""

    primal: float
    dual: float
    seconds: float
    iterations: int
    phase: str


def run_sdpa(sdp: MultiplierSdp, workdir: Path, max_iterations: int = 100,
             tolerance: float = 1e-7) -> SdpaResult:
    """Write ``sdp`` and solve it with SDPA (``sdpap.importsdpa(flipsign=True)``, so
    its ``primalObj`` is the multiplier form's ``b^T y``); no wall-clock limit exists in
    SDPA, so ``max_iterations`` bounds its time."""
    import sdpap

    path = Path(workdir) / "multiplier.dat-s"
    write_sdpa(sdp, path)
    A, b, c, K, J = sdpap.importsdpa(str(path), flipsign=True)
    started = time.perf_counter()
    _, _, info, _, sdpa_info = sdpap.solve(A, b, c, K, J, {
        "print": "no", "maxIteration": max_iterations, "epsilonStar": tolerance,
        "epsilonDash": tolerance})
    seconds = time.perf_counter() - started
    return SdpaResult(float(info["primalObj"]) * sdp.scale, float(info["dualObj"]) * sdp.scale,
                      seconds, int(sdpa_info.get("iteration", 0)), str(info["phasevalue"]))
