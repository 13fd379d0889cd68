"""Smooth-activation MNIST networks beside the ReLU ones: crown, alpha-crown, lp, exact.

    python benchmarks/smooth_nets.py --count 10 --eps 0.01 0.02 --timeout 30

Trains (once; cached under ``benchmarks/.cache``) a 784-100-100-10 sigmoid and a tanh
network with :mod:`relax.train` (cross-entropy, ``--epochs``), exports them to ONNX,
imports them with :func:`relax.from_onnx`, and for the first ``--count`` MNIST test
images that each network classifies correctly runs the robustness property at every
``--eps`` with each method.  A *violated* verdict is re-checked here in float64; a
*holds* verdict is checked against the PGD point (a holds with a violating PGD point
would be a wrong verdict and is counted).  Writes
``benchmarks/results/smooth_nets.{csv,md}``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

import relax  # noqa: E402
from relax.search.attack import AttackOptions, pgd_attack  # noqa: E402
from relax.train import export, loop, models  # noqa: E402
from relax.train.data import mnist_tensors  # noqa: E402
from relax.train.standard import CrossEntropy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results"


def network(activation: str, epochs: int, hidden: tuple[int, ...] = (100, 100)) -> Path:
    """The cached ONNX file of the trained 784-``hidden``-10 ``activation`` network."""
    shape = f"{hidden[0]}x{len(hidden)}" if len(set(hidden)) == 1 else "-".join(map(str, hidden))
    path = CACHE / f"mnist_{activation}_{shape}_e{epochs}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        model = models.mlp([784, *hidden, 10], activation)
        loop.train(model, [CrossEntropy()], loop.TrainConfig(epochs=epochs, progress_bar=False))
        export.export_onnx(model, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02])
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["crown", "alpha-crown", "lp", "exact"])
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100],
                        help="hidden layer widths (e.g. 200 200 200 200 200 200)")
    parser.add_argument("--activations", nargs="+", default=["sigmoid", "tanh"])
    parser.add_argument("--images", type=int, nargs="+", default=None,
                        help="only these test images (of the first --count correctly classified)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    X, y = mnist_tensors("test", limit=200)
    rows = []
    for activation in args.activations:
        net = relax.from_onnx(str(network(activation, args.epochs, tuple(args.hidden))))
        chosen = [i for i in range(len(y)) if int(np.argmax(net.forward(X[i].double().numpy()))) == int(y[i])]
        for i in [i for i in chosen[: args.count] if args.images is None or i in args.images]:
            for eps in args.eps:
                spec = relax.robustness(X[i].double().numpy(), int(y[i]), eps)
                rows.append(run_instance(net, spec, activation, i, eps, args))
                print(rows[-1], flush=True)
    write(rows, args)


def run_instance(net, spec, activation, image, eps, args) -> dict:
    row = {"network": activation, "image": image, "eps": eps}
    pgd = pgd_attack(net, spec, AttackOptions(steps=100, restarts=10))
    for method in args.methods:
        start = time.monotonic()
        result = relax.verify(net, spec, method, timeout=args.timeout)
        seconds = time.monotonic() - start
        verdict = result.verdict.value
        if verdict == "violated":
            x = result.counterexample
            assert spec.is_violated_by(x, net.forward(x)), "unchecked counterexample"
        wrong = verdict == "holds" and pgd is not None
        row.update({f"{method}": verdict + (" WRONG" if wrong else ""), f"{method}_s": seconds,
                    f"{method}_bound": result.bound})
    return row


def write(rows, args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"smooth_nets{args.tag}"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    shape = "-".join(map(str, [784, *args.hidden, 10]))
    lines = [f"# Smooth MNIST networks ({shape}, cross-entropy, "
             f"{args.epochs} epochs): verdict counts per method", "",
             f"Machine: {describe_machine()} (shared with other jobs).",
             f"Command: `python {' '.join(sys.argv)}`; limit {args.timeout:g} s per instance.", "",
             "| network | eps | method | holds | violated | unknown | wrong | median s |",
             "|---|---|---|---|---|---|---|---|"]
    for activation in args.activations:
        for eps in args.eps:
            subset = [r for r in rows if r["network"] == activation and r["eps"] == eps]
            for method in args.methods:
                verdicts = [r[method] for r in subset]
                count = (lambda v: sum(x.startswith(v) for x in verdicts))
                seconds = np.median([r[f"{method}_s"] for r in subset]) if subset else float("nan")
                lines.append(f"| {activation} | {eps:g} | {method} | {count('holds')} | {count('violated')} | "
                             f"{count('unknown')} | {sum('WRONG' in v for v in verdicts)} | {seconds:.2f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
