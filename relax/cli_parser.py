"""The argument parser of the ``relax`` command line (one function per subcommand).

Usage errors raise :class:`~relax.errors.UsageError` (one line, exit 2); argument
types (:mod:`relax.cli_args`) refuse bad values before any work starts.
"""

from __future__ import annotations

import argparse

from relax.cli_args import positive_int, radius, seconds
from relax.errors import UsageError
from relax.runs.records import relax_version

__all__ = ["build_parser", "EPILOG"]

EPILOG = """examples:
  relax verify NET.onnx PROP.vnnlib --method krelu --set krelu.k=2 --timeout 60 --json
  relax verify --instances instances.csv --method exact --output results.csv
  relax compare --methods ibp crown lp exact --eps 0.01 0.03
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line."""

    def error(self, message: str):  # noqa: D102
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from relax.methods import describe_methods
    from relax.verify import BOUND_METHODS

    parser = _Parser(prog="relax", description="Verify neural networks with convex relaxations.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"relax {relax_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    methods_text = "methods (name, what, complete?, activations):\n" + describe_methods(BOUND_METHODS)
    _verify_parser(commands, methods_text)
    _bound_parser(commands, methods_text)
    commands.add_parser("solvers", help="list solver backends and whether they are usable here")
    _compare_parser(commands)
    _report_parser(commands)
    return parser


def _verify_parser(commands, methods_text: str) -> None:
    from relax.verify import BOUND_METHODS

    verify = commands.add_parser("verify", help="verify a property (or a list of instances)",
                                 epilog=methods_text + "\n\n" + EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("network", nargs="?", help="network in ONNX format")
    verify.add_argument("property", nargs="?", help="property in VNNLIB format")
    verify.add_argument("--instances", help="CSV of network,property,timeout (VNN-COMP style)")
    verify.add_argument("--output", default="relax_results.csv",
                        help="results CSV for --instances (never overwritten; see --resume)")
    verify.add_argument("--resume", action="store_true",
                        help="skip the rows already in --output and append the rest")
    verify.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes for --instances (default 1)")
    verify.add_argument("--threads", type=positive_int, default=None,
                        help="torch/BLAS threads per worker (default: cores // workers)")
    verify.add_argument("--engine", choices=("local", "ray", "dask"), default="local",
                        help="where --instances runs: here (processes), or on a Ray or Dask "
                             "cluster (a local one of --workers processes unless --cluster)")
    verify.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="an existing cluster: Ray HOST:6379 (or a Dask scheduler with "
                             "--engine dask)")
    _method_options(verify, BOUND_METHODS)
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--help-method", metavar="METHOD", choices=sorted(BOUND_METHODS),
                        help="list METHOD's options (name, type, default, meaning) and exit")


def _bound_parser(commands, methods_text: str) -> None:
    from relax.verify import BOUND_METHODS

    bound = commands.add_parser(
        "bound", help="a method's own bound on every disjunct (no early exit, no attack)",
        epilog=methods_text, formatter_class=argparse.RawDescriptionHelpFormatter)
    bound.add_argument("network", help="network in ONNX format")
    bound.add_argument("property", help="property in VNNLIB format")
    _method_options(bound, BOUND_METHODS)
    bound.add_argument("--json", action="store_true", help="print one JSON object")


def _compare_parser(commands) -> None:
    compare = commands.add_parser("compare", help="compare methods side by side")
    compare.add_argument("--network", help="ONNX network (default: the embedded MNIST network)")
    compare.add_argument("--mnist", help="MNIST directory to take images from (default: embedded)")
    compare.add_argument("--count", type=positive_int, default=3, help="number of images")
    compare.add_argument("--eps", type=radius, nargs="+", default=None, help="perturbation radii")
    compare.add_argument("--methods", nargs="+", default=None,
                         help="methods to run (default: ibp crown alpha-crown lp krelu sdp exact, "
                              "those registered here)")
    compare.add_argument("--timeout", type=seconds, default=2.5,
                         help="seconds per property and method (default 2.5: the whole default run in under a minute; a relaxation cut short shows its bound so far, marked *)")
    compare.add_argument("--norm", choices=("linf", "l2"), default="linf",
                         help="perturbation norm of --eps (l2: crc uses the ball, others its box)")
    _settings(compare)
    compare.add_argument("--plot", default=None, help="write the tightness ladder figure (PNG)")
    compare.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    formats = compare.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    formats.add_argument("--markdown", action="store_true", help="print a Markdown table")


def _report_parser(commands) -> None:
    report = commands.add_parser("report", help="summarise results CSVs: Markdown and figures")
    report.add_argument("results", nargs="+", help="results CSVs (one run each)")
    report.add_argument("--truth", default=None,
                        help="CSV with property,verdict columns: the known answers")
    report.add_argument("--cactus", default=None, help="write the cactus plot (PNG)")
    report.add_argument("--scatter", default=None, help="write the per-instance time scatter (PNG)")


def _method_options(parser, methods) -> None:
    parser.add_argument("--method", default="crown", choices=sorted(methods))
    parser.add_argument("--solver", default=None,
                        help="solver backend for the method's LP/MILP/SDP (see `relax solvers`)")
    parser.add_argument("--timeout", type=seconds, default=None, help="seconds per property")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    _settings(parser)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress lines on stderr (a long single run shows its phase "
                             "and current bound after 2 s)")


def _settings(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a method option, e.g. krelu.k=2 (repeatable; see --help-method)")
    parser.add_argument("--k", type=positive_int, default=None,
                        help="k-ReLU group size, 1..5 (same as --set krelu.k=K; default 3)")
