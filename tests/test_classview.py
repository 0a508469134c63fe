"""The instructor's view on a class folder with good, half-done, broken, newer-version and
stranger folders: every one reported, none modified, one offline HTML summary."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

import workbench
from workbench import exercises as ex
from workbench import sample
from workbench.classview import read_class
from workbench.cli import main


def snapshot(folder):
    """Every file under ``folder`` with its bytes' hash and its modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def classroom(tmp_path):
    from workbench.project import forget_open_projects

    room = tmp_path / "class"
    good = workbench.init_project(room / "ada", name="Ada's triage")
    sample.fill_sample_card(good)
    good.store.db.execute(
        "INSERT INTO runs VALUES ('r1', 1.0, NULL, 'triage', 1, 'fake/echo', 'support', 1, "
        "'validation', 'finished', '{}', ?)",
        ('{"n": 5, "metrics": {"accuracy": 0.94}}',))
    ex.check(good, "01.1")
    ex.check(good, "02.1")
    good.close()

    half = workbench.init_project(room / "bo")  # a card only, nothing checked
    sample.fill_sample_card(half)
    half.close()

    broken = workbench.init_project(room / "cy")
    (broken.path / "workbench.toml").write_text("this is = = not toml\n")
    broken.close()

    newer = workbench.init_project(room / "di")
    sample.fill_sample_card(newer)
    ex.check(newer, "01.1")
    newer.store.db.execute("INSERT INTO _migrations VALUES ('m099_from_the_future', 0)")
    newer.close()

    (room / "eve").mkdir()  # copied the wrong folder
    (room / "eve" / "notes.txt").write_text("oops")

    # A copy taken while a notebook was writing: unmerged pages still in the log.
    live = workbench.init_project(room / "fay")
    sample.fill_sample_card(live)
    live.store.db.execute("PRAGMA wal_autocheckpoint = 0")
    ex.check(live, "01.1")
    keep = sqlite3.connect(live.path / "workbench.db")  # holds the log open: no checkpoint
    keep.execute("SELECT COUNT(*) FROM meta").fetchone()
    live.close()
    forget_open_projects()
    yield room
    keep.close()


def test_every_folder_is_reported_and_none_is_modified(classroom, tmp_path):
    before = snapshot(classroom)
    assert (classroom / "fay" / "workbench.db-wal").stat().st_size > 0
    view = read_class(classroom)
    assert snapshot(classroom) == before
    rows = view.students.set_index("student")
    assert rows["state"].to_dict() == {"ada": "ok", "bo": "ok", "cy": "broken",
                                       "di": "newer workbench", "eve": "not a project",
                                       "fay": "ok"}
    assert rows.loc["ada", "project"] == "Ada's triage"
    assert rows.loc["ada", "exercises_passed"] == 1 and rows.loc["ada", "exercises_tried"] == 2
    assert rows.loc["ada", "best_quality"] == 0.94 and rows.loc["ada", "quality_target"] == 0.9
    assert rows.loc["ada", "meets_target"] == True  # noqa: E712 (numpy bool)
    assert rows.loc["bo", "exercises_tried"] == 0 and rows.loc["bo", "phases_done"] == 1
    assert rows.loc["fay", "exercises_passed"] == 1  # read from the log's pages
    assert rows.loc["di", "exercises_passed"] == 1 and "m099" in rows.loc["di", "problem"]
    assert "card" in rows.loc["cy", "problem"]
    assert rows.loc["ada", "last_activity"] > 1e9
    figures = view.figures()
    assert set(figures) == {"Phases done", "Exercises", "Best scores against the card's targets"}
    page = view.write_html(tmp_path / "summary.html").read_text()
    assert "Plotly" in page and "<script src=" not in page  # plotly inlined: opens offline
    assert "newer workbench" in page and "Folders to look at" in page
    assert snapshot(classroom) == before


def test_cli_prints_the_table_and_writes_the_summary(classroom, tmp_path, capsys):
    out = tmp_path / "class.html"
    assert main(["class", str(classroom), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ada" in text and "broken" in text and "6 folders read" in text
    assert out.is_file()
    assert main(["class", str(tmp_path / "nowhere")]) == 1


def test_instructor_notebook_runs_headless_on_the_class(classroom, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    before = snapshot(classroom)
    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "instructor.py"
    env = dict(os.environ, MARIMO_SKIP_UPDATE_CHECK="1", WORKBENCH_CLASS=str(classroom))
    proc = subprocess.run([sys.executable, str(notebook)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert snapshot(classroom) == before
