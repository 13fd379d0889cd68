"""Figures of ``relax report`` and ``relax compare --plot`` (matplotlib, Agg backend).

Each function returns the matplotlib ``Figure`` it drew (tests read its axes and
lines) and saves it when given a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from relax.errors import UsageError

__all__ = ["cactus_plot", "time_scatter", "ladder_plot"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'relax[report]'") from None
    return plt


def _save(fig, path) -> None:
    if path is not None:
        fig.savefig(Path(path), dpi=120, bbox_inches="tight")


def cactus_plot(runs, path=None):
    """Instances solved (y) within a time (x, log scale): one step line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        seconds = run.solved_seconds()
        ax.step([0.0, *seconds], range(len(seconds) + 1), where="post", label=run.label)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("time per instance (s)")
    ax.set_ylabel("instances solved")
    ax.set_title("cactus plot")
    ax.legend(fontsize="small")
    _save(fig, path)
    return fig


def time_scatter(runs, path=None):
    """Per-instance seconds: the first run (x) against each other run (y), one series
    each, with the diagonal; a single run is drawn against the instance index."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    first = {(r["network"], r["property"]): float(r["seconds"]) for r in runs[0].rows}
    if len(runs) == 1:
        ax.scatter(range(len(first)), list(first.values()), s=12, label=runs[0].label)
        ax.set_xlabel("instance")
        ax.set_ylabel(f"seconds: {runs[0].label}")
    for run in runs[1:]:
        pairs = [(first[k], float(r["seconds"])) for r in run.rows
                 if (k := (r["network"], r["property"])) in first]
        x, y = np.array(pairs).T if pairs else (np.array([]), np.array([]))
        ax.scatter(x, y, s=12, label=run.label)
        ax.set_xlabel(f"seconds: {runs[0].label}")
        ax.set_ylabel("seconds")
    if len(runs) > 1:
        top = max([1.0] + [float(r["seconds"]) for run in runs for r in run.rows])
        ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="equal time")
    ax.legend(fontsize="small")
    _save(fig, path)
    return fig


def ladder_plot(rows, methods: Sequence[str], path=None):
    """The tightness ladder: per (image, eps) row one line through the methods' own
    bounds in table order, the known exact value as a marker at the right."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(methods) + 3, 4))
    for row in rows:
        bounds = [row.results[m].bound for m in methods]
        values = [b if b is not None and np.isfinite(b) else np.nan for b in bounds]
        (line,) = ax.plot(range(len(methods)), values, marker="o",
                          label=f"img {row.image}, eps {row.eps:g}")
        if row.exact is not None:
            ax.scatter([len(methods)], [row.exact.value], marker="_", s=200, color=line.get_color())
    ax.set_xticks(range(len(methods) + 1), [*methods, "exact value"])
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_ylabel("lower bound on the margin")
    ax.set_title("tightness ladder")
    ax.legend(fontsize="x-small")
    _save(fig, path)
    return fig
