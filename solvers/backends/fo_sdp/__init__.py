r"""``fo-sdp``: a first-order, matrix-free solver for the dual of the ReLU SDP.

The method of Dathathri et al. (2020), *Enabling certification of
verification-agnostic networks via memory-efficient semidefinite programming*
(SDP-FO), for a :class:`~solvers.program.LayeredReluProgram`.

Problem
-------
``min c^T h_L + c0`` over ``h_{k+1} = relu(z_k)``, ``z_k = W_k h_k + b_k``, with
``lo_k <= h_k <= hi_k``.  ``x = [h_0; ...; h_L]`` has ``n`` entries.  Constraints
used, per hidden neuron ``a = h_{k+1,i}`` with pre-activation bounds ``[l, u]``:

* ``a >= 0`` (multiplier ``alpha >= 0``), ``a - z >= 0`` (``beta >= 0``),
  ``a (a - z) = 0`` (``gamma`` free);
* with the ``cuts`` option, the triangle LP's upper side ``s (z - l') - a >= 0``
  (``theta >= 0``): ``s = u / (u - l)`` (rounded up), ``l' = l`` when ``l < 0 < u``,
  ``s = 1, l' = 0`` when ``l >= 0``; none for ``u <= 0``;
* the box, through the normalisation ``x = ctr + rad * xt`` (``ctr``, ``rad`` the
  centre and half-width of ``[lo, hi]``), under which it reads ``xt_i^2 <= 1``
  (``xt_i = 0`` for a fixed coordinate).  ``[1; x] = T [1; xt]`` with
  ``T = [[1, 0], [ctr, diag(rad)]]``.

This is the SDP of Raghunathan, Steinhardt & Liang (2018) (``relax.sdp``) written
in normalised coordinates: both have the same optimum.

Dual bound (exact-penalty form)
-------------------------------
For multipliers ``lam`` (signs as above) the Lagrangian
``L(x) = f(x) - sum_k [alpha_k^T a_k + beta_k^T (a_k - z_k) + gamma_k^T (a_k (a_k - z_k))
+ theta_k^T (s_k (z_k - l'_k) - a_k)]`` is ``<= f(x)`` on the feasible set and equals
``[1; x]^T M [1; x] = [1; xt]^T Mt [1; xt]`` with ``Mt = T^T M T``.  For *any*
``kappa`` in ``R^{1+n}`` let ``D = Mt - diag(kappa)`` and ``q = lambda_min(D)``; then
``D - q I >= 0`` and for every ``P = [1; xt][1; xt]^T`` (``P_00 = 1``, ``0 <= P_ii <= d_i``)::

    f(x) >= <Mt, P> = <D - q I, P> + q + kappa_0 + sum_{i>=1} (kappa_i + q) P_ii
         >= kappa_0 + q + sum_{i>=1} d_i min(0, kappa_i + q)  =: F(lam, kappa)

with ``d_i >= max xt_i^2`` over the box (1 up to rounding, 0 for fixed coordinates,
which are dropped).  This is the paper's bound ``kappa_0 - mu + sum d_i min(0, kappa_i - mu)``,
``mu = max(0, -q)``, without the clipping of ``q`` at 0 (valid for either sign of ``q``,
never smaller, and free of the kink at ``q = 0``).  The argument uses only the lifted
constraints, so ``F`` bounds the SDP relaxation too and its supremum is the SDP
optimum.  ``F`` is concave and *every* ``(lam, kappa)`` with the right signs gives a
valid bound: iterates need no feasibility.  Multipliers are stored scaled
(``alpha = p / rho``, ``gamma = p / rho^2``, ``rho`` the half-width of the
pre-activation bounds) so that all parameters are in objective units.

Modules (one job each)
----------------------
:mod:`.options` (:class:`FoSdpOptions`, read once from ``SolveOptions.extra``; unknown
keys rejected), :mod:`.problem` (float64 data and the dual layout), :mod:`.certificate`
(the rigorous float64 bound) with :mod:`.blocks` (its block LDL^T part past the dense
check), :mod:`.repair` (the Gershgorin ``kappa`` shift: a cheaper way than the uniform
``q`` to pay for ``D``'s negative part; dense, and matrix-free from Lanczos pairs above
the dense limit), :mod:`.kappa` (the best ``kappa`` for given multipliers, from a
low-rank solve of the inner box-constrained SDP), :mod:`.operator` (the one batched matrix-free
``D``), :mod:`.init` (starts from the interval, CROWN and LP bounds), the optimisers
:mod:`.burer_monteiro` (a low-rank primal with an augmented Lagrangian whose
multipliers are the duals), :mod:`.spectral` (L-BFGS on the smoothed dual) and
:mod:`.adam` (Lanczos + Adam), :mod:`.batching` (batches; a single problem is a batch
of one), :mod:`.record` and :mod:`.backend`.  Lanczos and batched ``eigh`` are
:mod:`solvers.linalg`.

Default (``method="auto"``): the spectral L-BFGS below 300 rows (it converges there),
``"bm"`` above: Burer-Monteiro with Nesterov-accelerated multiplier updates, its
multipliers certified after every outer iteration (up to the dense limit with the
Gershgorin shift and the Schur-complement ``kappa_0``, :mod:`.repair`); up to 4000 rows
for 70% of the time, then the spectral L-BFGS from the best of them; above 4000 rows
for the whole time (no dense eigenvalue problem is ever formed).  Lanczos + Adam
(``method="adam"``) stays available.

Never below the start: with ``cuts`` (on by default) and ``init="linear"`` the start's
rigorous bound is CROWN's (``init="lp"``: the triangle LP's), and ``Solution.bound`` is
the largest rigorous value among the start, the best estimate, the last iterate and
every ``check_every``-th iterate.  Warm start: ``Solution.warm_start`` is a
:class:`FoSdpState`; passed back for a program with the same layer sizes and ``cuts``
it initialises the duals and Lanczos' start vector (a mismatched one is ignored).
"""

from solvers.backends.fo_sdp.backend import FoSdpBackend, solve_batch
from solvers.backends.fo_sdp.certificate import certified_bound
from solvers.backends.fo_sdp.options import FoSdpOptions
from solvers.backends.fo_sdp.record import FoSdpState

__all__ = ["FoSdpBackend", "FoSdpOptions", "FoSdpState", "certified_bound", "solve_batch"]
