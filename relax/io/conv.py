"""Lowering of structured linear operators to matrices on C-order flattened tensors.

Both importers (:mod:`relax.io.onnx_import`, :mod:`relax.io.torch_import`) use these
helpers, so a convolution or a last-axis matrix product means the same matrix
whichever format the network came from.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from relax.errors import NetworkError

__all__ = ["conv2d_matrix", "conv2d_output_size", "last_axis_matrix"]


def conv2d_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """``floor((size + pad - dilation (kernel - 1) - 1) / stride) + 1`` (``pad`` = both sides)."""
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_matrix(
    weight: np.ndarray,
    bias: np.ndarray | None,
    input_shape: tuple[int, int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
) -> tuple[sp.csr_matrix, np.ndarray, tuple[int, int, int]]:
    """The 2-D cross-correlation (group 1, zero padding) as ``y = W x + b``.

    With ``weight`` of shape (M, C, kH, kW), ``input_shape`` = (C, H, W) and
    ``padding`` = (top, left, bottom, right)::

        y[m, i, j] = b[m] + sum_{c, p, q} weight[m, c, p, q]
                            * x[c, i*sH - top + p*dH, j*sW - left + q*dW]

    where out-of-range input positions read as zero.  ``x`` and ``y`` are
    flattened in C order; returns ``(W, b, (M, OH, OW))`` with ``W`` a CSR matrix
    of shape (M*OH*OW, C*H*W) and ``b`` the bias repeated over positions.
    """
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 4 or len(input_shape) != 3:
        raise NetworkError(
            f"conv2d needs a 4-D weight and a (C, H, W) input, got weight {weight.shape} "
            f"and input {tuple(input_shape)}"
        )
    out_channels, channels, k_h, k_w = weight.shape
    c_in, height, width = (int(d) for d in input_shape)
    if channels != c_in:
        raise NetworkError(f"conv2d weight expects {channels} input channels, the input has {c_in}")
    top, left, bottom, right = padding
    out_h = conv2d_output_size(height, k_h, stride[0], top + bottom, dilation[0])
    out_w = conv2d_output_size(width, k_w, stride[1], left + right, dilation[1])
    if out_h < 1 or out_w < 1:
        raise NetworkError(
            f"conv2d kernel {(k_h, k_w)} does not fit the input {tuple(input_shape)}"
        )
    matrix = _conv2d_sparse(weight, (height, width), (out_h, out_w), stride, padding, dilation)
    bias = np.zeros(out_channels) if bias is None else np.asarray(bias, dtype=np.float64).ravel()
    if bias.shape != (out_channels,):
        raise NetworkError(
            f"conv2d bias has {bias.size} entries for {out_channels} output channels"
        )
    return matrix, np.repeat(bias, out_h * out_w), (out_channels, out_h, out_w)


def _conv2d_sparse(
    weight: np.ndarray,
    size: tuple[int, int],
    out_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
) -> sp.csr_matrix:
    """The ``W`` of :func:`conv2d_matrix`: one entry ``weight[m, c, p, q]`` in row
    ``(m, i, j)`` and column ``(c, i*sH - top + p*dH, j*sW - left + q*dW)`` for every
    in-range input position (C-order indices), explicit zeros removed."""
    out_channels, c_in, k_h, k_w = weight.shape
    height, width = size
    out_h, out_w = out_size
    top, left = padding[0], padding[1]
    rows, cols, vals = [], [], []
    m, i, j, c = np.meshgrid(
        np.arange(out_channels), np.arange(out_h), np.arange(out_w), np.arange(c_in), indexing="ij"
    )
    row = (m * out_h + i) * out_w + j
    for p in range(k_h):
        for q in range(k_w):
            h_in = i * stride[0] - top + p * dilation[0]
            w_in = j * stride[1] - left + q * dilation[1]
            ok = (h_in >= 0) & (h_in < height) & (w_in >= 0) & (w_in < width)
            rows.append(row[ok])
            cols.append(((c * height + h_in) * width + w_in)[ok])
            vals.append(weight[m[ok], c[ok], p, q])
    shape = (out_channels * out_h * out_w, c_in * height * width)
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
    matrix.eliminate_zeros()
    return matrix


def last_axis_matrix(weight: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | sp.csr_matrix:
    """The matrix of ``x -> x @ weight.T`` applied along the last axis of a tensor of ``shape``.

    For ``weight`` of shape (N, K) and ``shape`` = (d_1, ..., d_r, K) this is
    ``I_{d_1 ... d_r} (x) weight`` (Kronecker product) acting on the C-order
    flattened tensor; dense when r = 0, CSR otherwise.
    """
    weight = np.asarray(weight, dtype=np.float64)
    if not shape or shape[-1] != weight.shape[1]:
        raise NetworkError(
            f"a matrix with {weight.shape[1]} columns cannot act on a tensor of shape "
            f"{tuple(shape)}"
        )
    repeats = int(np.prod(shape[:-1], dtype=np.int64))
    if repeats == 1:
        return weight
    return sp.kron(sp.identity(repeats, format="csr"), sp.csr_matrix(weight), format="csr")
