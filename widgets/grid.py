"""The comparison grid (phase 4): prompt versions (or models) × items, flipped items marked.

All logic is ``workbench.prompt_grid.compare_prompts`` (the same call a script makes); this class
turns its ``GridData`` into traits, and filters the rows when the front end ticks "only flipped".
``static/grid.js`` only draws the traits and reports the tick.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets

import workbench
from workbench.prompt_grid import GridData, compare_prompts
from workbench.errors import WorkbenchError

_STATIC = Path(__file__).parent / "static"


class ComparisonGrid(anywidget.AnyWidget):
    """Outputs of several runs side by side: rows are items, columns are runs (in the order of
    ``run_ids``, oldest version first), cells are coloured pass/fail, rows whose verdict flipped
    between two consecutive columns are highlighted, and each column header shows its score.

    ``project`` is an open ``workbench.Project``, a path, or ``None`` for ``WORKBENCH_PROJECT``.
    ``grid`` shows ready-made ``GridData`` instead of loading runs. Problems land in ``error``."""

    _esm = _STATIC / "grid.js"
    _css = _STATIC / "grid.css"

    project_path = traitlets.Unicode("").tag(sync=True)
    run_ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    columns = traitlets.List(traitlets.Dict()).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)  # the rows shown (after the filter)
    total_rows = traitlets.Int(0).tag(sync=True)
    flipped = traitlets.List(traitlets.Unicode()).tag(sync=True)
    only_flipped = traitlets.Bool(False).tag(sync=True)  # the front end's filter tick
    refresh_requests = traitlets.Int(0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, project: workbench.Project | str | os.PathLike | None = None,
                 run_ids: Sequence[str] = (), *, grid: GridData | None = None,
                 score: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.project: workbench.Project | None = None
        self._source = project
        self._score = score
        self.data: GridData | None = grid
        self.run_ids = list(run_ids)
        self.observe(lambda _change: self._show_rows(), names="only_flipped")
        self.observe(lambda _change: self.refresh(), names="refresh_requests")
        if grid is not None:
            self._show(grid)
        else:
            self.refresh()

    def refresh(self) -> None:
        """Load the runs again (a resumed run has more items)."""
        if not self.run_ids:
            if self.data is None:
                self._fail("No runs to compare: pass the run ids of two or more runs "
                           "(list_runs(project) lists them).")
            return
        try:
            if self.project is None:
                self.project = (self._source if isinstance(self._source, workbench.Project)
                                else workbench.open_project(self._source))
            data = compare_prompts(self.project, self.run_ids, score=self._score)
        except WorkbenchError as exc:
            self._fail(exc.one_line())
            return
        except (OSError, sqlite3.Error) as exc:
            self._fail(f"The runs could not be read ({type(exc).__name__}: {exc}).")
            return
        self.project_path = str(self.project.path)
        self._show(data)

    def _show(self, data: GridData) -> None:
        self.data = data
        with self.hold_sync():
            self.columns = [_jsonable(c) for c in data.columns]
            self.flipped = list(data.flipped)
            self.total_rows = len(data.items)
            self.error = ""
            self._show_rows()

    def _show_rows(self) -> None:
        if self.data is None:
            return
        items = self.data.items
        if self.only_flipped:
            items = [item for item in items if item["flipped"]]
        self.rows = [_jsonable(item) for item in items]

    def _fail(self, message: str) -> None:
        with self.hold_sync():
            self.error = message
            self.columns = []
            self.rows = []
            self.flipped = []
            self.total_rows = 0


def _jsonable(value: Any) -> Any:
    """Plain JSON values for the comm (NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
