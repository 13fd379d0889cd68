"""SDP solvers against network size, and sdp-ipm on MNIST networks.

    python benchmarks/sdp.py [--quick] [--fo-limit 120] [--target-limit 600]
        [--cvxpy-limit 120] [--only NAME,...]
    python benchmarks/sdp.py --ipm [--nets 784-100-100-10,784-200] [--eps 0.02,0.05]
        [--images 0] [--ipm-limit 600] [--exact] [--append]

Scaling table: bound, time and peak memory of ``sdp-ipm`` (our structured interior-point
solver), ``fo-sdp``, ``cvxpy-scs``, ``cvxpy-clarabel`` (and ``cvxpy-mosek``, reported
unavailable without a licence).  Problems: one margin row (the smallest CROWN margin of a
robustness spec, or the first disjunct of a VNN-COMP spec) per network, the SDP of
Raghunathan et al. (2018) without cuts over CROWN intermediate bounds.  Networks, by the
size ``s = 1 + n`` of the SDP matrix: small random Gaussian nets (``s`` = 31 .. 171, where
the cvxpy solvers finish and serve as the reference), MNIST ``784-50-10`` (trained here),
the embedded ``784-100-100-10`` (``relax.data``), ``784-200-100-50-10`` (trained here),
mnistfc ``256x2`` / ``256x4`` and eran ``mnist_relu_9_200`` (2585 x 2585).  The trained
networks (3 epochs of Adam on the MNIST training set, seeded) are cached in
``benchmarks/.cache/`` (gitignored).

Each solve runs in its own process (``multiprocessing`` spawn), so its peak memory is
that process's maximum resident set size (``ru_maxrss``; it includes the ~0.3-0.5 GB of
Python, torch and numpy: the import baseline is reported).  Bounds are the solvers'
*sound* bounds (sdp-ipm, fo-sdp: float64 eigenvalue check of their multipliers; cvxpy:
``conic_safe_bound`` from the duals), CROWN's bound is the baseline column, and ``gap`` is
the bound's distance below the best bound any solver found for the problem.  The cvxpy
solvers are skipped above sizes they cannot finish on this machine (``--cvxpy-max``).
Writes ``benchmarks/results/sdp{_quick}.md``, ``.csv`` and ``sdp_scaling{_quick}.png``
(when matplotlib is importable).

``--ipm``: per MNIST network, eps and image, the hardest target class: CROWN, the
triangle LP, sdp-ipm with cuts (certified bound, its own dual value, wall and CPU time,
iterations, peak memory), and with ``--exact`` the MILP's exact margin; writes
``benchmarks/results/sdp_ipm.md`` / ``.csv``.  fo-sdp's warm starts are measured by
``benchmarks/fo_sdp.py``.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing as mp
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

import numpy as np  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results"
DATA = Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))
SOLVERS = ("sdp-ipm", "fo-sdp", "cvxpy-scs", "cvxpy-clarabel", "cvxpy-mosek")
LAYERED = ("sdp-ipm", "fo-sdp")


# -- networks ---------------------------------------------------------------------------------

def trained_network(widths: tuple[int, ...], epochs: int = 3, seed: int = 0):
    """A ReLU MLP ``widths`` trained with Adam on MNIST (cached as .npz)."""
    import torch
    from torch import nn

    from relax.io.torch_import import from_torch

    name = "mlp_" + "-".join(map(str, widths)) + f"_e{epochs}_s{seed}"
    path = CACHE / f"{name}.pt"
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).double()
    if path.exists():
        model.load_state_dict(torch.load(path))
        return from_torch(model, widths[0])
    from relax.io.mnist import load_mnist

    torch.manual_seed(seed)
    X, y = load_mnist(DATA / "mnist", "train")
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(X), generator=generator).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
            opt.step()
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return from_torch(model, widths[0])


def random_problem(widths, seed: int = 0, eps: float = 0.05):
    """A Gaussian random net (as in ``relax.sdp``'s size table) and a robustness spec."""
    from relax import robustness
    from relax.network import Affine, Network, ReLU

    rng = np.random.default_rng(seed)
    layers = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(Affine(rng.normal(size=(b, a)) / math.sqrt(a), 0.1 * rng.normal(size=b)))
        if k < len(widths) - 2:
            layers.append(ReLU())
    network = Network(tuple(layers))
    x = rng.uniform(size=widths[0])
    label = int(np.argmax(network.forward(x)))
    return network, robustness(x, label, eps, num_classes=widths[-1])


def mnist_problem(network, index: int = 0, eps: float = 0.02):
    from relax import robustness
    from relax.data import default_images

    X, Y = default_images()
    return network, robustness(X[index], int(Y[index]), eps, num_classes=10)


def vnn_problem(onnx_path: Path, vnnlib_path: Path):
    from relax import from_onnx
    from relax.io.vnnlib import read_vnnlib

    network = from_onnx(onnx_path)
    specs = read_vnnlib(vnnlib_path, network.input_size, network.output_size)
    return network, specs[0]


def problems(quick: bool):
    """``(name, thunk)`` pairs; a thunk returns ``(network, spec)``."""
    out = [(f"random {'-'.join(map(str, w))}", lambda w=w: random_problem(w))
           for w in ((10, 10, 10, 5), (20, 20, 20, 10), (60, 20, 20, 10), (100, 50, 20, 10))]
    out.append(("mnist 784-50-10", lambda: mnist_problem(trained_network((784, 50, 10)))))
    if not quick:
        from relax import from_onnx
        from relax.data import default_network_path

        out.append(("mnist 784-100-100-10 (embedded)",
                    lambda: mnist_problem(from_onnx(default_network_path()))))
    out.append(("mnist 784-200-100-50-10",
                lambda: mnist_problem(trained_network((784, 200, 100, 50, 10)))))
    if not quick:
        fc = DATA / "vnncomp2021" / "mnistfc"
        out.append(("mnistfc 256x2", lambda: vnn_problem(fc / "mnist-net_256x2.onnx",
                                                          fc / "prop_0_0.03.vnnlib")))
        out.append(("mnistfc 256x4", lambda: vnn_problem(fc / "mnist-net_256x4.onnx",
                                                          fc / "prop_0_0.03.vnnlib")))
    eran = DATA / "vnncomp2021" / "eran"
    out.append(("eran 9x200", lambda: vnn_problem(
        eran / "nets" / "mnist_relu_9_200.onnx",
        eran / "specs" / "mnist_spec_idx_8098_eps_0.01500.vnnlib")))
    return out


def hardest_row(network, spec):
    """CROWN bounds and the disjunct row with the smallest CROWN margin."""
    from relax.bounds import bound_specs

    crown = bound_specs(network, [spec], "crown")[0]
    j = int(np.argmin(crown.disjunct_bounds))
    d = spec.disjuncts[j]
    return crown, j, d.A[0], float(d.b[0])


# -- one solve in a child process ---------------------------------------------------------------

def _child(queue, name_index: int, quick: bool, solver: str, limit: float, extra: tuple):
    import resource
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    from relax.sdp.method import solve_row
    from solvers import SolveOptions

    name, thunk = problems(quick)[name_index]
    network, spec = thunk()
    crown, j, row, offset = hardest_row(network, spec)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    try:
        solution = solve_row(network, spec, crown.layers, row, offset, solver,
                             options=SolveOptions(time_limit=limit, extra=extra))
        bound, status, message = float(solution.bound), solution.status.value, solution.message
        iterations = solution.stats.iterations
    except Exception as exc:  # noqa: BLE001 - reported as the row's status
        bound, status, message, iterations = -math.inf, "error", f"{type(exc).__name__}: {exc}", 0
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(dict(problem=name, s=1 + network.input_size + sum(network.hidden_sizes),
                   solver=solver, crown=float(crown.disjunct_bounds[j]), bound=bound,
                   seconds=seconds, peak_mb=peak, import_mb=baseline, status=status,
                   iterations=iterations, message=message[:160]))


def run_isolated(index: int, quick: bool, solver: str, limit: float, extra=()) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, index, quick, solver, limit, tuple(extra)))
    proc.start()
    try:
        result = queue.get(timeout=limit * 3 + 300)
    except Exception:  # noqa: BLE001
        result = None
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
    if result is None:
        name = problems(quick)[index][0]
        result = dict(problem=name, s=math.nan, solver=solver, crown=math.nan, bound=-math.inf,
                      seconds=math.nan, peak_mb=math.nan, import_mb=math.nan,
                      status=f"crashed (exit {proc.exitcode})", iterations=0, message="")
    return result


