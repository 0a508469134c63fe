"""The instructor's view: many students' project folders, copied into one folder, read at once.

    >>> from workbench.classview import read_class
    >>> view = read_class("~/class-2026-12")     # one sub-folder per student
    >>> view.students                            # phases done, exercises passed, last activity
    >>> view.figures()                           # plotly: phases, exercises, best scores
    >>> view.write_html("class.html")            # one offline page to keep or mail

Student folders are **never modified**: no migration, no folder created, no lock or journal
file. A database is opened read-only and immutable; when a copy still carries unmerged
write-ahead-log pages (copied while a notebook was writing), the database and its log are
copied to a temporary folder and that copy is read. A folder that cannot be read (a broken
card, a database from another application or a newer workbench) is reported in its row,
never fatal: the rest of the class is still shown.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

STUDENT_COLUMNS = ["student", "project", "state", "problem", "phases_done", "phases",
                   "exercises_passed", "exercises_tried", "best_quality", "quality_target",
                   "meets_target", "last_activity", "schema"]
# States of a student's folder, best first.
STATES = ("ok", "older workbench", "newer workbench", "broken", "not a project")


def _read_only_connection(db_path: Path, scratch: Path) -> sqlite3.Connection:
    """A connection that cannot change ``db_path`` or put any file beside it."""
    wal = db_path.with_name(db_path.name + "-wal")
    source = db_path
    if wal.is_file() and wal.stat().st_size > 0:
        # Unmerged pages live in the log; an immutable open would not see them. Read a copy.
        scratch.mkdir(parents=True, exist_ok=True)
        source = scratch / db_path.name
        shutil.copyfile(db_path, source)
        shutil.copyfile(wal, scratch / wal.name)
        db = sqlite3.connect(f"file:{source.as_posix()}", uri=True, check_same_thread=False)
        db.execute("PRAGMA query_only = ON")
        return db
    db = sqlite3.connect(f"file:{source.as_posix()}?mode=ro&immutable=1", uri=True,
                         check_same_thread=False)
    return db


def _read_only_project(folder: Path, scratch: Path):
    """A ``Project`` over ``folder`` whose store reads through ``_read_only_connection``."""
    from workbench.project import DB_FILE, Project
    from workbench.store import Store

    class ReadOnlyStore(Store):
        def _connect(self) -> sqlite3.Connection:
            return _read_only_connection(self.path, scratch)

    class ReadOnlyProject(Project):
        # A copy may have lost its empty folders (zip files and git drop them).
        @property
        def adapters_dir(self) -> Path:
            found = self.path / "adapters"
            return found if found.is_dir() else scratch / "no-adapters"

        @property
        def deploy_dir(self) -> Path:
            found = self.path / "deploy"
            return found if found.is_dir() else scratch / "no-deploy"

    for empty in ("no-adapters", "no-deploy"):
        (scratch / empty).mkdir(parents=True, exist_ok=True)
    return ReadOnlyProject(folder, ReadOnlyStore(folder / DB_FILE))


def _state_of(db: sqlite3.Connection) -> tuple[str, str, int]:
    """(state, problem, migrations applied) from the database's own bookkeeping."""
    from workbench.store import APP_ID, migration_names

    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "_migrations" not in tables or "meta" not in tables:
        return "not a project", "the database is not a workbench project's", 0
    app = db.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
    if not app or app[0] != APP_ID:
        return "not a project", "the database belongs to another application", 0
    applied = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    known = migration_names()
    newer = [name for name in applied if name not in known]
    if newer:
        return ("newer workbench", f"written by a newer workbench ({', '.join(newer)}); "
                "shown as far as this one can read it", len(applied))
    missing = [name for name in known if name not in applied]
    if missing:
        return ("older workbench", f"from an older workbench ({len(missing)} migration(s) "
                "behind); it upgrades when the student opens it", len(applied))
    return "ok", "", len(applied)


def _last_activity(db: sqlite3.Connection, folder: Path) -> float | None:
    times = []
    for sql in ("SELECT MAX(created_at) FROM records", "SELECT MAX(created_at) FROM runs",
                "SELECT MAX(end_time) FROM spans", "SELECT MAX(created_at) FROM feedback",
                "SELECT MAX(checked_at) FROM exercise_checks"):
        try:
            value = db.execute(sql).fetchone()[0]
        except sqlite3.Error:
            continue
        if value is not None:
            times.append(float(value))
    card = folder / "workbench.toml"
    if card.is_file():
        times.append(card.stat().st_mtime)
    return max(times) if times else None


