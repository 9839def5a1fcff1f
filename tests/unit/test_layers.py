"""The layer contract (docs/design.md#layers): imports point downward only, and
no two modules of a package import each other, directly or round a cycle.

import-linter cannot see these packages (its graph builder walks the root
package's folder, and the folders are mapped into `tastebud.*` by setuptools'
package-dir), so this reads every import statement, including those inside
functions and under TYPE_CHECKING, with `ast`, from the same mapping.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"tastebud.cli": "cli", "tastebud.api": "api", "tastebud.agent": "agent",
           "tastebud.retrieval": "retrieval", "tastebud.profiles": "profiles"}

# Highest first. A module may import only from its own layer entry or lower ones;
# modules that share an entry (the kernel's) may import each other.
LAYERS: list[tuple[str, ...]] = [
    ("tastebud.cli",),
    ("tastebud.api",),
    ("tastebud.app",),
    ("tastebud.live",),
    ("tastebud.agent",),
    ("tastebud.retrieval",),
    ("tastebud.profiles",),
    ("tastebud.llm", "tastebud.embedded", "tastebud.settings", "tastebud.home", "tastebud.timefmt",
     "tastebud.errors", "tastebud"),
]


def module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package, folder in {**FOLDERS, "tastebud": "tastebud"}.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def imports_of(name: str, path: Path) -> set[str]:
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "tastebud" or m.startswith("tastebud.")}


def layer_of(module: str) -> int:
    best, index = -1, len(LAYERS)
    for i, entry in enumerate(LAYERS):
        for prefix in entry:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    return index


def graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    out: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for imported in imports_of(name, path):
            while imported not in known and "." in imported:  # `from pkg import name` names a symbol
                imported = imported.rsplit(".", 1)[0]
            if imported in known and imported != name:
                targets.add(imported)
        out[name] = targets
    return out


def layer_violations(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{src} imports {dst}" for src, targets in g.items() for dst in targets
                  if layer_of(dst) < layer_of(src))


def sibling_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among the modules of one package (import-linter's acyclic_siblings)."""
    by_package: dict[str, set[str]] = defaultdict(set)
    for name in g:
        by_package[name.rsplit(".", 1)[0]].add(name)
    cycles = []
    for members in by_package.values():
        edges = {m: {t for t in g[m] if t in members} for m in members}
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(edges[node]):
                if state.get(nxt) == 1:
                    cycles.append(path[path.index(nxt):] + [nxt])
                elif nxt not in state:
                    visit(nxt, path + [nxt])
            state[node] = 2

        for m in sorted(members):
            if m not in state:
                visit(m, [m])
    return cycles


def test_every_import_points_downward():
    assert layer_violations(graph()) == []


def test_no_import_cycles_inside_a_package():
    assert sibling_cycles(graph()) == []


@pytest.mark.parametrize("src,dst", [("tastebud.settings", "tastebud.profiles.store"),
                                     ("tastebud.profiles.events", "tastebud.retrieval.recommender"),
                                     ("tastebud.agent.tools", "tastebud.app")])
def test_the_contract_catches_an_upward_import(src, dst):
    g = graph()
    g[src] = g[src] | {dst}
    assert f"{src} imports {dst}" in layer_violations(g)


def test_the_contract_catches_a_cycle():
    g = graph()
    g["tastebud.cli.data"] = g["tastebud.cli.data"] | {"tastebud.cli.main"}
    assert any("tastebud.cli.main" in cycle for cycle in sibling_cycles(g))


def test_the_reader_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from tastebud.profiles import store\n    import tastebud.retrieval.vectors\n")
    assert imports_of("tastebud.x.m", src) >= {"tastebud.profiles.store", "tastebud.retrieval.vectors"}
