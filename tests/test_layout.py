"""The layout rules of docs/ARCHITECTURE.md, checked on the source: imports flow one way,
no cycle, the CLI starts without heavy libraries, and no module or function grows past
what a newcomer can read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("assistant", "retrieval", "finetune", "ui")
HEAVY = (
    "torch", "vllm", "gradio", "chromadb", "sentence_transformers", "transformers", "peft",
    "trl", "fastapi", "uvicorn", "matplotlib",
)  # fmt: skip
# project imports kept inside a function, and why
LAZY_ALLOWED = {
    # the gateway (FastAPI, uvicorn, Gradio) is what `serve` runs; other commands skip it
    ("assistant/cli/main.py", "assistant.gateway.serve"),
    # the page is Gradio
    ("assistant/gateway/serve.py", "ui.chat_page"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]):
    """(imported project module, inside a function?) for each import in ``path``."""
    tree = ast.parse(path.read_text())
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                yield name, id(node) in inside


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target, _ in _imports(path, modules) if target != name}
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: being visited, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_counting_imports_inside_functions():
    graph = _graph()
    assert {"ui.controller", "assistant.cli.main", "retrieval.indexer"} <= graph.keys()
    assert "ui.client" in graph["ui.controller"]  # the walk sees the imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_imports_flow_one_way():
    for name, targets in _graph().items():
        top = name.split(".")[0]
        if top in ("retrieval", "finetune", "ui"):
            bad = sorted(t for t in targets if t.split(".")[0] == "assistant")
            assert not bad, f"{name} imports {bad}"
        if top == "ui":
            assert not any(t.split(".")[0] in ("retrieval", "finetune") for t in targets), name


def test_project_imports_sit_at_the_top():
    modules = _modules()
    lazy = {
        (str(path.relative_to(ROOT)), target)
        for path in modules.values()
        for target, inside in _imports(path, modules)
        if inside
    }
    assert lazy <= LAZY_ALLOWED, sorted(lazy - LAZY_ALLOWED)


def test_the_cli_loads_no_heavy_library():
    code = f"import sys, assistant.cli.main; print([m for m in {HEAVY!r} if m in sys.modules])"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert run.stdout.strip() == "[]", run.stdout


def test_sizes_a_newcomer_can_read():
    assert len([p for p in (ROOT / "assistant").iterdir() if p.name != "__pycache__"]) <= 15
    too_long = []
    for path in _modules().values():
        source = path.read_text()
        if source.count("\n") > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    too_long.append(f"{path.relative_to(ROOT)}: {node.name} {length} lines")
    assert not too_long, too_long


def test_every_package_says_what_it_owns_and_may_import():
    for init in sorted((ROOT / "assistant").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc and "import" in doc.lower(), f"{init.relative_to(ROOT)} has no such docstring"
