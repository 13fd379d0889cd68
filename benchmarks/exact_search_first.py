"""``exact`` on a 6-hidden-layer ReLU MNIST net: the k-ReLU stage first, the search alone
first, or the stage beside the search.

    python benchmarks/exact_search_first.py --eps 0.015 0.02 --timeout 60 \
        --variants overlap=false,search_first=0 overlap=false,search_first=0.2 overlap=true

Trains (once; cached under ``benchmarks/.cache``) a 784-256x6-10 ReLU network with
:mod:`relax.train` (cross-entropy, ``--epochs``; mnistfc's 256x6 is held out, so this is
ours), and for the first ``--count`` test images it classifies correctly runs the
robustness property at every ``--eps`` that CROWN does not decide with ``exact``, once
per ``--variants`` entry (comma-separated ``exact`` settings, parsed as the CLI's
``--set exact.<name>=<value>``: ``search_first=0``: the stage first; ``search_first=0.2``: the search alone for a fifth
of the time first; ``overlap=true``: the stage in a thread beside the search), interleaved
per instance.  Set ``RELAX_THREADS`` for runs comparable across machine loads.  Writes
``benchmarks/results/exact_search_first{tag}.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

import relax  # noqa: E402
from relax.protocol import VerifyOptions  # noqa: E402
from relax.options import parse_settings  # noqa: E402
from relax.train import export, loop, models  # noqa: E402
from relax.train.data import mnist_tensors  # noqa: E402
from relax.train.standard import CrossEntropy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results"


def network(epochs: int) -> Path:
    path = CACHE / f"mnist_relu_256x6_e{epochs}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        model = models.mlp([784] + [256] * 6 + [10], "relu")
        loop.train(model, [CrossEntropy()], loop.TrainConfig(epochs=epochs, progress_bar=False))
        export.export_onnx(model, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=15)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.015, 0.02])
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=["overlap=false,search_first=0",
                                                           "overlap=false,search_first=0.2"],
                        help="ExactOptions settings per column, e.g. overlap=false,search_first=0.2")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    net = relax.from_onnx(str(network(args.epochs)))
    X, y = mnist_tensors("test", limit=200)
    chosen = [i for i in range(len(y)) if int(np.argmax(net.forward(X[i].double().numpy()))) == int(y[i])]
    # each column's settings through the CLI's parser (typed values, unknown names refused)
    variants = [parse_settings(f"exact.{item}" for item in v.split(",") if item) for v in args.variants]
    lines = [f"# exact on a 784-256x6-10 ReLU MNIST net: where the k-ReLU stage runs ({args.timeout:g} s)", "",
             f"Machine: {describe_machine()}.", f"Command: `python {' '.join(sys.argv)}`.", "",
             "| image | eps | " + " | ".join(args.variants) + " |",
             "|---|---|" + "---|" * len(variants)]
    for eps in args.eps:
        for i in chosen[: args.count]:
            spec = relax.robustness(X[i].double().numpy(), int(y[i]), eps)
            if relax.verify(net, spec, "crown").verdict.value == "holds":
                continue
            cells = []
            for exact in variants:
                options = VerifyOptions(methods=exact)
                start = time.monotonic()
                result = relax.verify(net, spec, "exact", timeout=args.timeout, options=options)
                cells.append(f"{result.verdict.value} {result.bound:.3g}, {time.monotonic() - start:.1f} s")
            lines.append(f"| {i} | {eps:g} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"exact_search_first{args.tag}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
