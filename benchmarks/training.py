"""Certified training on MNIST: standard, PGD, IBP, CROWN-IBP, SingleProp and
CROWN-IBP + Zhu et al.'s regularisers, same architecture and schedule.

Every method trains the same MLP (default 784-100-100-10, ReLU) with Adam for
the same number of epochs, batch size and learning rate, with the same eps
ramp (0 -> eps over the first half of training) and, for the bound-based
losses, the same kappa ramp (1 -> 0.5).  Each trained network is then
evaluated on the MNIST test set:

- clean error (first ``--test`` images),
- PGD error (L-inf, 40 steps, 2 restarts): a lower bound on the robust error,
- certified error with relax's *sound* float64 certifiers: IBP and CROWN on the
  first ``--test`` images, and CROWN + the triangle LP (CROWN intermediate
  bounds, HiGHS, duals recomputed over the variable box) on the first
  ``--lp-test`` images, the LP run only where CROWN did not certify and PGD did
  not break the point,
- seconds per training epoch.

Ratios in the summary are against IBP training (the baseline).  If part B's
``benchmarks/results/training_certified.csv`` exists its rows are merged into
the combined table.  Trained weights are cached outside the repository
(``--cache``, default ``~/.cache/relax/training``); ``--reuse`` evaluates the
cached ones instead of retraining.

    python benchmarks/training.py                      # ~25-40 min on 2 CPU cores
    python benchmarks/training.py --epochs 1 --limit 2000 --test 200 --lp-test 5   # smoke run
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from relax.train import TrainConfig, train  # noqa: E402
from relax.train.crown_ibp import CrownIBPLoss  # noqa: E402
from relax.train.data import mnist_tensors  # noqa: E402
from relax.train.evaluate import certified, pgd_broken  # noqa: E402
from relax.train.ibp import IBPLoss  # noqa: E402
from relax.train.models import mlp  # noqa: E402
from relax.train.pgd import PGDLoss  # noqa: E402
from relax.train.singleprop import SinglePropLoss  # noqa: E402
from relax.train.standard import CrossEntropy  # noqa: E402
from relax.train.zhu import ZhuLoss  # noqa: E402
from relax.lp.method import LpOptions  # noqa: E402
from relax.protocol import VerifyOptions  # noqa: E402

COLUMNS = ["method", "architecture", "norm", "radius", "clean_error", "pgd_error",
           "certified_error", "certifier", "epochs", "seconds_per_epoch"]
BASELINE = "ibp"


def methods(eps: float) -> dict[str, list]:
    """The loss terms of every method (all share the eps/kappa ramp over the first half)."""
    return {
        "standard": [CrossEntropy()],
        "pgd": [PGDLoss(eps, steps=10, ramp_finish=0.5)],
        "ibp": [IBPLoss(eps, kappa_end=0.5, ramp_finish=0.5)],
        "crown-ibp": [CrownIBPLoss(eps, kappa_end=0.5, ramp_finish=0.5)],
        "singleprop": [SinglePropLoss(eps, kappa_end=0.5, ramp_finish=0.5)],
        "crown-ibp+zhu": [CrownIBPLoss(eps, kappa_end=0.5, ramp_finish=0.5),
                          ZhuLoss(eps, gap_weight=0.1, graph_weight=0.1, ramp_finish=0.5)],
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="MNIST directory (default: $RELAX_DATA/mnist)")
    p.add_argument("--arch", default="784-100-100-10")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--limit", type=int, default=None, help="training images (default: all 60000)")
    p.add_argument("--test", type=int, default=1000, help="test images for PGD / IBP / CROWN")
    p.add_argument("--lp-test", type=int, default=30, help="test images for the LP certifier")
    p.add_argument("--lp-timeout", type=float, default=20.0, help="seconds per LP property")
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "relax" / "training")
    p.add_argument("--reuse", action="store_true", help="evaluate cached weights instead of training")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--name", default="training")
    p.add_argument("--timing-rounds", type=int, default=20,
                   help="round-robin training steps per method for the interleaved timing table")
    return p.parse_args()


def train_or_load(name: str, terms, sizes, args, data) -> tuple[torch.nn.Module, float]:
    """Train (or load from the cache) one method's network; returns it and seconds per epoch."""
    tag = f"{name}_{args.arch}_eps{args.eps}_ep{args.epochs}_lim{args.limit}_seed{args.seed}.pt"
    path = args.cache / tag
    torch.manual_seed(args.seed)
    model = mlp(sizes)
    if args.reuse and path.is_file():
        saved = torch.load(path)
        model.load_state_dict(saved["state"])
        return model.eval(), saved["seconds_per_epoch"]
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, seed=args.seed,
                         limit=args.limit, threads=args.threads)
    log = train(model, terms, config, data)
    args.cache.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "seconds_per_epoch": log.seconds_per_epoch,
                "log": log.__dict__}, path)
    print(f"  {name}: final loss {log.total_loss[-1]:.4f}, {log.seconds_per_epoch:.2f} s/epoch",
          flush=True)
    return model.eval(), log.seconds_per_epoch


