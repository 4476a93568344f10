"""The page's modules import one another one way only: no cycle among ``ui``'s modules
(counting imports inside functions too), and nothing from ``assistant`` (the page talks
to the gateway over HTTP)."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parent.parent / "ui"


def _module(path: Path) -> str:
    parts = path.relative_to(UI.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, package: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` anywhere in ``tree`` names
    (``from pkg import mod`` names ``pkg.mod`` too, in case ``mod`` is a module)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    paths = sorted(UI.rglob("*.py"))
    modules = {_module(p): p for p in paths}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = _imported(ast.parse(path.read_text(encoding="utf-8")), package)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: being visited, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_ui_modules_import_one_another_without_a_cycle():
    graph = _graph()
    assert {"ui.chat_page", "ui.controller", "ui.client", "ui.render"} <= graph.keys()
    assert "ui.client" in graph["ui.controller"]  # the walk sees the imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_ui_never_imports_assistant():
    for path in sorted(UI.rglob("*.py")):
        imported = _imported(ast.parse(path.read_text(encoding="utf-8")), "ui")
        assert not {m for m in imported if m.split(".")[0] == "assistant"}, path
