"""The package's imports: no module of it imports one that imports it back (directly or through
others), and the SDK never loads the packages of the command-line tool (the extra `cli`)."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import thisdb

PACKAGE = Path(thisdb.__file__).parent
CLI_PACKAGES = {"click", "rich", "prompt_toolkit", "tomli_w"}


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports, wherever in it (at
    the top, in a function, under TYPE_CHECKING). Importing thisdb.x also runs thisdb/__init__
    first: that is every package's way and is left out, but an import of a name from a package
    (`from thisdb import __version__`) counts as one of the package."""
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                for alias in node.names:
                    module = f"{base}.{alias.name}"
                    imported.add(module if module in paths else base)
        graph[name] = (imported & paths.keys()) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others."""

    def reached(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for module in graph[todo.pop()] - seen:
                seen.add(module)
                todo.append(module)
        return seen

    reach = {module: reached(module) for module in graph}
    groups = {
        frozenset({module} | {other for other in reach[module] if module in reach[other]})
        for module in graph
        if module in reach[module]
    }
    return sorted(sorted(group) for group in groups)


def test_cycles_finds_modules_that_import_each_other():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a", "e2"}, "e2": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e", "e2"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_one_that_imports_it_back():
    graph = import_graph()
    # Read as intended: the shell and main share the state, and main starts the shell.
    assert {"thisdb.cli.state", "thisdb.cli.shell", "thisdb._base"} <= graph.keys()
    assert "thisdb.cli.state" in graph["thisdb.cli.shell"] & graph["thisdb.cli.main"]
    assert "thisdb.cli.shell" in graph["thisdb.cli.main"]
    assert "thisdb._base" in graph["thisdb.client"] & graph["thisdb.async_client"]
    assert cycles(graph) == []


def _loaded_tool_packages(statement: str) -> set[str]:
    """The command-line tool's packages among the modules a fresh Python has after
    `statement`."""
    program = f"import sys\n{statement}\nprint(*sorted({{m.split('.')[0] for m in sys.modules}}))"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split()) & CLI_PACKAGES


def test_importing_the_sdk_loads_none_of_the_tools_packages():
    # httpx itself imports click and rich when they are installed, for its own `httpx` command
    # (httpx/__init__.py tries `from ._main import main`): thisdb must add none to those.
    by_httpx = _loaded_tool_packages("import httpx")
    assert by_httpx <= {"click", "rich"}
    assert _loaded_tool_packages("import thisdb") == by_httpx
    assert _loaded_tool_packages("import thisdb.cli") == by_httpx  # the script's entry point
    assert _loaded_tool_packages("import thisdb.cli.main") == {"click", "rich", "tomli_w"}
