"""A torch mirror of :class:`relax.network.Network` for batched bound computations.

Weights live on one device in one dtype (float64 by default).  Sparse weights
(lowered convolutions) stay sparse on the torch side too; :func:`matmul_weight`
hides the difference from the bound rules.  :meth:`TorchNetwork.from_module` is the
differentiable entry point for training: it *shares* an ``nn.Sequential``'s
parameters (no copy), so IBP/CROWN computed on it carry autograd to the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from relax.network import Network

__all__ = ["TorchNetwork", "resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks CUDA when present; an unavailable CUDA is a clear error."""
    from relax.errors import UsageError

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but no CUDA GPU is available here")
    return device


def _to_torch(matrix, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if hasattr(matrix, "tocoo"):
        coo = matrix.tocoo()
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        values = torch.from_numpy(coo.data)
        sparse = torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=True)
        return sparse.to(device=device, dtype=dtype).coalesce()
    return torch.tensor(np.asarray(matrix), device=device, dtype=dtype)


@dataclass(frozen=True, eq=False)
class TorchNetwork:
    """Weights ``W_k`` (out, in), biases ``b_k`` and activations of a canonical network."""

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    activations: tuple
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def from_network(
        cls, network: Network, device: str | torch.device | None = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> "TorchNetwork":
        device = resolve_device(device)
        weights = tuple(_to_torch(a.weight, device, dtype) for a in network.affines)
        biases = tuple(_to_torch(a.bias, device, dtype) for a in network.affines)
        return cls(weights, biases, network.activations, device, dtype)

    @classmethod
    def from_module(cls, model: torch.nn.Module) -> "TorchNetwork":
        """The network of ``Linear (Act Linear)*`` (a leading ``Flatten`` allowed) with the
        module's own parameters (their dtype and device; gradients flow to them)."""
        from relax.bounds.activations import RULES
        from relax.errors import UsageError

        kinds = {rule.torch_module: rule.ir for rule in RULES.values()}
        modules = [m for m in (model if isinstance(model, torch.nn.Sequential) else [model])
                   if not isinstance(m, (torch.nn.Flatten, torch.nn.Identity))]
        weights, biases, activations = [], [], []
        for index, module in enumerate(modules):
            if index % 2 == 0 and isinstance(module, torch.nn.Linear):
                weights.append(module.weight)
                biases.append(module.weight.new_zeros(module.out_features) if module.bias is None
                              else module.bias)
            elif index % 2 == 1 and type(module) in kinds:
                activations.append(kinds[type(module)]())
            else:
                raise UsageError(f"bounds of a torch model need Linear (Act Linear)*; got "
                                 f"{type(module).__name__} at position {index}")
        if not weights or len(activations) != len(weights) - 1:
            raise UsageError("bounds of a torch model need a model that starts and ends with nn.Linear")
        first = weights[0]
        return cls(tuple(weights), tuple(biases), tuple(activations), first.device, first.dtype)

    @property
    def num_layers(self) -> int:
        """Number of affine layers ``L + 1``."""
        return len(self.weights)

    def tensor(self, array) -> torch.Tensor:
        return torch.tensor(np.asarray(array), device=self.device, dtype=self.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Batched forward pass ``x`` (batch, n_in) -> (batch, n_out), differentiable."""
        a = x
        for k in range(self.num_layers):
            z = self.affine(k, a)
            a = activation_torch(self.activations[k], z) if k < len(self.activations) else z
        return a

    def affine(self, k: int, a: torch.Tensor) -> torch.Tensor:
        """``W_k a + b_k`` for ``a`` of shape (..., in)."""
        return matmul_weight(a, self.weights[k], transpose=True) + self.biases[k]

    def back(self, k: int, coeffs: torch.Tensor) -> torch.Tensor:
        """``coeffs @ W_k`` for coefficient rows ``coeffs`` of shape (..., out)."""
        return matmul_weight(coeffs, self.weights[k], transpose=False)


def matmul_weight(x: torch.Tensor, weight: torch.Tensor, transpose: bool) -> torch.Tensor:
    """``x @ W.T`` (transpose) or ``x @ W`` for dense or sparse ``W`` and batched ``x``."""
    if not weight.is_sparse:
        return x @ (weight.T if transpose else weight)
    w = weight if transpose else weight.t()  # we need (W or W.T) @ x.T
    flat = x.reshape(-1, x.shape[-1])
    out = torch.sparse.mm(w, flat.T).T
    return out.reshape(*x.shape[:-1], out.shape[-1])


def activation_torch(activation, z: torch.Tensor) -> torch.Tensor:
    """``act(z)`` from the activation's rule (:data:`relax.bounds.activations.RULES`)."""
    from relax.bounds.activations import rule_of

    return rule_of(activation).value(z)
