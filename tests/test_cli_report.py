"""``relax report`` (Markdown summary, cactus plot, time scatter) and ``relax compare``'s
formats and tightness ladder: files exist and hold what they should (matplotlib objects)."""

from __future__ import annotations

import csv
import json

import pytest

from relax.cli import main
from relax.report import read_run, read_truth, summary_markdown, wrong_rows

pytest.importorskip("matplotlib")


def write_results(path, rows) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "property", "verdict", "bound", "method", "seconds", "reason"])
        writer.writerows(rows)
    return str(path)


@pytest.fixture()
def two_runs(tmp_path):
    a = write_results(tmp_path / "a.csv", [
        ["n1.onnx", "p1.vnnlib", "holds", "0.1", "exact", "1.0", ""],
        ["n1.onnx", "p2.vnnlib", "violated", "", "exact", "2.0", ""],
        ["n2.onnx", "p3.vnnlib", "unknown", "", "exact", "9.0", "time limit"],
        ["n2.onnx", "p4.vnnlib", "holds", "0.2", "exact", "4.0", ""]])
    b = write_results(tmp_path / "b.csv", [
        ["n1.onnx", "p1.vnnlib", "holds", "0.1", "crown", "0.1", ""],
        ["n1.onnx", "p2.vnnlib", "unknown", "", "crown", "0.2", ""],
        ["n2.onnx", "p3.vnnlib", "unknown", "", "crown", "0.3", ""],
        ["n2.onnx", "p4.vnnlib", "violated", "", "crown", "0.4", ""]])  # wrong vs the truth
    truth = write_results(tmp_path / "truth.csv", [
        ["n1.onnx", "p1.vnnlib", "holds", "", "", "0", ""],
        ["n1.onnx", "p2.vnnlib", "violated", "", "", "0", ""],
        ["n2.onnx", "p4.vnnlib", "holds", "", "", "0", ""]])
    return a, b, truth


def test_summary_counts_per_run_and_network(two_runs):
    a, b, truth = two_runs
    runs, known = [read_run(a), read_run(b)], read_truth(truth)
    assert [r["property"] for r in wrong_rows(runs[1], known)] == ["p4.vnnlib"]
    assert wrong_rows(runs[0], known) == []
    table = summary_markdown(runs, known).splitlines()
    assert "| a (exact) | n1.onnx | 2 | 1 | 1 | 0 | 0 | 2 | 3.0 | 1.50 |" in table
    assert "| b (crown) | n2.onnx | 2 | 0 | 1 | 1 | 1 | 1 | 0.7 | 0.35 |" in table


def test_report_writes_the_markdown_and_both_figures(two_runs, tmp_path, capfd, monkeypatch):
    import matplotlib.pyplot as plt

    import relax.plots

    figures = {}
    for name in ("cactus_plot", "time_scatter"):
        original = getattr(relax.plots, name)
        monkeypatch.setattr(relax.plots, name,
                            lambda runs, path, f=original, n=name: figures.setdefault(n, f(runs, path)))
    a, b, truth = two_runs
    cactus, scatter = tmp_path / "cactus.png", tmp_path / "scatter.png"
    assert main(["report", a, b, "--truth", truth, "--cactus", str(cactus),
                 "--scatter", str(scatter)]) == 0
    out = capfd.readouterr().out
    assert out.startswith("| run | network |") and len(out.strip().splitlines()) == 2 + 4
    assert cactus.stat().st_size > 1000 and scatter.stat().st_size > 1000
    (ax,) = figures["cactus_plot"].axes
    assert len(ax.lines) == 2 and ax.get_ylabel() == "instances solved"
    assert [list(line.get_ydata()) for line in ax.lines] == [[0, 1, 2, 3], [0, 1, 2]]
    (ax,) = figures["time_scatter"].axes
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == 4
    plt.close("all")


def test_report_refuses_a_file_that_is_not_results(tmp_path, capfd):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["report", str(bad)]) == 2
    assert "missing columns" in capfd.readouterr().err


