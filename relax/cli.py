"""The ``relax`` command line: ``verify``, ``bound``, ``compare``, ``report``, ``solvers``.

The contract:

- stdout carries only the results (``--json``: exactly one JSON object; ``compare``:
  only the table): while a command works, fd 1 points at stderr
  (:mod:`relax.console`), so no library or C code can write there;
- bad input (files, options, typed errors of relax and the solver registry) prints one
  line ``relax: error: ...`` on stderr and exits with 2, before any work starts;
- anything else is a bug: ``relax: internal error: ...`` and exit 1 (traceback with ``-v``);
- Ctrl-C: one line and exit 130; any verdict exits with 0.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback

from relax.cli_args import check_device
from relax.cli_parser import build_parser
from relax.errors import RelaxError, SpecError, UsageError
from relax.deadline import seconds_since_process_start
from solvers.errors import SolverUnavailable, UnknownSolver, UnsupportedProblem

log = logging.getLogger("relax")

#: errors that are the user's to fix (everything else is a bug in relax)
USER_ERRORS = (RelaxError, SolverUnavailable, UnknownSolver, UnsupportedProblem, OSError)

def _method_settings(args) -> tuple:
    """The typed method options of ``--k`` and ``--set`` (later settings win)."""
    from relax.options import parse_settings

    if args.k is not None and not 1 <= args.k <= 5:
        raise UsageError(f"argument --k: k-ReLU needs 1 <= k <= 5, got {args.k}")
    return parse_settings(([f"krelu.k={args.k}"] if args.k is not None else []) + args.set)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in argv)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv  # the command, for the results file
        _logging(args.verbose)
        from relax.console import results_stream

        with results_stream() as out:
            return _COMMANDS[args.command](args, out)
    except USER_ERRORS as error:
        print(f"relax: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("relax: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug in relax, not the user's input
        if verbose:
            traceback.print_exc(file=sys.stderr)
        hint = "" if verbose else " (run with -v for the traceback)"
        print(f"relax: internal error: {type(error).__name__}: {_one_line(error)}{hint}",
              file=sys.stderr)
        return 1


def _logging(verbose: bool) -> None:
    """-v: every INFO record; otherwise warnings only (progress: relax.console)."""
    root, level = logging.getLogger(), logging.INFO if verbose else logging.WARNING
    if not root.handlers:  # (an embedding program or test may have its own)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.setLevel(level)
        root.addHandler(handler)
    root.setLevel(level)


def _progress(args):
    """A long single run shows relax's progress lines on stderr (not with -q or -v)."""
    from relax.console import long_run_progress

    return long_run_progress(not args.quiet and not args.verbose)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _options(args, method: str):
    """Typed options from the flags, checked against ``method`` before any work."""
    from relax.methods import check_solver
    from relax.verify import VerifyOptions

    check_device(args.device)
    check_solver(method, args.solver)
    return VerifyOptions(solver=args.solver, device=args.device, methods=_method_settings(args))


def _solvers(args, out) -> int:
    from solvers import list_solvers

    rows = [["solver", "problems", "usable", "aliases / why not"]]
    for info in list_solvers():
        kinds = ",".join(sorted(k.value for k in info.kinds))
        note = info.reason if not info.available else ", ".join(info.aliases)
        rows.append([info.name, kinds, "yes" if info.available else "no", note])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3], file=out)
    return 0


def load_property(network, path: str):
    """The specs of a VNNLIB file; an input box that is empty everywhere is bad input."""
    from relax.io.vnnlib import read_vnnlib

    specs = read_vnnlib(path, network.input_size, network.output_size)
    if not specs:
        raise SpecError(f"{path}: the input box is empty (a lower bound exceeds its upper "
                        "bound in every disjunct): nothing to verify")
    return specs


def _verify(args, out) -> int:
    if args.help_method:
        from relax.options import format_options

        print(format_options(args.help_method), file=out)
        return 0
    if args.instances:
        if args.network or args.property:
            raise UsageError("give either NETWORK PROPERTY or --instances CSV, not both")
        return _verify_instances(args, out)
    return _verify_one(args, out)


def _verify_one(args, out) -> int:
    from relax.io.onnx_import import from_onnx
    from relax.verify import verify

    if not args.network or not args.property:
        raise UsageError("verify needs NETWORK and PROPERTY, or --instances CSV")
    options = _options(args, args.method)
    network = from_onnx(args.network)
    specs = load_property(network, args.property)
    with _progress(args):  # from here on: work (bad input was refused above)
        result = verify(network, specs, args.method, _time_left(args.timeout), options)
    if args.json:
        print(json.dumps(result.to_json()), file=out)
    else:
        bound = "n/a" if result.bound is None else f"{result.bound:.6g}"
        print(f"{result.verdict.value}  (method {result.method}, bound {bound}, "
              f"{result.seconds:.2f} s)" + (f": {result.reason}" if result.reason else ""), file=out)
    return 0


#: what the command keeps of ``--timeout`` for printing the answer and leaving the process
EXIT_SECONDS = 0.3


def _time_left(timeout: float | None) -> float | None:
    """``--timeout`` is a promise about the whole command's wall time: what is left of it
    after start-up (imports, reading the network and property), less :data:`EXIT_SECONDS`,
    and never less than 10 ms (the cheapest bounds still run and are still sound)."""
    if timeout is None:
        return None
    return max(timeout - seconds_since_process_start() - EXIT_SECONDS, 0.01)


