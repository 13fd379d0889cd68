"""The command line's contract, seen from outside the process where it matters.

stdout holds only results (C code included: checked at the file-descriptor level in a
subprocess); bad input exits 2 with one stderr line before any work; a bug exits 1 and
says so; Ctrl-C exits 130 with one line.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from relax.cli import main
from relax.verify import BOUND_METHODS

VERIFY_MODULE = importlib.import_module("relax.verify")  # (relax.verify is also the function)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relax.cli", *args], capture_output=True,
                          text=True, env=ENV, cwd=cwd)


def write_mlp(path, widths, activation="Relu", seed=0) -> str:
    """A dense ONNX network (Gemm + activation) with Gaussian weights."""
    rng = np.random.default_rng(seed)
    nodes, inits, current = [], [], "x"
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        w = rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)
        inits += [numpy_helper.from_array(w.astype(np.float32), f"W{k}"),
                  numpy_helper.from_array(rng.normal(size=n_out).astype(np.float32) * 0.3, f"b{k}")]
        nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"b{k}"], [f"z{k}"]))
        current = f"z{k}"
        if k < len(widths) - 2:
            nodes.append(helper.make_node(activation, [current], [f"a{k}"]))
            current = f"a{k}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, widths[0]])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, widths[-1]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return str(path)


def write_robustness(path, lows, highs, label, outputs) -> str:
    """VNNLIB: inputs in [lows, highs]; unsafe if some other output >= output ``label``."""
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lows))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(outputs)]
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        lines += [f"(assert (>= X_{i} {lo}))", f"(assert (<= X_{i} {hi}))"]
    others = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(outputs) if j != label)
    lines.append(f"(assert (or {others}))")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture()
def tiny(tmp_path):
    """A 4-6-3 ReLU net, a 4-6-3 sigmoid net and a small box property around 0.5."""
    relu = write_mlp(tmp_path / "relu.onnx", [4, 6, 3])
    smooth = write_mlp(tmp_path / "sigmoid.onnx", [4, 6, 3], "Sigmoid")
    net = __import__("relax").from_onnx(relu)
    label = int(np.argmax(net.forward(np.full(4, 0.5))))
    prop = write_robustness(tmp_path / "prop.vnnlib", [0.45] * 4, [0.55] * 4, label, 3)
    return {"relu": relu, "sigmoid": smooth, "prop": prop, "tmp": tmp_path}


def _network_for(method: str, tiny) -> str:
    return tiny["sigmoid"] if method == "crc" else tiny["relu"]


def test_json_stdout_is_exactly_one_object_for_every_method(tiny):
    """One process runs every method with fd 1 on a file of its own: each file must be
    exactly one JSON object (whatever HiGHS, cvxpy or torch print at the C level)."""
    cases = {m: ["verify", _network_for(m, tiny), tiny["prop"], "--method", m, "--json",
                 "--timeout", "30"] for m in BOUND_METHODS}
    script = textwrap.dedent(f"""
        import json, os, sys
        from relax.cli import main
        codes = {{}}
        for method, argv in json.loads({json.dumps(json.dumps(cases))}).items():
            sys.stdout.flush()
            fd = os.open(os.path.join({str(tiny['tmp'])!r}, method + ".out"),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            saved = os.dup(1); os.dup2(fd, 1); os.close(fd)
            try:
                codes[method] = main(argv)
            finally:
                sys.stdout.flush(); os.dup2(saved, 1); os.close(saved)
        sys.stderr.write("CODES " + json.dumps(codes) + "\\n")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
    codes = json.loads(done.stderr.split("CODES ")[-1])
    assert done.returncode == 0 and set(codes) == set(BOUND_METHODS), done.stderr[-2000:]
    for method, code in codes.items():
        text = (tiny["tmp"] / f"{method}.out").read_text()
        assert code == 0, (method, done.stderr[-2000:])
        payload = json.loads(text)  # the whole file: one object, nothing around it
        assert payload["method"] == method and payload["verdict"] in {"holds", "violated", "unknown"}


def test_c_level_output_never_reaches_stdout():
    """A command whose work prints from C (printf) and Python: stdout keeps only results."""
    script = textwrap.dedent("""
        import ctypes, sys
        import relax.cli as cli
        original = cli._COMMANDS["solvers"]
        def noisy(args, out):
            ctypes.CDLL(None).printf(b"C-LEVEL BANNER\\n")
            print("python noise")
            return original(args, out)
        cli._COMMANDS["solvers"] = noisy
        sys.exit(cli.main(["solvers"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0
    assert "BANNER" not in done.stdout and "noise" not in done.stdout
    assert "C-LEVEL BANNER" in done.stderr and "python noise" in done.stderr
    assert done.stdout.splitlines()[0].split()[:2] == ["solver", "problems"]


def test_compare_stdout_is_only_the_table():
    done = run_cli("compare", "--count", "1", "--eps", "0.01", "--methods", "ibp", "lp", "--timeout", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("network: ") and "ibp bound" in lines[1]
    assert lines[-1].startswith("bound = sound lower bound") and len(lines) == 4
    assert "HiGHS" not in done.stdout and "compare:" not in done.stdout  # no banner, no bar


def _empty_box(tiny):
    return write_robustness(tiny["tmp"] / "empty.vnnlib", [0.6] * 4, [0.4] * 4, 0, 3)


BAD_INPUTS = [
    (lambda t: ["verify", t["relu"], _empty_box(t)], "input box is empty"),
    (lambda t: ["verify", t["relu"], t["prop"], "--timeout", "nan"], "--timeout"),
    (lambda t: ["verify", t["relu"], t["prop"], "--timeout", "inf"], "--timeout"),
    (lambda t: ["verify", t["relu"], t["prop"], "--timeout", "0"], "--timeout"),
    (lambda t: ["verify", t["relu"], t["prop"], "--device", "foo"], "--device"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "krelu", "--k", "0"], "--k"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "krelu", "--k", "9"], "--k"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "ibp", "--solver", "highs"], "no solver"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "crown", "--solver", "highs"], "no solver"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "sdp-dual1", "--solver", "scs"],
     "no solver"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "exact", "--solver", "fo-sdp"],
     "cannot take LP"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "lp", "--solver", "fo-sdp"],
     "cannot take LP"),
    (lambda t: ["verify", t["relu"], t["prop"], "--method", "sdp", "--solver", "highs"],
     "cannot take LAYERED-QCQP or SDP"),
    (lambda t: ["verify", "--instances", "x.csv", "--timeout", "0"], "--timeout"),
    (lambda t: ["verify", t["relu"], t["prop"], "--instances", "x.csv"], "not both"),
    (lambda t: ["compare", "--eps", "nan"], "--eps"),
    (lambda t: ["compare", "--eps", "-0.1"], "--eps"),
    (lambda t: ["compare", "--timeout", "0"], "--timeout"),
    (lambda t: ["compare", "--methods", "crown", "nope"], "nope"),
    (lambda t: ["compare", "--network", t["relu"]], "does not take MNIST images"),
]


@pytest.mark.parametrize("make_args, needle", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line_and_no_work(tiny, capfd, monkeypatch, make_args, needle):
    import relax.compare

    def no_work(*args, **kwargs):
        raise AssertionError("work started on bad input")

    monkeypatch.setattr(VERIFY_MODULE, "verify", no_work)
    monkeypatch.setattr(relax.compare, "compare", no_work)
    assert main(make_args(tiny)) == 2
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relax: error:") and needle in lines[0], lines
    assert captured.out == ""


def test_bad_input_in_a_subprocess_has_no_traceback_and_no_progress_bar(tiny):
    done = run_cli("compare", "--network", tiny["relu"])
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("relax: error: the network takes 4 inputs, so it does not "
                                   "take MNIST images (784 pixels)")


def test_a_bug_is_an_internal_error_not_bad_input(tiny, capfd, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast")

    monkeypatch.setattr(VERIFY_MODULE, "verify", broken)
    assert main(["verify", tiny["relu"], tiny["prop"]]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["relax: internal error: ValueError: operands could not be broadcast "
                   "(run with -v for the traceback)"]
    assert main(["-v", "verify", tiny["relu"], tiny["prop"]]) == 1
    err = capfd.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("relax: internal error")


def test_ctrl_c_in_a_command_exits_130_with_one_line(tiny, capfd, monkeypatch):
    import relax.io.onnx_import

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(relax.io.onnx_import, "from_onnx", interrupted)
    assert main(["verify", tiny["relu"], tiny["prop"]]) == 130
    assert capfd.readouterr().err.strip().splitlines() == ["relax: interrupted"]


@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_ctrl_c_during_start_up_exits_130_without_traceback(tiny, delay):
    """SIGINT while the CLI still imports torch (about 2 s here)."""
    process = subprocess.Popen([sys.executable, "-m", "relax.cli", "verify", tiny["relu"],
                                tiny["prop"], "--method", "exact"], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert process.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines() == ["relax: interrupted"] and out == ""


def test_no_sparse_invariant_warning():
    """torch warns ("Sparse invariant checks ... SEGFAULT") once per process when a sparse
    tensor is built without saying whether to check it: relax says so."""
    script = textwrap.dedent("""
        import scipy.sparse as sp, torch
        from relax.bounds.torch_network import _to_torch
        w = _to_torch(sp.random(5, 4, density=0.5, format="csr", random_state=0),
                      torch.device("cpu"), torch.float64)
        print(w.to_dense().shape)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0 and "torch.Size([5, 4])" in done.stdout
    assert "Sparse invariant" not in done.stderr


def test_a_long_single_run_shows_its_progress_unless_quiet(tiny, capfd, monkeypatch):
    import logging

    import relax.console
    from relax.protocol import BoundOutcome

    def chatty(network, specs, deadline, options):
        logging.getLogger("relax.chatty").info("phase lp, bound -0.5")
        return [BoundOutcome(1.0) for _ in specs]

    monkeypatch.setattr(relax.console, "PROGRESS_AFTER_SECONDS", 0.0)
    monkeypatch.setitem(VERIFY_MODULE.BOUND_METHODS, "crown", chatty)
    assert main(["verify", tiny["relu"], tiny["prop"], "--method", "crown"]) == 0
    captured = capfd.readouterr()
    assert "relax: phase lp, bound -0.5" in captured.err and captured.out.startswith("holds")
    assert main(["verify", tiny["relu"], tiny["prop"], "--method", "crown", "--quiet"]) == 0
    assert "phase lp" not in capfd.readouterr().err
    monkeypatch.setattr(relax.console, "PROGRESS_AFTER_SECONDS", 3600.0)
    assert main(["verify", tiny["relu"], tiny["prop"], "--method", "crown"]) == 0
    assert "phase lp" not in capfd.readouterr().err  # a quick run stays silent


def test_help_lists_every_method_and_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["verify", "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    for method in BOUND_METHODS:
        assert f"\n  {method} " in text
    assert "complete" in text and "examples:" in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("relax ")


def test_help_method_lists_the_typed_options(capfd):
    assert main(["verify", "--help-method", "krelu"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("options of method 'krelu'") and "\n  k " in out


@pytest.mark.parametrize("setting, needle", [
    ("krelu.nope=1", "no option 'nope'"),
    ("krelu.k=abc", "krelu.k"),
    ("k=2", "METHOD.NAME=VALUE"),
])
def test_bad_set_exits_2_before_any_work(tiny, capfd, monkeypatch, setting, needle):
    monkeypatch.setattr(VERIFY_MODULE, "verify", lambda *a, **k: pytest.fail("work started"))
    assert main(["verify", tiny["relu"], tiny["prop"], "--method", "krelu", "--set", setting]) == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_set_reaches_the_method(tiny, monkeypatch):
    from relax.krelu.method import KreluOptions

    seen = []

    def spy(network, specs, deadline, options):
        seen.append(options.of(KreluOptions).k)
        from relax.protocol import BoundOutcome
        return [BoundOutcome(1.0) for _ in specs]

    monkeypatch.setitem(VERIFY_MODULE.BOUND_METHODS, "krelu", spy)
    assert main(["verify", tiny["relu"], tiny["prop"], "--method", "krelu", "--set", "krelu.k=2"]) == 0
    assert main(["verify", tiny["relu"], tiny["prop"], "--method", "krelu", "--k", "4"]) == 0
    assert main(["verify", tiny["relu"], tiny["prop"], "--method", "krelu"]) == 0
    assert seen == [2, 4, KreluOptions().k]