def test_compare_formats_and_ladder_plot(tmp_path, capfd, monkeypatch):
    import relax.plots

    drawn = {}
    original = relax.plots.ladder_plot
    monkeypatch.setattr(relax.plots, "ladder_plot",
                        lambda rows, methods, path: drawn.setdefault("fig", original(rows, methods, path)))
    plot, table = tmp_path / "ladder.png", tmp_path / "t.csv"
    base = ["compare", "--count", "1", "--eps", "0.01", "0.05", "--methods", "ibp", "crown",
            "--timeout", "1"]
    assert main([*base, "--markdown", "--plot", str(plot), "--csv", str(table)]) == 0
    out = capfd.readouterr().out.splitlines()
    assert out[0].startswith("| img | label |") and out[1].startswith("|---|")
    assert len([line for line in out if line.startswith("| 0 |")]) == 2
    (ax,) = drawn["fig"].axes
    series = [line for line in ax.lines if line.get_label().startswith("img 0")]
    assert len(series) == 2 and [t.get_text() for t in ax.get_xticklabels()] == \
        ["ibp", "crown", "exact value"]
    assert [len(line.get_ydata()) for line in series] == [2, 2]
    rows = list(csv.reader(table.open()))
    assert rows[0][:5] == ["img", "label", "pred", "eps", "ibp bound"] and len(rows) == 3
    assert main([*base, "--json"]) == 0
    lines = capfd.readouterr().out.strip().splitlines()
    assert [json.loads(line)["eps"] for line in lines] == [0.01, 0.05]


def test_compare_exact_value_is_what_is_known_of_the_true_margin():
    """On small ReLU nets: '>=' never exceeds the sampled minimum margin, '<=' is the
    margin of a point in the box, '=' matches the MILP; ladder breaks are listed."""
    import numpy as np

    from relax.compare import compare, ladder_breaks
    from relax.search.milp import milp_margin
    from relax.bounds import bound_specs
    from relax.spec import robustness
    from tests.helpers import random_network

    rng = np.random.default_rng(3)
    network = random_network(rng, [4, 8, 8, 3])
    images = rng.uniform(0.2, 0.8, size=(3, 4))
    labels = np.argmax(network.forward(images), axis=1)
    rows = compare(network, images, labels, [0.02, 0.3], ["ibp", "crown", "lp", "exact"], 20.0)
    relations = set()
    for row in rows:
        spec = robustness(images[row.image], row.label, row.eps, num_classes=3)
        xs = rng.uniform(spec.lower, spec.upper, size=(20000, 4))
        sampled = spec.margin(network.forward(xs)).min()
        assert row.exact is not None
        relations.add(row.exact.relation)
        if row.exact.relation == ">=":
            assert row.exact.value <= sampled + 1e-9
        elif row.exact.relation == "<=":
            assert row.exact.value <= 0.0
        else:
            bounds = bound_specs(network, [spec], "crown")[0].layers
            assert row.exact.value == pytest.approx(milp_margin(network, spec, bounds), abs=1e-6)
        for method in ("ibp", "crown", "lp"):  # bound mode: sound bounds, no attack
            assert row.results[method].bound <= sampled + 1e-9
            assert row.results[method].verdict.value != "violated"
        breaks = ladder_breaks(row, ["ibp", "crown", "lp"])
        assert ("crown", "lp") not in breaks  # the LP over CROWN's bounds is never looser
        assert not [b for _, b in breaks if b == "exact"]  # no bound above the true margin
    assert relations & {">=", "<="}


def test_ladder_breaks_flag_a_looser_bound_above_a_finished_tighter_one():
    from relax.compare import Comparison, ExactValue, ladder_breaks, render_table
    from relax.result import Result, Verdict

    def result(bound, seconds=0.1):
        return Result(Verdict.UNKNOWN, bound, "m", None, seconds)

    methods = ["ibp", "crown", "lp"]
    row = Comparison(0, 1, 1, 0.1, {"ibp": result(-2.0), "crown": result(1.0), "lp": result(0.5)},
                     ExactValue("<=", 0.7, "exact"), timeout=5.0)
    assert ladder_breaks(row, methods) == [("crown", "lp"), ("crown", "exact")]
    late = Comparison(0, 1, 1, 0.1, {"ibp": result(-2.0), "crown": result(1.0),
                                     "lp": result(0.5, seconds=5.0)}, None, timeout=5.0)
    assert ladder_breaks(late, methods) == []  # lp stopped at the limit: not a bug
    table = render_table([row, late], methods).splitlines()
    assert table[1].endswith("crown>lp!, crown>exact!") and table[2].endswith("ok")
    # alpha-crown above a finished lp: a bug on a ReLU net, not on a smooth one
    smooth = {"crown": result(0.1), "alpha-crown": result(0.6), "lp": result(0.5)}
    three = ["crown", "alpha-crown", "lp"]
    assert ladder_breaks(Comparison(0, 1, 1, 0.1, smooth, None, 5.0), three) == [("alpha-crown", "lp")]
    assert ladder_breaks(Comparison(0, 1, 1, 0.1, smooth, None, 5.0, relu=False), three) == []
    assert "+0.500*" in table[2] and "+0.500*" not in table[1]