def evaluate(name, model, seconds, args, X, y) -> list[dict]:
    """Rows for the IBP, CROWN and LP certifiers."""
    n, m = min(args.test, len(X)), min(args.lp_test, len(X))
    Xs, ys = X[:n], y[:n]
    with torch.no_grad():
        wrong = (model(Xs).argmax(1) != ys).numpy()
    broken = pgd_broken(model, Xs, ys, args.eps).numpy()
    common = dict(method=name, architecture=args.arch, norm="linf", radius=args.eps,
                  epochs=args.epochs, seconds_per_epoch=round(seconds, 3))
    rows = []
    crown = None
    for method in ("ibp", "crown"):
        start = time.perf_counter()
        cert = certified(model, Xs, ys, args.eps, method)
        if method == "crown":
            crown = cert
        rows.append(dict(common, clean_error=wrong.mean(), pgd_error=broken.mean(),
                         certified_error=1 - cert.mean(), certifier=f"{method} (n={n})"))
        print(f"    {method}: certified error {1 - cert.mean():.3f} ({time.perf_counter() - start:.1f} s)",
              flush=True)
        assert not (cert & broken).any(), "a certified point was broken by PGD: unsound certifier"
    if m:
        start = time.perf_counter()
        lp = crown[:m].copy()
        open_points = [i for i in range(m) if not lp[i] and not broken[i]]
        options = VerifyOptions(methods=(LpOptions(intermediate="crown"),))
        if open_points:
            idx = torch.tensor(open_points)
            lp[open_points] = certified(model, X[idx], y[idx], args.eps, "lp", args.lp_timeout, options)
        rows.append(dict(common, clean_error=wrong[:m].mean(), pgd_error=broken[:m].mean(),
                         certified_error=1 - lp.mean(), certifier=f"crown+lp (n={m})"))
        print(f"    crown+lp: certified error {1 - lp.mean():.3f} on {m} "
              f"({len(open_points)} LPs, {time.perf_counter() - start:.1f} s)", flush=True)
    return rows


TIMING_PROGRESS = (0.25, 1.0)  # during the ramp (every bound active) and after it


