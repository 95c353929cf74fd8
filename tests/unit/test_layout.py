"""The package's layout (docs/architecture.md, "Layout"): wings, and no import circles.

Every import counts, as in ``shared/tools/import_circles.py``: at module level, under ``TYPE_CHECKING`` and
inside functions. A circle is a set of modules that all reach each other through imports; the library has none,
nor has the tools wing (``cachekit._tools``: CLI, demo, bench), which the library never imports.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import cachekit

ROOT = Path(cachekit.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("cachekit", *path.relative_to(ROOT).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    base = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                module = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            named.add(module)
            named.update(f"{module}.{alias.name}" for alias in node.names)
    targets = set()
    for imported in named:
        module = imported
        while module and module not in known:
            module = module.rpartition(".")[0]
        # A package's __init__ importing its own submodules is not a circle of design (the shared tool's rule).
        if module and module != name and not module.startswith(name + "."):
            targets.add(module)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start, edges_of_start in graph.items():
        if start in index:
            continue
        work = [(start, iter(sorted(edges_of_start)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def test_no_import_circles() -> None:
    circles = _circles(_graph())
    assert not circles, [sorted(c) for c in circles]


def test_the_library_never_imports_the_tools_wing() -> None:
    wing = "cachekit._tools"
    entry_points = {"cachekit.__main__"}  # python -m cachekit runs the CLI
    reaching = {
        name: sorted(t for t in targets if t == wing or t.startswith(wing + "."))
        for name, targets in _graph().items()
        if not (name == wing or name.startswith(wing + ".")) and name not in entry_points
    }
    assert {name: found for name, found in reaching.items() if found} == {}


def test_the_circle_finder_finds_a_circle() -> None:
    # The check above would pass on any graph if this found nothing.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [frozenset({"a", "b", "c"})]
    assert _circles({"p": {"p.m"}, "p.m": {"p"}}) == [frozenset({"p", "p.m"})]


def test_the_supported_modules_are_stated_and_each_declares_its_names() -> None:
    stated = re.findall(r"^\* (.+?): ", cachekit.__doc__ or "", re.MULTILINE)
    modules = [name for line in stated for name in re.findall(r"``(cachekit[\w.]*)``", line)]
    assert {"cachekit", "cachekit.errors", "cachekit.drivers.base", "cachekit.testing"} <= set(modules), modules
    for name in modules:
        assert not any(part.startswith("_") for part in name.split(".")), name
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported, f"{name} states no __all__"
        assert [n for n in exported if not hasattr(module, n) and n not in dir(module)] == [], name
