"""relax's alpha-CROWN against auto_LiRPA's alpha-CROWN at the same settings.

    PYTHONPATH=$PWD:/path/to/auto_LiRPA python benchmarks/alpha_crown.py --count 15

For each mnistfc 256x2 property (eps 0.03 by default) and each unsafe disjunct
(one output row ``a y <= b``), both tools lower-bound ``a y - b`` over the input
box with alpha-CROWN in float64: 20 Adam steps, lr 0.5 decayed by 0.98 per step
(auto_LiRPA's defaults), keep-best.  auto_LiRPA runs with ``fix_interm_bounds`` True
(its default) and False (its bounded module is built once per network, outside the
timing); relax runs its ``alpha-crown`` method's settings (intermediate bounds
optimised with their own slopes) and the same with ``refine=False`` (intermediate
bounds fixed at CROWN's).  The property bound is the minimum over disjuncts.

auto_LiRPA is *not* a dependency of relax: the PyPI release (0.3) needs
torch < 1.13 and numpy < 2, so the benchmark imports the GitHub source
(Verified-Intelligence/auto_LiRPA) from ``PYTHONPATH`` together with its small
pure-Python needs (appdirs, tqdm, graphviz), installed with ``pip --target``
outside the project's venv.  Writes ``benchmarks/results/alpha_crown.{md,csv}``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import data_root, describe_machine  # noqa: E402

import relax  # noqa: E402
from relax.search.alpha_method import DEFAULT_ALPHA, alpha_disjunct_bounds  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = data_root() / "vnncomp2021" / "mnistfc"


def torch_model(network) -> torch.nn.Sequential:
    """The canonical relax network as Linear/ReLU layers in float64."""
    layers = []
    for k, affine in enumerate(network.affines):
        W = affine.weight.toarray() if hasattr(affine.weight, "toarray") else np.asarray(affine.weight)
        linear = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        linear.weight.data = torch.tensor(W)
        linear.bias.data = torch.tensor(np.asarray(affine.bias))
        layers.append(linear)
        if k < len(network.activations):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def lirpa_module(model, n_in: int, fix_interm: bool):
    """auto_LiRPA's bounded module for ``model`` (traced once per network, not timed)."""
    from auto_LiRPA import BoundedModule

    torch.set_default_dtype(torch.float64)  # auto_LiRPA keeps some buffers in the default dtype
    return BoundedModule(model, torch.zeros(1, n_in), bound_opts={"optimize_bound_args": {
        "iteration": 20, "lr_alpha": 0.5, "lr_decay": 0.98, "fix_interm_bounds": fix_interm}},
        verbose=False)


def lirpa_bounds(bounded, spec) -> tuple[np.ndarray, float]:
    """auto_LiRPA alpha-CROWN lower bounds of every disjunct's single row, and seconds."""
    from auto_LiRPA import BoundedTensor, PerturbationLpNorm

    lower = torch.tensor(spec.lower)[None]
    upper = torch.tensor(spec.upper)[None]
    x = (lower + upper) / 2
    A = np.stack([d.A[0] for d in spec.disjuncts])
    b = np.array([d.b[0] for d in spec.disjuncts])
    start = time.perf_counter()
    ptb = PerturbationLpNorm(norm=float("inf"), x_L=lower, x_U=upper)
    lb, _ = bounded.compute_bounds(x=(BoundedTensor(x, ptb),), C=torch.tensor(A)[None],
                                   method="alpha-CROWN", bound_upper=False)
    seconds = time.perf_counter() - start
    return lb.detach().numpy()[0] - b, seconds


def relax_bounds(network, spec, settings) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    bounds = alpha_disjunct_bounds(network, spec, range(len(spec.disjuncts)), None, settings)
    return bounds, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="mnist-net_256x2")
    parser.add_argument("--eps", default="0.03")
    parser.add_argument("--count", type=int, default=15)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network = relax.from_onnx(str(DATA / f"{args.network}.onnx"))
    model = torch_model(network)
    fixed = lirpa_module(model, network.input_size, True)
    optimised = lirpa_module(model, network.input_size, False)
    runs = {
        "relax": lambda spec: relax_bounds(network, spec, DEFAULT_ALPHA),
        "relax-fixed-interm": lambda spec: relax_bounds(network, spec, replace(DEFAULT_ALPHA, refine=False)),
        "lirpa": lambda spec: lirpa_bounds(fixed, spec),
        "lirpa-opt-interm": lambda spec: lirpa_bounds(optimised, spec),
    }
    rows = []
    for i in range(args.count):
        spec = relax.read_vnnlib(str(DATA / f"prop_{i}_{args.eps}.vnnlib"))[0]
        crown = relax.bounds.bound_specs(network, [spec], "crown")[0].disjunct_bounds
        row = {"property": f"prop_{i}_{args.eps}", "crown": float(np.min(crown))}
        for name, run in runs.items():
            bounds, seconds = run(spec)
            row[name] = float(np.min(bounds))
            row[f"{name}_s"] = seconds
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    write(rows, list(runs), args)


def write(rows, names, args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"alpha_crown{args.tag}"
    fields = list(rows[0])
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# alpha-CROWN: relax vs auto_LiRPA ({args.network}, eps {args.eps})", "",
             f"Machine: {describe_machine()} (shared with other jobs; 1 torch thread).",
             f"Command: `python {' '.join(sys.argv)}`", "",
             "Property bound = min over disjuncts of the alpha-CROWN lower bound (float64, "
             "20 Adam steps, lr 0.5, decay 0.98).", "",
             "| property | crown | " + " | ".join(f"{n} | s" for n in names) + " |",
             "|---|---|" + "---|---|" * len(names)]
    for r in rows:
        cells = [f"{r[n]:.4f} | {r[n + '_s']:.2f}" for n in names]
        lines.append(f"| {r['property']} | {r['crown']:.4f} | " + " | ".join(cells) + " |")
    lines += ["", "Against lirpa (auto_LiRPA, default options):", ""]
    for n in names:
        diff = np.array([r[n] - r["lirpa"] for r in rows])
        time_ratio = np.median([r[n + "_s"] / r["lirpa_s"] for r in rows])
        lines.append(f"- {n}: tighter on {int((diff > 1e-6).sum())}, looser on {int((diff < -1e-6).sum())} "
                     f"of {len(rows)}; largest loss {max(0.0, -diff.min()):.4f}, largest gain "
                     f"{max(0.0, diff.max()):.4f}; median time ratio {time_ratio:.2f}")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
