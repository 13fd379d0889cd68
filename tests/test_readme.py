"""The README's Python examples run as written (public signatures stay in sync).

The examples' file names are linked into a temporary directory from the shared data, ``x``
is an MNIST-like image, and the training example runs on 256 training images (its
``TrainConfig`` gets ``limit=256``); everything else is the README's own text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_the_readme_has_python_examples():
    assert len(_examples()) >= 2


@pytest.mark.parametrize("index", range(len(_examples())))
def test_readme_example_runs(index, shared_data, tmp_path, monkeypatch):
    mnistfc = shared_data / "vnncomp2021" / "mnistfc"
    for name in ("mnist-net_256x2.onnx", "prop_0_0.03.vnnlib"):
        (tmp_path / name).symlink_to(mnistfc / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAX_DATA", str(shared_data))
    from relax.train import loop

    monkeypatch.setattr(loop, "TrainConfig", functools.partial(loop.TrainConfig, limit=256,
                                                                progress_bar=False))
    x = np.random.default_rng(0).uniform(size=784)
    exec(compile(_examples()[index], f"README.md example {index}", "exec"), {"x": x})