# -- the interior-point table (issue 12) ---------------------------------------------------------

IPM_NETS = {
    "784-100-100-10 PGD (embedded)": lambda: _embedded(),
    "784-100-100-10 normal": lambda: trained_network((784, 100, 100, 10)),
    "784-200-100-50-10 normal": lambda: trained_network((784, 200, 100, 50, 10)),
}


def _embedded():
    from relax import from_onnx
    from relax.data import default_network_path

    return from_onnx(default_network_path())


#: VNN-COMP nets for the --ipm table: (onnx, vnnlib files by "image" index); eps is the file's
VNN_NETS = {
    "mnistfc 256x2": lambda: (DATA / "vnncomp2021" / "mnistfc" / "mnist-net_256x2.onnx",
                              [DATA / "vnncomp2021" / "mnistfc" / f"prop_{i}_0.03.vnnlib"
                               for i in range(15)]),
    "eran 9x200": lambda: (DATA / "vnncomp2021" / "eran" / "nets" / "mnist_relu_9_200.onnx",
                           sorted((DATA / "vnncomp2021" / "eran" / "specs").glob("*.vnnlib"))),
}


def ipm_problem(net: str, eps: float, image: int):
    """``(network, spec)`` of a --ipm row (a VNN-COMP net: property ``image``, eps ignored)."""
    if net in VNN_NETS:
        onnx, props = VNN_NETS[net]()
        return vnn_problem(onnx, props[image])
    return mnist_problem(IPM_NETS[net](), image, eps)