def _best_scores(project, card) -> list[dict[str, Any]]:
    """Per quality target of the card: the best value any finished run measured."""
    import json

    quality = [m for m in card.metrics if m.direction == ">="]
    best: dict[str, float] = {}
    for (totals,) in project.store.db.execute(
            "SELECT totals FROM runs WHERE status = 'finished' AND totals IS NOT NULL"):
        metrics = (json.loads(totals) or {}).get("metrics") or {}
        for m in quality:
            value = metrics.get(m.name)
            if isinstance(value, (int, float)) and value == value:
                best[m.name] = max(best.get(m.name, value), float(value))
    return [{"metric": m.name, "target": m.target_in_canonical_unit(), "best": best.get(m.name),
             "meets": (best[m.name] >= m.target_in_canonical_unit()) if m.name in best else None}
            for m in quality]


@dataclass
class StudentReport:
    student: str
    row: dict[str, Any]
    exercises: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)


def read_student(folder: Path, scratch: Path) -> StudentReport:
    """Everything the class view shows about one folder; problems go in the row."""
    from workbench.card import parse_card
    from workbench.exercises import exercises
    from workbench.exercises.results import state_of, summarise
    from workbench.project import CARD_FILE, DB_FILE, read_card

    row: dict[str, Any] = {c: None for c in STUDENT_COLUMNS}
    row.update(student=folder.name, project=folder.name, state="ok", problem="",
               phases_done=0, phases="", exercises_passed=0, exercises_tried=0)
    report = StudentReport(folder.name, row)
    if not (folder / CARD_FILE).is_file() or not (folder / DB_FILE).is_file():
        missing = CARD_FILE if not (folder / CARD_FILE).is_file() else DB_FILE
        row.update(state="not a project", problem=f"no {missing} in the folder")
        return report
    project = _read_only_project(folder, scratch)
    try:
        db = project.store.db
        state, problem, row["schema"] = _state_of(db)
        row.update(state=state, problem=problem)
        if state == "not a project":
            return report
        row["last_activity"] = _last_activity(db, folder)
        try:
            raw = read_card(folder / CARD_FILE)
            row["project"] = (raw.get("project") or {}).get("name") or folder.name
        except Exception as exc:  # a card that does not parse: report it, keep reading
            row.update(state="broken", problem=f"the card does not parse: {_short(exc)}")
            raw = None
        summary = summarise(db)
        for found in exercises():
            s = summary.get(found.id)
            report.exercises.append({"student": folder.name, "exercise": found.id,
                                     "title": found.title, "phase": found.phase,
                                     "state": state_of(s), "attempts": s.attempts if s else 0})
        row["exercises_passed"] = sum(e["state"] == "passed" for e in report.exercises)
        row["exercises_tried"] = sum(e["state"] != "not tried" for e in report.exercises)
        if raw is None:
            return report
        try:
            from workbench.phases import phase_status

            phases = phase_status(project)
            done = [p["number"] for p in phases if p["state"] == "done"]
            row.update(phases_done=len(done), phases=" ".join(map(str, done)))
        except Exception as exc:
            _worsen(row, "broken", f"phases could not be read: {_short(exc)}")
        card, problems = parse_card(raw)
        if card is not None:
            try:
                report.scores = [{"student": folder.name, **s}
                                 for s in _best_scores(project, card)]
            except sqlite3.Error as exc:
                _worsen(row, "broken", f"runs could not be read: {_short(exc)}")
            if report.scores:
                first = report.scores[0]
                row.update(best_quality=first["best"], quality_target=first["target"],
                           meets_target=first["meets"])
        elif problems and row["state"] == "ok":
            row["problem"] = f"card: {problems[0]}"
    except sqlite3.DatabaseError as exc:
        _worsen(row, "broken", f"the database cannot be read: {_short(exc)}")
    finally:
        project.store.close()
    return report