def interleaved_timing(models: dict, table: dict, data, args, rounds: int) -> dict[str, list[float]]:
    """Median seconds of one training step (terms, backward, Adam step) per method at each
    progress of :data:`TIMING_PROGRESS`, measured round-robin over the methods so that
    machine-load drift hits all of them alike."""
    X, y = data
    torch.manual_seed(args.seed)
    optimisers = {n: torch.optim.Adam(m.parameters(), lr=0.0) for n, m in models.items()}
    samples = {(n, p): [] for n in models for p in TIMING_PROGRESS}
    for r in range(rounds + 1):
        index = torch.randint(0, len(X), (args.batch,))
        xb, yb = X[index], y[index]
        for progress in TIMING_PROGRESS:
            for name, model in models.items():
                model.train()
                start = time.perf_counter()
                loss = sum(term(model, xb, yb, progress) for term in table[name])
                optimisers[name].zero_grad()
                loss.backward()
                optimisers[name].step()
                if r:  # round 0 warms up
                    samples[name, progress].append(time.perf_counter() - start)
                model.eval()
    median = {k: float(sorted(v)[len(v) // 2]) for k, v in samples.items()}
    return {n: [median[n, p] for p in TIMING_PROGRESS] for n in models}


def fmt(value) -> str:
    if isinstance(value, str):  # a cell read back from a csv
        try:
            value = float(value) if "." in value else value
        except ValueError:
            pass
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def part_b_rows(out: Path) -> list[dict]:
    path = out / "training_certified.csv"
    if not path.is_file():
        return []
    with open(path) as handle:
        return [{c: row.get(c, "") for c in COLUMNS} for row in csv.DictReader(handle)]


def write(rows: list[dict], args, command: str, wall: float, timing: dict | None = None) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    merged = part_b_rows(args.out)
    with open(args.out / f"{args.name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows([{c: r[c] for c in COLUMNS} for r in rows])
    lines = [
        "# Certified training on MNIST (L-inf): errors and time per epoch",
        "",
        f"Machine: {describe_machine()}",
        "",
        f"Command: `{command}` ({wall / 60:.1f} min wall, training with {args.threads} torch thread(s))"
        + ("; --reuse: the weights and s / epoch come from an earlier run of the same command without "
           "--reuse (cached in --cache)." if args.reuse else "."),
        "",
        f"Every method: {args.arch} ReLU MLP, Adam lr {args.lr}, batch {args.batch}, {args.epochs} epochs "
        f"on {args.limit or 60000} training images, eps {args.eps} ramped from 0 over the first half; "
        "bound-based losses mix clean and robust cross-entropy with kappa 1 -> 0.5 over the same ramp "
        "(CROWN-IBP: beta 1 -> 0 over the ramp). Errors are fractions of the first n test images. "
        "PGD: 40 steps, 2 restarts (lower bound on the robust error). Certified errors come from relax's "
        "sound float64 certifiers (IBP, CROWN, and the triangle LP with CROWN intermediate bounds, run only "
        "on points CROWN left open and PGD did not break) and are upper bounds on the robust error. "
        "SingleProp's training estimate is not a sound bound; its networks are certified like the others.",
        "",
        "Timings were taken on a shared 2-core machine with other jobs running (up to 5 processes "
        "on 2 cores): they are pessimistic and noisy. The s / epoch column is the wall time of the actual "
        "training epochs, which ran one method after another under changing load; the interleaved "
        "step-cost table below is the fairer speed comparison.",
        "",
        "## SingleProp against IBP and CROWN-IBP (same architecture and schedule)",
        "",
        "| method | clean err | PGD err | certified err (CROWN) | certified err (IBP) | s / epoch | time vs IBP | "
        "certified err vs IBP (CROWN) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["method"], r["certifier"].split(" ")[0]): r for r in rows}
    names = list(dict.fromkeys(r["method"] for r in rows))
    base_crown = by.get((BASELINE, "crown"))
    for name in names:
        crown, ibp = by.get((name, "crown")), by.get((name, "ibp"))
        if crown is None:
            continue
        ratio_t = ratio_c = "-"
        if base_crown:
            ratio_t = f"{crown['seconds_per_epoch'] / base_crown['seconds_per_epoch']:.2f}x"
            if base_crown["certified_error"] > 0:
                ratio_c = f"{crown['certified_error'] / base_crown['certified_error']:.2f}x"
        lines.append(f"| {name} | {fmt(crown['clean_error'])} | {fmt(crown['pgd_error'])} | "
                     f"{fmt(crown['certified_error'])} | {fmt(ibp['certified_error']) if ibp else '-'} | "
                     f"{crown['seconds_per_epoch']:.2f} | {ratio_t} | {ratio_c} |")
    if timing:
        batches = -(-(args.limit or 60000) // args.batch)
        base = timing.get(BASELINE)
        lines += ["", "## Training step cost, measured interleaved (load-robust)", "",
                  f"Median over {args.timing_rounds} round-robin steps (batch {args.batch}; forward + bounds + "
                  "backward + Adam step), one method after the other in each round so that load changes "
                  "affect all methods alike. *During the ramp* = progress 0.25 (eps half-way, CROWN-IBP's "
                  "beta 0.5 so both its bounds are computed); *after* = progress 1.0 (CROWN-IBP's beta is 0: "
                  f"IBP only). The epoch estimate is the during-ramp median times {batches} batches.", "",
                  "| method | ms / step during ramp | ms / step after | est. s / epoch | vs IBP (during ramp) |",
                  "|---|---|---|---|---|"]
        for name, (during, after) in timing.items():
            ratio = f"{during / base[0]:.2f}x" if base else "-"
            lines.append(f"| {name} | {during * 1000:.1f} | {after * 1000:.1f} | {during * batches:.1f} | "
                         f"{ratio} |")
    lines += ["", "## All rows" + (" (with part B's SDP-cert / CRT rows from training_certified.csv)"
                                   if merged else ""), "",
              "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows + merged:
        lines.append("| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |")
    if not merged:
        lines += ["", "Part B's `training_certified.csv` (SDP-cert, CRT) was not present when this ran."]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    # the combined csv: ours plus part B's rows
    if merged:
        with open(args.out / f"{args.name}_combined.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows([{c: r[c] for c in COLUMNS} for r in rows] + merged)


def main() -> None:
    args = parse_args()
    command = "python " + " ".join(sys.argv)
    start = time.perf_counter()
    sizes = [int(s) for s in args.arch.split("-")]
    data = mnist_tensors("train", args.limit, args.data)
    X, y = mnist_tensors("test", max(args.test, args.lp_test), args.data)
    table = methods(args.eps)
    chosen = args.methods or list(table)
    rows, models = [], {}
    print(f"Machine: {describe_machine()}", flush=True)
    for name in chosen:
        print(f"{name}:", flush=True)
        model, seconds = train_or_load(name, table[name], sizes, args, data)
        models[name] = model
        torch.set_num_threads(args.threads)
        rows += evaluate(name, model, seconds, args, X, y)
        write(rows, args, command, time.perf_counter() - start)
    timing = None
    if args.timing_rounds > 0:
        print("interleaved timing", flush=True)
        timing = interleaved_timing(models, table, data, args, args.timing_rounds)
    write(rows, args, command, time.perf_counter() - start, timing)
    print((args.out / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
