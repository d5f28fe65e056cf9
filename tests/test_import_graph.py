"""The project's import graph: no cycles among the modules of sftui, sampler and algos, no import against the
direction sftui -> sampler -> algos, and project modules imported inside functions only where a test says why.

Every import an AST holds counts, under `if TYPE_CHECKING:` and inside functions too: a cycle hidden there is
still two modules that cannot be read apart.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sftui", "sampler", "algos")
LAYER = {"sftui": 2, "sampler": 1, "algos": 0}  # a module imports its own layer and the ones below


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of `modules` an import statement names: `from p import m` names p.m where that is a module,
    else p."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module
    named = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return named & modules


def import_graph(root: Path, *packages: str) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports, for every module under root/<package>."""
    paths = sorted(path for package in packages for path in (root / package).rglob("*.py"))
    modules = {_module_name(path, root): path for path in paths}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(node, module, path.name == "__init__.py", set(modules))
        graph[module] = edges - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph[module]):
            cycle = visit(imported)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_the_project_has_no_import_cycle():
    graph = import_graph(ROOT, *PACKAGES)
    assert "algos.model_config" in graph["algos.models"]  # the walker found the edges there are
    assert "sampler.run.plan" in graph["sampler.run.supervisor"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_against_the_direction():
    for module, imported in import_graph(ROOT, *PACKAGES).items():
        upward = {m for m in imported if LAYER[m.split(".")[0]] > LAYER[module.split(".")[0]]}
        assert not upward, f"{module} imports {sorted(upward)}, against sftui -> sampler -> algos"


# The modules that may import project modules inside functions: the console script's main module and the command
# groups it adds. `sftui --help`, every one-line command, and every spawned worker (which re-imports the main
# module) pay for what they import at the top; test_the_cli_module_loads_neither_torch_nor_the_engine checks it.
# sftui.__main__, the entry point, imports the CLI inside main() only after it holds Ctrl+C (sampler.run.interrupts).
LAZY = {"sftui.__main__", "sftui.cli", "sftui.control_cli", "sftui.sweep_cli"}


def _function_level_imports(root: Path, package: str) -> dict[str, list[str]]:
    """Module -> the project imports written inside its functions."""
    found: dict[str, list[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                if any(name.split(".")[0] in PACKAGES for name in names):
                    found.setdefault(_module_name(path, root), []).append(f"line {node.lineno}: {names[0]}")
    return found


def test_project_modules_are_imported_inside_functions_only_where_a_test_says_why():
    for package in PACKAGES:
        for module, imports in _function_level_imports(ROOT, package).items():
            assert module in LAZY, f"{module} imports project modules inside functions: {imports}"


def test_the_cli_module_loads_neither_torch_nor_the_engine():
    script = "import sys, sftui.cli; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"torch", "textual", "sampler.run.supervisor", "sampler.config.build"}


def test_the_walker_sees_imports_under_type_checking_in_functions_and_relative(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sources = {
        "a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b": "def f():\n    from . import c\n",
        "c": "import pkg.d\n",
        "d": "from .a import A\n",
        "e": "from pkg import a\n",
    }
    for name, source in sources.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.d"},
                     "pkg.d": {"pkg.a"}, "pkg.e": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.a"]
    assert find_cycle({**graph, "pkg.d": set()}) is None
