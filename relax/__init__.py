"""relax: a convex-optimization verifier backend for neural networks.

The small public surface:

- networks: :class:`Network` (``from_onnx``, ``from_torch``), layers in :mod:`relax.network`;
- properties: :class:`Spec`, :func:`robustness`, :func:`read_vnnlib`;
- bounds: :func:`bound_specs` (IBP, CROWN);
- verification: :func:`verify` -> :class:`Result` with a :class:`Verdict`.
"""

from relax import _cli_guard  # noqa: F401  (first: Ctrl-C during the imports of the CLI)
from relax.bounds import bound_specs
from relax.errors import RelaxError
from relax.network import Affine, Network, ReLU, Sigmoid, Softplus, Tanh
from relax.result import Result, Verdict
from relax.spec import Conjunction, Spec, robustness
from relax.protocol import VerifyOptions
from relax.verify import verify

__all__ = [
    "Affine", "Network", "ReLU", "Sigmoid", "Softplus", "Tanh",
    "Conjunction", "Spec", "robustness",
    "bound_specs", "verify", "VerifyOptions", "Result", "Verdict", "RelaxError",
    "from_onnx", "from_torch", "read_vnnlib",
]


def __getattr__(name):
    """Importers load lazily so that ``import relax`` stays light."""
    if name == "from_onnx":
        from relax.io.onnx_import import from_onnx

        return from_onnx
    if name == "from_torch":
        from relax.io.torch_import import from_torch

        return from_torch
    if name == "read_vnnlib":
        from relax.io.vnnlib import read_vnnlib

        return read_vnnlib
    raise AttributeError(f"module 'relax' has no attribute {name!r}")
