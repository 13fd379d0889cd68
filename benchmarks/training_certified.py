"""Certified training with dual certificates: SDP-cert (l-inf) and CRT/CRC (l2) on MNIST.

* SDP-cert (Raghunathan et al. 2018) on 784-500-10 ReLU at l-inf eps 0.1, certified
  by ``sdp-dual1`` on the whole test set with the trained duals (eigenvalue part once
  per class pair, then one forward pass per point) and, for comparison, by CROWN on a
  subset.  Baseline in the same run: the same network trained with plain
  cross-entropy (certified the same two ways, ``sdp-dual1`` from Gershgorin duals).
  The certificate does not depend on the input, so SDP-cert trains with large batches
  (``--sdp-batch``) to amortise its per-step Lanczos work.
* CRT (Singla & Feizi 2020) on a two-layer sigmoid network at l2 radius 0.5,
  certified by CRC against every class (Taylor form first, dual search for the rest).

Usage::

    python benchmarks/training_certified.py [--quick] [--only sdp|crt] [--sdp-epochs N]
        [--crt-epochs N] [--out DIR] ...   (see --help)

Writes ``benchmarks/results/training_certified.{md,csv}``; with ``--only`` the saved
rows of the other norm are kept (merged by norm).  Heavy runs use ``--threads``
(default 1) torch threads.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.certificates.crc import crc_radii, curvature_bounds  # noqa: E402
from relax.network import Network  # noqa: E402
from relax.sdp.dual1 import one_hidden_relu, pair_gains  # noqa: E402
from relax.io.torch_import import from_torch  # noqa: E402
from relax.train.crt import CurvaturePenalty, L2PGDLoss, pgd_l2  # noqa: E402
from relax.train.data import mnist_tensors  # noqa: E402
from relax.train.evaluate import certified, clean_error, pgd_error  # noqa: E402
from relax.train.loop import TrainConfig, train  # noqa: E402
from relax.train.models import mlp  # noqa: E402
from relax.train.sdp_cert import SDPCertLoss  # noqa: E402
from relax.train.standard import CrossEntropy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["method", "architecture", "norm", "radius", "clean_error", "pgd_error",
           "certified_error", "certifier", "epochs", "seconds_per_epoch"]
CSV_COLUMNS = COLUMNS + ["command"]
NUMERIC = ("radius", "clean_error", "pgd_error", "certified_error", "epochs", "seconds_per_epoch")
STATUS_NOTES = {  # explanations that the figures alone do not carry
    "linf": "SDP-cert training tracks lambda_max(M - diag c) per class pair by batched float64 "
            "Lanczos (full reorthogonalisation, warm started; relax/train/lanczos.py) and trains on "
            "the shift-invariant dual (1/4)[D lambda_max + 1^T c].  The earlier tracker (10 shifted "
            "power steps every 4 steps) was confirmed wrong: on a model trained 2 epochs its Rayleigh "
            "quotients were ~1e-4 while dense eigvalsh gave lambda_max 0.15-0.32, i.e. certificates "
            "50-100 logits looser than the loss believed (100% certified error).  Schedule: Adam, "
            "batch 500, lr 3e-3 (x0.1 after 80%), eps ramped over the first 50%, robust CE only; "
            "duals c by their own Adam (relative lr 1e-2, x0.1 after 80%), then 600 steps on c alone.  "
            "Certification uses the trained duals in sdp-dual1's sound check (dense float64 eigvalsh "
            "+ margin per class pair, then one forward pass per test point); the registered "
            "`--method sdp-dual1` optimises its own duals from the Gershgorin start instead, which "
            "may be looser.  PGD error is on the first --pgd-n test points (40 steps, 2 restarts); "
            "the first MNIST test images are harder than the rest (compare the crown row's sdp-dual1 "
            "figure on the same first n).  One seed.",
    "l2": "CRT: (clean CE +) l2-PGD CE + gamma x mean curvature bound (see the method column); "
          "CRC certifies against every class (the paper reports the runner-up class only).",
}
log = logging.getLogger("training_certified")


def sdp_certified(network: Network, X: np.ndarray, y: np.ndarray, eps: float, c=None) -> tuple[np.ndarray, float]:
    """Mask of test points certified by sdp-dual1 (same math as the registered method)."""
    W, _, V, _ = one_hidden_relu(network)
    start = time.perf_counter()
    G = pair_gains(W, V, eps, c, iterations=0)
    seconds = time.perf_counter() - start
    logits = network.forward(X)
    margins = logits[np.arange(len(y)), y][:, None] - logits - G[y]
    margins[np.arange(len(y)), y] = np.inf
    slack = 1e-9 * (1 + np.abs(logits).max(1))
    return (margins.min(1) > slack) & (logits.argmax(1) == y), seconds


def run_sdp(args, Xtr, ytr, Xte, yte, rows):
    eps = 0.1
    arch = "784-500-10 relu"
    Xn, yn = Xte.numpy().astype(np.float64), yte.numpy()
    command = f"python benchmarks/training_certified.py {' '.join(sys.argv[1:])}"
    for name in ("CE baseline", "SDP-cert"):
        torch.manual_seed(0)
        model = mlp([784, 500, 10], "relu")
        if name == "SDP-cert":
            term = SDPCertLoss(eps, weight=args.sdp_weight, ramp=args.sdp_ramp,
                               lr_c=args.lr_c, lanczos_steps=args.lanczos_steps,
                               lr_decay_at=tuple(args.sdp_decay_at))
            terms = [term]
            epochs, batch, lr = args.sdp_epochs, args.sdp_batch, args.sdp_lr
        else:
            term, terms = None, [CrossEntropy()]
            epochs, batch, lr = args.sdp_base_epochs, 128, 1e-3
        config = TrainConfig(epochs=epochs, batch_size=batch, lr=lr, limit=args.sdp_limit,
                             progress_bar=False, seed=0,
                             lr_decay_at=tuple(args.sdp_decay_at) if term is not None else ())
        logd = train(model, terms, config, data=(Xtr, ytr))
        network = from_torch(model, input_shape=(784,))
        how = "Gershgorin duals"
        if term is not None:
            start = time.perf_counter()
            term.tighten_duals(model, args.tighten_steps, lr=0.03 * args.lr_c)
            how = f"trained duals + {args.tighten_steps} tightening steps ({time.perf_counter() - start:.0f} s)"
        c = None if term is None else term.duals()
        pgd = pgd_error(model, Xte[: args.pgd_n], yte[: args.pgd_n], eps)
        clean = clean_error(model, Xte, yte)
        n = args.crown_n
        crown = certified(network, Xn[:n], yn[:n], eps, "crown")
        mask, eig_s = sdp_certified(network, Xn, yn, eps, c)
        common = dict(method=name, architecture=arch, norm="linf", radius=eps, clean_error=clean,
                      pgd_error=pgd, epochs=epochs, seconds_per_epoch=logd.seconds_per_epoch,
                      command=command)
        rows.append(dict(common, certified_error=1 - mask.mean(),
                         certifier=f"sdp-dual1 (n={len(yn)}, {how}, eig part {eig_s:.0f} s)"))
        rows.append(dict(common, certified_error=1 - crown.mean(),
                         certifier=f"crown (n={n}); sdp-dual1 on same n: {1 - mask[:n].mean():.4f}"))
        log.info("%s: %s", name, rows[-2])
        write(rows, args, time.perf_counter() - args.start)


def run_crt(args, Xtr, ytr, Xte, yte, rows):
    rho = 0.5
    arch = f"784-{args.crt_hidden}-10 sigmoid"
    n = args.crc_n
    for name, terms in (("CE baseline", [CrossEntropy()]),
                        ("CRT", ([CrossEntropy()] if args.crt_clean else [])
                         + [L2PGDLoss(rho, steps=args.crt_pgd_steps), CurvaturePenalty(args.gamma)])):
        torch.manual_seed(0)
        model = mlp([784, args.crt_hidden, 10], "sigmoid")
        crt = name == "CRT"
        epochs = args.crt_epochs if crt else args.crt_base_epochs or args.crt_epochs
        config = TrainConfig(epochs=epochs, batch_size=128, lr=args.crt_lr if crt else 1e-3,
                             limit=args.train_limit, progress_bar=False, seed=0,
                             lr_decay_at=tuple(args.crt_decay_at) if crt else ())
        logd = train(model, terms, config, data=(Xtr, ytr))
        network = from_torch(model, input_shape=(784,))
        first, last = network.affines
        W, b, V, c0 = first.dense_weight(), first.bias, last.dense_weight(), last.bias
        K = curvature_bounds(W, V, "sigmoid")
        start = time.perf_counter()
        radii = crc_radii(W, b, V, c0, "sigmoid", Xte[:n].numpy().astype(np.float64),
                          yte[:n].numpy(), K, stop_at=rho, eta_steps=6, inner_steps=15)
        crc_s = time.perf_counter() - start
        adv = pgd_l2(model, Xte[:n], yte[:n], rho, steps=20)
        with torch.no_grad():
            pgd = float((model(adv).argmax(1) != yte[:n]).float().mean())
        method = (f"CRT (gamma {args.gamma:g}, lr {args.crt_lr:g}, "
                  f"{'CE + ' if args.crt_clean else ''}PGD-{args.crt_pgd_steps})") if crt else name
        rows.append(dict(method=method, architecture=arch, norm="l2", radius=rho,
                         clean_error=clean_error(model, Xte, yte), pgd_error=pgd,
                         certified_error=float((radii < rho).mean()),
                         certifier=f"crc all classes (n={n}, {crc_s:.0f} s; max K {K.max():.3g})",
                         epochs=epochs, seconds_per_epoch=logd.seconds_per_epoch,
                         command=f"python benchmarks/training_certified.py {' '.join(sys.argv[1:])}"))
        log.info("%s: %s", name, rows[-1])
        write(rows, args, time.perf_counter() - args.start)


def merged(rows, args) -> list[dict]:
    """This run's rows plus, with ``--only``, the saved rows of the other norm."""
    path = args.out / "training_certified.csv"
    if args.only is None or not path.exists():
        return rows
    mine = {"sdp": "linf", "crt": "l2"}[args.only]
    with open(path, newline="") as handle:
        kept = [r for r in csv.DictReader(handle) if r["norm"] != mine]
    for r in kept:
        for key in NUMERIC:
            r[key] = float(r[key])
        r["epochs"] = int(r["epochs"])
        r.setdefault("command", "")
    return kept + rows


