"""Running fo-sdp on a batch of programs with the same layer sizes (one = a batch of one).

Adam is batched natively (its state has a leading batch dimension).  L-BFGS-B is
driven by scipy, one run per problem, each in its own thread; a :class:`Lockstep`
gathers their eigenvalue problems into one batched evaluation
(:func:`~solvers.backends.fo_sdp.spectral.spectra` on the shared operator), so
only the linear algebra is batched and each run is exactly the one it would be alone.
Every bound is that problem's own rigorous float64 check.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

import solvers.backends.fo_sdp.adam as adam
from solvers.backends.fo_sdp.certificate import certify
from solvers.backends.fo_sdp.init import initial_duals
from solvers.backends.fo_sdp.operator import Operator
from solvers.backends.fo_sdp.options import FoSdpOptions
from solvers.backends.fo_sdp.problem import Layout, prepare
from solvers.backends.fo_sdp.record import FoSdpState, Record
from solvers.backends.fo_sdp.repair import improve, negative_directions
from solvers.backends.fo_sdp.lift import active_vectors
from solvers.backends.fo_sdp.spectral import SpectralRun, lifted_basis, spectra
from solvers.solution import Status

__all__ = ["Lockstep", "Batch"]


class Lockstep:
    """Runs one thread per job; :meth:`call` waits until every live thread has called
    (or finished), evaluates all waiting requests with one ``evaluate(ids, requests)``
    (in the last thread to arrive) and hands each thread its answer."""

    def __init__(self, count: int, evaluate):
        self.cond = threading.Condition()
        self.live = set(range(count))
        self.pending: dict[int, Any] = {}
        self.answers: dict[int, Any] = {}
        self.evaluate = evaluate
        self.failure: BaseException | None = None
        self.batches = 0

    def call(self, i: int, request):
        with self.cond:
            self.pending[i] = request
            self._flush()
            while i not in self.answers and self.failure is None:
                self.cond.wait()
            if self.failure is not None and i not in self.answers:
                raise RuntimeError(f"fo-sdp batch evaluation failed: {self.failure!r}") \
                    from self.failure
            return self.answers.pop(i)

    def leave(self, i: int) -> None:
        with self.cond:
            self.live.discard(i)
            self._flush()

    def _flush(self) -> None:
        if not self.pending or set(self.pending) != self.live:
            return
        ids = sorted(self.pending)
        requests = [self.pending.pop(i) for i in ids]
        try:
            self.answers.update(zip(ids, self.evaluate(ids, requests)))
            self.batches += 1
        except BaseException as exc:  # noqa: BLE001 -- handed to every waiting thread
            self.failure = exc
        self.cond.notify_all()

    def run(self, jobs) -> tuple[list, list]:
        """Run ``jobs[i]()`` in thread ``i``; their results and exceptions (or None)."""
        results: list = [None] * len(jobs)
        errors: list = [None] * len(jobs)

        def work(i):
            try:
                results[i] = jobs[i]()
            except BaseException as exc:  # noqa: BLE001
                errors[i] = exc
            finally:
                self.leave(i)

        threads = [threading.Thread(target=work, args=(i,), daemon=True)
                   for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results, errors


def _side(problem) -> int:
    """``1 + n``: the side of the certificate's matrix."""
    return 1 + sum(np.asarray(lo).size for lo in problem.lower)


