"""The comparison grid (phase 4): prompt versions (or models) × items, flipped items marked.

All logic is ``workbench.prompt_grid.compare_prompts`` (the same call a script makes); this class
turns its ``GridData`` into traits, and filters the rows when the front end ticks "only flipped".
``static/grid.js`` only draws the traits and reports the tick.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import traitlets

import workbench
from widgets._base import (
    PROBLEMS,
    STATIC,
    ProjectWidget,
    front_end,
    jsonable,
    problem_message,
)
from workbench.prompt_grid import GridData, compare_prompts


class ComparisonGrid(ProjectWidget):
    """Outputs of several runs side by side: rows are items, columns are runs (in the order of
    ``run_ids``, oldest version first), cells are coloured pass/fail, rows whose verdict flipped
    between two consecutive columns are highlighted, and each column header shows its score.

    ``project`` is an open ``workbench.Project``, a path, or ``None`` for ``WORKBENCH_PROJECT``.
    ``grid`` shows ready-made ``GridData`` instead of loading runs. Problems land in ``error``."""

    _esm = front_end("grid.js")
    _css = STATIC / "grid.css"

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
        super().__init__(project, **kwargs)
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
            data = compare_prompts(self.open_project(), self.run_ids, score=self._score)
        except PROBLEMS as exc:
            self._fail(problem_message(exc, "The runs"))
            return
        self._show(data)

    def _show(self, data: GridData) -> None:
        self.data = data
        with self.hold_sync():
            self.columns = [jsonable(c) for c in data.columns]
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
        self.rows = [jsonable(item) for item in items]

    def _fail(self, message: str) -> None:
        with self.hold_sync():
            self.error = message
            self.columns = []
            self.rows = []
            self.flipped = []
            self.total_rows = 0