def _dsdp(program, limit: float) -> dict:
    """DSDP 5 on sdp-ipm's (reduced) multiplier form: value, wall and CPU seconds."""
    import tempfile

    from solvers.backends.sdp_ipm.problem import build
    from solvers.backends.sdp_ipm.sdpa import dsdp_available, run_dsdp

    ok, why = dsdp_available()
    if not ok:
        print(f"DSDP skipped: {why}", flush=True)
        return dict(dsdp=math.nan, dsdp_seconds=math.nan, dsdp_status=why)
    sdp = build(program, cuts=True, eliminate=True)
    with tempfile.TemporaryDirectory() as tmp:
        before = os.times()
        try:
            result = run_dsdp(sdp, Path(tmp), limit)
        except Exception as exc:  # noqa: BLE001  (a timeout: the row says so)
            return dict(dsdp=math.nan, dsdp_seconds=limit, dsdp_status=type(exc).__name__)
        after = os.times()
    cpu = (after.children_user + after.children_system) - (before.children_user
                                                          + before.children_system)
    return dict(dsdp=result.value, dsdp_seconds=result.seconds, dsdp_cpu=cpu,
                dsdp_iterations=result.iterations,
                dsdp_status="converged" if result.converged else "not converged")


def _ipm_child(queue, net: str, eps: float, image: int, limit: float, exact: bool,
               dsdp_limit: float = 0.0):
    """One row of the table: CROWN, alpha-CROWN, LP, sdp-ipm (cuts) and (``dsdp_limit``)
    DSDP on the hardest target class."""
    import resource
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    from relax.lp.method import lp_disjunct_bounds
    from relax.sdp.encode import layered_program
    from relax.spec import Spec
    from solvers import SolveOptions, get_solver

    from relax.search.alpha_method import alpha_disjunct_bounds

    network, spec = ipm_problem(net, eps, image)
    if net in VNN_NETS:
        eps = float(re.findall(r"_([0-9.]+)\.vnnlib", str(VNN_NETS[net]()[1][image]))[0])
    crown, j, row, offset = hardest_row(network, spec)
    one = Spec(spec.lower, spec.upper, (spec.disjuncts[j],))
    start = time.perf_counter()
    alpha = float(alpha_disjunct_bounds(network, one, [0])[0])
    alpha_seconds = time.perf_counter() - start
    start = time.perf_counter()
    lp = float(lp_disjunct_bounds(network, one, crown.layers, None)[0])
    lp_seconds = time.perf_counter() - start
    program = layered_program(network, spec.lower, spec.upper, crown.layers, row, offset)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    solution = get_solver("sdp-ipm").solve(program, SolveOptions(time_limit=limit,
                                                                 extra=(("cuts", True),)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    value = math.nan
    if exact:
        from relax.search.milp import milp_margin

        value = float(milp_margin(network, one, crown.layers))
    side = re.search(r"side (\d+)", solution.message)
    reference = _dsdp(program, dsdp_limit) if dsdp_limit > 0 else {}
    queue.put(dict(net=net, eps=eps, image=image, target=j, crown=float(crown.disjunct_bounds[j]),
                   alpha=alpha, alpha_seconds=alpha_seconds, side=int(side.group(1)) if side
                   else 0,
                   lp=lp, lp_seconds=lp_seconds, sdp=float(solution.bound), **reference,
                   dual=float(solution.dual_objective or math.nan), seconds=wall,
                   cpu_seconds=cpu, iterations=solution.stats.iterations, peak_mb=peak,
                   import_mb=baseline, status=solution.status.value, exact=value,
                   message=solution.message[:200]))


def ipm_table(nets: list[str], eps_values: list[float], images: list[int], limit: float,
              exact: bool, dsdp_limit: float = 0.0, dsdp_images: int = 0) -> list[dict]:
    rows = []
    ctx = mp.get_context("spawn")
    for net in nets:
        for eps in ([math.nan] if net in VNN_NETS else eps_values):
            for image in images:
                queue = ctx.Queue()
                dsdp = dsdp_limit if image < dsdp_images else 0.0
                proc = ctx.Process(target=_ipm_child,
                                   args=(queue, net, eps, image, limit, exact, dsdp))
                proc.start()
                try:
                    row = queue.get(timeout=limit * 4 + dsdp * 1.5 + 600)
                except Exception:  # noqa: BLE001
                    row = dict(net=net, eps=eps, image=image, status=f"crashed ({proc.exitcode})")
                proc.join(timeout=10)
                rows.append(row)
                print(row, flush=True)
    return rows


def _read_rows(path: Path) -> list[dict]:
    """Rows of an earlier ``sdp_ipm.csv`` (numbers parsed), for ``--append``."""
    if not path.exists():
        return []
    out = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed = {}
            for k, v in row.items():
                try:
                    parsed[k] = int(float(v)) if k in ("image", "target", "iterations", "side") \
                        else float(v)
                except (TypeError, ValueError):
                    parsed[k] = v
            out.append(parsed)
    return out


def write_ipm_table(rows: list[dict], started: float, append: bool = False) -> None:
    RESULTS.mkdir(exist_ok=True)
    if append:
        rows = _read_rows(RESULTS / "sdp_ipm.csv") + rows
    keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k)
                  if k in rows[0] else 99)
    with open(RESULTS / "sdp_ipm.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v, d=4: "-" if not isinstance(v, (int, float)) or not math.isfinite(v) \
        else f"{v:.{d}f}"  # noqa: E731
    lines = ["# sdp-ipm: the SDP optimum on MNIST networks", "",
             f"Machine: {describe_machine()}. Run: `python benchmarks/sdp.py "
             f"{' '.join(sys.argv[1:])}` ({time.time() - started:.0f} s in all; the 2 cores "
             f"were shared with other jobs (load average {os.getloadavg()[0]:.1f} at the end), "
             "so wall times are pessimistic: CPU "
             "seconds and iterations are the steadier figures; torch/BLAS threads: "
             f"{os.environ.get('OMP_NUM_THREADS', 'default')}).", "",
             "Image, eps, the hardest target class (smallest CROWN margin); CROWN intermediate "
             "bounds; the SDP with the triangle cuts. `sdp-ipm`: the certified bound "
             "(stably active neurons substituted, the reduced form's own float64 eigenvalue "
             "check of the final multipliers, never below the CROWN-like start); `dual`: the "
             "solver's own dual objective (not a bound); `DSDP`: DSDP 5.8's objective on the "
             "same multiplier form written in SDPA format (a reference, not a bound); `side`: "
             "the matrix side after eliminations; peak: max RSS of the solve's process "
             "(import and CROWN baseline in brackets).", "",
             "| net | eps | img | target | side | CROWN | alpha-CROWN | LP | sdp-ipm | dual - "
             "bound | DSDP | DSDP - dual | DSDP wall s | exact | wall s | CPU s | iters | s/iter "
             "| peak MB | status |",
             "|" + "---|" * 20]
    for r in rows:
        if "sdp" not in r:
            lines.append(f"| {r['net']} | {r['eps']} | {r['image']} |" + " |" * 16
                         + f" {r['status']} |")
            continue
        per = r["seconds"] / max(r["iterations"] or 1, 1)
        dsdp = r.get("dsdp", math.nan)
        dsdp = dsdp if isinstance(dsdp, float) else math.nan      # "" from an older CSV
        lines.append(f"| {r['net']} | {r['eps']} | {r['image']} | {r['target']} | "
                     f"{r.get('side', '-')} | {fmt(r['crown'])} | {fmt(r.get('alpha', math.nan))} "
                     f"| {fmt(r['lp'])} | {fmt(r['sdp'], 6)} | {r['dual'] - r['sdp']:.1e} | "
                     f"{fmt(dsdp, 6)} | "
                     f"{'-' if not math.isfinite(dsdp) else format(dsdp - r['dual'], '.1e')} | "
                     f"{fmt(r.get('dsdp_seconds', math.nan), 1)} | {fmt(r['exact'])} | "
                     f"{fmt(r['seconds'], 1)} | "
                     f"{fmt(r['cpu_seconds'], 1)} | {r['iterations']} | {per:.2f} | "
                     f"{fmt(r['peak_mb'], 0)} ({fmt(r['import_mb'], 0)}) | {r['status']} |")
    lines += ["", ipm_plot(rows, RESULTS / "sdp_ipm_time.png")]
    (RESULTS / "sdp_ipm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def ipm_plot(rows: list[dict], path: Path) -> str:
    """Wall time against the SDP matrix side, per solver (sdp-ipm, DSDP), log-log."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not importable: no plot"
    fig, ax = plt.subplots(figsize=(5.5, 4))
    def done(r, solver):            # a finished solve (DSDP: a value; sdp-ipm: converged)
        if solver == "DSDP 5.8":
            return isinstance(r.get("dsdp"), float) and math.isfinite(r["dsdp"])
        return r.get("status") == "optimal"

    for key, solver in (("seconds", "sdp-ipm"), ("dsdp_seconds", "DSDP 5.8")):
        for finished, marker, note in ((True, "o", ""), (False, "x", " (not finished)")):
            pts = [(r.get("side", 0), r.get(key, math.nan)) for r in rows
                   if done(r, solver) == finished and (finished or solver == "sdp-ipm"
                                                       or r.get("dsdp_status") == "TimeoutExpired")]
            pts = [(s, t) for s, t in pts if isinstance(t, float) and math.isfinite(t) and s]
            if pts:
                ax.loglog(*zip(*sorted(pts)), marker, label=solver + note)
    ax.set(xlabel="SDP matrix side (after eliminations)", ylabel="wall time (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.suptitle(describe_machine(), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"plot: {path.relative_to(REPO)}"


# -- output -------------------------------------------------------------------------------------

def plot(rows: list[dict], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not importable: no plot (pip install -e .[bench])"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for solver in SOLVERS:
        pts = [r for r in rows if r["solver"] == solver and math.isfinite(r["bound"])]
        if not pts:
            continue
        pts.sort(key=lambda r: r["s"])
        axes[0].loglog([r["s"] for r in pts], [r["seconds"] for r in pts], "o-", label=solver)
        axes[1].loglog([r["s"] for r in pts], [r["peak_mb"] for r in pts], "o-", label=solver)
    axes[0].set(xlabel="SDP size s = 1 + n", ylabel="wall time (s)", title="time")
    axes[1].set(xlabel="SDP size s = 1 + n", ylabel="peak RSS (MB)", title="peak memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(describe_machine(), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"plot: {path.relative_to(REPO)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--fo-limit", type=float, default=120.0)
    p.add_argument("--target-limit", type=float, default=600.0,
                   help="fo-sdp time limit on 784-200-100-50-10 and eran 9x200")
    p.add_argument("--cvxpy-limit", type=float, default=120.0)
    p.add_argument("--cvxpy-max", type=int, default=900, help="largest s given to SCS")
    p.add_argument("--clarabel-max", type=int, default=110)
    p.add_argument("--only", default="")
    p.add_argument("--skip-warm", action="store_true",
                   help="ignored: fo-sdp's warm starts are measured by benchmarks/fo_sdp.py")
    p.add_argument("--ipm", action="store_true",
                   help="only the sdp-ipm table on the MNIST nets (results/sdp_ipm.md)")
    p.add_argument("--nets", default="784-100-100-10", help="--ipm: nets whose name contains these")
    p.add_argument("--eps", default="0.02,0.05")
    p.add_argument("--images", default="0")
    p.add_argument("--ipm-limit", type=float, default=600.0)
    p.add_argument("--exact", action="store_true", help="--ipm: also the MILP's exact margin")
    p.add_argument("--append", action="store_true", help="--ipm: add to results/sdp_ipm.*")
    p.add_argument("--dsdp-limit", type=float, default=0.0,
                   help="--ipm: also DSDP 5 (dsdp5) on the reduced multiplier form, this limit")
    p.add_argument("--dsdp-images", type=int, default=1, help="--ipm: DSDP on images below this")
    args = p.parse_args()
    if args.ipm:
        started = time.time()
        nets = [n for n in list(IPM_NETS) + list(VNN_NETS)
                if any(o.strip() in n for o in args.nets.split(","))]
        rows = ipm_table(nets, [float(e) for e in args.eps.split(",")],
                         [int(i) for i in args.images.split(",")], args.ipm_limit, args.exact,
                         args.dsdp_limit, args.dsdp_images)
        write_ipm_table(rows, started, args.append)
        return
    from solvers.registry import get_solver

    started = time.time()
    rows = []
    for index, (name, _) in enumerate(problems(args.quick)):
        if args.only and not any(o.strip() in name for o in args.only.split(",")):
            continue
        for solver in SOLVERS:
            ok, why = get_solver(solver).is_available()
            if not ok:
                rows.append(dict(problem=name, s=math.nan, solver=solver, crown=math.nan,
                                 bound=math.nan, seconds=math.nan, peak_mb=math.nan,
                                 import_mb=math.nan, status="unavailable", iterations=0,
                                 message=why[:160]))
                continue
            big = name.startswith(("mnist 784-200", "eran"))
            limit = (args.target_limit if big else args.fo_limit) if solver in LAYERED \
                else args.cvxpy_limit
            if solver in LAYERED:
                rows.append(run_isolated(index, args.quick, solver, limit))
            else:
                s = next((r["s"] for r in rows if r["problem"] == name
                          and math.isfinite(r["s"])), math.nan)
                cap = args.clarabel_max if solver == "cvxpy-clarabel" else args.cvxpy_max
                if not s <= cap:
                    rows.append(dict(problem=name, s=s, solver=solver, crown=math.nan,
                                     bound=math.nan, seconds=math.nan, peak_mb=math.nan,
                                     import_mb=math.nan, status=f"skipped (s > {cap})",
                                     iterations=0, message=""))
                else:
                    rows.append(run_isolated(index, args.quick, solver, limit))
            r = rows[-1]
            print(f"{name:34s} {solver:15s} s={r['s']} bound={r['bound']:.6g} "
                  f"crown={r['crown']:.6g} {r['seconds']:.1f}s {r['peak_mb']:.0f}MB "
                  f"{r['status']} {r['message'][:80]}", flush=True)
    best = {}
    for r in rows:
        if math.isfinite(r["bound"]):
            best[r["problem"]] = max(best.get(r["problem"], -math.inf), r["bound"])
    for r in rows:
        r["gap"] = best.get(r["problem"], math.nan) - r["bound"] if math.isfinite(
            r["bound"]) else math.nan
    RESULTS.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    with open(RESULTS / f"sdp{suffix}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# SDP solvers against network size", "",
             f"Machine: {describe_machine()}. Run: `python benchmarks/sdp.py "
             f"{' '.join(sys.argv[1:])}` ({time.time() - started:.0f} s in all, while other "
             "jobs shared the 2 cores: timings are pessimistic; BLAS/torch threads: "
             f"{os.environ.get('OMP_NUM_THREADS', 'default')}).", "",
             "One margin row per network (the smallest CROWN margin), the SDP without cuts "
             "over CROWN bounds. `bound`: the solver's sound bound; `CROWN`: the baseline; "
             "`vs CROWN`: bound - CROWN; `gap`: best bound of any solver - bound; peak: "
             "max RSS of the solve's process (import baseline in brackets).", "",
             "| problem | s | solver | bound | CROWN | vs CROWN | gap | time (s) | peak MB | "
             "evals/iters | status |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v, d=5: "-" if not math.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
        lines.append(f"| {r['problem']} | {r['s']} | {r['solver']} | {fmt(r['bound'])} | "
                     f"{fmt(r['crown'], 4)} | {fmt(r['bound'] - r['crown'], 4)} | "
                     f"{fmt(r['gap'], 6)} | {fmt(r['seconds'], 1)} | {fmt(r['peak_mb'], 0)} "
                     f"({fmt(r['import_mb'], 0)}) | {r['iterations']} | {r['status']} |")
    lines += ["", plot(rows, RESULTS / f"sdp_scaling{suffix}.png"), ""]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"sdp{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
