"""The ``alpha-crown`` verification method: CROWN, then alpha-CROWN per open disjunct.

alpha-CROWN (:func:`relax.bounds.alpha.alpha_crown`) optimises the ReLU lower slopes
of the CROWN backward pass, one set per objective row and per intermediate bound
row, by projected Adam; sigmoid/tanh/softplus layers keep their fixed sound lines.
Every iterate is a valid bound, so the result is a sound lower bound on each
disjunct's margin, never below CROWN's (the maximum of both is returned).
Incomplete.  With ``VerifyOptions.bound_only`` every disjunct gets alpha-CROWN,
even when CROWN already proves the property.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from relax.bounds import bound_specs
from relax.bounds.alpha import AlphaSettings
from relax.network import Network
from relax.protocol import BoundOutcome, VerifyOptions
from relax.search.beta_crown import root_alpha_bounds
from relax.spec import Spec

__all__ = ["alpha_crown_method", "DEFAULT_ALPHA", "alpha_disjunct_bounds"]

#: the method's settings: auto_LiRPA's defaults (20 Adam steps at lr 0.5, decayed by 0.98 per step)
DEFAULT_ALPHA = AlphaSettings(iterations=20, lr=0.5, lr_decay=0.98)


def alpha_disjunct_bounds(network: Network, spec: Spec, disjuncts, deadline=None,
                          settings: AlphaSettings = DEFAULT_ALPHA) -> np.ndarray:
    """alpha-CROWN lower bounds on the margins of ``disjuncts`` of ``spec``."""
    disjuncts = list(disjuncts)
    if not disjuncts:
        return np.zeros(0)
    root, _, _ = root_alpha_bounds(network, spec, disjuncts, deadline=deadline,
                                   alpha_settings=settings)
    return root.bound.numpy().astype(float)


def alpha_crown_method(network: Network, specs: Sequence[Spec], deadline, options: VerifyOptions,
                       settings: AlphaSettings = DEFAULT_ALPHA) -> list[BoundOutcome]:
    """Per spec: the minimum over disjuncts of max(CROWN, alpha-CROWN)."""
    outcomes = []
    for spec, crown in zip(specs, bound_specs(network, list(specs), "crown", device=options.device)):
        per_disjunct = np.array(crown.disjunct_bounds, dtype=float)
        todo = [j for j, b in enumerate(per_disjunct) if options.bound_only or b <= 0]
        if todo:
            alpha = alpha_disjunct_bounds(network, spec, todo, deadline, settings)
            per_disjunct[todo] = np.maximum(per_disjunct[todo], alpha)
        outcomes.append(BoundOutcome(float(per_disjunct.min())))
    return outcomes
