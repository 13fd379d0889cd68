"""SDP-cert (sdp-dual1), CRC and their training terms on tiny networks.

References are independent: the exact MILP margin, dense sampling, cvxpy's SDP
value, autograd Hessians and an l2 attack.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relax.certificates.crc import crc_radii, curvature_bounds, smooth_two_layer
from relax.errors import SpecError, UsageError
from relax.lp.method import intermediate_bounds
from relax.search.milp import milp_margin
from relax.sdp.dual1 import (certificate_value, one_hidden_relu, optimise_c, pair_gains,
                             pair_matrix, shifted_certificate)
from relax.spec import robustness
from relax.verify import verify
from tests.helpers import random_network, sample_box


def test_certificate_matches_formula_and_sdp_value():
    rng = np.random.default_rng(0)
    W, v = rng.normal(size=(4, 3)), rng.normal(size=4)
    M = pair_matrix(W, v, 0.2)
    # independent construction of M(v, eps W) from the docstring's block form
    R = 0.2 * W
    D = 1 + 3 + 4
    ref = np.block([[np.zeros((1, 1)), (R.T @ v)[None, :], np.zeros((1, 4))],
                    [(R.T @ v)[:, None], np.zeros((3, 3)), R.T * v[None, :]],
                    [np.zeros((4, 1)), (R.T * v[None, :]).T, np.zeros((4, 4))]])
    assert np.allclose(M, ref)
    c = rng.normal(size=D)
    direct = 0.25 * (D * max(torch.linalg.eigvalsh(torch.tensor(ref - np.diag(c)))[-1].item(), 0)
                     + np.maximum(c, 0).sum())
    assert certificate_value(M, c) == pytest.approx(direct, rel=1e-9, abs=1e-9)
    assert certificate_value(M, c) >= direct
    # weak duality: any c bounds the SDP value max <M, Y>/4 (cvxpy), optimised c nearly attains it
    cvxpy = pytest.importorskip("cvxpy")
    Y = cvxpy.Variable((D, D), PSD=True)
    problem = cvxpy.Problem(cvxpy.Maximize(cvxpy.trace(M @ Y) / 4), [cvxpy.diag(Y) == 1])
    problem.solve(solver="CLARABEL")
    best = shifted_certificate(M, optimise_c(M, iterations=300))
    assert best >= problem.value - 1e-6
    assert best <= 1.05 * problem.value + 1e-6
    assert shifted_certificate(M, np.abs(M).sum(1)) >= best - 1e-9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sdp_dual1_is_below_exact_margin(seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng, [4, 6, 3], scale=1.5)
    x = rng.uniform(0.3, 0.7, size=4)
    label = int(np.argmax(net.forward(x)))
    spec = robustness(x, label, 0.05, num_classes=3)
    result = verify(net, spec, "sdp-dual1")
    exact = milp_margin(net, spec, intermediate_bounds(net, spec, "crown", None))
    assert exact is not None
    assert result.bound <= exact + 1e-7
    # every class pair: the pairwise gains bound sampled growth of f_j - f_i
    W, _, V, _ = one_hidden_relu(net)
    G = pair_gains(W, V, 0.05, iterations=20)
    X = sample_box(rng, spec.lower, spec.upper, 4000)
    Y, y0 = net.forward(X), net.forward(x)
    for i in range(3):
        for j in range(3):
            if i != j:
                assert np.max((Y[:, j] - Y[:, i]) - (y0[j] - y0[i])) <= G[i, j] + 1e-9
    if result.verdict.name == "HOLDS":
        assert exact > 0


def test_sdp_dual1_rejects_deeper_or_smooth_networks():
    rng = np.random.default_rng(0)
    for net in (random_network(rng, [3, 4, 4, 2]), random_network(rng, [3, 4, 2], "sigmoid")):
        spec = robustness(np.full(3, 0.5), 0, 0.1, num_classes=2)
        with pytest.raises(UsageError):
            verify(net, spec, "sdp-dual1")


def _torch_logits(net, x):
    W, b, V, c0, act = smooth_two_layer(net)
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": torch.nn.functional.softplus}[act]
    return torch.as_tensor(V) @ f(torch.as_tensor(W) @ x + torch.as_tensor(b)) + torch.as_tensor(c0)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus"])
def test_curvature_bound_dominates_hessian(act):
    rng = np.random.default_rng(4)
    net = random_network(rng, [4, 7, 3], act, scale=3.0)
    W, _, V, _, _ = smooth_two_layer(net)
    K = curvature_bounds(W, V, act)
    tightest = 0.0
    for _ in range(15):
        x = torch.as_tensor(rng.normal(size=4) * 2)
        for y in range(3):
            for t in range(3):
                if y != t:
                    H = torch.autograd.functional.hessian(
                        lambda z: _torch_logits(net, z)[t] - _torch_logits(net, z)[y], x)
                    e = torch.linalg.eigvalsh(H)
                    assert e[-1].item() <= K[y, t] + 1e-12
                    assert -e[0].item() <= K[t, y] + 1e-12
                    tightest = max(tightest, e[-1].item() / K[y, t])
    assert tightest > 0.05  # the bound is not vacuous


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_crc_radius_below_attack_distance(act):
    rng = np.random.default_rng(5)
    net = random_network(rng, [5, 8, 3], act, scale=3.0)
    W, b, V, c0, _ = smooth_two_layer(net)
    X = rng.uniform(size=(30, 5))
    labels = net.forward(X).argmax(1)
    radii = crc_radii(W, b, V, c0, act, X, labels)
    taylor = crc_radii(W, b, V, c0, act, X, labels, eta_steps=0, stop_at=-1.0)
    assert np.all(radii >= taylor - 1e-12) and np.any(radii > taylor * 1.01)
    # distance to a counterexample: bisection along gradient-of-margin and random directions
    for x, y, r in zip(X, labels, radii):
        directions = rng.normal(size=(64, 5))
        xt = torch.tensor(x, requires_grad=True)
        logits = _torch_logits(net, xt)
        t = int(np.argsort(logits.detach().numpy())[-2])
        (logits[t] - logits[y]).backward()
        directions = np.vstack([xt.grad.numpy(), directions])
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        for dvec in directions:
            steps = np.linspace(0, 20, 2001)[1:]
            out = net.forward(x[None, :] + steps[:, None] * dvec[None, :])
            flipped = np.flatnonzero(out.argmax(1) != y)
            if len(flipped):
                assert r <= steps[flipped[0]] + 1e-9


def test_crc_method_on_l2_spec_is_sound():
    rng = np.random.default_rng(6)
    net = random_network(rng, [4, 6, 3], "softplus", scale=2.0)
    x = rng.uniform(0.3, 0.7, size=4)
    label = int(np.argmax(net.forward(x)))
    spec = robustness(x, label, 0.2, num_classes=3, norm="l2")
    result = verify(net, spec, "crc")
    d = rng.normal(size=(20000, 4))
    d *= (0.2 * rng.random((20000, 1)) ** 0.25) / np.linalg.norm(d, axis=1, keepdims=True)
    pts = np.clip(x + d, 0, 1)
    assert result.bound <= spec.margin(net.forward(pts)).min() + 1e-9
    # without a ball: the circumscribing ball of the box
    box_spec = robustness(x, label, 0.05, num_classes=3)
    bound = verify(net, box_spec, "crc").bound
    corners = sample_box(rng, box_spec.lower, box_spec.upper, 5000)
    assert bound <= box_spec.margin(net.forward(corners)).min() + 1e-9
    with pytest.raises(UsageError):
        verify(random_network(rng, [4, 6, 3]), spec, "crc")


def test_compare_with_l2_norm_uses_the_ball():
    from relax.compare import compare

    rng = np.random.default_rng(7)
    net = random_network(rng, [4, 6, 3], "sigmoid", scale=2.0)
    X = rng.uniform(0.3, 0.7, size=(2, 4))
    labels = net.forward(X).argmax(1)
    rows = compare(net, X, labels, [0.15], ["crown", "crc"], norm="l2")
    for row, x in zip(rows, X):
        assert row.exact_value is None  # the MILP would answer for the box, not the ball
        d = rng.normal(size=(20000, 4))
        d *= (0.15 * rng.random((20000, 1)) ** 0.25) / np.linalg.norm(d, axis=1, keepdims=True)
        spec = robustness(x, row.label, 0.15, num_classes=3, norm="l2")
        sampled = spec.margin(net.forward(np.clip(x + d, 0, 1))).min()
        box_bound = verify(net, robustness(x, row.label, 0.15, num_classes=3), "crown").bound
        assert row.results["crc"].bound <= sampled + 1e-9
        # box-based methods answer for the enclosing box of the ball
        assert row.results["crown"].bound == pytest.approx(box_bound)


def test_l2_spec_rejects_points_outside_the_ball():
    x = np.full(4, 0.5)
    spec = robustness(x, 0, 0.1, num_classes=2, norm="l2")
    corner = x + 0.1  # in the enclosing box, l2 distance 0.2
    assert np.all(spec.lower <= corner) and np.all(corner <= spec.upper)
    assert not spec.contains(corner)
    assert not spec.is_violated_by(corner, np.array([0.0, 1.0]))
    inside = x + np.array([0.09, 0, 0, 0])
    assert spec.is_violated_by(inside, np.array([0.0, 1.0]))
    assert not spec.is_violated_by(inside, np.array([1.0, 0.0]))
    with pytest.raises(SpecError):
        robustness(x, 0, 0.1, num_classes=2, norm="l1")


def test_lanczos_top_matches_eigvalsh_including_breakdown():
    from relax.train.lanczos import lanczos_top

    rng = np.random.default_rng(3)
    B = rng.normal(size=(3, 40, 40))
    A = B + B.transpose(0, 2, 1)
    low = rng.normal(size=(40, 2))
    A[2] = low @ low.T  # rank 2: the Krylov space is invariant after 2 steps (breakdown path)
    At = torch.as_tensor(A)
    theta, u = lanczos_top(lambda q: torch.einsum("pij,pj->pi", At, q), torch.zeros(3, 40, dtype=torch.float64), 40)
    top = np.linalg.eigvalsh(A)[:, -1]
    assert np.allclose(theta.numpy(), top, rtol=1e-9, atol=1e-9)
    residual = torch.einsum("pij,pj->pi", At, u) - theta[:, None] * u
    assert float(residual.norm(dim=1).max()) < 1e-6 * float(np.abs(top).max())


def test_sdp_cert_term_tracks_lambda_max_and_matches_certificate():
    from relax.train.sdp_cert import SDPCertLoss, two_layer_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    X, y = torch.rand(64, 30), torch.randint(0, 3, (64,))
    term = SDPCertLoss(0.1, num_classes=3, ramp=0.0, lr_c=1e-2, lanczos_steps=25)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = term(model, X, y, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0]
    first, last = two_layer_weights(model)
    W, V = first.weight.detach().double().numpy(), last.weight.detach().double().numpy()
    c_before = term.c.detach().double().numpy().copy()
    lam = term.refresh_eigenvectors(first, last).numpy()  # the tracker's estimate (D = 51)
    G = term.gains(first, last).detach().numpy()
    c = term.c.detach().double().numpy()
    for k, (i, j) in enumerate(term.pairs.tolist()):
        M = pair_matrix(W, V[j] - V[i], 0.1)
        spectrum = np.linalg.eigvalsh(M - np.diag(c_before[k]))
        exact, spread = spectrum[-1], spectrum[-1] - spectrum[0]
        assert exact - 1e-4 * spread <= lam[k] <= exact + 1e-12  # Ritz value: from below
        assert np.all(c[k] >= -1e-6 * np.abs(c[k]).max())  # shifted duals are nonnegative
        sound = certificate_value(M, c[k])  # dense float64 eigvalsh + margin
        assert sound - 0.25 * 51 * 1e-4 * spread <= G[i, j] <= sound + 1e-6
    # tightening the duals alone lowers the sound certificate of the fixed model
    tightened = term.tighten_duals(model, 30).numpy()
    c = term.c.detach().double().numpy()
    for k, (i, j) in enumerate(term.pairs.tolist()):
        sound = certificate_value(pair_matrix(W, V[j] - V[i], 0.1), c[k])
        assert sound == pytest.approx(tightened[i, j], rel=1e-3, abs=1e-6)
    assert tightened.sum() < G.sum()


def test_crt_terms_differentiable_and_decrease():
    from relax.train.crt import CurvaturePenalty, L2PGDLoss, pgd_l2

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 3))
    X, y = torch.rand(64, 6), torch.randint(0, 3, (64,))
    penalty, pgd = CurvaturePenalty(1.0), L2PGDLoss(0.3, steps=3)
    K = curvature_bounds(model[0].weight.detach().double().numpy(),
                         model[2].weight.detach().double().numpy(), "sigmoid")
    estimate = penalty.bounds(model).detach().numpy()
    n = 3
    ys, ts = np.triu_indices(n, 1)
    ys, ts = np.concatenate([ys, ts]), np.concatenate([ts, ys])
    assert np.allclose(estimate, K[ys, ts], rtol=1e-3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(20):
        loss = penalty(model, X, y, 0.0) + pgd(model, X, y, 0.0)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first
    adv = pgd_l2(model, X, y, 0.3, steps=5)
    assert torch.all((adv - X).norm(dim=1) <= 0.3 + 1e-5)
    assert adv.min() >= 0 and adv.max() <= 1
