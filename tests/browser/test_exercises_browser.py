"""An exercise checked in marimo, as a student does: the panel every guided notebook ends with,
its Check button, the hint while the work is missing, the pass once it is done."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

import workbench as wb
from workbench import exercises as ex
from workbench.exercises.solutions import solve_01_1

pytestmark = pytest.mark.browser

APP = Path(__file__).parent / "apps" / "exercise_app.py"


def test_a_student_checks_an_exercise_sees_a_hint_then_passes(page, marimo_app, tmp_path):
    project = wb.init_project(tmp_path / "student", name="student")  # a card with no metrics
    page.goto(marimo_app(APP, project=project.path))
    page.get_by_text("A success metric that can be measured").first.wait_for()
    expect(page.get_by_text("Pick an exercise and press Check.")).to_be_visible()

    page.get_by_role("button", name="Check").click()
    hint = ex.check(project, "01.1", record=False).hint  # what the kernel says is missing
    expect(page.get_by_text("Not yet (attempt 1)")).to_be_visible()
    expect(page.get_by_text(hint[:60], exact=False).first).to_be_visible()
    assert [r["state"] for r in ex.status(project, 1) if r["id"] == "01.1"] == ["tried"]

    solve_01_1(project)  # the student writes a measurable success metric into the card
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_text("Passed (attempt 2)")).to_be_visible()
    assert [r["state"] for r in ex.status(project, 1) if r["id"] == "01.1"] == ["passed"]
    assert not [p for p in page.problems if "page error" in p], page.problems
