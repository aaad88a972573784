"""Imports run one way: accounts never imports the API, the pages or the console; the site
imports no app's pages; and no module of ours imports itself back through others.

Read from the source with `ast`, imports inside functions included: a lazy import is still a
dependency, it only hides a circle from Python.
"""

import ast
from pathlib import Path

from django.conf import settings

PACKAGES = ("api", "accounts", "dashboard", "console", "thisdb_site")

# Circles that stay, each for a reason: none.
ALLOWED_CIRCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    parts = path.relative_to(settings.BASE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((Path(settings.BASE_DIR) / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


MODULES = _modules()


def _ours(name: str) -> str | None:
    """The module of ours that importing `name` loads (`api.models.Bucket` is api.models)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"  # we write them absolute
            assert node.module is not None
            # `from api import lifecycle` imports the module api.lifecycle.
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = {_ours(name) for name in _imported_names(path)}
        graph[module] = {target for target in targets if target and target != module}
    return graph


GRAPH = _graph()


def _imports_of(package: str) -> set[str]:
    return {
        target
        for module, targets in GRAPH.items()
        if module.split(".")[0] == package
        for target in targets
    }


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_the_graph_sees_every_package_and_lazy_imports():
    assert {module.split(".")[0] for module in MODULES} == set(PACKAGES)
    # Imported inside a function: counted all the same.
    assert "api.rollups" in GRAPH["api.apps"]


def test_accounts_imports_nothing_from_the_api_the_pages_or_the_console():
    above = {
        m for m in _imports_of("accounts") if m.split(".")[0] in ("api", "dashboard", "console")
    }
    assert not above


def test_the_site_imports_nothing_from_the_pages():
    assert not {m for m in _imports_of("thisdb_site") if m.split(".")[0] == "dashboard"}


def test_no_import_circles_but_the_ones_explained():
    assert sorted(map(sorted, _circles(GRAPH))) == sorted(map(sorted, ALLOWED_CIRCLES))


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [{"a", "b", "c"}]
