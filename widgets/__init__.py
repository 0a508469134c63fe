"""anywidget widgets for Jupyter and marimo.

Widgets load lazily, so ``import widgets`` stays cheap and does not import anywidget.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from widgets.overview import ProjectOverview

# public name -> module that defines it
_LAZY = {
    "ProjectOverview": "widgets.overview",
    "Annotator": "widgets.annotate",
    "CardForm": "widgets.card_form",
    "Playground": "widgets.playground",
    "ComparisonGrid": "widgets.grid",
    "TrainingMonitor": "widgets.training",
    "TraceViewer": "widgets.traces",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
