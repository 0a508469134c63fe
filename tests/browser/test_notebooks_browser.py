"""The guided notebooks in a real browser: they render, and their one-click steps work."""

from __future__ import annotations

import tomllib

import pytest

from workbench.phases import notebooks_dir

pytestmark = [pytest.mark.browser, pytest.mark.model]


def test_problem_notebook_fills_the_card_from_the_sample_in_one_click(page, marimo_app,
                                                                       tmp_path):
    import workbench

    project = workbench.init_project(tmp_path / "empty", activate=False)
    assert "use_case" not in tomllib.loads(project.card_path.read_text())
    page.goto(marimo_app(notebooks_dir() / "01_problem.py", project=project.path))
    page.get_by_text("Fill the card from the sample project").click()
    from playwright.sync_api import expect

    form = page.locator(".wb-card-form")
    # The form re-renders from the filled card (it showed the empty one before the click).
    expect(form.locator("[name='use_case.task_type']")).to_have_value("classification",
                                                                      timeout=60_000)
    page.locator("svg").filter(has_text="PII filter").first.wait_for(timeout=60_000)
    card = tomllib.loads(project.card_path.read_text())
    assert card["use_case"]["task_type"] == "classification" and len(card["metrics"]) == 3
    assert not [p for p in page.problems if "page error" in p], page.problems


def test_data_notebook_imports_the_sample_file_on_click(page, marimo_app, tmp_path):
    import workbench
    from workbench import data

    project = workbench.init_project(tmp_path / "sample", sample=True, activate=False)
    page.goto(marimo_app(notebooks_dir() / "02_data.py", project=project.path))
    page.get_by_text("Press Import to bring the file into the project.").wait_for(
        timeout=60_000)
    page.get_by_role("button", name="Import").click()
    page.get_by_text("Dataset support holds 414 rows").wait_for(timeout=180_000)
    assert data.datasets(project) == ["support"]
    assert data.get_version(project, "support").value.transform.name == "import"
    assert not [p for p in page.problems if "page error" in p], page.problems
