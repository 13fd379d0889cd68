"""``exact`` with the k-ReLU stage before its branch and bound (deep ReLU networks).

References: the exact MILP margin (:func:`relax.search.milp.milp_margin`, HiGHS) and
sampling.  Checks: the stage's layer bounds contain sampled pre-activations and its
disjunct bounds lie below the sampled margins; ``exact`` with the stage (then branch and
bound from its bounds where it leaves disjuncts open) never reports a bound above the
MILP's margin and decides these small instances; ``tighten`` selects when the stage runs,
and below ``STAGE_FIRST_DEPTH`` hidden layers the search runs alone first (and the stage
only if it did not decide); with ``overlap`` the stage runs in a thread beside the search,
which cancels it when it decides first.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import relax.search.exact as exact_module
from relax import Verdict, verify
from relax.bounds import bound_specs
from relax.deadline import Deadline
from relax.errors import UsageError
from relax.krelu.method import krelu_stage
from relax.krelu.options import KreluOptions
from relax.protocol import VerifyOptions
from relax.search.exact import (
    AUTO_TIGHTEN_DEPTH,
    STAGE_FIRST_DEPTH,
    ExactOptions,
    exact_one,
)
from relax.search.milp import milp_margin
from relax.spec import robustness
from tests.helpers import random_network, sample_box

DEEPER = (3, 8, 8, 8, 8, 8, 8, 8, 3)   # 7 hidden ReLU layers: ``auto`` runs the stage first
DEEP = (3, 8, 8, 8, 8, 8, 8, 3)        # 6: ``auto`` runs it after the search alone
MID = (3, 8, 8, 8, 8, 3)               # 4: ``auto`` runs it after the search alone
SHALLOW = (3, 8, 8, 8, 3)              # 3: ``auto`` leaves it off

#: a deliberately weak stage (1 alpha step, no feedback, no LP tightening: only the k-ReLU
#: LP per disjunct), so that on these small nets it leaves disjuncts to the search
WEAK = KreluOptions(k=2, alpha_iterations=1, feedback=0, intermediate="crown")


def _problem(seed: int, eps: float, widths=DEEP):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), "relu", scale=1.5)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return rng, network, robustness(x, label, eps, num_classes=widths[-1])


@pytest.fixture
def stage_calls(monkeypatch):
    """Every k-ReLU stage ``exact`` runs: the least disjunct bound it returned."""
    calls: list[float] = []

    def spy(*args, **kwargs):
        out = krelu_stage(*args, **kwargs)
        calls.append(float(out[1].min()))
        return out

    monkeypatch.setattr(exact_module, "krelu_stage", spy)
    return calls


@pytest.mark.parametrize("neuron_search", [None, 1.0])  # with the per-neuron search as `exact` runs it
@pytest.mark.parametrize("seed,eps", [(1, 0.4), (24, 0.2)])
def test_stage_bounds_contain_samples_and_lie_below_the_milp(seed, eps, neuron_search):
    rng, network, spec = _problem(seed, eps)
    crown = bound_specs(network, [spec])[0]
    bounds, per_disjunct, layers = krelu_stage(network, spec, crown, KreluOptions(k=2, neuron_search=neuron_search),
                                               "highs", Deadline.after(60), bound_only=True)
    assert layers, "bound_only computes the rows of every layer"
    xs = sample_box(rng, spec.lower, spec.upper, 2000)
    zs = network.pre_activations(xs)
    for k, (lower, upper) in enumerate(zip(bounds.lower, bounds.upper)):
        assert np.all(zs[k] >= lower - 1e-9) and np.all(zs[k] <= upper + 1e-9)
        assert np.all(lower >= crown.layers.lower[k] - 1e-12)
    assert np.all(per_disjunct >= np.asarray(crown.disjunct_bounds) - 1e-12)
    for j, disjunct in enumerate(spec.disjuncts):   # each disjunct's margin on the samples
        sampled = (zs[-1] @ disjunct.A.T - disjunct.b).max(axis=1).min()
        assert per_disjunct[j] <= sampled + 1e-9
    exact = milp_margin(network, spec, bounds, time_limit=30)   # valid bounds: the same optimum
    assert exact is not None and per_disjunct.min() <= exact + 1e-6


@pytest.mark.parametrize("seed,eps,leaves_open", [
    (3, 0.2, True), (18, 0.2, True), (27, 0.2, True),   # the search closes what the stage left
    (17, 0.4, False), (28, 0.4, False),                 # the stage alone proves them
])
def test_exact_with_the_stage_agrees_with_the_milp(stage_calls, seed, eps, leaves_open):
    _, network, spec = _problem(seed, eps)
    crown = bound_specs(network, [spec])[0]
    assert crown.bound <= 0, "CROWN alone must not decide the chosen instances"
    outcome = exact_one(network, spec, Deadline.after(60), VerifyOptions(), "highs", krelu=WEAK)
    exact = milp_margin(network, spec, crown.layers, time_limit=30)
    assert len(stage_calls) == 1
    assert (stage_calls[0] <= 0) == leaves_open
    assert outcome.counterexample is None and exact is not None and exact > 0
    assert 0 < outcome.bound <= exact + 1e-6
    assert outcome.solver == ("torch-bab" if leaves_open else "krelu")


def test_exact_finds_the_counterexample_of_a_deep_violated_instance(stage_calls):
    _, network, spec = _problem(0, 0.2)
    result = verify(network, spec, "exact", timeout=60)
    exact = milp_margin(network, spec, bound_specs(network, [spec])[0].layers, time_limit=30)
    assert exact is not None and exact < 0
    assert result.verdict is Verdict.VIOLATED
    assert spec.is_violated_by(result.counterexample, network.forward(result.counterexample))


@pytest.mark.parametrize("widths,tighten,search_first,runs", [
    (DEEPER, "auto", None, True), (DEEP, "off", None, False), (SHALLOW, "auto", None, False),
    (DEEP, "auto", 0.0, True),
    (SHALLOW, "krelu", 0.0, True), (MID, "auto", 0.0, True),
    # below STAGE_FIRST_DEPTH the search runs alone first and decides these: no stage
    (SHALLOW, "krelu", None, False), (MID, "auto", None, False),
])
def test_tighten_option_selects_the_stage(stage_calls, widths, tighten, search_first, runs):
    _, network, spec = _problem({MID: 4, DEEPER: 9}.get(widths, 1), 0.4, widths)  # CROWN fails on these
    assert (len(network.activations) >= AUTO_TIGHTEN_DEPTH) == (widths in (DEEPER, DEEP, MID))
    assert (len(network.activations) < STAGE_FIRST_DEPTH) == (widths in (SHALLOW, MID, DEEP))
    assert bound_specs(network, [spec])[0].bound <= 0
    options = VerifyOptions(methods=(ExactOptions(tighten=tighten, search_first=search_first,
                                                  overlap=False),))
    result = verify(network, spec, "exact", timeout=60, options=options)
    assert (len(stage_calls) > 0) == runs
    exact = milp_margin(network, spec, bound_specs(network, [spec])[0].layers, time_limit=30)
    assert exact is not None
    if result.verdict is Verdict.HOLDS:
        assert result.bound <= exact + 1e-6
    assert result.verdict is (Verdict.HOLDS if exact > 0 else Verdict.VIOLATED)


def test_exact_options_check_the_stage_settings():
    with pytest.raises(UsageError):
        ExactOptions(tighten_k=7)
    with pytest.raises(UsageError):
        ExactOptions(tighten_share=0.0)
    with pytest.raises(UsageError):
        ExactOptions(tighten="always")
    with pytest.raises(UsageError):
        ExactOptions(search_first=1.0)
    with pytest.raises(UsageError):
        ExactOptions(neuron_search=0.0)


@pytest.mark.parametrize("seed,eps", [(3, 0.2), (18, 0.2), (17, 0.4), (0, 0.2)])
def test_the_stage_beside_the_search_agrees_with_the_milp(stage_calls, seed, eps):
    """Whichever of the two ends first, the verdict is the MILP's and a bound never
    exceeds the MILP's margin (seed 0 is violated)."""
    _, network, spec = _problem(seed, eps)
    crown = bound_specs(network, [spec])[0]
    outcome = exact_one(network, spec, Deadline.after(60), VerifyOptions(), "highs", krelu=WEAK,
                        overlap=True)
    exact = milp_margin(network, spec, crown.layers, time_limit=30)
    assert exact is not None and len(stage_calls) <= 1   # none if the first attack decides
    if exact < 0:
        assert outcome.counterexample is not None
        assert spec.is_violated_by(outcome.counterexample, network.forward(outcome.counterexample))
    else:
        assert outcome.counterexample is None and 0 < outcome.bound <= exact + 1e-6


def test_a_search_that_decides_first_cancels_the_stage(monkeypatch):
    """A stand-in stage that runs until its deadline: the search (which decides this MID
    instance alone, as the test above shows) must cancel it, long before the time limit."""
    seen = []

    def endless_stage(network, spec, crown, krelu, solver, deadline, progress=None):
        seen.append(threading.current_thread().name)
        while not deadline.expired:
            time.sleep(0.01)
        seen.append(deadline.cancelled)
        raise AssertionError("a cancelled stage's result must not be used")

    monkeypatch.setattr(exact_module, "krelu_stage", endless_stage)
    _, network, spec = _problem(4, 0.4, MID)
    start = time.monotonic()
    outcome = exact_one(network, spec, Deadline.after(120), VerifyOptions(), "highs",
                        krelu=KreluOptions(k=2), overlap=True)
    assert time.monotonic() - start < 60
    assert seen[0] != threading.current_thread().name and seen[1] is True
    exact = milp_margin(network, spec, bound_specs(network, [spec])[0].layers, time_limit=30)
    assert exact is not None and exact > 0 and 0 < outcome.bound <= exact + 1e-6
