"""No import cycles among the modules of stream/ and training/, counting imports inside functions: a cycle hidden in
a function still means two modules that cannot be understood, tested or moved apart (issue 13). models/ is left
out: its registry imports the architectures that register themselves with it, on purpose (models/interface.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests import REPO_ROOT

PACKAGES = {"stream": "emostream.stream", "training": "emostream.training"}


def module_files() -> dict[str, Path]:
    """Every module of the source folders by the dotted name it is installed under."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in (REPO_ROOT / folder).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT / folder).with_suffix("").parts
            out[".".join((package, *parts)).removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it (``from pkg import module`` names the module;
    the project imports absolutely)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                      for a in node.names}
    return found & known


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle_through_three_modules() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles() -> None:
    files = module_files()
    graph = {name: imports(path, set(files)) - {name} for name, path in files.items()}
    cycle = find_cycle(graph)
    assert cycle is None, " → ".join(cycle or [])
