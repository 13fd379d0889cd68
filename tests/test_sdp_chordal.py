"""The chordal form of the SDP (one PSD cone per consecutive layer pair,
``benchmarks/sdp_chordal.py``) has the same optimum as the full form.

Cross-checks: the two forms solved by Clarabel agree to 1e-6 (relative to max(1, |v|)),
both sound bounds lie between CROWN's bound and the exact margin from the MILP, and the
pattern check refuses a program with a row that couples layers two apart."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("cvxpy")
from solvers import SolveOptions, get_solver
from solvers.program import ConicProgram, LinearProgram

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("sdp_chordal", BENCH / "sdp_chordal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()

# small nets on which the SDP is strictly above CROWN (so agreement is not trivial)
CASES = [((5, 6, 5, 3), 0), ((6, 5, 5, 4, 3), 0), ((5, 6, 5, 3), 2)]


def _clarabel(program):
    backend = get_solver("cvxpy-clarabel")
    if not backend.is_available()[0]:
        pytest.skip("cvxpy-clarabel unavailable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return backend.solve(program, SolveOptions(tolerance=1e-10))


@pytest.mark.parametrize("widths, seed", CASES)
def test_chordal_and_full_forms_agree(widths, seed):
    from relax.search.milp import milp_margin
    from relax.spec import Spec

    network, spec, crown, j, encoding = bench.random_case(widths, seed)
    d = spec.disjuncts[j]
    full = encoding.with_objective(d.A[0], float(d.b[0]))
    chordal = bench.chordal_program(full, encoding.offsets)
    assert len(chordal.psd) == len(network.activations)
    assert [c.size for c in chordal.psd] == [c.size for c in bench.layer_cliques(encoding.offsets)]
    assert chordal.linear.num_variables < full.linear.num_variables
    a, b = _clarabel(full), _clarabel(chordal)
    assert a.objective is not None and b.objective is not None
    scale = max(1.0, abs(a.objective))
    assert abs(a.objective - b.objective) <= 1e-6 * scale
    assert abs(a.bound - b.bound) <= 1e-6 * scale
    exact = milp_margin(network, Spec(spec.lower, spec.upper, (d,)), crown.layers)
    crown_row = float(crown.disjunct_bounds[j])
    for value in (a.bound, b.bound):
        assert crown_row - 1e-7 <= value <= exact + 1e-7
    assert b.bound > crown_row + 1e-4            # the case really tests the SDP, not CROWN


def test_pattern_check_refuses_rows_across_two_layers():
    _, spec, _, j, encoding = bench.random_case((4, 4, 4, 2), 0)
    d = spec.disjuncts[j]
    full = encoding.with_objective(d.A[0], float(d.b[0]))
    from relax.sdp.encode import triangle_index

    s = encoding.n + 1
    first, third = encoding.offsets[0] + 1, encoding.offsets[2] + 1   # x_0[0] and a_1[0]
    column = int(triangle_index(np.array([first]), np.array([third]), s)[0])
    lp = full.linear
    extra = sp.csr_matrix(([1.0], ([0], [column])), shape=(1, lp.num_variables))
    coupled = LinearProgram(lp.c, sp.vstack([lp.A, extra], format="csr"),
                            np.append(lp.row_lower, -1.0), np.append(lp.row_upper, 1.0),
                            lp.lower, lp.upper, c0=lp.c0)
    bench.chordal_program(full, encoding.offsets)           # the real program passes
    with pytest.raises(ValueError, match="outside"):
        bench.chordal_program(ConicProgram(coupled, full.psd), encoding.offsets)
