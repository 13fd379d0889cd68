"""Certified training (relax.train): loop, training bounds, regularisers, export, evaluation.

Tiny networks and a handful of steps only; no real training runs here.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from relax.io.onnx_import import from_onnx
from relax.train import TrainConfig, train
from relax.train.export import export_onnx
from relax.train.models import mlp
from relax.train.standard import CrossEntropy


def separable(n: int = 256, d: int = 4, seed: int = 0):
    """Two Gaussian blobs far apart: a linearly separable two-class problem in [0, 1]^d."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    centre = torch.where(y[:, None] == 1, 0.75, 0.25).expand(n, d)
    X = (centre + 0.05 * torch.randn(n, d, generator=g)).clamp(0, 1)
    return X, y


def test_loop_decreases_loss_on_separable_problem():
    X, y = separable()
    model = mlp([4, 8, 2])
    log = train(model, [CrossEntropy()], TrainConfig(epochs=10, batch_size=32, lr=3e-2,
                                                     progress_bar=False, threads=1), (X, y))
    assert len(log.total_loss) == 10 and len(log.seconds) == 10
    assert log.total_loss[-1] < 0.2 * log.total_loss[0]
    assert log.term_losses["ce"] == log.total_loss
    assert (model(X).argmax(1) == y).float().mean() > 0.95


def test_lr_decay_schedule_freezes_after_milestone():
    X, y = separable()
    torch.manual_seed(0)
    model = mlp([4, 8, 2])
    before = [p.detach().clone() for p in model.parameters()]
    frozen = TrainConfig(epochs=2, batch_size=32, lr=3e-2, progress_bar=False, lr_decay_at=(0.0,),
                         lr_decay=0.0)
    train(model, [CrossEntropy()], frozen, (X, y))  # lr 0 from the first step: nothing moves
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    half = TrainConfig(epochs=2, batch_size=32, lr=3e-2, progress_bar=False, lr_decay_at=(0.5,),
                       lr_decay=0.0)
    train(model, [CrossEntropy()], half, (X, y))  # moves during the first half only
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_onnx_export_round_trips(tmp_path):
    torch.manual_seed(0)
    model = mlp([6, 5, 4, 3], "relu")
    path = export_onnx(model, tmp_path / "net.onnx")
    x = np.random.default_rng(0).random((7, 6)).astype(np.float32)
    session = ort.InferenceSession(str(path))
    theirs = np.vstack([session.run(None, {"input": row[None]})[0] for row in x])
    ours = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    network = from_onnx(path)
    relax_out = np.vstack([network.forward(row.astype(np.float64)) for row in x])
    np.testing.assert_allclose(relax_out, ours, atol=1e-5)


# ---------------------------------------------------------------- training bounds

from relax.bounds import bound_specs  # noqa: E402
from relax.deadline import NEVER  # noqa: E402
from relax.spec import robustness  # noqa: E402
from relax.train.bounds import ibp_bounds, ibp_margin, input_box, layers_of, margin_matrix  # noqa: E402
from relax.train.crown_ibp import crown_ibp_margin  # noqa: E402
from relax.train.evaluate import as_network, certified, pgd_broken  # noqa: E402
from relax.train.ibp import IBPLoss  # noqa: E402
from relax.train.singleprop import SinglePropLoss, singleprop_margin  # noqa: E402
from relax.train.zhu import gap_penalty, off_graph_penalty, relaxation_optimum  # noqa: E402


def tiny_model(sizes=(5, 12, 12, 4), seed=0):
    torch.manual_seed(seed)
    return mlp(list(sizes)).double()


def sampled_min_margin(model, x, y, eps, n=4000, pgd_steps=60):
    """An upper estimate of each row's minimum margin over the box: sampling, corners and PGD."""
    lower, upper = input_box(x, eps)
    B, n0 = x.shape
    K = model[-1].out_features
    C = margin_matrix(y, K, x.dtype)
    g = torch.Generator().manual_seed(1)
    u = torch.rand(B, n, n0, generator=g, dtype=x.dtype)
    corners = (torch.rand(B, n, n0, generator=g) < 0.5).to(x.dtype)
    pts = torch.cat([lower[:, None] + u * (upper - lower)[:, None],
                     lower[:, None] + corners * (upper - lower)[:, None]], 1)   # (B, 2n, n0)
    with torch.no_grad():
        margins = torch.einsum("bkc,bnc->bnk", C, model(pts)).amin(1)          # (B, K)
    # PGD on every margin row from the centre
    xs = x[:, None].repeat(1, K, 1).clone()
    for step in range(pgd_steps):
        xs.requires_grad_(True)
        m = (C * model(xs)).sum(-1)
        (grad,) = torch.autograd.grad(m.sum(), xs)
        size = 0.2 * eps * (1 - step / pgd_steps)
        xs = torch.minimum(torch.maximum(xs.detach() - size * grad.sign(), lower[:, None]), upper[:, None])
    with torch.no_grad():
        margins = torch.minimum(margins, (C * model(xs)).sum(-1))
    return margins


