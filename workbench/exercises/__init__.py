"""Exercises with checks: two or three per guided notebook, each checked against the project.

    >>> import workbench.exercises as ex
    >>> [e.id for e in ex.exercises(phase=4)]
    ['04.1', '04.2']
    >>> result = ex.check(project, "04.2")          # reads the project, records the attempt
    >>> result.passed, result.hint
    (False, 'Two versions of one prompt ran on the same items, but ...')
    >>> ex.status_frame(project)                    # every exercise: passed?, attempts, when

A check only **reads** the project (the card, runs, dataset versions, the deployment, traces,
...) and answers pass or fail with a hint that points at what is missing without giving the
answer away. Each attempt is stored in the project (``exercise_checks``: time, attempt
number, verdict, hint), so ``workbench exercises`` and the instructor's view
(``workbench class DIR``) show who did what.

Solutions live apart, in ``workbench.exercises.solutions`` (never imported by the notebooks or
the kernel): ``workbench exercises --solutions DIR`` writes them out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.exercises.catalog import UnknownExercise, exercise, exercises
from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

__all__ = [
    "CheckResult", "Exercise", "UnknownExercise", "Verdict", "check", "exercise", "exercises",
    "status", "status_frame", "write_solutions",
]


@dataclass(frozen=True)
class CheckResult:
    """One attempt at an exercise: its verdict, the hint and the attempt's number."""

    exercise: str
    title: str
    passed: bool
    hint: str
    attempt: int
    checked_at: float

    def __str__(self) -> str:
        verdict = "Passed" if self.passed else "Not yet"
        return f"{self.exercise} {self.title} — {verdict} (attempt {self.attempt}). {self.hint}"

    def _repr_markdown_(self) -> str:
        verdict = "✅ **Passed**" if self.passed else "❌ **Not yet**"
        return (f"**{self.exercise} · {self.title}** — {verdict} (attempt {self.attempt})\n\n"
                f"{self.hint}")


def _opened(project: Project | str | os.PathLike) -> Project:
    from workbench.project import Project, open_project

    return project if isinstance(project, Project) else open_project(project, activate=False)


def check(project: Project | str | os.PathLike, exercise_id: str, *,
          record: bool = True) -> CheckResult:
    """Check one exercise against the project and (with ``record``) store the attempt.

    A problem the project itself has (a card that does not validate, a dataset that cannot be
    read) is a failed attempt whose hint is that problem and its fix."""
    from workbench.exercises import results

    project = _opened(project)
    found = exercise(exercise_id)
    project.store.flush()  # traces and cache rows written a moment ago are part of the project
    try:
        verdict = found.check(project)
    except WorkbenchError as exc:
        verdict = Verdict(False, f"The project has a problem to fix first: {exc.one_line()}")
    if not record:
        return CheckResult(found.id, found.title, verdict.passed, verdict.hint, 0, time.time())
    attempt, when = results.record(project, found.id, verdict)
    return CheckResult(found.id, found.title, verdict.passed, verdict.hint, attempt, when)


def status(project: Project | str | os.PathLike,
           phase: int | None = None) -> list[dict[str, Any]]:
    """Every exercise (or one phase's) with what the project's attempts say: ``state``
    ("passed", "tried" or "not tried"), ``attempts``, ``first_passed``, ``last_checked`` and
    the last hint. Nothing is checked here; ``check`` does that."""
    from workbench.exercises import results

    project = _opened(project)
    summary = results.summarise(project.store.db)
    return [results.status_row(e, summary.get(e.id)) for e in exercises(phase)]


def status_frame(project: Project | str | os.PathLike,
                 phase: int | None = None) -> pd.DataFrame:
    """``status`` as a DataFrame (times as UTC datetimes), for notebooks."""
    import pandas as pd

    from workbench.exercises.results import STATUS_COLUMNS

    frame = pd.DataFrame(status(project, phase), columns=STATUS_COLUMNS)
    for column in ("first_passed", "last_checked"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


def write_solutions(folder: str | os.PathLike) -> list[Any]:
    """Write every exercise's solution to ``folder`` (a Markdown file each, and the runnable
    solutions module); returns the paths written. See ``workbench.exercises.solutions``."""
    from workbench.exercises.writing import write_solutions as write

    return write(folder)