def status_lines(rows) -> list[str]:
    """Measured figure against each target, reached or not."""
    lines = ["", "## Targets and honest status", ""]
    sdp = [r for r in rows if r["method"] == "SDP-cert" and r["certifier"].startswith("sdp-dual1")]
    crt = [r for r in rows if r["method"].startswith("CRT")]
    for r in sdp:
        err = r["certified_error"]
        lines.append(f"- SDP-cert (target <= 30% certified error at l-inf 0.1 by sdp-dual1; paper 35% "
                     f"with 4.2% clean error): **{'reached' if err <= 0.30 else 'not reached'}** -- "
                     f"{100 * err:.1f}% certified error, {100 * r['clean_error']:.1f}% clean error after "
                     f"{int(r['epochs'])} epochs ({r['seconds_per_epoch']:.0f} s/epoch on one core)"
                     + ("; by a small margin (one seed)." if 0.28 < err <= 0.30 else "."))
    for r in crt:
        acc = 1 - r["certified_error"]
        lines.append(f"- CRT (target >= 95% certified accuracy at l2 0.5 against every class; paper "
                     f"95.59% against the runner-up): **{'reached' if acc >= 0.95 else 'not reached'}** "
                     f"-- {100 * acc:.1f}% ({r['certifier']}) after {int(r['epochs'])} epochs.")
    lines += [""] + [f"- {note}" for norm, note in STATUS_NOTES.items()
                     if any(r["norm"] == norm for r in rows)]
    return lines


