"""Which neurons are relaxed jointly (Singh et al. 2019; Müller et al. 2022).

Unstable neurons of a layer are ranked by ``-l u`` (the area of their triangle
relaxation is proportional to it), cut into consecutive windows of ``ns``
neurons, and within every window the ``k``-subsets are taken in lexicographic
order, keeping one only if it shares at most ``s`` neurons with every subset
kept so far (checked through the set of used ``(s+1)``-subsets).
"""

from __future__ import annotations

import itertools

import numpy as np

from relax.errors import UsageError

__all__ = ["select_groups"]


def select_groups(lower: np.ndarray, upper: np.ndarray, k: int, ns: int = 20, s: int = 1,
                  max_groups: int | None = None) -> list[tuple[int, ...]]:
    """Groups (sorted neuron indices) of ``k`` unstable neurons of one layer."""
    if k < 1 or s < 0 or s >= k or ns < k:
        raise UsageError(f"k-ReLU groups need 1 <= k, 0 <= s < k <= ns; got k={k}, s={s}, ns={ns}")
    unstable = np.flatnonzero((lower < 0) & (upper > 0))
    order = unstable[np.argsort(lower[unstable] * upper[unstable], kind="stable")]  # most -l*u first
    groups: list[tuple[int, ...]] = []
    for start in range(0, len(order), ns):
        window = order[start:start + ns]
        if len(window) < k:
            break
        used: set[tuple[int, ...]] = set()
        for subset in itertools.combinations(window.tolist(), k):
            subset = tuple(sorted(subset))
            overlaps = list(itertools.combinations(subset, s + 1))
            if any(o in used for o in overlaps):
                continue
            used.update(overlaps)
            groups.append(subset)
            if max_groups is not None and len(groups) >= max_groups:
                return groups
    return groups
