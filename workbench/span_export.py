"""The slot for where each written span goes besides the project's store: the live OTLP
exporter's ``offer`` (``workbench.otlp`` fills it), nothing, or ``UNDECIDED`` until the first
span of a process decides (``workbench.tracing`` starts live export then when an OTLP endpoint
is configured).

A leaf module, so tracing (which writes spans) and the exporter (which installs itself here)
need not import each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

UNDECIDED: Any = object()  # no span written in this process yet

# offer(project, span, attributes), None when spans are not exported, or UNDECIDED.
offer: Callable[[Any, Any, dict[str, Any]], None] | None = UNDECIDED


def set_exporter(new: Callable[[Any, Any, dict[str, Any]], None] | None) -> None:
    """Send every span written from now on to ``new`` too (``workbench.otlp.start_live``), or
    to nothing (None)."""
    global offer
    offer = new


def _reset_after_fork() -> None:
    global offer
    offer = UNDECIDED  # the parent's exporter thread does not exist in the child


os.register_at_fork(after_in_child=_reset_after_fork)
