"""The VNN-COMP 2021 tools' results on the benchmarks relax runs: counts and solve times.

``benchmarks/data/vnncomp2021_counts.csv`` holds, per benchmark, network and tool,
the instances the tool verified (``holds``), falsified (``violated``), got wrong
(``wrong``: a penalised verdict) and the sorted seconds of its correct verdicts.  It was
extracted once, by :func:`extract`, from ``output_multioverhead.txt`` of the public
repository ``stanleybak/vnncomp2021_results`` (the competition's own scoring output:
conflicts resolved ``odd_one_out``, each tool's measured overhead subtracted from
its times; RPM and NV.jl have no mnistfc/eran results there):

    python benchmarks/vnncomp2021.py /path/to/output_multioverhead.txt

Those times were measured on the competition's machines (AWS, several tools on a
GPU), not here; they are listed beside relax's for orientation only.
"""

from __future__ import annotations

import ast
import csv
import re
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTS = REPO / "benchmarks" / "data" / "vnncomp2021_counts.csv"
#: per instance the verdict of the tools the competition did not penalise (or unknown)
VERDICTS = REPO / "benchmarks" / "data" / "vnncomp2021_verdicts.csv"
FIELDS = ["benchmark", "network", "tool", "instances", "holds", "violated", "wrong", "seconds"]
#: the networks of our data per benchmark, and the held-out ones of the same benchmarks
#: (mnistfc 256x6, the eran sigmoid net), so that a run on them is compared too
NETWORKS = {"mnistfc": ["mnist-net_256x2", "mnist-net_256x4", "mnist-net_256x6"],
            "eran": ["mnist_relu_9_200", "ffnnSIGMOID__Point_6x200"]}
_ROW = re.compile(r"^Row: (\[.*\])$")
_SCORE = re.compile(r"^\d+: (\S+) score: (-?\d+),")


def _rows(lines, benchmark: str):
    """(instance, {tool: cell}, {tool: score}) of one benchmark's scoring section."""
    start = lines.index(f"Category {benchmark}:")
    tools = ast.literal_eval(lines[start + 2].split(": ", 1)[1])
    out, current = [], None
    for line in lines[start + 3:]:
        if line.startswith("Category "):
            break
        if (m := _ROW.match(line)):
            cells = ast.literal_eval(m.group(1))
            current = (cells[0], dict(zip(tools, cells[1:])), {})
            out.append(current)
        elif (m := _SCORE.match(line)) and current is not None:
            current[2][m.group(1)] = int(m.group(2))
    return tools, out


def extract(output: Path) -> list[dict]:
    """Per (benchmark, network, tool) counts and sorted correct solve times."""
    lines = output.read_text().splitlines()
    table = []
    for benchmark, networks in NETWORKS.items():
        tools, rows = _rows(lines, benchmark)
        for network in networks:
            mine = [r for r in rows if r[0].startswith(network + "-")]
            for tool in tools:
                counts, seconds = defaultdict(int), []
                for _, cells, scores in mine:
                    cell, score = cells.get(tool, "-"), scores.get(tool, 0)
                    if score < 0:
                        counts["wrong"] += 1
                    elif cell.endswith("(h)") or cell.endswith("(v)"):
                        counts["holds" if cell.endswith("(h)") else "violated"] += 1
                        seconds.append(float(cell.split()[0]))
                table.append({"benchmark": benchmark, "network": network, "tool": tool,
                              "instances": len(mine), "holds": counts["holds"],
                              "violated": counts["violated"], "wrong": counts["wrong"],
                              "seconds": ";".join(f"{s:g}" for s in sorted(seconds))})
    return table


def extract_verdicts(output: Path) -> list[dict]:
    """Per instance of :data:`NETWORKS`: ``holds``/``violated`` as found by the
    tools the competition did not penalise on it, else ``unknown``."""
    lines = output.read_text().splitlines()
    out = []
    for benchmark, networks in NETWORKS.items():
        _, rows = _rows(lines, benchmark)
        for name, cells, scores in rows:
            network = next((n for n in networks if name.startswith(n + "-")), None)
            if network is None:
                continue
            found = {"holds" if c.endswith("(h)") else "violated" for t, c in cells.items()
                     if scores.get(t, 0) >= 0 and (c.endswith("(h)") or c.endswith("(v)"))}
            out.append({"benchmark": benchmark, "network": network,
                        "property": name[len(network) + 1:],
                        "verdict": found.pop() if len(found) == 1 else "unknown"})
    return out


def read_verdicts(path: Path = VERDICTS) -> dict:
    """``{(network, property): verdict}`` (names without ``.onnx``/``.vnnlib``)."""
    with path.open(newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return {(r["network"], r["property"]): r["verdict"] for r in rows}


def read_counts(path: Path = COUNTS) -> list[dict]:
    """The rows of the counts CSV (comment lines starting with ``#`` skipped)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    for row in rows:
        for key in ("instances", "holds", "violated", "wrong"):
            row[key] = int(row[key])
        row["seconds"] = [float(s) for s in row["seconds"].split(";") if s]
    return rows


def write_csv(rows: list[dict], path: Path, note: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        handle.write("# VNN-COMP 2021 results (github.com/stanleybak/vnncomp2021_results,\n"
                     "# output_multioverhead.txt: odd_one_out conflicts, overhead subtracted);\n"
                     f"# extracted by benchmarks/vnncomp2021.py; {note}\n")
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    write_csv(extract(Path(sys.argv[1])), COUNTS, "seconds: correct verdicts, sorted")
    write_csv(extract_verdicts(Path(sys.argv[1])), VERDICTS,
              "verdict: of the tools not penalised on the instance")
    for row in read_counts():
        print(row["benchmark"], row["network"], row["tool"], row["instances"], row["holds"],
              row["violated"], row["wrong"])
