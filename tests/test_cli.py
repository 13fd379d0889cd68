"""The command line: verdicts as JSON, one-line errors with exit code 2, instance lists."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from relax.cli import main
from relax.data import default_images, default_network_path

MNISTFC = ("vnncomp2021", "mnistfc")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relax.cli", *args], capture_output=True, text=True)


@pytest.fixture()
def net_and_prop(shared_data):
    folder = shared_data.joinpath(*MNISTFC)
    return str(folder / "mnist-net_256x2.onnx"), str(folder / "prop_0_0.03.vnnlib")


def test_verify_json_reports_a_sound_verdict(net_and_prop, capsys):
    from relax import from_onnx, read_vnnlib

    assert main(["verify", *net_and_prop, "--method", "crown", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["verdict"] in {"holds", "violated", "unknown"}
    assert payload["method"] == "crown" and payload["seconds"] >= 0
    net, specs = from_onnx(net_and_prop[0]), read_vnnlib(net_and_prop[1])
    if payload["verdict"] == "violated":
        x = np.array(payload["counterexample"])
        assert any(s.is_violated_by(x, net.forward(x)) for s in specs)
    elif payload["verdict"] == "holds":
        assert payload["bound"] > 0
    else:
        assert payload["reason"]


@pytest.mark.parametrize("make_args, needle", [
    (lambda net, prop, tmp: ["verify", str(tmp / "missing.onnx"), prop], "missing.onnx"),
    (lambda net, prop, tmp: ["verify", net, str(tmp / "bad.vnnlib")], "bad.vnnlib:1:"),
    (lambda net, prop, tmp: ["verify", prop, prop], "onnx"),
    (lambda net, prop, tmp: ["verify", net, prop, "--method", "nope"], "--method"),
    (lambda net, prop, tmp: ["verify", net, prop, "--timeout", "-3"], "timeout"),
    (lambda net, prop, tmp: ["verify", net], "PROPERTY"),
    (lambda net, prop, tmp: ["verify", "--instances", str(tmp / "none.csv")], "none.csv"),
    (lambda net, prop, tmp: ["compare", "--count", "0"], "--count"),
])
def test_bad_input_exits_2_with_one_line(net_and_prop, tmp_path, make_args, needle):
    (tmp_path / "bad.vnnlib").write_text("(declare-const X_0 Real))\n")
    result = run_cli(*make_args(*net_and_prop, tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relax: error:") and needle in lines[0]
    assert "Traceback" not in result.stderr


def test_instances_survive_a_failing_row(net_and_prop, tmp_path):
    net, prop = net_and_prop
    listing = tmp_path / "instances.csv"
    (tmp_path / "broken.vnnlib").write_text("(assert (<= X_0 1)\n")
    listing.write_text(f"{net},{prop},30\n{net},broken.vnnlib,30\n")
    out = tmp_path / "results.csv"
    assert main(["verify", "--instances", str(listing), "--method", "ibp", "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    assert rows[1]["verdict"] == "unknown" and "VnnlibSyntaxError" in rows[1]["reason"]
    assert rows[0]["verdict"] in {"holds", "violated", "unknown"}


def test_compare_table_lists_every_method(capsys):
    assert main(["compare", "--count", "1", "--eps", "0.01", "0.3", "--methods", "ibp", "crown",
                 "--timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert "ibp bound" in out and "crown bound" in out
    table = [line.split() for line in out.splitlines() if line.strip().startswith("0 ")]
    assert len(table) == 2  # one row per eps


def test_embedded_network_and_images_fit_together():
    from relax import from_onnx

    network = from_onnx(default_network_path())
    images, labels = default_images()
    assert images.shape[1] == network.input_size
    predictions = np.argmax(network.forward(images), axis=1)
    assert np.mean(predictions == labels) >= 0.9


@pytest.mark.parametrize("solver, needle", [
    ("gurobi", "unknown solver"),
    ("scs", "cannot take MILP"),
])
def test_solver_errors_exit_2(net_and_prop, solver, needle):
    result = run_cli("verify", *net_and_prop, "--method", "milp", "--solver", solver)
    assert result.returncode == 2 and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unlicensed_solver_is_reported_not_crashed(net_and_prop):
    from solvers import get_solver

    available, _ = get_solver("mosek").is_available()
    if available:
        pytest.skip("MOSEK has a licence here")
    result = run_cli("verify", *net_and_prop, "--method", "lp", "--solver", "mosek")
    assert result.returncode == 2 and ("licen" in result.stderr or "not installed" in result.stderr)


def test_solvers_lists_every_backend_with_its_status():
    result = run_cli("solvers")
    assert result.returncode == 0
    names = {line.split()[0] for line in result.stdout.splitlines()[1:]}
    assert {"highs", "cvxpy-clarabel", "cvxpy-scs", "cvxpy-mosek"} <= names
