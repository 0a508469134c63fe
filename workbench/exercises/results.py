"""Checks as stored in a project (table ``exercise_checks``, migration ``m013_exercises``).

Reading takes a plain ``sqlite3.Connection``, so the instructor's view can read a student's
copy through a read-only connection with the same code.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.exercises.model import Exercise, Verdict
    from workbench.project import Project

STATUS_COLUMNS = ["id", "phase", "title", "state", "attempts", "first_passed", "last_checked",
                  "last_hint"]


def record(project: Project, exercise_id: str, verdict: Verdict) -> tuple[int, float]:
    """Store one attempt; returns its number (1 for the first) and its time. The number is
    taken inside the write transaction, so two notebooks checking at once never share one."""
    from workbench.version import __version__

    now = time.time()
    with project.store.write() as db:
        (last,) = db.execute("SELECT COALESCE(MAX(attempt), 0) FROM exercise_checks "
                             "WHERE exercise = ?", (exercise_id,)).fetchone()
        db.execute("INSERT INTO exercise_checks VALUES (?, ?, ?, ?, ?, ?)",
                   (exercise_id, last + 1, now, int(verdict.passed), verdict.hint,
                    __version__))
    return last + 1, now


@dataclass(frozen=True)
class Summary:
    """What the attempts at one exercise add up to."""

    attempts: int
    first_passed: float | None
    last_checked: float
    last_passed: bool
    last_hint: str


def summarise(db: sqlite3.Connection) -> dict[str, Summary]:
    """Per exercise id, what its attempts add up to (empty when the table is missing: a
    project from a workbench without exercises)."""
    try:
        rows = db.execute("SELECT exercise, attempt, checked_at, passed, hint "
                          "FROM exercise_checks ORDER BY exercise, attempt").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    out: dict[str, Summary] = {}
    for exercise_id, _attempt, checked_at, passed, hint in rows:
        before = out.get(exercise_id)
        first = before.first_passed if before else None
        if passed and first is None:
            first = checked_at
        out[exercise_id] = Summary(attempts=(before.attempts if before else 0) + 1,
                                   first_passed=first, last_checked=checked_at,
                                   last_passed=bool(passed), last_hint=hint)
    return out


def state_of(summary: Summary | None) -> str:
    """"passed" once any attempt passed (an achievement stays one), "tried" after attempts
    that all failed, "not tried" before the first."""
    if summary is None:
        return "not tried"
    return "passed" if summary.first_passed is not None else "tried"


def status_row(exercise: Exercise, summary: Summary | None) -> dict[str, Any]:
    return {"id": exercise.id, "phase": exercise.phase, "title": exercise.title,
            "state": state_of(summary), "attempts": summary.attempts if summary else 0,
            "first_passed": summary.first_passed if summary else None,
            "last_checked": summary.last_checked if summary else None,
            "last_hint": summary.last_hint if summary else ""}