@pytest.mark.parametrize("sizes", [(5, 12, 12, 4), (5, 16, 4)])
def test_ibp_and_crown_ibp_margins_are_sound(sizes):
    model = tiny_model(sizes)
    x = torch.rand(6, sizes[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = model(x).argmax(1)
    eps = 0.15
    layers = layers_of(model)
    lower, upper = input_box(x, eps)
    C = margin_matrix(y, sizes[-1], x.dtype)
    true_min = sampled_min_margin(model, x, y, eps)
    for beta in (0.0, 0.5, 1.0):
        bound = crown_ibp_margin(model, x, y, eps, beta, sizes[-1])
        assert (bound <= true_min + 1e-9).all(), beta
    # folding C into the last layer is never looser than differencing logit intervals
    bounds = ibp_bounds(layers, lower, upper)
    logit_l, logit_u = bounds[-1]
    naive = logit_l.gather(1, y[:, None]) - logit_u
    assert (ibp_margin(layers, lower, upper, C) >= naive - 1e-9).all()
    # interval bounds contain the sampled pre-activations
    pts = lower + torch.rand(500, *x.shape, dtype=x.dtype) * (upper - lower)
    h = pts
    for k, (l, u) in enumerate(bounds):
        z = h @ layers.weights[k].T + layers.biases[k]
        assert (z >= l - 1e-9).all() and (z <= u + 1e-9).all()
        h = torch.relu(z)


def test_crown_ibp_on_one_hidden_layer_matches_relax_crown_and_lp():
    """With one hidden layer IBP's pre-activation bounds are exact, so CROWN-IBP is CROWN:
    it must equal relax's float64 CROWN bound and never exceed relax's LP bound."""
    model = tiny_model((4, 10, 3), seed=3)
    network = as_network(model.float())
    model = model.double()
    x = torch.rand(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = model(x).argmax(1)
    eps = 0.2
    ours = crown_ibp_margin(model, x, y, eps, 1.0, 3)
    ours = torch.where(margin_matrix(y, 3).abs().sum(-1) > 0, ours, torch.inf).amin(1)
    specs = [robustness(xi.numpy(), int(yi), eps, num_classes=3) for xi, yi in zip(x, y)]
    crown = np.array([r.bound for r in bound_specs(network, specs, "crown")])
    np.testing.assert_allclose(ours.detach().numpy(), crown, atol=1e-5)
    from relax.verify import BOUND_METHODS, VerifyOptions

    lp = np.array([o.bound for o in BOUND_METHODS["lp"](network, specs, NEVER, VerifyOptions())])
    assert (ours.detach().numpy() <= lp + 1e-6).all()


# ---------------------------------------------------------------- SingleProp

def test_singleprop_is_differentiable_and_finite():
    model = tiny_model().float()
    x = torch.rand(8, 5, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 4
    loss = SinglePropLoss(eps=0.1)(model, x, y, progress=1.0)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # at eps = 0 the estimate is the clean margin
    margins, logits = singleprop_margin(model, x, y, 0.0, 4)
    clean = logits.gather(1, y[:, None]) - logits
    torch.testing.assert_close(margins, clean)


# ---------------------------------------------------------------- Zhu et al. regularisers

def test_zhu_regularisers_vanish_without_unstable_neurons():
    model = tiny_model((5, 8, 8, 3), seed=1).float()
    with torch.no_grad():  # every hidden neuron strongly active on [0, 1]^5
        model[0].weight.abs_().mul_(0.1)
        model[0].bias.fill_(5.0)
        model[2].weight.abs_().mul_(0.1)
        model[2].bias.fill_(5.0)
    x = torch.rand(4, 5, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0])
    opt = relaxation_optimum(model, x, y, 0.1)
    assert float(off_graph_penalty(opt).detach()) == 0.0
    assert float(gap_penalty(opt).detach()) < 1e-4
    torch.testing.assert_close(opt.relaxed_margin, opt.bound, atol=1e-4, rtol=1e-4)


def test_zhu_regularisers_positive_with_unstable_neurons():
    model = tiny_model((5, 16, 16, 3), seed=2).float()
    x = torch.rand(6, 5, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    opt = relaxation_optimum(model, x, y, 0.3)
    # the relaxed optimiser attains the bound; the network's margin there is above it
    torch.testing.assert_close(opt.relaxed_margin, opt.bound, atol=1e-4, rtol=1e-4)
    assert (opt.network_margin >= opt.bound - 1e-4).all()
    gap, graph = gap_penalty(opt), off_graph_penalty(opt)
    assert gap > 1e-3 and graph > 1e-3
    (gap + graph).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# ---------------------------------------------------------------- certification and training

def test_certified_never_contradicts_pgd():
    model = tiny_model((6, 20, 20, 3), seed=4).float()
    X = torch.rand(40, 6, generator=torch.Generator().manual_seed(5))
    y = model(X).argmax(1)
    y[:5] = (y[:5] + 1) % 3  # a few misclassified points: never certified
    network = as_network(model)
    certified_counts, broken_counts = [], []
    for eps in (0.05, 0.3):
        broken = pgd_broken(model, X, y, eps, steps=20).numpy()
        broken_counts.append(broken.sum())
        for method in ("ibp", "crown"):
            cert = certified(network, X, y, eps, method)
            assert not (cert & broken).any()
            assert not cert[:5].any()
            certified_counts.append(cert.sum())
    assert max(certified_counts) > 10 and max(broken_counts) > 5  # the test is not vacuous


def test_ibp_training_improves_ibp_certified_accuracy():
    X, y = separable(n=256, d=4, seed=1)
    model = mlp([4, 16, 2])
    before = certified(model, X, y, 0.1, "ibp").mean()
    train(model, [IBPLoss(eps=0.1, ramp_finish=0.3)],
          TrainConfig(epochs=15, batch_size=32, lr=1e-2, progress_bar=False, threads=1), (X, y))
    after = certified(model, X, y, 0.1, "ibp").mean()
    assert after > 0.9 and after > before
