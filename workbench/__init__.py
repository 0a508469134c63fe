"""LLMOps Workbench: the kernel. Importing it is fast and loads no model or UI code."""

from workbench.errors import WorkbenchError
from workbench.project import (
    Project,
    active_project,
    init_project,
    open_or_create_sample,
    open_project,
    use_project,
)

__version__ = "0.1.0"

__all__ = [
    "Project",
    "WorkbenchError",
    "active_project",
    "init_project",
    "open_or_create_sample",
    "open_project",
    "use_project",
    "__version__",
]
