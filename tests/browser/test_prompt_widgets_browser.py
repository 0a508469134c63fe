"""The prompt playground and the comparison grid render in a real browser (marimo) and sync."""

from __future__ import annotations

from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"

pytestmark = pytest.mark.browser

LABELS = ["billing", "technical", "account"]


@pytest.fixture
def prompt_project(make_split_project):
    """A project with a split dataset 'tiny' and prompt 'triage' v1 on the fake model the app
    registers (it always answers 'billing')."""
    from workbench.project import forget_open_projects
    from workbench.prompts import PromptVersion, save_prompt

    project = make_split_project(LABELS, 40)
    save_prompt(project, "triage", PromptVersion(template="Label: {{ input }}", labels=LABELS,
                                                 model="fake/pg-billing"))
    forget_open_projects()  # the marimo server opens it in its own process
    return project.path


def test_playground_runs_the_draft_and_saves_a_version(page, marimo_app, prompt_project):
    page.goto(marimo_app(APPS / "playground_app.py", project=prompt_project))
    root = page.locator(".wb-playground")
    root.wait_for()
    assert "triage v1" in root.locator(".wb-pg-title").inner_text()
    rows = root.locator(".wb-pg-results tbody tr")
    rows.first.wait_for()
    assert rows.count() == 3
    page.get_by_text("Saved version: 0").wait_for()

    # Edit the draft as a person would; Python receives every change.
    root.locator(".wb-pg-template").fill("Which team? {{ input }}")
    root.locator(".wb-pg-model").select_option("fake/pg-reader")
    root.locator(".wb-pg-run").click()

    # The run happens on a thread in the kernel; its outputs arrive beside the saved version's.
    draft = root.locator('td[data-which="draft"][data-state="pass"]')
    draft.nth(2).wait_for()
    assert draft.count() == 3
    previous = root.locator('td[data-which="previous"]')
    assert previous.count() == 3
    assert [c.inner_text().splitlines()[0] for c in previous.all()] == ["billing"] * 3
    assert "Ran 3 items" in root.locator(".wb-pg-status").inner_text()

    root.locator(".wb-pg-description").fill("ask for the team")
    root.locator(".wb-pg-save").click()
    page.get_by_text("Saved version: 2").wait_for()
    assert "Saved triage v2." in root.locator(".wb-pg-status").inner_text()

    # A template error comes back as a friendly message naming the variable and the line.
    root.locator(".wb-pg-template").fill("Hi\n{{ customer }}")
    root.locator(".wb-pg-run").click()
    alert = root.locator(".wb-pg-error")
    alert.wait_for()
    assert "line 2" in alert.inner_text() and "customer" in alert.inner_text()
    assert not [p for p in page.problems if "page error" in p], page.problems

    import workbench
    from workbench.prompts import load_prompt

    saved = load_prompt(workbench.open_project(prompt_project), "triage").value
    assert (saved.template, saved.model, saved.description) == (
        "Which team? {{ input }}", "fake/pg-reader", "ask for the team")


def test_grid_shows_flipped_rows_and_filters_them(page, marimo_app):
    page.goto(marimo_app(APPS / "grid_app.py"))
    root = page.locator(".wb-grid")
    root.wait_for()
    rows = root.locator("tbody tr")
    rows.first.wait_for()
    assert rows.count() == 3
    assert [r.get_attribute("data-flipped") for r in rows.all()] == ["false", "true", "true"]
    assert [c.inner_text() for c in root.locator(".wb-grid-col-score").all()] == [
        "passed 2/3 (66.7%)", "passed 2/3 (66.7%)"]
    states = [[c.get_attribute("data-passed") for c in r.locator(".wb-grid-cell").all()]
              for r in rows.all()]
    assert states == [["pass", "pass"], ["fail", "pass"], ["pass", "fail"]]
    assert "fixed in v2" in rows.nth(1).inner_text()
    page.get_by_text("Only flipped: False, rows: 3").wait_for()

    root.locator(".wb-grid-only-flipped").check()

    # Python filters: the downstream cell re-runs with the rows it now holds.
    page.get_by_text("Only flipped: True, rows: 2").wait_for()
    root.locator("tbody tr").nth(1).wait_for()
    assert root.locator("tbody tr").count() == 2
    assert "2 of 3 items shown" in root.locator(".wb-grid-count").inner_text()
    assert not [p for p in page.problems if "page error" in p], page.problems
