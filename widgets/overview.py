"""The project overview: the nine lifecycle phases, what the project holds for each, what's next.

All logic lives here in Python; ``static/overview.js`` only draws the traits and reports clicks.
"""

from __future__ import annotations

import os
from typing import Any

import traitlets

import workbench
from widgets._base import PROBLEMS, STATIC, ProjectWidget, front_end, problem_message
from workbench.phases import next_step, project_status


class ProjectOverview(ProjectWidget):
    """Shows a project's nine phases as cards; click one to see how to do it.

    ``project`` is an open ``workbench.Project``, a path, or ``None`` for ``WORKBENCH_PROJECT``.
    A project that cannot be read is reported in ``error`` rather than raised, so a notebook
    still shows something useful (and the Refresh button tries again).
    """

    _esm = front_end("overview.js")
    _css = STATIC / "overview.css"

    project_name = traitlets.Unicode("").tag(sync=True)
    phases = traitlets.List(traitlets.Dict()).tag(sync=True)
    next_phase = traitlets.Int(0).tag(sync=True)  # 0: every phase is done (or none readable)
    selected = traitlets.Int(0).tag(sync=True)  # the phase the user clicked; 0: none
    refresh_count = traitlets.Int(0).tag(sync=True)  # the Refresh button bumps it
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, project: workbench.Project | str | os.PathLike | None = None, **kwargs):
        super().__init__(project, **kwargs)
        self.observe(lambda _change: self.refresh(), names="refresh_count")
        self.refresh()

    @property
    def selected_phase(self) -> dict[str, Any] | None:
        return next((p for p in self.phases if p.get("number") == self.selected), None)

    def refresh(self) -> None:
        """Re-read the project (opening it first if that failed before)."""
        try:
            status = project_status(self.open_project())
        except PROBLEMS as exc:
            self._show_error(exc)
            return
        step = next_step(status["phases"])
        with self.hold_sync():
            self.project_name = status["name"]
            self.project_path = status["path"]
            self.phases = status["phases"]
            self.next_phase = step["number"] if step else 0
            self.error = ""

    def _show_error(self, exc: Exception) -> None:
        with self.hold_sync():
            self.project_path = self.where()
            self.phases = []
            self.next_phase = 0
            self.error = problem_message(exc)