def _short(exc: BaseException, n: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _worsen(row: dict[str, Any], state: str, problem: str) -> None:
    if STATES.index(state) > STATES.index(row["state"]):
        row["state"] = state
    row["problem"] = "; ".join(p for p in (row["problem"], problem) if p)


@dataclass
class ClassView:
    """The class at a glance: ``students`` (one row each), ``exercises`` (student × exercise,
    long form) and ``scores`` (student × quality target: best measured value)."""

    folder: Path
    students: pd.DataFrame
    exercises: pd.DataFrame
    scores: pd.DataFrame
    seconds: float

    def figures(self) -> dict[str, Any]:
        """Plotly figures: phases done, exercises passed (a grid), best scores vs targets."""
        import plotly.graph_objects as go

        from workbench.exercises import exercises

        students = self.students.sort_values("student")
        out: dict[str, Any] = {}
        out["Phases done"] = go.Figure(
            go.Bar(x=students["student"], y=students["phases_done"],
                   marker_color=["#1b7f3b" if s == "ok" else "#b42318"
                                 for s in students["state"]],
                   hovertext=students["phases"]),
            layout=dict(yaxis=dict(range=[0, 9], title="phases done (of 9)"), height=320,
                        margin=dict(t=20, b=40)))
        ids = [e.id for e in exercises()]
        code = {"passed": 2, "tried": 1, "not tried": 0}
        names = list(students["student"])
        grid = [[0] * len(ids) for _ in names]
        if len(self.exercises):
            where = {n: i for i, n in enumerate(names)}
            column = {e: j for j, e in enumerate(ids)}
            for r in self.exercises.itertuples():
                if r.student in where and r.exercise in column:
                    grid[where[r.student]][column[r.exercise]] = code[r.state]
        out["Exercises"] = go.Figure(
            go.Heatmap(z=grid, x=ids, y=names, zmin=0, zmax=2, showscale=False,
                       colorscale=[[0, "#f5f7fa"], [0.5, "#f0b429"], [1, "#1b7f3b"]],
                       hovertemplate="%{y} · %{x}<extra></extra>"),
            layout=dict(height=max(240, 28 * len(names) + 80), margin=dict(t=20, b=40),
                        xaxis=dict(type="category", title="exercise (green passed, amber tried)")))
        scores = self.scores.dropna(subset=["best"]) if len(self.scores) else self.scores
        fig = go.Figure(layout=dict(height=320, margin=dict(t=20, b=40),
                                    yaxis=dict(title="best measured value")))
        for metric, part in (scores.groupby("metric") if len(scores) else []):
            fig.add_trace(go.Bar(x=part["student"], y=part["best"], name=metric))
            fig.add_trace(go.Scatter(x=part["student"], y=part["target"], mode="markers",
                                     marker_symbol="line-ew-open", marker_size=26,
                                     name=f"{metric} target"))
        out["Best scores against the card's targets"] = fig
        return out

    def table(self) -> pd.DataFrame:
        """``students`` for people: times as UTC datetimes, newest activity first."""
        import pandas as pd

        shown = self.students.copy()
        shown["last_activity"] = pd.to_datetime(shown["last_activity"], unit="s", utc=True)
        return shown.sort_values(["state", "phases_done"], ascending=[True, False],
                                 key=lambda c: c.map(STATES.index) if c.name == "state" else c)

    def write_html(self, path: str | os.PathLike) -> Path:
        """One self-contained page (plotly inlined) with the table and the charts."""
        from workbench.report import write_report

        table = self.table().drop(columns=["schema"])
        table["last_activity"] = table["last_activity"].dt.strftime("%Y-%m-%d %H:%M")
        sections: list[tuple[str, Any]] = [("Students", table)]
        sections += list(self.figures().items())
        flagged = table[table["state"] != "ok"][["student", "state", "problem"]]
        if len(flagged):
            sections.append(("Folders to look at", flagged))
        return write_report(Path(path), f"Class: {self.folder.name}", sections,
                            subtitle=f"{len(table)} folders read from {self.folder}")


def read_class(folder: str | os.PathLike) -> ClassView:
    """Read every sub-folder of ``folder`` as a student's project (see the module docstring)."""
    import pandas as pd

    from workbench.errors import WorkbenchError

    started = time.perf_counter()
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise WorkbenchError(f"There is no folder at {root}.",
                             "Copy each student's project folder into one folder and pass it.")
    reports = []
    with tempfile.TemporaryDirectory(prefix="workbench-class-") as tmp:
        for i, sub in enumerate(sorted(p for p in root.iterdir()
                                       if p.is_dir() and not p.name.startswith("."))):
            reports.append(read_student(sub, Path(tmp) / str(i)))
    students = pd.DataFrame([r.row for r in reports], columns=STUDENT_COLUMNS)
    exercise_rows = pd.DataFrame([e for r in reports for e in r.exercises],
                                 columns=["student", "exercise", "title", "phase", "state",
                                          "attempts"])
    scores = pd.DataFrame([s for r in reports for s in r.scores],
                          columns=["student", "metric", "target", "best", "meets"])
    return ClassView(root, students, exercise_rows, scores, time.perf_counter() - started)
