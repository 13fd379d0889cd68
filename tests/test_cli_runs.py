"""Instance runs: workers give the sequential rows, resume neither recomputes nor loses,
an existing output is never overwritten, Ctrl-C keeps finished rows, metadata columns."""

from __future__ import annotations

import csv
import importlib

import pytest

from relax.cli import main
from relax.runs.records import COLUMNS
from tests.test_cli_contract import write_mlp, write_robustness

RUNS_LOCAL = importlib.import_module("relax.runs.local")


@pytest.fixture()
def listing(tmp_path):
    """Six instances on two small ReLU nets: boxes of growing width, so verdicts differ."""
    lines = []
    for n, seed in enumerate((1, 2)):
        net = write_mlp(tmp_path / f"net{n}.onnx", [4, 8, 8, 3], seed=seed)
        for k, width in enumerate((0.01, 0.2, 0.6)):
            prop = write_robustness(tmp_path / f"p{n}{k}.vnnlib", [0.5 - width] * 4,
                                    [0.5 + width] * 4, k % 3, 3)
            lines.append(f"{net},{prop},20")
    path = tmp_path / "instances.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def rows_of(path) -> dict:
    with open(path, newline="") as handle:
        return {r["property"]: r for r in csv.DictReader(handle)}


def test_two_workers_give_the_sequential_rows(listing, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    base = ["verify", "--instances", str(listing), "--method", "crown"]
    assert main([*base, "--output", str(one)]) == 0
    assert main([*base, "--output", str(two), "--workers", "2", "--threads", "1"]) == 0
    first, second = rows_of(one), rows_of(two)
    assert len(first) == 6 and first.keys() == second.keys()
    assert {r["verdict"] for r in first.values()} >= {"holds"}
    for key, row in first.items():
        assert (row["verdict"], row["bound"]) == (second[key]["verdict"], second[key]["bound"])


def test_results_carry_version_options_solver_machine_and_command(listing, tmp_path):
    out = tmp_path / "r.csv"
    assert main(["verify", "--instances", str(listing), "--method", "lp", "--output", str(out)]) == 0
    with out.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        row = next(reader)
    assert row["relax_version"] and "cores" in row["machine"] and row["solver"] == "highs"
    assert '"solver": null' in row["options"] and row["command"].startswith("relax verify")


def test_an_existing_output_is_refused_without_resume(listing, tmp_path, capfd):
    out = tmp_path / "r.csv"
    out.write_text("precious\n")
    assert main(["verify", "--instances", str(listing), "--output", str(out)]) == 2
    assert "--resume" in capfd.readouterr().err and out.read_text() == "precious\n"


def test_resume_runs_only_the_missing_rows(listing, tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    base = ["verify", "--instances", str(listing), "--method", "ibp", "--output", str(out)]
    assert main(base) == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:4]) + "\n")  # header + 3 rows survive an interrupted run
    ran = []
    original = RUNS_LOCAL.run_instance
    monkeypatch.setattr(RUNS_LOCAL, "run_instance", lambda i, *a: ran.append(i) or original(i, *a))
    assert main([*base, "--resume"]) == 0
    assert len(ran) == 3 and out.read_text().splitlines()[:4] == lines[:4]
    assert len(rows_of(out)) == 6
    ran.clear()
    assert main([*base, "--resume"]) == 0 and ran == []  # nothing left to do
    assert main([*base, "--resume", "--timeout", "3"]) == 0 and len(ran) == 6  # other options


def test_ctrl_c_keeps_the_finished_rows(listing, tmp_path, monkeypatch, capfd):
    out = tmp_path / "r.csv"
    original, calls = RUNS_LOCAL.run_instance, []

    def interrupted_third(instance, *args):
        calls.append(instance)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(instance, *args)

    monkeypatch.setattr(RUNS_LOCAL, "run_instance", interrupted_third)
    assert main(["verify", "--instances", str(listing), "--method", "ibp",
                 "--output", str(out)]) == 130
    assert len(rows_of(out)) == 2
    assert capfd.readouterr().err.strip().splitlines()[-1] == "relax: interrupted"
