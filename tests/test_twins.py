"""The Jupyter twins cannot drift from the marimo notebooks: each twin calls every kernel
function its marimo notebook calls, and every kernel name either one calls still exists.

Both are written by hand, so a step added to a marimo notebook (a length filter, a decision
log) would otherwise be silently missing for Jupyter users. A call counts when its name is
rooted in an import from `workbench` or `widgets`; it is resolved at runtime to the module and
qualified name that define it, so `from workbench.data import load_split` and
`workbench.data.splitting.load_split` are the same call. `widgets.notebook` holds the marimo
helpers (choosers, callouts, tables) and is left out. No model runs: the notebooks are parsed,
not executed (their execution is tested in test_notebooks.py)."""

import ast
import importlib
import types
from pathlib import Path

import nbformat
import pytest

from workbench.phases import notebooks_dir
from workbench.tour import guided_notebooks

NOTEBOOKS = guided_notebooks()
KERNEL_ROOTS = ("workbench", "widgets")
MARIMO_ONLY = ("widgets.notebook",)

# Calls a marimo notebook makes only to fill a UI control (a dropdown's choices); the twin
# names its choice in a constant instead. Each entry says which control it feeds.
UI_ONLY: dict[str, dict[str, str]] = {
    "03_models.py": {
        "workbench.prompts.versions.list_prompts":
            "fills the prompt dropdown; the twin compares the sample prompt by name",
    },
    "04_prompts.py": {
        "workbench.prompts.versions.list_prompts":
            "fills the prompt dropdown; the twin works on the sample prompt by name",
    },
    "05_finetuning.py": {
        "workbench.prompts.versions.list_prompts":
            "fills the prompt dropdown; the twin fine-tunes for the sample prompt by name",
    },
    "06_evaluation.py": {
        "workbench.llm.registry.models":
            "fills the judge dropdown with hosted models; the twin names its judge in JUDGE",
        "workbench.runs.list_runs":
            "fills the multiselect of runs to export; the twin exports the repeat runs it made",
    },
    "07_deployment.py": {
        "workbench.runs.list_runs":
            "fills the promptfoo run dropdown; the twin uses the evaluation run it names",
    },
    "09_maintenance.py": {
        "workbench.data.splitting.load_split":
            "sizes the re-evaluation progress bar; the twin shows no progress bar",
    },
}


class Unresolved(Exception):
    """A call names a kernel function that no longer exists."""


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted path it was imported as (absolute imports only)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def dotted_name(node: ast.AST) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for a call on anything but a plain name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def resolve(name: str) -> str:
    """The defining `module.qualname` of a dotted name, so aliases and re-exports compare
    equal; raises Unresolved when no importable prefix holds the rest as attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            if not hasattr(obj, part):
                raise Unresolved(f"{name}: {'.'.join(parts[:cut])} has no {part!r}")
            obj = getattr(obj, part)
        if isinstance(obj, types.ModuleType):
            return obj.__name__
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        return f"{module}.{qualname}" if module and qualname else name
    raise Unresolved(f"{name}: nothing of it can be imported")


def kernel_calls(sources: list[str]) -> tuple[set[str], list[str]]:
    """The resolved kernel functions the sources call, and the calls that did not resolve.
    Imports anywhere in the sources count (notebook cells import where they need)."""
    trees = [ast.parse(source) for source in sources]
    aliases = {}
    for tree in trees:
        aliases.update(import_aliases(tree))
    found, unresolved = set(), []
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            parts = dotted_name(node.func)
            if not parts or parts[0] not in aliases:
                continue
            full = ".".join([aliases[parts[0]], *parts[1:]])
            if not full.startswith(KERNEL_ROOTS) or full.startswith(MARIMO_ONLY):
                continue
            try:
                found.add(resolve(full))
            except Unresolved as exc:
                unresolved.append(str(exc))
    return found, unresolved


def twin_of(notebook: Path) -> Path:
    return notebooks_dir() / "jupyter" / notebook.with_suffix(".ipynb").name


def twin_sources(twin: Path) -> list[str]:
    """The code cells of a twin, without IPython magics and shell lines."""
    cells = nbformat.read(twin, as_version=4).cells
    return ["\n".join(line for line in cell.source.splitlines()
                      if not line.lstrip().startswith(("%", "!")))
            for cell in cells if cell.cell_type == "code"]


def test_there_is_a_twin_per_notebook():
    assert NOTEBOOKS and [n.name for n in NOTEBOOKS if not twin_of(n).is_file()] == []


def test_aliases_and_re_exports_resolve_to_one_function():
    found, unresolved = kernel_calls([
        "from workbench.data import load_split\nload_split(p, 'd', 'train')",
        "import workbench.data.splitting as s\ns.load_split(p, 'd', 'test')",
        "from workbench import data\ndata.load_split(p, 'd', 'test')",
        "import widgets.notebook as nb\nnb.table([])",
        "import pandas as pd\npd.DataFrame()",
    ])
    assert (found, unresolved) == ({"workbench.data.splitting.load_split"}, [])
    assert kernel_calls(["from workbench.data import no_such_step\nno_such_step()"])[1] == [
        "workbench.data.no_such_step: workbench.data has no 'no_such_step'"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_kernel_calls_resolve(notebook):
    """A renamed or removed kernel function fails here, in the notebook or its twin, before a
    user meets the NameError."""
    _, in_notebook = kernel_calls([notebook.read_text()])
    _, in_twin = kernel_calls(twin_sources(twin_of(notebook)))
    assert in_notebook == [], f"{notebook.name} calls kernel names that do not exist"
    assert in_twin == [], f"{twin_of(notebook).name} calls kernel names that do not exist"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_twin_calls_what_its_notebook_calls(notebook):
    marimo_calls, _ = kernel_calls([notebook.read_text()])
    twin_calls, _ = kernel_calls(twin_sources(twin_of(notebook)))
    allowed = UI_ONLY.get(notebook.name, {})
    missing = sorted(marimo_calls - twin_calls - set(allowed))
    assert missing == [], (
        f"{notebook.name} calls kernel functions its Jupyter twin "
        f"{twin_of(notebook).name} does not: {', '.join(missing)}. Add the step to the twin "
        "(or, if the call only fills a marimo UI control, list it in UI_ONLY with the reason).")
    stale = sorted(name for name in allowed
                   if name not in marimo_calls or name in twin_calls)
    assert stale == [], f"UI_ONLY entries for {notebook.name} no longer needed: {stale}"


def test_ui_only_names_notebooks_that_exist():
    assert set(UI_ONLY) <= {n.name for n in NOTEBOOKS}
