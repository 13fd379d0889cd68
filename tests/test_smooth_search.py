"""Smooth activations in alpha-CROWN, ``alpha-crown``, ``exact`` and ``milp``.

References: dense sampling of the input box plus PGD (an upper bound on the true
minimum margin) on tiny random sigmoid/tanh/softplus networks, and CROWN.  Checks:
alpha-CROWN is sound (below every sampled margin) and never looser than CROWN;
``exact`` decides every instance whose sampled minimum is clearly away from zero,
with the right answer and a real counterexample, and never exits with a usage error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relax import Verdict, robustness, verify
from relax.bounds import bound_specs
from relax.bounds.alpha import AlphaSettings, Domains, alpha_crown
from relax.bounds.torch_network import TorchNetwork
from relax.deadline import Deadline
from relax.result import ReasonKind
from relax.errors import UsageError
from relax.network import Network
from relax.protocol import VerifyOptions
from relax.search.alpha_method import alpha_disjunct_bounds
from relax.search.input_split import input_split_search
from relax.lp.encode import encode_milp
from relax.lp.method import lp_disjunct_bounds
from relax.spec import Spec
from tests.helpers import least_sampled_margin, random_network

SMOOTH = ["sigmoid", "tanh", "softplus"]


def _problem(seed, activation, eps, widths=(3, 8, 8, 3)):
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), activation, scale=2.0)
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return rng, network, robustness(x, label, eps, num_classes=widths[-1])


def _sampled_minimum(rng, network, spec, n=4000) -> float:
    """Least margin over dense samples and the PGD point: an upper bound on the minimum."""
    return least_sampled_margin(rng, network, spec, n)


@pytest.mark.parametrize("activation", SMOOTH)
@pytest.mark.parametrize("seed", range(3))
def test_alpha_crown_is_sound_and_no_looser_than_crown_on_smooth_nets(activation, seed):
    rng, network, spec = _problem(seed, activation, 0.3)
    crown = bound_specs(network, [spec], "crown")[0].disjunct_bounds
    alpha = alpha_disjunct_bounds(network, spec, range(len(spec.disjuncts)))
    for j, disjunct in enumerate(spec.disjuncts):
        single = Spec(spec.lower, spec.upper, (disjunct,))
        assert alpha[j] <= _sampled_minimum(rng, network, single, 2000) + 1e-9
    assert np.all(alpha >= crown - 1e-9)


def test_alpha_crown_on_mixed_relu_and_sigmoid_layers_is_sound():
    rng = np.random.default_rng(7)
    relu = random_network(rng, [3, 8, 8, 3], "relu", scale=2.0)
    sigmoid = random_network(rng, [3, 8, 8, 3], "sigmoid", scale=2.0)
    layers = (relu.layers[0], relu.layers[1], relu.layers[2], sigmoid.layers[3], sigmoid.layers[4])
    network = Network(layers)
    assert {a.name for a in network.activations} == {"relu", "sigmoid"}
    x = rng.uniform(size=3)
    spec = robustness(x, int(np.argmax(network.forward(x))), 0.3, num_classes=3)
    alpha = alpha_disjunct_bounds(network, spec, range(len(spec.disjuncts)))
    assert alpha.min() <= _sampled_minimum(rng, network, spec) + 1e-9


def test_alpha_crown_refuses_activations_it_cannot_relax():
    class Cube:
        name = "cube"

    net = TorchNetwork((torch.eye(2, dtype=torch.float64),) * 2, (torch.zeros(2, dtype=torch.float64),) * 2,
                       (Cube(),), torch.device("cpu"), torch.float64)
    box = torch.zeros(1, 2, dtype=torch.float64)
    domains = Domains(box, box + 1, torch.ones(1, 1, 2, dtype=torch.float64), [box], [box + 1])
    with pytest.raises(UsageError, match="cube"):
        alpha_crown(net, domains, AlphaSettings(iterations=1))


# instances (2-10-10-3, eps 0.4) where CROWN fails, no sample violates, and the margin is > 0.02
NEEDS_SPLITS = [("sigmoid", 14), ("sigmoid", 31), ("tanh", 3), ("tanh", 10), ("softplus", 14), ("softplus", 21)]


@pytest.mark.parametrize("activation,seed", NEEDS_SPLITS)
def test_input_splitting_closes_what_crown_cannot(activation, seed):
    rng, network, spec = _problem(seed, activation, 0.4, widths=(2, 10, 10, 3))
    assert bound_specs(network, [spec], "crown")[0].bound < 0
    sampled = _sampled_minimum(rng, network, spec)
    outcome = input_split_search(network, spec)
    assert outcome.complete and outcome.counterexample is None, outcome.reason
    assert outcome.nodes > len(spec.disjuncts)
    assert 0 < outcome.bound <= sampled + 1e-9
    result = verify(network, spec, "exact", timeout=60)
    assert result.verdict is Verdict.HOLDS and 0 < result.bound <= sampled + 1e-9


@pytest.mark.parametrize("activation", SMOOTH)
@pytest.mark.parametrize("seed", range(4))
def test_input_splitting_decides_small_smooth_nets(activation, seed):
    rng, network, spec = _problem(seed + 10, activation, 0.25)
    sampled = _sampled_minimum(rng, network, spec)
    outcome = input_split_search(network, spec)
    assert outcome.complete, outcome.reason
    if outcome.counterexample is not None:
        x = outcome.counterexample
        assert spec.is_violated_by(x, network.forward(x))
    else:
        assert 0 < outcome.bound <= sampled + 1e-9


def test_input_splitting_time_limit_keeps_a_sound_bound():
    rng, network, spec = _problem(3, "tanh", 0.4, widths=(2, 10, 10, 3))
    outcome = input_split_search(network, spec, deadline=Deadline.after(0))
    assert not outcome.complete and outcome.reason.kind is ReasonKind.TIME_LIMIT
    assert outcome.counterexample is None and outcome.bound <= _sampled_minimum(rng, network, spec) + 1e-9


@pytest.mark.parametrize("method", ["exact", "milp"])
@pytest.mark.parametrize("activation", SMOOTH)
def test_exact_and_milp_decide_smooth_nets(method, activation):
    decided = 0
    for seed in range(3):
        rng, network, spec = _problem(seed + 20, activation, 0.3)
        sampled = _sampled_minimum(rng, network, spec)
        result = verify(network, spec, method, timeout=60)
        if result.verdict is Verdict.HOLDS:
            assert 0 < result.bound <= sampled + 1e-9
        elif result.verdict is Verdict.VIOLATED:
            x = result.counterexample
            assert spec.is_violated_by(x, network.forward(x))
        decided += result.verdict is not Verdict.UNKNOWN
        if abs(sampled) > 1e-3:
            assert result.verdict is not Verdict.UNKNOWN, result.reason
    assert decided >= 2


def test_alpha_crown_method_honours_bound_only():
    _, network, spec = _problem(1, "relu", 0.05)
    crown = bound_specs(network, [spec], "crown")[0].bound
    assert crown > 0
    quick = verify(network, spec, "alpha-crown")
    full = verify(network, spec, "alpha-crown", options=VerifyOptions(bound_only=True))
    assert quick.verdict is Verdict.HOLDS and quick.bound == pytest.approx(crown)
    assert full.verdict is Verdict.HOLDS and full.bound >= crown - 1e-9


@pytest.mark.parametrize("activation", SMOOTH)
@pytest.mark.parametrize("seed", range(3))
def test_lp_on_smooth_nets_is_sound_and_no_looser_than_crown(activation, seed):
    """The LP's rows contain CROWN's lines (chord and midpoint tangent, exact offsets), so
    its bound is at least CROWN's; every bound lies below the sampled minimum."""
    rng, network, spec = _problem(seed, activation, 0.4, widths=(2, 10, 10, 3))
    crown = bound_specs(network, [spec], "crown")[0]
    lp_crown = lp_disjunct_bounds(network, spec, crown.layers, None)
    assert np.all(lp_crown >= crown.disjunct_bounds - 1e-6)
    # with LP-tightened intermediate bounds (the lines move with the intervals: not
    # comparable with lp_crown row by row, but never below CROWN, which lp keeps)
    result = verify(network, spec, "lp", timeout=60, options=VerifyOptions(bound_only=True))
    assert result.bound >= crown.bound - 1e-6
    assert max(result.bound, lp_crown.min()) <= _sampled_minimum(rng, network, spec) + 1e-9


def test_milp_encoding_still_refuses_smooth_nets():
    _, network, spec = _problem(0, "tanh", 0.1)
    crown = bound_specs(network, [spec], "crown")[0]
    with pytest.raises(UsageError, match="MILP"):
        encode_milp(network, spec.lower, spec.upper, crown.layers)
