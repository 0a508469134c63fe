"""The kernel's import graph has no cycle and no UI import.

Every import counts, also one inside a function (a cycle hidden in a function is still a module
that cannot be understood without the one that imports it); only imports under
``if TYPE_CHECKING:`` are left out, since they never run. A package's ``__init__`` importing its
own modules is an edge like any other; a module's implicit import of its parent package is not.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "workbench"
UI_PACKAGES = ("widgets", "marimo", "anywidget", "ipywidgets", "traitlets", "IPython")


def _module_names() -> dict[str, Path]:
    names = {}
    for path in KERNEL.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def _imported(tree: ast.AST, module: str, is_package: bool,
              is_module=lambda name: False) -> list[tuple[str, int]]:
    """Every module an import statement runs, with its line (relative imports resolved):
    ``from package import name`` imports ``package.name`` when that is a module (then the
    package is only its parent), else ``package``."""
    skipped = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                name = f"{base}.{alias.name}"
                out.append((name if is_module(name) else base, node.lineno))
    return out


def import_graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """Kernel module -> the kernel modules it imports; kernel module -> its UI imports."""
    names = _module_names()

    def kernel_module(name: str) -> str | None:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    ui: dict[str, list[str]] = {}
    for module, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for name, line in _imported(tree, module, path.name == "__init__.py",
                                    is_module=names.__contains__):
            top = name.partition(".")[0]
            if top in UI_PACKAGES:
                ui.setdefault(module, []).append(f"{name} (line {line})")
            elif top == "workbench":
                found = kernel_module(name)
                if found and found != module:
                    edges.add(found)
        graph[module] = edges
    return graph, ui


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    inside = set(component)
    return "\n".join(f"  {m} -> {', '.join(sorted(graph[m] & inside))}" for m in component)


def test_the_kernel_has_no_import_cycle():
    graph, _ = import_graph()
    assert len(graph) > 100  # the walk found the kernel
    found = cycles(graph)
    assert not found, "import cycles in the kernel (cut an edge: a leaf module, or move the " \
        "code that reaches up):\n" + "\n\n".join(_describe(c, graph) for c in found)


def test_the_kernel_imports_no_ui():
    _, ui = import_graph()
    assert not ui, "the kernel imports UI code (it belongs in widgets/ or notebooks/): " + \
        "; ".join(f"{m}: {', '.join(names)}" for m, names in sorted(ui.items()))


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from workbench.b import x\n", {"workbench.b"}),  # inside a function counts
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import workbench.b\n", set()),
    ("from workbench import b\n", {"workbench.b"}),  # a module named in `from ... import`
    ("from . import b\n", {"workbench.b"}),  # relative
])
def test_the_graph_reads_imports_as_python_runs_them(source, expected):
    found = {name for name, _ in _imported(ast.parse(source), "workbench.a", False,
                                           is_module={"workbench.b"}.__contains__)
             if name.startswith("workbench.")}
    assert found == expected


def test_a_cycle_is_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_readme_maps_every_module():
    """The README's module map names every kernel module (a new one gets its line)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("### The kernel, module by module", 1)[1].split("```", 2)[1]
    words = {w.strip("()+,:;`") for w in block.replace("·", " ").split()}
    missing = []
    for path in sorted(KERNEL.iterdir()):
        if path.suffix == ".py" and path.stem != "__init__":
            if path.name not in words and not (path.stem.startswith("monitor_")
                                               and path.stem[8:] in words):
                missing.append(path.name)
        elif path.is_dir() and (path / "__init__.py").exists():
            if f"{path.name}/" not in words:
                missing.append(f"{path.name}/")
            missing += [f"{path.name}/{p.stem}" for p in sorted(path.glob("*.py"))
                        if p.stem != "__init__" and p.stem not in words]
    assert not missing, f"README's module map lacks {missing}"
