"""Placeholder: the block LDL^T certificate (next commit)."""

import math


def block_lower_eigenvalue(data, lams, kappa, estimate=None) -> float:
    return -math.inf
