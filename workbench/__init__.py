"""LLMOps Workbench: the kernel. Importing it is fast and loads no model or UI code.

``import workbench as wb`` gives the project functions below, and every part of the kernel as
an attribute loaded on first use (``wb.data``, ``wb.prompts``, ``wb.runs``, ``wb.serve``, ...:
``SUBMODULES``), so one import reaches the whole API without paying for what is not used.
docs/API.md lists what each part offers and the naming convention they share.
"""

from __future__ import annotations

import importlib
from typing import Any

from workbench.create import init_project, open_or_create_sample
from workbench.errors import WorkbenchError
from workbench.project import Project, active_project, open_project, use_project
from workbench.version import __version__

# The kernel's parts in the order of the lifecycle, each loaded when first touched.
SUBMODULES = (
    "card", "baseline", "buildvsbuy", "sketch",  # 1 problem
    "data", "pii", "privacy", "labelstudio",  # 2 data
    "llm", "compare",  # 3 models
    "prompts", "runs",  # 4 prompts
    "finetune",  # 5 fine-tuning
    "evaluate",  # 6 evaluation
    "serve",  # 7 deployment
    "tracing", "otlp", "monitor",  # 8 monitoring
    "maintain", "clusters", "switch", "whatif", "review", "cicd",  # 9 maintenance
    "phases", "report", "exercises", "checkpoints", "wheelhouse", "classview", "bridges",
    # across phases (the learning path, reports, workshops, other tools)
)

__all__ = [
    "Project",
    "WorkbenchError",
    "active_project",
    "init_project",
    "open_or_create_sample",
    "open_project",
    "use_project",
    "__version__",
    *SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in SUBMODULES:
        module = importlib.import_module(f"workbench.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES))
