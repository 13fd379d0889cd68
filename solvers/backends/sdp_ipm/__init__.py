r"""``sdp-ipm``: a structured primal-dual interior-point solver for the ReLU SDP.

Modules by job: :mod:`.problem` (the multiplier form with fixed coordinates eliminated,
stably active neurons substituted with cuts, and coordinates scaled to ``[-1, 1]``; the
adapter to fo-sdp's parameter layout), :mod:`.reduced` (the float64 certificate of the
substituted form), :mod:`.sdpa` (SDPA files and DSDP 5 on them, a reference),
:mod:`.start` (a strictly feasible dual start from the CROWN-like multipliers),
:mod:`.schur` (the constraint operator and its Schur complement, using that every
constraint is a rank-one or rank-two update of one row/column of ``P``), :mod:`.ipm`
(HKM direction, Mehrotra predictor-corrector), :mod:`.backend` (options, warm start,
the rigorous float64 re-certification of the multipliers).
"""

from solvers.backends.sdp_ipm.backend import (IpmOptions, IpmWarmStart, SdpIpmBackend,
                                              memory_estimate)

__all__ = ["SdpIpmBackend", "IpmOptions", "IpmWarmStart", "memory_estimate"]
