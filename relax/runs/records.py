"""The results CSV of an instance run: columns, metadata, resume keys.

Every row carries what is needed to reproduce and compare it: the verdict and
bound, the method and its options, the solver that ran, the relax version,
the machine (cores, GPU) and the command.  A row's *key* is (network,
property, method, options); ``--resume`` skips the keys already in the file
and appends the rest.  Without resume an existing file is never overwritten.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from relax.errors import DataError, UsageError

__all__ = ["COLUMNS", "ResultsFile", "run_metadata", "options_text", "row_key", "relax_version"]

COLUMNS = ["network", "property", "verdict", "bound", "method", "seconds", "reason",
           "options", "solver", "relax_version", "machine", "command"]


def options_text(options, timeout: float | None) -> str:
    """The options that change a result, as canonical JSON (part of the resume key)."""
    fields = {"solver": options.solver, "device": options.device, "timeout": timeout,
              **{type(m).__name__: dataclasses.asdict(m) for m in options.methods}}
    return json.dumps(fields, sort_keys=True, default=str)


def _machine() -> str:
    gpu = "no GPU"
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    return f"{platform.machine()}, {os.cpu_count()} cores, {gpu}"


def relax_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("relax")
    except PackageNotFoundError:
        return "unknown"


def run_metadata(argv: list[str] | None = None) -> dict[str, str]:
    """relax version, machine, command: the same on every row of one run."""
    command = "relax " + shlex.join(sys.argv[1:] if argv is None else argv)
    return {"relax_version": relax_version(), "machine": _machine(), "command": command}


def row_key(row: dict) -> tuple[str, str, str, str]:
    return row["network"], row["property"], row["method"], row["options"]


@dataclass
class ResultsFile:
    """The CSV at ``path``; ``resume`` appends to an existing one, else it must not exist."""

    path: Path
    resume: bool = False
    done: set = field(default_factory=set)

    def prepare(self) -> None:
        """Refuse to overwrite; with resume, check the file and read the keys done."""
        if self.path.exists() and not self.resume:
            raise UsageError(f"{self.path} exists; use --resume to continue it, or another --output")
        if not self.path.parent.is_dir():
            raise UsageError(f"--output: no directory {self.path.parent}")
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames != COLUMNS:
                    raise DataError(f"{self.path} is not a relax results file of this version "
                                    f"(columns {reader.fieldnames})")
                self.done = {row_key(row) for row in reader}

    def open(self):
        """A handle to append rows to (the header written first in a new file)."""
        if self.path.exists() and self.path.stat().st_size > 0:
            return self.path.open("a", newline="")
        handle = self.path.open("w", newline="")
        csv.writer(handle).writerow(COLUMNS)
        return handle
