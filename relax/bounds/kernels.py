"""Batched tensor kernels of the bound computations (alpha/beta-CROWN's inner loop):
each is an exact rewrite of a plain expression that costs far less on the CPU."""

from __future__ import annotations

import torch

__all__ = ["box_minimum", "cast_batch", "row_dot"]


def cast_batch(t: torch.Tensor, dtype) -> torch.Tensor:
    """``t`` in ``dtype``; a tensor expanded along the batch (stride 0) stays expanded."""
    if t.dim() and t.shape[0] > 1 and t.stride(0) == 0:
        return t[:1].to(dtype).expand_as(t)
    return t.to(dtype)


def row_dot(rows, vectors):
    """``rows[b, r] . vectors[b]`` (batch, rows) for rows (batch, rows, n) and vectors
    (batch, n): an elementwise product and a sum (a batched matmul of 1-column matrices
    costs several times more on the CPU)."""
    return (rows * vectors.unsqueeze(-2)).sum(-1)


def box_minimum(coeffs, lower, upper):
    """``min over lower <= x <= upper of coeffs[b, r] . x`` = ``coeffs . centre - |coeffs| . radius``
    (batch, rows); one matrix-vector product when every domain has the same box (the
    children of a branch and bound: ``lower`` expanded from one row)."""
    if lower.shape[0] == 1 or (lower.stride(0) == 0 and upper.stride(0) == 0):
        lower, upper = lower[0], upper[0]
        return coeffs @ ((lower + upper) / 2) - coeffs.abs() @ ((upper - lower) / 2)
    return row_dot(coeffs, (lower + upper) / 2) - row_dot(coeffs.abs(), (upper - lower) / 2)
