"""The architecture, as imports: no cycle among Tickwatch's modules, and front-ends stay front-ends.

Read from the source (ast), so an import inside a function counts as much as one at the top: an import
moved into a function to dodge a cycle is still a cycle here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "tickwatch", "bot", "api", "stack")
FRONT_ENDS = ("bot", "api", "dags", "tickwatch")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    found.update({module_name(path): path for path in (ROOT / "dags").glob("*.py")})
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """Tickwatch modules `path` imports anywhere in it (`from a import b` counts a.b when b is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, set(known)) - {name} for name, path in known.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None (iterative DFS: white, grey, black)."""
    state: dict[str, int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(edges.get(nxt, ()))))
    return None


def test_finds_a_cycle_when_there_is_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    # A package's __init__ importing its own submodules is how packages work, not a cycle of design.
    edges = {
        name: {target for target in targets if not target.startswith(name + ".")} for name, targets in graph().items()
    }
    assert cycle(edges) is None


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_ends_never_import_each_other_and_pipeline_imports_none(front_end):
    edges = graph()
    others = [name for name in FRONT_ENDS if name != front_end]
    for module, targets in edges.items():
        top = module.split(".")[0]
        if top == front_end:
            assert not {t for t in targets if t.split(".")[0] in others}, module
        if top == "pipeline":
            assert not {t for t in targets if t.split(".")[0] == front_end}, module