def _bound(args, out) -> int:
    from relax.bounding import bound_report
    from relax.io.onnx_import import from_onnx

    options = _options(args, args.method)
    network = from_onnx(args.network)
    specs = load_property(network, args.property)
    with _progress(args):
        report = bound_report(network, specs, args.method, _time_left(args.timeout), options)
    if args.json:
        print(json.dumps(report.to_json()), file=out)
        return 0
    for index, row in enumerate(report.disjunct_bounds):
        values = " ".join(f"{v:+.6g}" for v in row)
        print(f"spec {index}: min {min(row):+.6g}  disjuncts {values}", file=out)
    reason = f": {'; '.join(report.reasons)}" if report.reasons else ""
    print(f"bound {report.bound:+.6g}  (method {report.method}, {report.seconds:.2f} s){reason}",
          file=out)
    return 0


def _verify_instances(args, out) -> int:
    from functools import partial
    from pathlib import Path

    from relax.instances import read_instances
    from relax.runs.local import RunPlan, run_plan
    from relax.runs.records import ResultsFile, run_metadata

    options = _options(args, args.method)
    plan = RunPlan(tuple(read_instances(args.instances)), args.method, options, args.timeout)
    results = ResultsFile(Path(args.output), resume=args.resume)
    results.prepare()  # before any work: never overwrite, resume keys
    runner = partial(_runner_for(args), workers=args.workers, threads=args.threads)
    with _Progress(len(plan.instances)) as progress:
        rows = run_plan(plan, results, run_metadata(args.argv), runner, progress=progress.update)
    skipped = len(plan.instances) - len(rows)
    print(f"{len(rows)} instances run ({_counts(rows)}), {skipped} already in the file; "
          f"results in {results.path}", file=out)
    return 0


def _runner_for(args):
    from relax.runs.local import execute

    if args.engine == "local" and args.cluster is None:
        return execute
    from relax.runs.cluster import cluster_runner

    return cluster_runner(args.engine, args.cluster)


def _counts(rows) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


class _Progress:
    """A progress bar on stderr with the counts of each verdict."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="instances", unit="prop", file=sys.stderr)
        self.counts = {"holds": 0, "violated": 0, "unknown": 0}

    def update(self, row) -> None:
        self.counts[row.verdict] = self.counts.get(row.verdict, 0) + 1
        solved = self.counts["holds"] + self.counts["violated"]
        self.bar.set_postfix(solved=solved, unknown=self.counts["unknown"], refresh=False)
        self.bar.update()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _compare(args, out) -> int:
    from tqdm import tqdm

    from relax.compare import DEFAULT_EPS, compare, legend, render_table, write_csv
    from relax.verify import VerifyOptions

    methods = _compare_methods(args)
    network, images, labels = _compare_inputs(args)
    eps_values = args.eps or list(DEFAULT_EPS)
    options = VerifyOptions(methods=_method_settings(args))
    bar = tqdm(total=len(images) * len(eps_values), desc="compare", unit="prop", file=sys.stderr)
    start = time.monotonic()
    rows = compare(network, images, labels, eps_values, methods, args.timeout, options,
                   progress=bar.update, norm=args.norm)
    bar.close()
    if args.csv:
        write_csv(args.csv, rows, methods)
    if args.plot:
        from relax.plots import ladder_plot

        ladder_plot(rows, methods, args.plot)
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json()), file=out)
        return 0
    if not args.markdown:
        print(f"network: {network.describe()}", file=out)
    print(render_table(rows, methods, markdown=args.markdown), file=out)
    print(("\n" if args.markdown else "") + legend(time.monotonic() - start), file=out)
    return 0


def _report(args, out) -> int:
    from relax.report import read_run, read_truth, summary_markdown

    runs = [read_run(path) for path in args.results]
    truth = read_truth(args.truth)
    if args.cactus or args.scatter:
        from relax.plots import cactus_plot, time_scatter

        if args.cactus:
            cactus_plot(runs, args.cactus)
        if args.scatter:
            time_scatter(runs, args.scatter)
    print(summary_markdown(runs, truth), file=out, end="")
    return 0


def _compare_methods(args) -> list[str]:
    from relax.compare import DEFAULT_METHODS, available_methods

    methods = args.methods or [m for m in DEFAULT_METHODS if m in available_methods()]
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; "
                         f"available: {', '.join(available_methods())}")
    _method_settings(args)  # bad --k / --set: refused before any work
    return list(dict.fromkeys(methods))


def _compare_inputs(args):
    """Network, images and labels, checked to fit each other before any work."""
    from relax.data import default_images, default_network_path
    from relax.io.mnist import load_mnist
    from relax.io.onnx_import import from_onnx

    network = from_onnx(args.network or default_network_path())
    if args.mnist:
        images, labels = load_mnist(args.mnist, "test", limit=args.count)
    else:
        images, labels = default_images()
    images, labels = images[: args.count], labels[: args.count]
    if network.input_size != images.shape[1]:
        raise UsageError(f"the network takes {network.input_size} inputs, so it does not take "
                         f"MNIST images ({images.shape[1]} pixels)")
    if network.output_size <= int(max(labels)):
        raise UsageError(f"the network has {network.output_size} outputs, too few for the "
                         f"MNIST labels 0..9")
    return network, images, labels


_COMMANDS = {"verify": _verify, "bound": _bound, "solvers": _solvers, "compare": _compare,
             "report": _report}


if __name__ == "__main__":
    sys.exit(main())
