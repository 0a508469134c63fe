"""The project overview: the nine lifecycle phases, what the project holds for each, what's next.

All logic lives here in Python; ``static/overview.js`` only draws the traits and reports clicks.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import anywidget
import traitlets

import workbench
from workbench.phases import next_step, project_status
from workbench.project import ENV_PROJECT

_STATIC = Path(__file__).parent / "static"


class ProjectOverview(anywidget.AnyWidget):
    """Shows a project's nine phases as cards; click one to see how to do it.

    ``project`` is an open ``workbench.Project``, a path, or ``None`` for ``WORKBENCH_PROJECT``.
    A project that cannot be read is reported in ``error`` rather than raised, so a notebook
    still shows something useful (and the Refresh button tries again).
    """

    _esm = _STATIC / "overview.js"
    _css = _STATIC / "overview.css"

    project_name = traitlets.Unicode("").tag(sync=True)
    project_path = traitlets.Unicode("").tag(sync=True)
    phases = traitlets.List(traitlets.Dict()).tag(sync=True)
    next_phase = traitlets.Int(0).tag(sync=True)  # 0: every phase is done (or none readable)
    selected = traitlets.Int(0).tag(sync=True)  # the phase the user clicked; 0: none
    refresh_count = traitlets.Int(0).tag(sync=True)  # the Refresh button bumps it
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, project: workbench.Project | str | os.PathLike | None = None, **kwargs):
        super().__init__(**kwargs)
        self.project: workbench.Project | None = None
        self._source = project
        self.observe(lambda _change: self.refresh(), names="refresh_count")
        self.refresh()

    @property
    def selected_phase(self) -> dict[str, Any] | None:
        return next((p for p in self.phases if p.get("number") == self.selected), None)

    def refresh(self) -> None:
        """Re-read the project (opening it first if that failed before)."""
        try:
            if self.project is None:
                self.project = self._open()
            status = project_status(self.project)
        except (workbench.WorkbenchError, OSError, sqlite3.Error) as exc:
            self._show_error(exc)
            return
        step = next_step(status["phases"])
        with self.hold_sync():
            self.project_name = status["name"]
            self.project_path = status["path"]
            self.phases = status["phases"]
            self.next_phase = step["number"] if step else 0
            self.error = ""

    def _open(self) -> workbench.Project:
        if isinstance(self._source, workbench.Project):
            return self._source
        return workbench.open_project(self._source)

    def _show_error(self, exc: Exception) -> None:
        if isinstance(exc, workbench.WorkbenchError):
            message = exc.one_line()
        else:  # a disk or database problem: still one friendly line, never a traceback
            message = (f"The project could not be read ({type(exc).__name__}: {exc}). "
                       "Check the folder exists and is readable, then press Refresh.")
        if self.project is not None:
            where = str(self.project.path)
        elif isinstance(self._source, (str, os.PathLike)):
            where = str(Path(self._source).expanduser())
        else:
            where = os.environ.get(ENV_PROJECT, "")
        with self.hold_sync():
            self.project_path = where
            self.phases = []
            self.next_phase = 0
            self.error = message
