"""The product's structure: every import points down the layers, and no two modules import each other.

Layers, top to bottom: bench -> study -> results -> models -> datamodules (docs/architecture.md). A module may
import its own layer and the layers below; imports inside functions count too (a lazy import is still a
dependency). Ray and Optuna are the driver's: only study/ and bench/ import them. The test helpers live in
``tests/helpers`` and no test imports another test module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("datamodules", "models", "results", "study", "bench")  # bottom first
RANK = {name: i for i, name in enumerate(LAYERS)}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in a file, relative ones resolved, ``from pkg import mod`` as ``pkg.mod``."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _product_files() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (REPO / layer).rglob("*.py"))


DRIVER_ONLY = ("ray", "optuna")  # imported by the driver's layers alone
DRIVER_LAYERS = ("study", "bench")


def _known_modules() -> set[str]:
    return {_module_name(p) for p in _product_files()}


def _graph() -> dict[str, set[str]]:
    known = _known_modules()
    graph: dict[str, set[str]] = {}
    for path in _product_files():
        name = _module_name(path)
        targets = {target for _, target in _imports(path) if target in known and target != name}
        # importing a.b.c runs a/__init__ and a/b/__init__ too; those are empty here, so a module is its file
        graph[name] = targets
    return graph


def test_every_import_points_down_the_layers():
    upward = []
    for path in _product_files():
        layer = _module_name(path).split(".")[0]
        for line, target in _imports(path):
            top = target.split(".")[0]
            if top in RANK and RANK[top] > RANK[layer]:
                upward.append(f"{path.relative_to(REPO)}:{line} ({layer}) imports {target} ({top})")
    assert not upward, "imports that climb a layer:\n" + "\n".join(sorted(set(upward)))


def test_ray_and_optuna_are_imported_only_in_study_and_bench():
    """The readers (results/) and everything below them stay light: Optuna's importances are computed by the
    study (study/importance.py) and kept in its tables, which the report reads."""
    found = []
    for path in _product_files():
        if _module_name(path).split(".")[0] in DRIVER_LAYERS:
            continue
        found += [
            f"{path.relative_to(REPO)}:{line} imports {target}"
            for line, target in _imports(path)
            if target.split(".")[0] in DRIVER_ONLY
        ]
    assert not found, "\n".join(sorted(set(found)))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("path", sorted((REPO / "tests").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_tests_import_helpers_not_other_tests_or_bench(path):
    """Shared test code lives in tests/helpers; only the tests of bench/ import bench (their subject)."""
    rel = path.relative_to(REPO)
    if rel.parts[:2] == ("tests", "helpers"):
        return
    bad = []
    for line, target in _imports(path):
        parts = target.split(".")
        if parts[0] == "tests" and len(parts) > 1 and parts[1] not in ("helpers", "assets"):
            bad.append(f"{rel}:{line} imports {target}")
        if parts[0] == "bench" and rel.parts[:2] != ("tests", "bench"):
            bad.append(f"{rel}:{line} imports {target}")
    assert not bad, "\n".join(sorted(set(bad)))
