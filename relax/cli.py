"""The ``relax`` command line: ``verify``, ``compare``.

Bad input (files, options) prints one line ``relax: error: ...`` on stderr and
exits with code 2; any verdict exits with 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from relax.errors import RelaxError, UsageError
from solvers.errors import SolverError

log = logging.getLogger("relax")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line."""

    def error(self, message: str):  # noqa: D102
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from relax.verify import BOUND_METHODS

    parser = _Parser(prog="relax", description="Verify neural networks with convex relaxations.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    verify = commands.add_parser("verify", help="verify a property (or a list of instances)")
    verify.add_argument("network", nargs="?", help="network in ONNX format")
    verify.add_argument("property", nargs="?", help="property in VNNLIB format")
    verify.add_argument("--instances", help="CSV of network,property,timeout (VNN-COMP style)")
    verify.add_argument("--output", default="relax_results.csv", help="results CSV for --instances")
    verify.add_argument("--method", default="crown", choices=sorted(BOUND_METHODS))
    verify.add_argument("--solver", default=None, help="solver backend (see `relax solvers`)")
    verify.add_argument("--timeout", type=float, default=None, help="seconds per property")
    verify.add_argument("--device", default="cpu", help="cpu or cuda")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--k", type=int, default=3, help="k-ReLU group size (method krelu)")

    commands.add_parser("solvers", help="list solver backends and whether they are usable here")

    compare = commands.add_parser("compare", help="compare methods side by side")
    compare.add_argument("--network", help="ONNX network (default: the embedded MNIST network)")
    compare.add_argument("--mnist", help="MNIST directory to take images from (default: embedded)")
    compare.add_argument("--count", type=int, default=3, help="number of images")
    compare.add_argument("--eps", type=float, nargs="+", default=None, help="L-inf radii")
    compare.add_argument("--methods", nargs="+", default=None,
                         help="methods to run (default: ibp crown lp exact; also: sdp)")
    compare.add_argument("--timeout", type=float, default=5.0, help="seconds per property and method")
    compare.add_argument("--norm", choices=("linf", "l2"), default="linf",
                         help="perturbation norm of --eps (l2: crc uses the ball, others its box)")
    compare.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    compare.add_argument("--k", type=int, default=3, help="k-ReLU group size (method krelu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if args.command == "verify":
            return _verify_instances(args) if args.instances else _verify_one(args)
        if args.command == "solvers":
            return _solvers()
        return _compare(args)
    except (RelaxError, SolverError) as error:
        print(f"relax: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print(f"relax: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("relax: interrupted", file=sys.stderr)
        return 130


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _options(args):
    from relax.verify import VerifyOptions
    from solvers import get_solver

    if args.solver is not None:  # unknown or unavailable: a one-line error now, not per instance
        from solvers.errors import SolverUnavailable

        available, reason = get_solver(args.solver).is_available()
        if not available:
            raise SolverUnavailable(f"solver {args.solver!r} is not usable here: {reason}")
    from relax.options import parse_settings

    return VerifyOptions(solver=args.solver, device=args.device,
                         methods=parse_settings([f"krelu.k={args.k}"]))


def _solvers() -> int:
    from solvers import list_solvers

    rows = [["solver", "problems", "usable", "aliases / why not"]]
    for info in list_solvers():
        kinds = ",".join(sorted(k.value for k in info.kinds))
        note = info.reason if not info.available else ", ".join(info.aliases)
        rows.append([info.name, kinds, "yes" if info.available else "no", note])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
    return 0


def _verify_one(args) -> int:
    from relax.io.onnx_import import from_onnx
    from relax.verify import verify
    from relax.io.vnnlib import read_vnnlib

    if not args.network or not args.property:
        raise UsageError("verify needs NETWORK and PROPERTY, or --instances CSV")
    options = _options(args)
    network = from_onnx(args.network)
    specs = read_vnnlib(args.property, network.input_size, network.output_size)
    result = verify(network, specs, args.method, args.timeout, options)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        bound = "n/a" if result.bound is None else f"{result.bound:.6g}"
        print(f"{result.verdict.value}  (method {result.method}, bound {bound}, "
              f"{result.seconds:.2f} s)" + (f": {result.reason}" if result.reason else ""))
    return 0


def _verify_instances(args) -> int:
    from tqdm import tqdm

    from relax.instances import read_instances, run_instance

    options = _options(args)
    instances = read_instances(args.instances)
    out_path = Path(args.output)
    counts: dict[str, int] = {}
    with out_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "property", "verdict", "bound", "method", "seconds", "reason"])
        for instance in tqdm(instances, desc="instances", unit="prop", file=sys.stderr):
            row = run_instance(instance, args.method, options, args.timeout)
            writer.writerow(row.csv_row())
            handle.flush()
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"{len(instances)} instances ({summary}); results in {out_path}")
    return 0


def _compare(args) -> int:
    from tqdm import tqdm

    from relax.compare import DEFAULT_EPS, DEFAULT_METHODS, available_methods, compare
    from relax.options import parse_settings
    from relax.verify import VerifyOptions

    network, images, labels = _compare_inputs(args)
    methods = args.methods or [m for m in DEFAULT_METHODS if m in available_methods()]
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; available: {', '.join(available_methods())}")
    eps_values = args.eps or list(DEFAULT_EPS)
    bar = tqdm(total=len(images) * len(eps_values), desc="compare", unit="prop", file=sys.stderr)
    start = time.monotonic()
    rows = compare(network, images, labels, eps_values, methods, args.timeout,
                   VerifyOptions(methods=parse_settings([f"krelu.k={args.k}"])), progress=bar.update,
                   norm=args.norm)
    bar.close()
    if args.json:
        for row in rows:
            print(json.dumps({"image": row.image, "label": row.label, "eps": row.eps,
                              "exact": row.exact_value,
                              "results": {m: r.to_json() for m, r in row.results.items()}}))
    else:
        print(f"network: {network.describe()}")
        print(_table(rows, methods))
        print("bound = sound lower bound on the margin (> 0 certifies); exact value = MILP optimum "
              f"of the margin (reference); total {time.monotonic() - start:.1f} s")
    return 0


def _compare_inputs(args):
    from relax.data import default_images, default_network_path
    from relax.io.mnist import load_mnist
    from relax.io.onnx_import import from_onnx

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    network = from_onnx(args.network or default_network_path())
    if args.mnist:
        images, labels = load_mnist(args.mnist, "test", limit=args.count)
    else:
        images, labels = default_images()
    return network, images[: args.count], labels[: args.count]


def _table(rows, methods) -> str:
    header = ["img", "label", "pred", "eps"]
    for m in methods:
        header += [f"{m} bound", f"{m} verdict", f"{m} s"]
    header.append("exact value")
    lines = [header]
    for row in rows:
        cells = [str(row.image), str(row.label), str(row.predicted), f"{row.eps:g}"]
        for m in methods:
            r = row.results[m]
            bound = "-" if r.bound is None or not np.isfinite(r.bound) else f"{r.bound:+.3f}"
            cells += [bound, r.verdict.value, f"{r.seconds:.2f}"]
        cells.append("-" if row.exact_value is None else f"{row.exact_value:+.3f}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


if __name__ == "__main__":
    sys.exit(main())
