"""The card form renders in marimo, and a Save from the browser reaches the project file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"

pytestmark = pytest.mark.browser


def test_card_form_in_marimo_saves_a_target(page, marimo_app, tmp_path):
    import workbench

    project = workbench.init_project(tmp_path / "project", sample=True, activate=False)
    url = marimo_app(APPS / "card_form_app.py", project=project.path)
    page.goto(url)
    form = page.locator(".wb-card-form")
    form.wait_for()
    page.get_by_text("Saved count: 0").wait_for()
    assert form.locator("[name='use_case.task_type']").input_value() == "classification"
    rows = form.locator("table.wb-cf-metrics tbody tr")
    assert rows.count() == 3

    # A problem first: a unit cleared is reported beside the form and nothing is written.
    before = project.card_path.read_text()
    rows.nth(1).locator("[name=unit]").fill("")
    form.locator(".wb-cf-save").click()
    form.locator(".wb-cf-errors").wait_for()
    assert "metrics[1] 'p95_latency' has no unit" in form.locator(".wb-cf-errors").inner_text()
    assert form.locator(".wb-cf-status").get_attribute("data-status") == "invalid"
    assert form.locator("tr[data-row='1']").get_attribute("class") == "wb-cf-invalid"
    assert project.card_path.read_text() == before

    # Fixed and a new target: saved, shown as saved, and on disk.
    form.locator("tr[data-row='1'] [name=unit]").fill("s")
    form.locator("tr[data-row='0'] [name=target]").fill("0.95")
    form.locator("[name='constraints.blocked_terms']").fill("Globex\nproject falcon")
    assert form.locator(".wb-cf-status").inner_text() == "Unsaved changes"
    form.locator(".wb-cf-save").click()
    page.get_by_text("Saved count: 1").wait_for()  # the next cell re-ran: Python saw the save
    form.locator(".wb-cf-status[data-status='saved']").wait_for()
    assert form.locator(".wb-cf-status").inner_text() == "Saved"
    assert form.locator(".wb-cf-errors").count() == 0
    card = tomllib.loads(project.card_path.read_text())
    assert card["metrics"][0]["target"] == 0.95
    assert card["metrics"][1]["unit"] == "s"
    assert card["constraints"]["blocked_terms"] == ["Globex", "project falcon"]
    assert form.locator("tr[data-row='0'] [name=target]").input_value() == "0.95"
    assert not [p for p in page.problems if "page error" in p], page.problems
