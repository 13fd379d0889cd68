"""VNN-COMP style instance lists: ``network,property,timeout`` per line.

Paths are relative to the CSV's directory.  :func:`run_instance` never raises:
a failing instance becomes an *unknown* row with the reason, so a long run goes on.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from relax.errors import DataError, SpecError

__all__ = ["Instance", "InstanceResult", "read_instances", "run_instance"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instance:
    network: Path
    property: Path
    timeout: float


@dataclass(frozen=True)
class InstanceResult:
    instance: Instance
    verdict: str
    bound: float | None
    method: str
    seconds: float
    reason: str = ""
    solver: str | None = None

    def csv_row(self) -> list:
        """network, property, verdict, bound, method, seconds, reason (see relax.runs.records)."""
        bound = "" if self.bound is None else repr(self.bound)
        return [str(self.instance.network), str(self.instance.property), self.verdict, bound,
                self.method, f"{self.seconds:.3f}", self.reason]


def read_instances(path: str | Path) -> list[Instance]:
    """Read an instance list; malformed lines raise :class:`DataError` with the line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"instance list not found: {path}")
    instances = []
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            row = [cell.strip() for cell in row]
            if not row or not any(row):
                continue
            if len(row) != 3:
                raise DataError(f"{path}:{number}: expected network,property,timeout, got {row}")
            try:
                timeout = float(row[2])
            except ValueError:
                raise DataError(f"{path}:{number}: timeout {row[2]!r} is not a number") from None
            instances.append(Instance(path.parent / row[0], path.parent / row[1], timeout))
    if not instances:
        raise DataError(f"instance list is empty: {path}")
    return instances


@lru_cache(maxsize=8)
def _load_network(path: Path):
    from relax.io.onnx_import import from_onnx

    return from_onnx(path)


def run_instance(instance: Instance, method: str, options, timeout: float | None = None) -> InstanceResult:
    """Verify one instance with its own time limit (or ``timeout`` if given)."""
    import time

    from relax.verify import verify
    from relax.io.vnnlib import read_vnnlib

    start = time.monotonic()
    limit = timeout if timeout is not None else instance.timeout
    try:
        network = _load_network(instance.network)
        specs = read_vnnlib(instance.property, network.input_size, network.output_size)
        if not specs:
            raise SpecError(f"{instance.property}: the input box is empty: nothing to verify")
        result = verify(network, specs, method, limit, options)
    except Exception as error:  # a failing instance must not stop the run
        log.warning("instance %s failed: %s", instance.property, error)
        reason = f"{type(error).__name__}: {' '.join(str(error).split())}"
        return InstanceResult(instance, "unknown", None, method, time.monotonic() - start, reason)
    return InstanceResult(instance, result.verdict.value, result.bound, method,
                          result.seconds, result.reason or "", result.solver)
