"""The core's layers, read from its own imports (docs/architecture.md, "Layers and imports").

Every ``roost`` import in core/roost is read from the AST — at module level, inside functions (deferred)
and under ``if TYPE_CHECKING:`` (typing only). A module may import its own layer or a lower one; a cycle
between modules fails whether its imports are at module level or deferred (typing-only imports are exempt
from the cycle rule, not from the layer rule). Run this file as a script to print the graph.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "core" / "roost"

# Lowest first. A module belongs to the first entry that is itself or a package holding it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Plain data: the flow model, YAML, the task/trigger contracts, the plugin registry, the execution model.
    (
        "model",
        (
            "roost._docstrings",
            "roost.flow",
            "roost.hookspecs",
            "roost.uikit",
            "roost.assets.model",
            "roost.plugins",
            "roost.plugin_defaults",
            "roost.engine.model",
        ),
    ),
    ("expressions", ("roost.expr",)),
    # What runs beside the engine and needs no engine: storage, the database, credentials and secrets, HTTP.
    (
        "foundation",
        (
            "roost.store",
            "roost.credentials",
            "roost.secret_base",
            "roost.secret_backends",
            "roost.scripts",
            "roost.rest",
            "roost.killgate",
            "roost.llm",
            "roost.assets",
        ),
    ),
    ("engine", ("roost.engine",)),
    (
        "public face",
        ("roost",),
    ),  # roost/__init__.py: re-exports the layers below; roost.run() starts the engine
    ("built-in plugin", ("roost.builtin",)),
    ("front ends", ("roost.server", "roost.cli", "roost.testing")),
]

# The built-in plugin is a plugin like any other: it imports the public face ``roost`` only -- flowables
# (builtin/flow.py) and triggers (builtin/triggers.py) included. These exceptions remain, each named with its
# reason; a new one fails the test until it is added here and to docs/architecture.md.
BUILTIN_EXCEPTIONS: dict[str, set[str]] = {
    # the core's own backends and runners, which the built-in plugin registers through its hooks
    "roost.builtin.plugin": {
        "roost.scripts",
        "roost.credentials.github",
        "roost.credentials.oauth2",
        "roost.store.storage",
        "roost.secret_backends",
    },
    "roost.builtin.storage": {"roost.scripts"},  # the script tasks' file staging (write_files, collect_files)
    # the KV and state tasks apply the store's key rule and absent-key sentinel
    "roost.builtin.kv": {"roost.store.keys", "roost.flow.model"},
    "roost.builtin.state": {"roost.store.keys", "roost.expr.filters"},
    # asset tasks share the asset service's type names and query matching
    "roost.builtin.assets": {"roost.assets.model", "roost.assets.service"},
    # a task run inside a trigger or a log exporter: rendered and run as the worker does
    "roost.builtin.http": {"roost.engine.context"},
    "roost.builtin.log_shipper": {"roost.engine.context", "roost.store.keys", "roost.plugins"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or (p != "roost" and module.startswith(p + ".")) for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py and to the doc")


def _resolve(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> Iterator[tuple[str, str, int]]:
    """(imported module, "top" | "deferred" | "typing", line) for each roost import of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module.
        found = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
        return found if len(found) == len(node.names) else [base, *found]

    def walk(node: ast.AST, kind: str) -> Iterator[tuple[str, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.body:
                    yield from walk_one(stmt, "typing")
                for stmt in child.orelse:
                    yield from walk_one(stmt, kind)
                continue
            yield from walk_one(child, kind)

    def walk_one(node: ast.AST, kind: str) -> Iterator[tuple[str, str, int]]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in targets(node):
                if target == "roost" or target.startswith("roost."):
                    resolved = _resolve(target)
                    if resolved != module:
                        yield resolved, kind, node.lineno
            return
        inner = (
            "deferred"
            if kind == "top" and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            else kind
        )
        yield from walk(node, inner)

    yield from walk(ast.parse(path.read_text(), str(path)), "top")


GRAPH = {m: list(imports(m)) for m in MODULES}


def cycles(kinds: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    edges = {m: sorted({t for t, k, _ in GRAPH[m] if k in kinds}) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(MODULES)))
    for m in MODULES:
        if m not in index:
            visit(m)
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_layer_imports_upward() -> None:
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}), {kind}, "
        f"line {line}"
        for module in MODULES
        for target, kind, line in GRAPH[module]
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_builtin_plugin_imports_only_the_public_face() -> None:
    wrong = [
        f"{module} imports {target}, line {line}"
        for module in MODULES
        if module.startswith("roost.builtin")
        for target, _, line in GRAPH[module]
        if target != "roost"
        and not target.startswith("roost.builtin")
        and target not in BUILTIN_EXCEPTIONS.get(module, set())
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    found = cycles({"top", "deferred"})
    assert not found, "\n".join(" <-> ".join(c) for c in found)


# SQL lives in store/ (and the asset repository beside it); the engine's message queue is the one module left.
SQL_OUTSIDE_STORE = {"roost.assets.service", "roost.engine.queue"}


def test_sql_lives_in_the_store() -> None:
    wrong = []
    for module, path in MODULES.items():
        if module.startswith("roost.store") or module in SQL_OUTSIDE_STORE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n == "sqlalchemy" or n.startswith("sqlalchemy.") for n in names):
                wrong.append(
                    f"{module} imports sqlalchemy, line {node.lineno}: move the query into roost.store"
                )
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from roost.engine.context import MISSING\n", [("roost.engine.context", "top")]),
        ("def f():\n    from roost import expr\n", [("roost.expr", "deferred")]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import roost.server\n",
            [("roost.server", "typing")],
        ),
        ("from roost import Task, expr\n", [("roost", "top"), ("roost.expr", "top")]),
    ],
)
def test_the_reader_sees_each_kind_of_import(
    tmp_path: Path, source: str, expected: list[tuple[str, str]]
) -> None:
    # The checks above are only as good as this reader: it must see every form of import.
    probe = ROOT / "store" / "_layers_probe.py"
    MODULES["roost.store._layers_probe"] = tmp_path / "probe.py"
    (tmp_path / "probe.py").write_text(source)
    try:
        assert [(t, k) for t, k, _ in imports("roost.store._layers_probe")] == expected
    finally:
        del MODULES["roost.store._layers_probe"]
    assert not probe.exists()


def test_the_checks_fail_on_an_upward_import_and_a_cycle() -> None:
    saved = dict(GRAPH)
    try:
        GRAPH["roost.store.db"] = [*saved["roost.store.db"], ("roost.engine.engine", "deferred", 1)]
        with pytest.raises(AssertionError, match="roost.store.db .foundation. imports roost.engine.engine"):
            test_no_layer_imports_upward()
        with pytest.raises(AssertionError, match="roost.store.db"):
            test_no_import_cycles()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


if __name__ == "__main__":  # python tests/test_layers.py: the graph, then what the checks find
    for module in MODULES:
        for target, kind, line in GRAPH[module]:
            print(f"{module} -> {target} [{kind}] line {line}")
    for component in cycles({"top", "deferred"}):
        print("CYCLE:", " <-> ".join(component))
