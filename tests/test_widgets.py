"""Widgets driven through their traits, as the frontend would drive them; no browser here.

(tests/browser/ holds one real-browser test per widget that proves it renders and syncs.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench.phases import next_step, project_status
from workbench.project import forget_open_projects


@pytest.fixture
def project(tmp_path):
    proj = workbench.init_project(tmp_path / "p", sample=True)
    yield proj
    forget_open_projects()


def overview_state(widget) -> dict:
    return {
        "project_name": widget.project_name,
        "project_path": widget.project_path,
        "phases": widget.phases,
        "next_phase": widget.next_phase,
        "selected": widget.selected,
        "error": widget.error,
    }


def expected_state(project, selected: int = 0) -> dict:
    status = project_status(project)
    return {
        "project_name": status["name"],
        "project_path": status["path"],
        "phases": status["phases"],
        "next_phase": next_step(status["phases"])["number"],
        "selected": selected,
        "error": "",
    }


def test_import_widgets_is_lazy():
    code = ("import sys, widgets; assert 'anywidget' not in sys.modules, 'eager import';"
            "widgets.ProjectOverview; assert 'anywidget' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_overview_shows_the_project_status(project):
    from widgets import ProjectOverview

    widget = ProjectOverview(project)

    assert overview_state(widget) == expected_state(project)
    # The cards follow the learning path, the order a beginner takes.
    assert [p["number"] for p in widget.phases] == [1, 2, 4, 3, 6, 7, 8, 9, 5]
    assert [p["step"] for p in widget.phases] == list(range(1, 10))
    # The sample project ships a filled card, so phase 1 is done and the path goes on to 2.
    assert widget.phases[0]["state"] == "done"
    assert widget.next_phase == 2
    assert widget.project_name == "Help desk triage"


def test_overview_opens_a_path_or_the_default_project(project, monkeypatch):
    from widgets import ProjectOverview

    assert overview_state(ProjectOverview(str(project.path))) == expected_state(project)
    monkeypatch.setenv("WORKBENCH_PROJECT", str(project.path))
    assert overview_state(ProjectOverview()) == expected_state(project)


def test_selecting_a_phase(project):
    from widgets import ProjectOverview

    widget = ProjectOverview(project)
    assert widget.selected_phase is None

    widget.set_state({"selected": 4})  # what a click in the frontend sends over the comm
    assert widget.selected_phase == widget.phases[2]
    assert widget.selected_phase["title"] == "Prompt engineering"

    widget.selected = 42
    assert widget.selected_phase is None


def test_refresh_button_rereads_the_project(project):
    from widgets import ProjectOverview

    widget = ProjectOverview(project)
    widget.selected = 3
    assert widget.selected_phase["state"] == "todo"

    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    assert widget.selected_phase["state"] == "todo"  # nothing re-reads until asked
    widget.set_state({"refresh_count": 1})  # the Refresh button

    assert overview_state(widget) == expected_state(project, selected=3)
    assert widget.selected_phase == {**widget.phases[3], "state": "done",
                                     "summary": "chosen model: fake/echo"}


def test_a_bad_path_is_an_error_message_not_an_exception(tmp_path):
    from widgets import ProjectOverview

    missing = tmp_path / "nowhere"
    widget = ProjectOverview(str(missing))

    assert overview_state(widget) == {
        "project_name": "", "project_path": str(missing), "phases": [], "next_phase": 0,
        "selected": 0, "error": widget.error,
    }
    assert str(missing) in widget.error and "workbench init" in widget.error
    assert "Traceback" not in widget.error


def test_no_default_project_is_an_error_message(monkeypatch):
    from widgets import ProjectOverview

    monkeypatch.delenv("WORKBENCH_PROJECT", raising=False)
    widget = ProjectOverview()
    assert "WORKBENCH_PROJECT" in widget.error
    assert widget.phases == []


def test_refresh_recovers_once_the_project_exists(tmp_path):
    from widgets import ProjectOverview

    widget = ProjectOverview(str(tmp_path / "later"))
    assert widget.error

    project = workbench.init_project(tmp_path / "later", sample=True)
    try:
        widget.set_state({"refresh_count": 1})
        assert overview_state(widget) == expected_state(project)
    finally:
        forget_open_projects()


def test_a_broken_card_is_reported_after_opening(project):
    from widgets import ProjectOverview

    widget = ProjectOverview(project)
    project.card_path.write_text("this is [not toml", encoding="utf-8")
    widget.refresh()

    assert widget.phases == [] and widget.next_phase == 0
    assert "not valid TOML" in widget.error
    assert widget.project_path == str(project.path)


def test_the_frontend_listens_to_every_synced_trait():
    from widgets import ProjectOverview, overview

    static = Path(overview.__file__).parent / "static"
    esm = (static / "overview.js").read_text(encoding="utf-8")
    assert str(ProjectOverview._esm) == esm  # anywidget loaded the file beside the module
    assert str(ProjectOverview._css) == (static / "overview.css").read_text(encoding="utf-8")
    assert "export default" in esm and "render(" in esm
    listened = set(re.findall(r'"(\w+)"', re.search(r"const TRAITS = \[(.*?)\]", esm).group(1)))
    # refresh_count only travels from the frontend to Python.
    assert listened == {"project_name", "project_path", "phases", "next_phase", "selected", "error"}
    assert listened | {"refresh_count"} <= set(ProjectOverview.class_trait_names(sync=True))