class Batch:
    """The data, operator, starts and certificates of a batch of programs."""

    def __init__(self, problems, options: FoSdpOptions, tolerance: float, warm_starts):
        import torch

        self.options, self.tolerance = options, tolerance
        self.datas = [prepare(p, options.cuts, options.eliminate and _side(p)
                              <= options.dense_check_limit) for p in problems]
        self.layouts = [Layout(d) for d in self.datas]
        dtype = {"float64": torch.float64, "float32": torch.float32}[options.dtype]
        self.op = Operator(self.datas, self.layouts, options.device, dtype)
        self.warm = [self._accept(w, d) for w, d in zip(warm_starts, self.datas)]
        self.records = [Record(start=p, last=p) for p in self._starts()]
        self.scale = [max(float(np.abs(d.rad[-1] * d.c).sum()), 1e-9 * max(1.0, abs(d.c0)))
                      for d in self.datas]
        self.method = options.solver_method(self.datas[0].n + 1)

    def _accept(self, warm, data) -> FoSdpState | None:
        if (isinstance(warm, FoSdpState) and warm.sizes == data.sizes
                and warm.cuts == self.options.cuts):
            return warm
        return None

    def _starts(self) -> list[np.ndarray]:
        """Each problem's own start (``init``); with a warm start, the better of the two by
        their rigorous bounds, so a warm start never lowers the start (e.g. CROWN's)."""
        starts = []
        for i, (w, d, lay) in enumerate(zip(self.warm, self.datas, self.layouts)):
            own = initial_duals(d, lay, self.options.init)
            if w is not None:
                other = lay.project(np.asarray(w.params, np.float64))
                if self.certify(i, other) > self.certify(i, own):
                    own = other
                else:
                    self.warm[i] = None
            starts.append(own)
        return starts

    def certify(self, i: int, params: np.ndarray) -> float:
        """Problem ``i``'s rigorous bound at the duals ``params``."""
        return certify(self.datas[i], self.layouts[i], params, self.options.dense_check_limit)

    def improve(self, i: int, params: np.ndarray, bound: float | None = None,
                matrix_free: bool = False) -> tuple[float, np.ndarray]:
        """Problem ``i``'s best-certified of ``params`` and its ``kappa`` repairs
        (:func:`.repair.improve`), with its rigorous bound."""
        return improve(self.datas[i], self.layouts[i], params,
                       self.options.dense_check_limit, bound, matrix_free)

    def run(self, deadline: float | None) -> list:
        """Runs the optimiser; one :class:`Record` (or the exception) per problem."""
        start = time.perf_counter()
        for record in self.records:
            record.t0 = start
        if self.method == "adam":
            outcome = self._adam(deadline), [None] * len(self.records)
        else:
            outcome = self._spectral(deadline)
        for record in self.records:
            record.seconds = time.perf_counter() - start
        return [r if e is None else e for r, e in zip(*outcome)]

    def _adam(self, deadline) -> list[Record]:
        import torch

        op, opts = self.op, self.options
        problem = adam.AdamProblem(op, opts, op.t(self.scale), self.tolerance,
                                   torch.Generator().manual_seed(opts.seed))
        vectors = [w.eigenvector if w is not None and w.eigenvector is not None
                   and w.eigenvector.size == op.keep.shape[1] else np.zeros(op.keep.shape[1])
                   for w in self.warm]
        state = adam.init_state(problem, op.t(np.stack([r.start for r in self.records])),
                                op.t(np.stack(vectors)), [w is not None for w in self.warm])

        def on_step(s):                 # certify the duals this step was evaluated at
            if opts.check_every and (s.step - 1) % opts.check_every == 0:
                for i, rec in enumerate(self.records):
                    if was_active[i]:
                        rec.add_check(s.step - 1, self.certify(i, self._np(previous[i])))
            previous[:], was_active[:] = list(s.params), [bool(a) for a in s.active]

        previous, was_active = list(state.params), [True] * len(self.records)
        state, why = adam.run(problem, state, deadline, on_step)
        return [self._adam_record(i, state, why) for i in range(len(self.records))]

    @staticmethod
    def _np(t) -> np.ndarray:
        return t.detach().cpu().double().numpy()

    def _adam_record(self, i: int, state, why: str) -> Record:
        rec = self.records[i]
        rec.history = [float(h[i]) for h in state.history]
        rec.iterations = len(rec.history)
        rec.best, rec.best_value = self._np(state.best_params[i]), float(state.best_value[i])
        rec.last, rec.vector = self._np(state.params[i]), self._np(state.vector[i])
        converged = not bool(state.active[i])
        rec.status = (Status.OPTIMAL if converged else
                      Status.TIME_LIMIT if why == "time" else Status.ITERATION_LIMIT)
        return rec

    def _spectral(self, deadline):
        op = self.op
        keep = op.keep > 0
        rows = op.torch.nonzero(keep.any(dim=0)).ravel()
        fixed = ~keep[:, rows]
        traces = [1.0 + float(d.d.sum()) for d in self.datas]
        bases = [lifted_basis(op, rows, active_vectors(d)[0], np.concatenate([[True], d.d > 0]))
                 for d in self.datas]

        def evaluate(ids, requests):
            ps = op.torch.stack([r[0] for r in requests])
            taus = op.t([r[1] for r in requests])
            values, grad, first = spectra(op, rows, fixed, ids, ps, taus,
                                          op.t([traces[i] for i in ids]), bases)
            return [(values[j][:int((~fixed[i]).sum())], grad[j], first[j])
                    for j, i in enumerate(ids)]

        gather = Lockstep(len(self.records), evaluate)
        jobs = [self._spectral_job(i, gather, deadline) for i in range(len(self.records))]
        return gather.run(jobs)

    def _spectral_job(self, i: int, gather: Lockstep, deadline):
        data = self.datas[i]
        if (self.method == "bm" and self.options.max_iterations > 0
                and (data.n + 1 > self.options.lbfgs_below or data.lifted)):
            return lambda: self._low_rank_only(i, deadline)
        runner = SpectralRun(self.datas[i], self.layouts[i], self.options,
                             lambda p, tau: gather.call(i, (p, tau)), self.op.t,
                             self.scale[i], lambda p: self.improve(i, p))
        if self.method != "bm" or self.options.max_iterations == 0:   # 0: the start only
            return lambda: runner.run(self.records[i], self.warm[i] is not None, deadline)

        def job():
            x0 = self._low_rank(i, deadline)
            return runner.run(self.records[i], self.warm[i] is not None or x0 is not None,
                              deadline, x0)
        return job

    def _low_rank_only(self, i: int, deadline) -> Record:
        """``method="bm"`` above ``lbfgs_below`` rows, or with stably active neurons
        lifted: the Burer-Monteiro stage for the whole time (its checks are the record's
        bound; no L-BFGS follows).  With the lift the L-BFGS's eigenvalue problems are
        lifted too (:func:`.spectral.lifted_basis`), but after the Burer-Monteiro stage
        it gained nothing in 18 s on the 2 hardest MNIST rows (about 50 evaluations of a
        dense ``eigh``; ``fo_sdp_lifted_lbfgs_hard.md``), so it does not follow it."""
        rec = self.records[i]
        self._low_rank(i, deadline, fraction=1.0)
        rec.status = Status.TIME_LIMIT if deadline is not None else Status.ITERATION_LIMIT
        return rec

    def _low_rank(self, i: int, deadline, fraction: float | None = None) -> np.ndarray | None:
        """The Burer-Monteiro stage of ``method="bm"``: its multipliers are certified after
        every outer iteration (with the Gershgorin shift; recorded as checks at iteration
        0); the best of them when it certifies within ``bm_keep`` of the start's bound
        (relative to ``max(1, |start|)``; the L-BFGS then starts there), else None.  The
        reported bound never falls below the start's either way."""
        from solvers.backends.fo_sdp import burer_monteiro as bm

        data, layout, rec, opts = self.datas[i], self.layouts[i], self.records[i], self.options
        problem = bm.BmProblem.build(data, layout, opts.rank, self.scale[i])
        state = bm.init_state(problem, rec.start, bm.centre_point(data), opts.seed,
                              bm.penalty(data, opts.bm_mu))
        left = None if deadline is None else deadline - time.perf_counter()
        share = opts.bm_fraction if fraction is None else fraction
        stop = None if left is None else time.perf_counter() + share * left
        best = [-np.inf, None]
        dense = data.n + 1 <= opts.dense_check_limit

        fell: dict[int, bool] = {}

        def check(params, costly: bool, outer: int) -> None:
            # up to the dense limit only the repaired duals are certified: the raw
            # multipliers' negative slack costs far more, and a check is a dense eigvalsh
            bound, params = self.improve(i, params, -np.inf if dense else None,
                                         matrix_free=costly)
            rec.add_check(0, bound, params)
            fell[outer] = bound < best[0]
            if bound > best[0]:
                best[:] = [bound, params]

        checks = _Background(opts.bm_background_checks and dense)

        def on_step(s):            # past the dense limit: the costly repairs now and then
            params = bm.to_params(problem, s)
            checks.submit(check, params, not dense and s.outer % opts.bm_shift_every == 0,
                          s.outer)
            # the previous iteration's check has finished (submit waits for it), inline
            # or not, so the escape is the same either way
            if dense and opts.bm_escape and fell.pop(s.outer - 1, False):
                return bm.escape(problem, s, negative_directions(data, layout, params,
                                                                 opts.bm_escape))
            return s

        try:
            state = bm.run(problem, state, stop,
                           outer=opts.bm_outer if stop is None else 10_000, on_step=on_step,
                           inner=opts.bm_inner, growth=opts.bm_growth,
                           momentum=opts.bm_momentum)
        finally:
            checks.close()
        rec.stage = (f"Burer-Monteiro: {state.outer} outer iterations, penalty {state.mu:.3g}, "
                     f"primal {state.objective:.6g}, violation {state.violation:.2g}; ")
        start = self.certify(i, rec.start)
        return best[1] if best[0] >= start - opts.bm_keep * max(1.0, abs(start)) else None


class _Background:
    """Runs the Burer-Monteiro stage's checks in one worker thread beside the next outer
    iteration (a dense ``eigh`` releases the GIL, so the second core does it), one at a
    time: a new check waits for the previous one.  ``enabled=False``: inline."""

    def __init__(self, enabled: bool):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(1) if enabled else None
        self.pending = None

    def submit(self, function, *args) -> None:
        if self.pool is None:
            function(*args)
            return
        self._wait()
        self.pending = self.pool.submit(function, *args)

    def _wait(self) -> None:
        if self.pending is not None:
            self.pending.result()          # re-raises a failed check
            self.pending = None

    def close(self) -> None:
        """Waits for the last check (its failure is raised) and stops the worker."""
        if self.pool is not None:
            try:
                self._wait()
            finally:
                self.pool.shutdown(wait=True)
