"""Summaries of results CSVs (``relax report``).

A *run* is one results file (``relax verify --instances`` output, or any CSV with
``network``, ``property``, ``verdict`` and ``seconds`` columns).  Per run and
network: holds, violated, unknown, wrong (a holds/violated verdict that contradicts
the truth: a ``truth`` column in the file, or a ``--truth`` CSV with ``property``
and ``verdict`` columns), solved, total and median seconds.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from relax.errors import DataError

__all__ = ["Run", "read_run", "read_truth", "summary_markdown", "wrong_rows"]

NEEDED = ("network", "property", "verdict", "seconds")
DECIDED = ("holds", "violated")


@dataclass(frozen=True)
class Run:
    """The rows of one results file; ``label`` names it in tables and legends."""

    label: str
    rows: tuple[dict, ...]

    def solved_seconds(self) -> list[float]:
        return sorted(float(r["seconds"]) for r in self.rows if r["verdict"] in DECIDED)


def read_run(path: str | Path) -> Run:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"results file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in NEEDED if c not in (reader.fieldnames or ())]
        if missing:
            raise DataError(f"{path}: not a results file (missing columns {', '.join(missing)})")
        rows = tuple(reader)
    methods = sorted({r.get("method", "") for r in rows} - {""})
    return Run(f"{path.stem} ({', '.join(methods)})" if methods else path.stem, rows)


def read_truth(path: str | Path | None) -> dict[str, str]:
    """property file name -> expected verdict (holds or violated)."""
    if path is None:
        return {}
    run = read_run_columns(Path(path), ("property", "verdict"))
    return {Path(r["property"]).name: r["verdict"] for r in run if r["verdict"] in DECIDED}


def read_run_columns(path: Path, columns) -> list[dict]:
    if not path.is_file():
        raise DataError(f"truth file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if any(c not in (reader.fieldnames or ()) for c in columns):
            raise DataError(f"{path}: needs the columns {', '.join(columns)}")
        return list(reader)


def _truth_of(row: dict, truth: dict[str, str]) -> str | None:
    return row.get("truth") or truth.get(Path(row["property"]).name)


def wrong_rows(run: Run, truth: dict[str, str]) -> list[dict]:
    """Rows whose holds/violated verdict contradicts the known truth."""
    return [r for r in run.rows if r["verdict"] in DECIDED
            and _truth_of(r, truth) in DECIDED and _truth_of(r, truth) != r["verdict"]]


def summary_markdown(runs: list[Run], truth: dict[str, str]) -> str:
    lines = ["| run | network | instances | holds | violated | unknown | wrong | solved | "
             "total s | median s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        by_net: dict[str, list[dict]] = defaultdict(list)
        for row in run.rows:
            by_net[Path(row["network"]).name].append(row)
        for net, rows in by_net.items():
            count = defaultdict(int)
            for row in rows:
                count[row["verdict"]] += 1
            wrong = len(wrong_rows(Run(run.label, tuple(rows)), truth))
            seconds = [float(r["seconds"]) for r in rows]
            lines.append(f"| {run.label} | {net} | {len(rows)} | {count['holds']} | "
                         f"{count['violated']} | {count['unknown']} | {wrong} | "
                         f"{count['holds'] + count['violated']} | {sum(seconds):.1f} | "
                         f"{statistics.median(seconds):.2f} |")
    return "\n".join(lines) + "\n"
