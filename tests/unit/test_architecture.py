"""The layout rules of docs/ARCHITECTURE.md, checked on the source (no Spark needed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "spark_dl"
SOURCES = sorted(ROOT.rglob("*.py"))
#: Attributes that exist only on classic sessions, or are private to pyspark.
CLASSIC_ONLY = {"sparkContext", "_jsc", "_jvm", "rdd", "_collect_as_arrow", "toArrow",
                "_train_on_dataframe", "textFile", "setLogLevel", "defaultParallelism"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(path: Path) -> set[str]:
    """spark_dl modules ``path`` imports anywhere (module level or inside functions),
    leaving out ``if TYPE_CHECKING:`` blocks, which never run."""
    tree = _tree(path)
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith("spark_dl"))
    return found


def test_classic_only_calls_live_in_the_adapter():
    offenders = []
    for path in SOURCES:
        if path.name == "compat.py":
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr in CLASSIC_ONLY:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and any(a.name == "is_connect"
                                                        for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} is_connect "
                                 "(branch on the session type inside compat.py only)")
    assert not offenders, "use spark_dl.compat instead: " + ", ".join(offenders)


def test_nothing_listens_for_executors_to_call_back():
    """No module serves a socket or a TCPStore: under Spark Connect the Python driver is the
    client, which executors may not reach (training reports through the ranks' own store,
    see training/channel.py)."""
    offenders = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[0] in ("socket", "socketserver", "http", "xmlrpc"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} import {name}")
            if isinstance(node, ast.keyword) and node.arg == "is_master" and not (
                    isinstance(node.value, ast.Constant) and node.value.value is False):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} is_master")
    assert not offenders, ", ".join(offenders)


def test_no_import_cycles():
    modules = {_module(p): p for p in SOURCES}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # A package's __init__ re-exporting its modules is not a cycle with them.
    graph = {m: {i for i in deps if not (i == m.rpartition(".")[0] and
                                          modules[i].name == "__init__")}
             for m, deps in graph.items()}
    cycles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        for dep in sorted(graph[node]):
            visit(dep, stack + [node], done)
        done.add(node)

    done: set[str] = set()
    for module in sorted(graph):
        visit(module, [], done)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_readable(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= 500, f"{path.name} has {lines} lines (at most 500)"
    for node in ast.walk(_tree(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{path.name}: {node.name} has {length} lines (at most 60)"
