"""Train the default MNIST network shipped in ``relax/data``.

A 784-100-100-10 ReLU network trained with PGD adversarial training
(L-infinity, eps 0.1, with a short eps ramp at the start) on inputs in [0, 1]
without normalisation.  Deterministic given the seed; a few minutes on 2 CPU
cores (about 1.5 minutes).  Writes ``default_net.onnx`` (input 'input' of shape (1, 784), only
Gemm/Relu nodes) and ``default_images.npz`` (the first 10 test images and their
labels) into ``--out``.

    python benchmarks/train_default.py --data ../shared/data/mnist --out relax/data
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from relax.io.mnist import load_mnist

ALLOWED_OPS = {"Gemm", "MatMul", "Add", "Relu", "Flatten"}


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    p.add_argument("--out", type=Path, default=Path("relax/data"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eps", type=float, default=0.1, help="train-time L-inf radius")
    p.add_argument("--steps", type=int, default=10, help="PGD steps during training")
    p.add_argument("--ramp-epochs", type=float, default=2.0, help="epochs of linear eps ramp")
    p.add_argument("--clean-weight", type=float, default=0.5,
                   help="weight of the clean loss (rest is the adversarial loss)")
    p.add_argument("--eval-steps", type=int, default=20, help="PGD steps at test time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def seed_everything(seed: int, threads: int) -> None:
    """Make the run deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def make_model() -> nn.Sequential:
    """The 784-100-100-10 ReLU network."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 100), nn.ReLU(),
        nn.Linear(100, 100), nn.ReLU(),
        nn.Linear(100, 10),
    )


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
        generator: torch.Generator) -> torch.Tensor:
    """L-inf PGD with a random start, clipped to [0, 1]; returns adversarial inputs."""
    if eps <= 0 or steps <= 0:
        return x
    alpha = 2.5 * eps / steps
    delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps
    x_adv = (x + delta).clamp(0, 1)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(model(x_adv), y), x_adv)
        with torch.no_grad():
            x_adv = x_adv + alpha * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    """PGD adversarial training with an eps ramp and a cosine learning-rate schedule."""
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    n_batches = (len(x) + args.batch - 1) // args.batch
    total = args.epochs * n_batches
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total,
                                                pct_start=0.15)
    ramp = max(1, int(args.ramp_epochs * n_batches))
    loss_fn = nn.CrossEntropyLoss()
    step = 0
    for epoch in range(args.epochs):
        start = time.time()
        order = torch.randperm(len(x), generator=gen)
        model.train()
        running = 0.0
        for b in range(n_batches):
            idx = order[b * args.batch:(b + 1) * args.batch]
            xb, yb = x[idx], y[idx]
            eps = args.eps * min(1.0, step / ramp)
            x_adv = pgd(model, xb, yb, eps, args.steps, gen)
            loss = (args.clean_weight * loss_fn(model(xb), yb)
                    + (1 - args.clean_weight) * loss_fn(model(x_adv), yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
            step += 1
        print(f"epoch {epoch + 1}/{args.epochs}: loss {running / n_batches:.4f} "
              f"eps {eps:.3f} ({time.time() - start:.1f}s)", flush=True)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
             seed: int) -> float:
    """Clean (eps=0) or PGD accuracy on (x, y)."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    correct = 0
    for b in range(0, len(x), 1000):
        xb, yb = x[b:b + 1000], y[b:b + 1000]
        xb = pgd(model, xb, yb, eps, steps, gen)
        with torch.no_grad():
            correct += (model(xb).argmax(1) == yb).sum().item()
    return correct / len(x)


def export(model: nn.Sequential, path: Path) -> None:
    """Export the Flatten-free float32 model to ONNX with input 'input' of shape (1, 784)."""
    import onnx

    body = nn.Sequential(*list(model)[1:]).float().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # legacy exporter: no onnxscript
        torch.onnx.export(body, torch.zeros(1, 784), str(path), input_names=["input"],
                          output_names=["output"], dynamo=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    if not ops <= ALLOWED_OPS:
        raise SystemExit(f"exported ONNX has unexpected operators: {sorted(ops - ALLOWED_OPS)}")


def main() -> None:
    """Train, evaluate and write the network and the sample images."""
    args = parse_args()
    seed_everything(args.seed, args.threads)
    began = time.time()
    x_train, y_train = load_mnist(args.data, "train")
    x_test, y_test = load_mnist(args.data, "test")
    xt, yt = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train)
    xs, ys = torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test)
    model = make_model()
    train(model, xt, yt, args)
    clean = accuracy(model, xs, ys, 0.0, 0, args.seed)
    robust = accuracy(model, xs, ys, args.eps, args.eval_steps, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    export(model, args.out / "default_net.onnx")
    np.savez(args.out / "default_images.npz", images=x_test[:10], labels=y_test[:10])
    print(f"clean test accuracy: {clean:.4f}")
    print(f"PGD test accuracy (eps {args.eps}, {args.eval_steps} steps): {robust:.4f}")
    print(f"wrote {args.out / 'default_net.onnx'} and {args.out / 'default_images.npz'} "
          f"in {time.time() - began:.0f}s")


if __name__ == "__main__":
    main()
