"""k-ReLU relaxation: hull soundness (sampling), groups, octahedra, and LP bounds
against the triangle LP and the exact MILP value."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from relax.bounds import bound_specs
from relax.lp.method import lp_disjunct_bounds
from relax.search.milp import milp_margin
from relax.krelu import (KreluOptions, OctahedronBounder, directions, exact_hull, fast_hull,
                         graph_points, krelu_disjunct_bounds, krelu_tighten, select_groups)
from relax.spec import robustness
from relax.verify import BOUND_METHODS, VerifyOptions, verify
from tests.helpers import random_network


def _octahedron(rng, k, n_cloud=30, pin=None):
    """Random bounds and the octahedral hull of a random point cloud inside them."""
    l, u = -rng.uniform(0.3, 2, k), rng.uniform(0.3, 2, k)
    cloud = rng.uniform(l, u, (n_cloud, k))
    if pin is not None:  # a neuron that is stable (negative) over the polytope
        cloud[:, pin] = -rng.uniform(0.1, 0.3, n_cloud)
    C = directions(k)
    d = (cloud @ C.T).min(axis=0)
    return l, u, -C, -d, cloud


def _graph_samples(rng, l, u, H, h, cloud, n=40000):
    x = rng.uniform(l, u, (n, len(l)))
    x = x[(x @ H.T <= h).all(axis=1)]
    w = rng.dirichlet(np.ones(len(cloud)), 2000)             # convex combinations: inside P
    x = np.vstack([x, cloud, w @ cloud, graph_points(H, h)[:, :len(l)]])
    return x, np.maximum(x, 0)


def _max_violation(rows, x, y):
    return float((x @ rows.A_x.T + y @ rows.A_y.T - rows.b).max()) if rows.count else -np.inf


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.sampled_from([2, 3]), pin=st.booleans())
def test_hulls_contain_sampled_graph_points(seed, k, pin):
    rng = np.random.default_rng(seed)
    l, u, H, h, cloud = _octahedron(rng, k, pin=0 if pin else None)
    x, y = _graph_samples(rng, l, u, H, h, cloud)
    for hull in (exact_hull, fast_hull):
        assert _max_violation(hull(H, h, l, u), x, y) <= 0.0


def test_fast_hull_k4_sound_and_exact_hull_is_tighter_than_fast():
    rng = np.random.default_rng(3)
    l, u, H, h, cloud = _octahedron(rng, 4)
    x, y = _graph_samples(rng, l, u, H, h, cloud)
    assert _max_violation(fast_hull(H, h, l, u), x, y) <= 0.0
    # the exact hull of a k=3 graph implies every template row (it is the tightest convex
    # set): conv G is its rows with the triangle rows it drops as implied (y >= x, y >= 0,
    # y <= the chord u (x - l) / (u - l)), so every fast row is valid over their intersection
    l, u, H, h, _ = _octahedron(rng, 3)
    exact, fast = exact_hull(H, h, l, u), fast_hull(H, h, l, u)
    from scipy.optimize import linprog
    k, slope = len(l), u / (u - l)
    triangle_A = np.vstack([np.hstack([np.eye(k), -np.eye(k)]),               # x - y <= 0
                            np.hstack([-np.diag(slope), np.eye(k)])])         # y - slope x <= -slope l
    triangle_b = np.r_[np.zeros(k), -slope * l]
    A_ub = np.vstack([np.hstack([exact.A_x, exact.A_y]), triangle_A])
    b_ub = np.r_[exact.b, triangle_b]
    for a_x, a_y, b in zip(fast.A_x, fast.A_y, fast.b):
        res = linprog(-np.r_[a_x, a_y], A_ub=A_ub, b_ub=b_ub, A_eq=None,
                      bounds=[(li, ui) for li, ui in zip(l, u)] + [(0, max(ui, 0)) for ui in u],
                      method="highs")
        assert res.status == 0 and -res.fun <= b + 1e-6


def test_groups_respect_size_overlap_and_instability():
    rng = np.random.default_rng(0)
    lower, upper = rng.normal(size=50), rng.normal(size=50) + 1.0
    lower = np.minimum(lower, upper - 0.1)
    groups = select_groups(lower, upper, k=3, ns=10, s=1)
    unstable = set(np.flatnonzero((lower < 0) & (upper > 0)))
    assert groups and all(len(g) == 3 and set(g) <= unstable for g in groups)
    for g1, g2 in itertools.combinations(groups, 2):
        assert len(set(g1) & set(g2)) <= 1
    assert len(select_groups(lower, upper, k=3, ns=10, s=1, max_groups=4)) == 4


def _instance(seed=1, widths=(6, 12, 12, 3), eps=0.3):
    rng = np.random.default_rng(seed)
    net = random_network(rng, list(widths))
    x = rng.normal(size=widths[0])
    label = int(np.argmax(net.forward(x)))
    return net, robustness(x, label, eps, num_classes=widths[-1]), rng


def test_octahedral_bounds_hold_on_samples():
    net, spec, rng = _instance()
    bounds = bound_specs(net, [spec])[0].layers
    bounder = OctahedronBounder(net, spec.lower, spec.upper, bounds)
    xs = rng.uniform(spec.lower, spec.upper, (3000, len(spec.lower)))
    for layer in range(2):
        groups = select_groups(bounds.lower[layer], bounds.upper[layer], 3, 8, 1)
        z = np.array([net.pre_activations(x)[layer] for x in xs])
        for g, (H, h) in zip(groups, bounder.polytopes(layer, groups, 3)):
            assert np.all(z[:, list(g)] @ H.T <= h + 1e-9)


@pytest.mark.parametrize("hull", ["fast", "exact"])
def test_krelu_never_looser_than_triangle_and_below_exact(hull):
    for seed in (1, 4):
        net, spec, _ = _instance(seed)
        bounds = bound_specs(net, [spec])[0].layers
        triangle = lp_disjunct_bounds(net, spec, bounds, None)
        _, layers = krelu_tighten(net, spec, bounds, KreluOptions(k=3, ns=8, hull=hull), tighten=False)
        krelu = krelu_disjunct_bounds(net, spec, bounds, layers)
        assert np.all(krelu >= triangle - 1e-7)
        exact = milp_margin(net, spec, bounds, time_limit=20)
        assert exact is not None and krelu.min() <= exact + 1e-6


def test_krelu_strictly_tighter_than_triangle_on_an_instance():
    net, spec, _ = _instance(1)
    bounds = bound_specs(net, [spec])[0].layers
    triangle = lp_disjunct_bounds(net, spec, bounds, None)
    _, layers = krelu_tighten(net, spec, bounds, KreluOptions(k=2, ns=8, hull="exact"), tighten=False)
    krelu = krelu_disjunct_bounds(net, spec, bounds, layers)
    assert krelu.min() > triangle.min() + 1e-3


def test_verify_with_krelu_method_is_registered_and_sound():
    assert "krelu" in BOUND_METHODS
    net, spec, rng = _instance(1)
    options = VerifyOptions(methods=(KreluOptions(k=2, ns=8, bab="lp"),))
    result = verify(net, spec, "krelu", timeout=30, options=options)
    exact = milp_margin(net, spec, bound_specs(net, [spec])[0].layers, time_limit=20)
    assert result.bound <= exact + 1e-6
    assert result.verdict.value == "holds"  # its margin bound is positive on this instance


def test_sdp_with_krelu_cuts_is_never_looser_and_sound():
    from relax.krelu.encode import dense_rows
    from relax.lp.encode import encode_triangle
    from relax.sdp.encode import encode_sdp
    from relax.sdp.method import solve_row

    net, spec, _ = _instance(1, widths=(4, 6, 6, 3), eps=0.4)
    bounds = bound_specs(net, [spec])[0].layers
    _, layers = krelu_tighten(net, spec, bounds, KreluOptions(k=2, ns=6, hull="exact"), tighten=False)
    extra = dense_rows(encode_triangle(net, spec.lower, spec.upper, bounds), layers)
    assert extra[0].shape[0] > 0
    row, offset = spec.disjuncts[0].A[0], spec.disjuncts[0].b[0]
    plain = encode_sdp(net, spec.lower, spec.upper, bounds, cuts=True)
    with_krelu = encode_sdp(net, spec.lower, spec.upper, bounds, cuts=True, extra_cuts=extra)
    b_plain = solve_row(net, spec, bounds, row, offset, encoding=plain).bound
    b_krelu = solve_row(net, spec, bounds, row, offset, encoding=with_krelu).bound
    xs = np.random.default_rng(0).uniform(spec.lower, spec.upper, (20000, len(spec.lower)))
    values = net.forward(xs) @ row - offset   # this row's margin on samples
    assert b_krelu >= b_plain - 1e-5
    assert b_krelu <= values.min() + 1e-6
    # the LP with the same rows (sparse form) agrees that they are valid and tighten
    lp = krelu_disjunct_bounds(net, spec, bounds, layers)
    assert lp[0] <= values.min() + 1e-6


def test_branch_and_bound_with_krelu_rows_agrees_with_the_milp():
    from relax.search.lp_bab import branch_and_bound
    from relax.krelu import add_rows

    net, spec, _ = _instance(2, widths=(5, 10, 10, 3), eps=0.5)
    bounds = bound_specs(net, [spec])[0].layers
    _, layers = krelu_tighten(net, spec, bounds, KreluOptions(k=3, ns=8), tighten=False)
    exact = milp_margin(net, spec, bounds, time_limit=20)
    outcomes = [branch_and_bound(net, spec, d, bounds, augment=lambda e: add_rows(e, layers))
                for d in spec.disjuncts]
    assert all(o.complete for o in outcomes)
    bound = min(o.bound for o in outcomes)
    assert bound <= exact + 1e-6
    assert (bound > 0) == (exact > 0) or any(o.counterexample is not None for o in outcomes)


def test_alpha_bounds_contain_samples_and_krelu_over_them_is_between_triangle_and_milp():
    from relax.krelu.method import alpha_layer_bounds

    net, spec, rng = _instance(4)
    crown = bound_specs(net, [spec])[0]
    bounds, alpha = alpha_layer_bounds(net, spec, crown.layers, range(len(spec.disjuncts)), 10)
    xs = rng.uniform(spec.lower, spec.upper, (2000, len(spec.lower)))
    z = [np.array(layer) for layer in zip(*(net.pre_activations(x) for x in xs))]
    for k, (l, u) in enumerate(zip(bounds.lower, bounds.upper)):
        assert np.all(l >= crown.layers.lower[k]) and np.all(u <= crown.layers.upper[k])
        assert np.all(z[k] >= l - 1e-9) and np.all(z[k] <= u + 1e-9)
    triangle = lp_disjunct_bounds(net, spec, bounds, None)
    _, layers = krelu_tighten(net, spec, bounds, KreluOptions(k=3, ns=8), tighten=False)
    krelu = krelu_disjunct_bounds(net, spec, bounds, layers)
    assert np.all(krelu >= triangle - 1e-7)
    exact = milp_margin(net, spec, bounds, time_limit=20)
    assert exact is not None and krelu.min() <= exact + 1e-6 and alpha.min() <= exact + 1e-6


def test_verify_krelu_with_lp_bound_source_is_sound():
    """The default source (alpha) runs in test_verify_with_krelu_method_is_registered_and_sound."""
    net, spec, _ = _instance(4)
    options = VerifyOptions(methods=(KreluOptions(k=2, ns=8, bounds="lp"),))
    result = verify(net, spec, "krelu", timeout=30, options=options)
    exact = milp_margin(net, spec, bound_specs(net, [spec])[0].layers, time_limit=20)
    assert exact is not None and result.bound <= exact + 1e-6
    assert result.verdict.value != "violated" or exact <= 0


def _pre_activation_samples(net, spec, rng, n=2000):
    xs = rng.uniform(spec.lower, spec.upper, (n, len(spec.lower)))
    xs = np.vstack([xs, np.where(rng.random(xs.shape) < 0.5, spec.lower, spec.upper)])
    return [np.array(layer) for layer in zip(*(net.pre_activations(x) for x in xs))]


def test_alpha_feedback_over_lp_tightened_bounds_is_sound_and_never_looser():
    """alpha-CROWN re-run from LP-tightened bounds (the feedback step): its layer bounds
    contain every sampled pre-activation, are never looser than the bounds fed in, and
    its disjunct bounds never exceed the MILP optimum."""
    from relax.krelu.method import alpha_layer_bounds

    net, spec, rng = _instance(4, widths=(6, 12, 12, 12, 3))
    crown = bound_specs(net, [spec])[0]
    first, _ = alpha_layer_bounds(net, spec, crown.layers, range(len(spec.disjuncts)), 5)
    # LP-tighten layer 1 only, as krelu_tighten does before the feedback call
    seen = []

    def stop_after_first(k, bounds):
        seen.append(bounds)
        return None

    krelu_tighten(net, spec, first, KreluOptions(k=2, ns=8), feedback=stop_after_first)
    tightened = seen[0]
    fed, values = alpha_layer_bounds(net, spec, tightened, range(len(spec.disjuncts)), 5,
                                     use_prior=True)
    z = _pre_activation_samples(net, spec, rng)
    for k, (l, u) in enumerate(zip(fed.lower, fed.upper)):
        assert np.all(l >= tightened.lower[k]) and np.all(u <= tightened.upper[k])
        assert np.all(z[k] >= l - 1e-9) and np.all(z[k] <= u + 1e-9)
    # the tightened layer makes some later bound strictly tighter than alpha-CROWN alone
    assert any(np.any(fed.lower[k] > first.lower[k] + 1e-9) or np.any(fed.upper[k] < first.upper[k] - 1e-9)
               for k in range(2, len(fed.lower)))
    exact = [milp_margin(net, dataclasses.replace(spec, disjuncts=(d,)), crown.layers, time_limit=20)
             for d in spec.disjuncts]
    assert all(e is not None and v <= e + 1e-6 for v, e in zip(values, exact))


def test_torch_bab_from_lp_tightened_bounds_agrees_with_the_milp():
    """alpha/beta-CROWN branch and bound started from LP-tightened (k-ReLU) layer bounds:
    complete on a tiny net, its bound never above the MILP optimum, same sign."""
    from relax.search.beta_crown import torch_branch_and_bound

    for seed, eps in ((2, 0.5), (1, 0.3)):
        net, spec, _ = _instance(seed, widths=(5, 10, 10, 3), eps=eps)
        crown = bound_specs(net, [spec])[0].layers
        tightened, _ = krelu_tighten(net, spec, crown, KreluOptions(k=2, ns=8))
        assert all(np.all(t >= c) for t, c in zip(tightened.lower, crown.lower))
        outcome = torch_branch_and_bound(net, spec, prior=tightened)
        exact = milp_margin(net, spec, crown, time_limit=20)
        assert outcome.complete and exact is not None
        assert outcome.bound <= exact + 1e-6
        assert (outcome.bound > 0) == (exact > 0) or outcome.counterexample is not None


def test_verify_krelu_with_feedback_and_torch_bab_is_sound():
    net, spec, _ = _instance(4)
    options = VerifyOptions(methods=(KreluOptions(k=2, ns=8, feedback=3, bab="torch"),))
    result = verify(net, spec, "krelu", timeout=30, options=options)
    exact = milp_margin(net, spec, bound_specs(net, [spec])[0].layers, time_limit=20)
    assert exact is not None and result.bound <= exact + 1e-6
    assert result.verdict.value == ("holds" if exact > 0 else "violated")


def _mixed_network(rng, first: str, then: str):
    """Two ``first`` hidden layers, then a ``then`` hidden layer (3-8-8-8-3)."""
    from relax.network import Network
    a = random_network(rng, [3, 8, 8, 8, 3], first, scale=2.0)
    b = random_network(rng, [3, 8, 8, 8, 3], then, scale=2.0)
    return Network(a.layers[:4] + b.layers[4:])


@pytest.mark.parametrize("activation,seed", [("sigmoid", 0), ("tanh", 1), ("softplus", 2), ("relu-sigmoid", 3),
                                             ("relu-sigmoid", 4), ("tanh-relu", 5), ("sigmoid-relu", 6)])
def test_krelu_on_smooth_and_mixed_networks_is_sound_and_no_looser_than_crown(activation, seed):
    """Groups on ReLU layers only, tangent/chord LP rows for smooth ones: the bound stays
    below the least sampled/attacked margin and at or above CROWN's."""
    from tests.helpers import least_sampled_margin
    rng = np.random.default_rng(seed)
    if "-" in activation:
        network = _mixed_network(rng, *activation.split("-"))
    else:
        network = random_network(rng, [3, 10, 10, 3], activation, 2.0)
    x = rng.uniform(size=3)
    spec = robustness(x, int(np.argmax(network.forward(x))), 0.25, num_classes=3)
    options = VerifyOptions(bound_only=True, methods=(KreluOptions(k=2),))
    result = verify(network, spec, "krelu", options=options)
    crown = bound_specs(network, [spec], "crown")[0].bound
    assert crown - 1e-9 <= result.bound <= least_sampled_margin(rng, network, spec) + 1e-9


def test_krelu_branch_and_bound_refuses_smooth_networks():
    from relax.errors import UnsupportedNetworkError
    rng = np.random.default_rng(5)
    network = random_network(rng, [3, 6, 3], "sigmoid")
    spec = robustness(np.full(3, 0.5), int(np.argmax(network.forward(np.full(3, 0.5)))), 0.1, num_classes=3)
    with pytest.raises(UnsupportedNetworkError, match="splits ReLU phases"):
        verify(network, spec, "krelu", options=VerifyOptions(methods=(KreluOptions(bab="torch"),)))
