"""fo-sdp past the dense check: rigorous SDP bounds on a 21,732-ReLU conv network.

Network: ``Conv(1->32, 3x3, stride 1) -> ReLU -> Linear(21632 -> 100) -> ReLU ->
Linear(100 -> 10)`` (21,632 + 100 = 21,732 ReLUs; the SDP matrix has 1 + 784 + 21,732
= 22,517 rows), trained with torch on MNIST for ``--epochs`` epochs (plain
cross-entropy, Adam), cached under ``benchmarks/.cache/`` and imported with
:func:`relax.io.torch_import.from_torch` (the convolution becomes a sparse matrix).
Instance: MNIST test image ``--image``, L-infinity ``--eps``, the target class whose
CROWN margin is smallest.  Two paths (``--path``):

* ``backend``: ``get_solver("fo-sdp").solve`` on that disjunct's program, i.e. what
  ``relax bound NET SPEC --method sdp --solver fo-sdp`` runs per disjunct (above
  4,000 rows: Adam on Lanczos estimates; ``--option KEY=VALUE`` sets fo-sdp options);
* ``bm``: fo-sdp's Burer-Monteiro stage run directly (the backend's ``method="bm"``
  hands its multipliers to the *dense* spectral L-BFGS, which does not fit at this
  size), its multipliers certified every ``--check-every`` outer iterations.

Every bound is fo-sdp's float64 certificate: the linear one for ``gamma = 0`` duals
(the CROWN start), else the block LDL^T certificate of
:mod:`solvers.backends.fo_sdp.blocks` (past 6,000 rows).  Reports the best certified
bound beside CROWN's and the margin at the clean image (an upper bound), with wall and
CPU time and peak memory (``ru_maxrss``).  Writes ``benchmarks/results/fo_sdp_conv{tag}``
``.md``, ``.csv`` and ``_trace.csv`` (every check).

    OMP_NUM_THREADS=1 python benchmarks/fo_sdp_conv.py --path bm --tag _bm --timeout 600
    OMP_NUM_THREADS=1 python benchmarks/fo_sdp_conv.py --path backend --timeout 600
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from machine import data_root, describe_machine  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results"
NOTE = ("`fo_sdp` is the best certified float64 bound among the checks, the start's "
        "included (CROWN's duals: it reproduces CROWN's bound to ~1e-8), so `above_crown` > 0 "
        "only when an SDP iterate (gamma != 0, block LDL^T certificate) beats CROWN; every "
        "check is in the `_trace.csv`.  `clean_margin` (the margin at the image) is an upper "
        "bound on the true minimum.  `cpu_s` is this process's CPU time; `wall_s` also "
        "counts waiting on a machine shared with other jobs; `peak_mb` is `ru_maxrss`.")


def model():
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(32 * 26 * 26, 100), nn.ReLU(), nn.Linear(100, 10))


def train(epochs: int, seed: int = 0):
    """The trained torch model (cached by ``epochs`` and ``seed``) and its test accuracy."""
    import torch

    from relax.io.mnist import load_mnist

    path = CACHE / f"conv32_100_e{epochs}_s{seed}.pt"
    net = model().double()
    X, Y = load_mnist(data_root() / "mnist", "test")
    if path.exists():
        net.load_state_dict(torch.load(path))
    else:
        torch.manual_seed(seed)
        net = model()
        Xtr, Ytr = load_mnist(data_root() / "mnist", "train")
        xs = torch.as_tensor(Xtr, dtype=torch.float32).reshape(-1, 1, 28, 28)
        ys = torch.as_tensor(Ytr)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        for epoch in range(epochs):
            for i in torch.randperm(len(xs)).split(128):
                loss = torch.nn.functional.cross_entropy(net(xs[i]), ys[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(net.double().state_dict(), path)
    with torch.no_grad():                     # in chunks: the whole set is 1.7 GB of activations
        pred = np.concatenate([net(torch.as_tensor(x).reshape(-1, 1, 28, 28)).argmax(1).numpy()
                               for x in np.array_split(X, 20)])
    return net, float((pred == Y).mean()), X, Y



def instance(network, X, Y, image: int, eps: float):
    """``(program, CROWN's bound, target class, spec)`` of the hardest target by CROWN."""
    from relax.bounds import bound_specs
    from relax.sdp.encode import layered_program
    from relax.spec import robustness

    spec = robustness(X[image], int(Y[image]), eps, num_classes=10)
    crown = bound_specs(network, [spec], "crown")[0]
    j = int(np.argmin(crown.disjunct_bounds))
    d = spec.disjuncts[j]
    program = layered_program(network, spec.lower, spec.upper, crown.layers, d.A[0],
                              float(d.b[0]))
    target = [c for c in range(10) if c != int(Y[image])][j]
    return program, float(crown.disjunct_bounds[j]), target, crown


def unstable(bounds) -> int:
    """Unstable ReLUs (``l < 0 < u``) under CROWN's intermediate bounds."""
    return int(sum(((lo < 0) & (hi > 0)).sum() for lo, hi in zip(bounds.lower, bounds.upper)))


def _options(items) -> tuple:
    """``KEY=VALUE`` strings as fo-sdp options, each converted to the field's type."""
    from solvers.backends.fo_sdp.options import FoSdpOptions

    default = FoSdpOptions()
    pairs = (item.split("=", 1) for item in items)
    return tuple((k, type(getattr(default, k))(v) if getattr(default, k) is not None
                  else float(v)) for k, v in pairs)


def through_backend(program, args) -> tuple[float, list, str]:
    """``get_solver("fo-sdp").solve`` (what ``relax bound --method sdp --solver fo-sdp``
    runs per disjunct): its certified bound, its checks and its message."""
    from solvers import SolveOptions, get_solver

    extra = (("check_every", args.check_every),) + _options(args.option)
    solution = get_solver("fo-sdp").solve(program, SolveOptions(time_limit=args.timeout,
                                                                extra=extra))
    state = solution.warm_start
    trace = [(t, i, b, "", "") for (i, b), t in zip(state.checks, state.check_seconds)]
    return float(solution.bound), trace, solution.message


def _certify_shifted(data, layout, params, rules) -> tuple[float, str]:
    """The best certified bound of the multipliers ``params`` and of their matrix-free
    ``kappa`` shifts (:func:`solvers.backends.fo_sdp.repair.lowrank_shift`, one per rule
    in ``rules``; ``inner``: ``kappa`` from the inner SDP,
    :func:`solvers.backends.fo_sdp.kappa.inner_duals`, 1,000 steps, then the ``rows``
    shift), and each one's bound and time as text."""
    from solvers.backends.fo_sdp.certificate import certify
    from solvers.backends.fo_sdp.kappa import inner_duals
    from solvers.backends.fo_sdp.repair import lowrank_shift

    best, parts = certify(data, layout, params, 6000), []
    parts.append(f"plain {best:.6g}")
    for rule in rules:
        t = time.perf_counter()
        if rule == "inner":            # kappa from the inner SDP, then the Gershgorin rule
            shifted = lowrank_shift(data, layout, inner_duals(data, layout, params,
                                                              steps=1000), rule="rows")
        else:
            shifted = lowrank_shift(data, layout, params, rule=rule)
        value = certify(data, layout, shifted, 6000)
        parts.append(f"{rule} {value:.6g} ({time.perf_counter() - t:.1f} s)")
        best = max(best, value)
    return best, "; ".join(parts)


def low_rank(program, args) -> tuple[float, list, str]:
    """fo-sdp's Burer-Monteiro stage (:mod:`solvers.backends.fo_sdp.burer_monteiro`) run
    directly, its multipliers certified every ``check_every`` outer iterations by the
    float64 certificate (block LDL^T past 6,000 rows); the best certified bound, the
    start's included (the backend's ``method="bm"`` hands over to the dense spectral
    L-BFGS, which does not fit at this size)."""
    from solvers.backends.fo_sdp import burer_monteiro as bm
    from solvers.backends.fo_sdp.certificate import certify
    from solvers.backends.fo_sdp.init import initial_duals
    from solvers.backends.fo_sdp.problem import Layout, prepare

    t0 = time.perf_counter()
    data = prepare(program, True)
    layout = Layout(data)
    start = initial_duals(data, layout, "linear")
    trace = [(time.perf_counter() - t0, 0, certify(data, layout, start, 6000), 0.0, "")]
    scale = max(float(np.abs(data.rad[-1] * data.c).sum()), 1e-9)
    problem = bm.BmProblem.build(data, layout, args.rank, scale)
    state = bm.init_state(problem, start, bm.centre_point(data), 0, args.bm_mu)
    step = 0.0
    while time.perf_counter() - t0 + step < args.timeout and state.violation >= 1e-9:
        t = time.perf_counter()
        state = bm.run(problem, state, None, outer=args.check_every)
        params, c = bm.to_params(problem, state), time.perf_counter()
        if args.save_params:
            np.save(f"{args.save_params}_{state.outer}.npy", params)
        bound, detail = _certify_shifted(data, layout, params, args.shift)
        trace.append((time.perf_counter() - t0, state.outer, bound, time.perf_counter() - c,
                      detail))
        step = time.perf_counter() - t
        print(f"{trace[-1][0]:.0f} s, outer {state.outer}: primal {state.objective:.6g}, "
              f"violation {state.violation:.3g}, certified {bound:.6g} "
              f"(check {trace[-1][3]:.1f} s: {trace[-1][4]})", flush=True)
    message = (f"{state.outer} outer iterations, rank {args.rank}, mu {args.bm_mu} scale; "
               f"last primal value "
               f"{state.objective:.6g} (violation {state.violation:.3g})")
    return max(row[2] for row in trace), trace, message


def orders(program) -> list[dict]:
    """One block factorisation of ``D - sI`` in both elimination orders, side by side:
    the conv layer first (:func:`~solvers.backends.fo_sdp.blocks.first_parity`) and the
    input and last layers first (the conv layer's block dense: the earlier cost).  Duals:
    the CROWN start with random ``gamma`` in ``[0, 0.01)`` (seed 0); ``s`` a Lanczos
    estimate of ``lambda_min`` less 1e-3.  Time, CPU time, growth of ``ru_maxrss``."""
    from solvers.backends.fo_sdp import blocks
    from solvers.backends.fo_sdp.certificate import lagrangian_blocks
    from solvers.backends.fo_sdp.init import initial_duals
    from solvers.backends.fo_sdp.problem import Layout, prepare, split_numpy

    data = prepare(program, True)
    layout = Layout(data)
    params = initial_duals(data, layout, "linear")
    rng = np.random.default_rng(0)
    for k in range(len(layout.hidden)):
        gamma = layout.split(params, k)[2]
        gamma[:] = 0.01 * rng.uniform(size=gamma.size)
    lams, kappa = split_numpy(layout, data, layout.project(params))
    b = blocks.kept_blocks(data, lagrangian_blocks(data, lams, kappa, absolute=False))
    s = blocks._estimate(b) - 1e-3
    rows = []
    for parity in (blocks.first_parity([d.size for d in b.diag]), 0):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        wall, cpu = time.perf_counter(), time.process_time()
        square = blocks.block_cholesky(b, s, parity)
        rows.append({"parity": parity, "sizes": [d.size for d in b.diag],
                     "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                     "rss_growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                     - rss, "R_frobenius2": square})
        print(rows[-1], flush=True)
    return rows


def run(args) -> tuple[dict, list]:
    from relax.io.torch_import import from_torch

    net, accuracy, X, Y = train(args.epochs)
    network = from_torch(net, (1, 28, 28))
    program, crown, target, bounds = instance(network, X, Y, args.image, args.eps)
    y = network.forward(X[args.image])
    clean = float(y[int(Y[args.image])] - y[target])   # the margin at the image: an upper bound
    wall, cpu = time.perf_counter(), time.process_time()
    solve = low_rank if args.path == "bm" else through_backend
    bound, trace, message = solve(program, args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert bound <= clean, "a certified lower bound above the margin at the image"
    row = {"network": network.describe(), "test_accuracy": accuracy, "image": args.image,
           "label": int(Y[args.image]), "target": target, "eps": args.eps,
           "relu": sum(np.asarray(lo).size for lo in program.lower[1:]),
           "unstable": unstable(bounds.layers), "sdp_rows": 1 + sum(
               np.asarray(lo).size for lo in program.lower),
           "path": args.path, "options": " ".join(args.option),
           "crown": crown, "fo_sdp": bound, "above_crown": bound - crown,
           "clean_margin": clean,
           "wall_s": wall, "cpu_s": cpu,
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "timeout_s": args.timeout, "message": message}
    return row, trace


def write(row: dict, trace: list, command: str, tag: str = "") -> None:
    """The row (Markdown + CSV) and the certified bound at every check (trace CSV)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = list(row)
    with open(RESULTS / f"fo_sdp_conv{tag}_trace.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seconds", "iteration", "certified_bound", "check_seconds",
                         "detail"])
        writer.writerows(trace)
    with open(RESULTS / f"fo_sdp_conv{tag}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, keys)
        writer.writeheader()
        writer.writerow(row)
    fmt = lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["# fo-sdp on a 21,732-ReLU convolutional MNIST network", "",
             f"Command: `{command}`", "", f"Machine: {describe_machine()}", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
             "| " + " | ".join(fmt(row[k]) for k in keys) + " |", "", NOTE, ""]
    (RESULTS / f"fo_sdp_conv{tag}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image", type=int, default=0)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--check-every", type=int, default=3,
                        help="certify every k-th iterate (bm: outer iteration)")
    parser.add_argument("--path", choices=("bm", "backend"), default="bm",
                        help="bm: the Burer-Monteiro stage certified directly; backend: "
                             "get_solver('fo-sdp').solve")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--bm-mu", type=float, default=0.2,
                        help="bm path: the ALM penalty, times the objective's scale")
    parser.add_argument("--shift", nargs="*", default=["rows", "inner"],
                        choices=("weighted", "rows", "inner"),
                        help="bm path: also certify the multipliers' matrix-free kappa "
                             "shifts by these rules (repair.lowrank_shift)")
    parser.add_argument("--option", action="append", default=[],
                        help="an fo-sdp option KEY=VALUE (repeatable)")
    parser.add_argument("--save-params", default="",
                        help="bm path: save each checked dual vector to PREFIX_<outer>.npy")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--orders", action="store_true",
                        help="only time one block factorisation in both elimination orders "
                             "(writes fo_sdp_conv_orders.csv)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.orders:
        net, _, X, Y = train(args.epochs)
        from relax.io.torch_import import from_torch

        program = instance(from_torch(net, (1, 28, 28)), X, Y, args.image, args.eps)[0]
        rows = orders(program)
        if not args.no_write:
            with open(RESULTS / "fo_sdp_conv_orders.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        return
    row, trace = run(args)
    for k, v in row.items():
        print(f"{k:>14}: {v}")
    if not args.no_write:
        write(row, trace, "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/fo_sdp_conv.py"]
                                                                 + sys.argv[1:]), args.tag)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--train-only"]:
        print(f"test accuracy {train(int(sys.argv[2]))[1]:.4f}")
    else:
        main()