def write(rows, args, wall):
    args.out.mkdir(parents=True, exist_ok=True)
    rows = merged(rows, args)
    with open(args.out / "training_certified.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k, "") for k in CSV_COLUMNS})
    commands = []
    for r in rows:
        entry = f"- {r['norm']} rows: `{r.get('command') or 'see git history'}`"
        if entry not in commands:
            commands.append(entry)
    lines = ["# Certified training with dual certificates (SDP-cert, CRT/CRC) on MNIST", "",
             f"Machine: {describe_machine()}.  This run's wall {wall / 60:.1f} min.  CPU only; heavy "
             "runs use one core (torch.set_num_threads(1)) while other jobs share the machine: "
             "timings are pessimistic and noisy.", "",
             "Commands (rows of separate runs merged by norm):", *commands, "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(
            f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) + " |")
    base = {(r["method"], r["norm"], r["certifier"].split(" ")[0]): r for r in rows}  # last wins
    lines += ["", "Ratios (trained / CE baseline of the same run, certified error):"]
    for (m, norm, cert), r in base.items():
        if m != "CE baseline" and ("CE baseline", norm, cert) in base:
            b = base[("CE baseline", norm, cert)]["certified_error"]
            lines.append(f"- {m} {norm} {cert}: {r['certified_error']:.4f} vs {b:.4f} "
                         f"(ratio {r['certified_error'] / max(b, 1e-12):.3f})")
    lines += status_lines(rows)
    (args.out / "training_certified.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdp-epochs", type=int, default=3)
    parser.add_argument("--crt-epochs", type=int, default=4)
    parser.add_argument("--crt-hidden", type=int, default=256)
    parser.add_argument("--gamma", type=float, default=0.01, help="CRT curvature weight")
    parser.add_argument("--crt-lr", type=float, default=1e-3)
    parser.add_argument("--crt-clean", type=int, default=1, help="1: CRT loss includes clean CE")
    parser.add_argument("--crt-pgd-steps", type=int, default=5)
    parser.add_argument("--crt-decay-at", type=float, nargs="*", default=[],
                        help="fractions of CRT training after which lr drops 10x")
    parser.add_argument("--crt-base-epochs", type=int, default=None,
                        help="CE baseline (l2) epochs (default: --crt-epochs)")
    parser.add_argument("--sdp-base-epochs", type=int, default=3, help="CE baseline (l-inf) epochs")
    parser.add_argument("--sdp-batch", type=int, default=500, help="SDP-cert batch size")
    parser.add_argument("--sdp-lr", type=float, default=3e-3)
    parser.add_argument("--sdp-weight", type=float, default=1.0, help="robust CE weight")
    parser.add_argument("--sdp-ramp", type=float, default=0.5, help="fraction of training ramping eps")
    parser.add_argument("--lr-c", type=float, default=1e-2, help="Adam step on the duals (relative)")
    parser.add_argument("--lanczos-steps", type=int, default=30)
    parser.add_argument("--sdp-decay-at", type=float, nargs="*", default=[0.8],
                        help="fractions of SDP-cert training after which lr (and lr_c) drop 10x")
    parser.add_argument("--tighten-steps", type=int, default=600,
                        help="Adam steps on the duals alone after training")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=None, help="CRT training images")
    parser.add_argument("--sdp-limit", type=int, default=None, help="l-inf training images")
    parser.add_argument("--pgd-n", type=int, default=1000)
    parser.add_argument("--crown-n", type=int, default=500)
    parser.add_argument("--crc-n", type=int, default=500)
    parser.add_argument("--only", choices=["sdp", "crt"], default=None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()
    if args.quick:
        args.sdp_epochs = args.crt_epochs = args.sdp_base_epochs = 1
        args.train_limit = args.sdp_limit = 512
        args.pgd_n, args.crown_n, args.crc_n = 512, 50, 20
        args.tighten_steps = 5
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    start = args.start = time.perf_counter()
    Xtr, ytr = mnist_tensors("train")
    Xte, yte = mnist_tensors("test")
    rows: list[dict] = []
    if args.only in (None, "crt"):
        run_crt(args, Xtr, ytr, Xte, yte, rows)
    if args.only in (None, "sdp"):
        run_sdp(args, Xtr, ytr, Xte, yte, rows)
    write(rows, args, time.perf_counter() - start)


if __name__ == "__main__":
    main()
