"""``relax bound``: the method's own bound on every disjunct, no attack, no early exit."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from relax import from_onnx, read_vnnlib
from relax.bounding import bound_report
from relax.bounds import bound_specs
from relax.cli import main
from relax.protocol import VerifyOptions
from tests.test_cli_contract import tiny, write_mlp, write_robustness  # noqa: F401 (fixture)

VERIFY_MODULE = importlib.import_module("relax.verify")


@pytest.mark.parametrize("method", ["ibp", "crown", "lp"])
def test_bound_json_gives_every_disjunct_and_the_minimum(tiny, capfd, method):  # noqa: F811
    assert main(["bound", tiny["relu"], tiny["prop"], "--method", method, "--json"]) == 0
    payload = json.loads(capfd.readouterr().out)
    network = from_onnx(tiny["relu"])
    (spec,) = read_vnnlib(tiny["prop"])
    values = np.array(payload["specs"][0]["disjuncts"], dtype=float)
    assert len(values) == len(spec.disjuncts) == 2
    assert payload["bound"] == pytest.approx(values.min())
    rng = np.random.default_rng(0)
    xs = rng.uniform(spec.lower, spec.upper, size=(4000, spec.lower.size))
    ys = network.forward(xs)
    for value, disjunct in zip(values, spec.disjuncts):  # sound on each disjunct
        assert value <= disjunct.margin(ys).min() + 1e-9
    if method in ("ibp", "crown"):  # the same numbers as the bound code itself
        expected = bound_specs(network, [spec], method)[0].disjunct_bounds
        np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-12)


def test_bound_mode_never_attacks(tiny, monkeypatch):  # noqa: F811
    def no_attack(*args, **kwargs):
        raise AssertionError("the attack ran in bound mode")

    monkeypatch.setattr(VERIFY_MODULE, "pgd_attack", no_attack)
    network = from_onnx(tiny["relu"])
    specs = read_vnnlib(tiny["prop"])
    report = bound_report(network, specs, "crown")
    result = VERIFY_MODULE.verify(network, specs, "crown", None, VerifyOptions(bound_only=True))
    assert result.verdict.value in ("holds", "unknown")  # never "violated" without an attack
    assert report.bound == pytest.approx(result.bound, abs=1e-12)


def test_bound_refuses_an_empty_box(tiny, capfd):  # noqa: F811
    empty = write_robustness(tiny["tmp"] / "e.vnnlib", [0.6] * 4, [0.4] * 4, 0, 3)
    assert main(["bound", tiny["relu"], empty]) == 2
    assert "input box is empty" in capfd.readouterr().err
