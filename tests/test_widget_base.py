"""What the widgets share: one copy of the front-end helpers, and storage problems shown as a
sentence that says what to do (from a real damaged or locked database, not a stand-in)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

import workbench
from workbench.project import forget_open_projects

STATIC = Path(__file__).resolve().parents[1] / "widgets" / "static"
WIDGET_JS = sorted(p for p in STATIC.glob("*.js") if not p.name.startswith("_"))


def _widget_classes():
    import widgets

    return [getattr(widgets, name) for name in widgets.__all__]


# -- one front-end helper ------------------------------------------------------------------------

def test_each_shared_helper_is_defined_once_and_every_widget_imports_it():
    from widgets._base import HELPERS, helper_names

    names = helper_names()
    assert {"h", "withCode", "bump", "svgEl"} <= set(names)
    everything = {p.name: p.read_text(encoding="utf-8") for p in STATIC.glob("*.js")}
    for name in names:
        defined = [f for f, text in everything.items()
                   if re.search(rf"^\s*(?:export\s+)?(?:function\s+{name}\s*\(|"
                                rf"(?:const|let|var)\s+{name}\s*=)", text, re.M)]
        assert defined == [HELPERS], f"{name} is defined in {defined}"
    # A copy under another name still creates elements the same way.
    makers = [f for f, text in everything.items() if "document.createElement(tag)" in text]
    assert makers == [HELPERS]
    assert len(WIDGET_JS) == len(_widget_classes())
    for path in WIDGET_JS:
        imports = re.findall(r'^import \{[^}]*\} from "\./_dom\.js";$',
                             everything[path.name], re.M)
        assert len(imports) == 1, path.name


def test_every_widget_module_arrives_whole_with_the_helpers_written_in():
    from widgets._base import helper_names

    for cls in _widget_classes():
        esm = str(cls._esm)
        assert not re.search(r"^\s*import\b", esm, re.M), cls  # nothing left to resolve
        for name in helper_names():  # written in once, unexported
            assert len(re.findall(rf"^function {name}\(", esm, re.M)) == 1, (cls, name)
        assert re.findall(r"^export .*", esm, re.M) == ["export default {"], cls


def test_a_widget_that_defines_a_helper_itself_is_refused(tmp_path, monkeypatch):
    from widgets import _base

    (tmp_path / _base.HELPERS).write_bytes((STATIC / _base.HELPERS).read_bytes())
    (tmp_path / "copy.js").write_text('import { h } from "./_dom.js";\n\n'
                                      "function withCode(text) { return text; }\n"
                                      "export default { render() {} };\n")
    (tmp_path / "typo.js").write_text('import { hh } from "./_dom.js";\n'
                                      "export default { render() {} };\n")
    monkeypatch.setattr(_base, "STATIC", tmp_path)
    with pytest.raises(ValueError, match=r"defines \['withCode'\] itself"):
        _base.front_end("copy.js")
    with pytest.raises(ValueError, match=r"imports \['hh'\]"):
        _base.front_end("typo.js")


# -- storage problems as a sentence ---------------------------------------------------------------

def _database(project: workbench.Project) -> Path:
    path = project.store.path
    forget_open_projects()
    project.close()
    return path


def _damage(db: Path) -> None:
    """Overwrite the first page of every table and index but the two the project is opened
    with, as a failing disk or a half-finished copy would."""
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = [root for root, table in con.execute(
            "SELECT rootpage, tbl_name FROM sqlite_master WHERE rootpage > 0")
            if table not in ("meta", "_migrations")]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    raw = bytearray(db.read_bytes())
    for root in pages:
        raw[(root - 1) * size:root * size] = b"\xa5" * size
    db.write_bytes(bytes(raw))


def test_a_damaged_database_reaches_each_widget_as_what_to_do(tmp_path):
    from widgets import ComparisonGrid, Playground, ProjectOverview, TraceViewer

    folder = tmp_path / "project"
    _damage(_database(workbench.init_project(folder, activate=False)))

    overview = ProjectOverview(folder)
    viewer = TraceViewer(folder)
    grid = ComparisonGrid(folder, ["r1", "r2"])
    playground = Playground(folder, "triage", dataset="tickets")
    for widget, subject in ((overview, "The project"), (viewer, "The traces"),
                            (grid, "The runs"), (playground, "The prompt triage")):
        assert widget.error == (
            f"{subject} could not be read{' or run' if widget is playground else ''}: the "
            "project's database (workbench.db in the project folder) is damaged. Copy the "
            "project folder somewhere safe, then restore workbench.db from a backup "
            "(workbench.db.bak-* beside it, if any, or your own copy); the workbench never "
            "overwrites it. (SQLite: DatabaseError: database disk image is malformed)"), widget
        assert widget.project_path == str(folder)
    assert overview.phases == [] and viewer.rows == [] and grid.rows == []


def test_a_locked_database_says_to_wait_and_the_widget_recovers(tmp_path, monkeypatch):
    from widgets import ProjectOverview, TraceViewer

    # Wait a moment for the lock rather than a minute (the lock itself is real).
    monkeypatch.setattr("workbench.store.BUSY_TIMEOUT_MS", 100)
    folder = tmp_path / "project"
    db = _database(workbench.init_project(folder, activate=False))
    # In WAL mode readers never wait for a writer; a rollback journal is where a lock shows.
    with sqlite3.connect(db, isolation_level=None) as con:
        con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    overview, viewer = ProjectOverview(folder), TraceViewer(folder)
    assert overview.error == viewer.error == "" and overview.phases

    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        overview.refresh()
        viewer.refresh()
    finally:
        other.execute("ROLLBACK")
        other.close()
    for widget in (overview, viewer):
        assert "(workbench.db in the project folder) is locked by another program" in widget.error
        assert "Wait for it to finish (or stop it), then try again." in widget.error
        assert widget.error.endswith("(SQLite: OperationalError: database is locked)")
    assert overview.phases == []

    overview.refresh()
    viewer.refresh()
    assert overview.error == viewer.error == "" and overview.phases


def test_the_card_form_shows_a_storage_problem_among_its_errors(tmp_path):
    from widgets import CardForm

    folder = tmp_path / "project"
    _database(workbench.init_project(folder, activate=False)).write_bytes(b"not SQLite " * 400)
    form = CardForm(folder)
    assert form.status == "error" and form.project_path == str(folder)
    assert len(form.errors) == 1 and "Restore it from a backup" in form.errors[0]
