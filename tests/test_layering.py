"""The import graph enforces the layering (README, "Architecture"):

- ``solvers`` never imports ``relax`` (at any level, lazy imports included);
- the relaxation and search packages never import the front ends ``relax.cli`` and
  ``relax.compare`` (nor ``relax.instances``);
- module-level imports have no cycle (imports inside functions are lazy, on purpose).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRONT_ENDS = ("relax.cli", "relax.compare", "relax.instances")
LAYERED = ("solvers", "relax.bounds", "relax.lp", "relax.sdp", "relax.krelu", "relax.search",
           "relax.certificates", "relax.io", "relax.train")


def _modules() -> dict[str, Path]:
    out = {}
    for root in ("relax", "solvers"):
        for path in (REPO / root).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, name: str, modules, top_level_only: bool) -> set[str]:
    """The project modules ``path`` imports (each resolved to the longest known module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_solvers_never_import_relax():
    modules = _modules()
    bad = {name: sorted(i for i in _imports(path, name, modules, False) if i.startswith("relax"))
           for name, path in modules.items() if name.startswith("solvers")}
    assert not {k: v for k, v in bad.items() if v}


def test_relaxation_packages_never_import_the_front_ends():
    modules = _modules()
    bad = {}
    for name, path in modules.items():
        if name.startswith(LAYERED):
            hits = [i for i in _imports(path, name, modules, False) if i.startswith(FRONT_ENDS)]
            if hits:
                bad[name] = hits
    assert not bad


def test_module_level_imports_have_no_cycle():
    modules = _modules()
    graph = {name: _imports(path, name, modules, True) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_checker_sees_imports():
    """Guard against a vacuous pass: known edges are found."""
    modules = _modules()
    lp = _imports(modules["relax.lp.method"], "relax.lp.method", modules, True)
    assert {"relax.lp.tighten", "relax.deadline", "relax.bounds"} <= lp
