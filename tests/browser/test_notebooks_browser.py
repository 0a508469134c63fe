"""The guided notebooks in a real browser: they render, and their one-click steps work."""

from __future__ import annotations

import re
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
    # The import says what it made and which encoding read the file.
    page.get_by_text("Imported 414 rows from support_messages.csv (csv; encoding utf-8").wait_for(
        timeout=180_000)
    assert data.datasets(project) == ["support"]
    assert data.get_version(project, "support").value.transform.name == "import"
    assert not [p for p in page.problems if "page error" in p], page.problems


def test_deployment_notebook_refuses_then_forces_serves_and_answers(page, marimo_app,
                                                                     tmp_path):
    """Notebook 07 clicked through as a person would: evaluate, the gate refuses, tick
    "deploy anyway", start the service, send a message and get an answer over HTTP."""
    import workbench
    from workbench import sample
    from workbench.serve import DeploymentSpec

    project = workbench.init_project(tmp_path / "deploy", sample=True, activate=False)
    sample.fill_prerequisites(project, 7)
    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    page.goto(marimo_app(notebooks_dir() / "07_deployment.py", project=project.path))
    page.get_by_role("button", name="Evaluate this configuration").click()
    page.get_by_text("against the card's targets").wait_for(timeout=120_000)
    page.get_by_role("button", name="Check the gate and deploy").click()
    page.get_by_text("Refused.").wait_for(timeout=60_000)
    page.get_by_text("Deploy even if the gate fails").click()
    page.get_by_role("button", name="Check the gate and deploy").click()
    page.get_by_text("FORCED past a failing gate").wait_for(timeout=60_000)
    page.get_by_role("button", name="Start the service on this machine").click()
    page.get_by_text("Serving deployment v1 at").wait_for(timeout=60_000)
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text("With the key — HTTP 200").wait_for(timeout=60_000)
    page.get_by_text("Without a key — HTTP 401").wait_for(timeout=10_000)
    assert project.records.get(DeploymentSpec, "service").value.forced
    assert project.card()["decisions"][-1]["phase"] == 7
    assert not [p for p in page.problems if "page error" in p], page.problems


def test_monitoring_and_maintenance_notebooks_close_the_loop(page, marimo_app, tmp_path):
    """Notebook 08 sends traffic and draws the dashboard; notebook 09 turns the corrections
    into test cases and re-evaluates — clicked in a real browser."""
    import workbench
    from workbench import sample
    from workbench.data.versioning import get_version
    from workbench.monitor import feedback_frame

    project = workbench.init_project(tmp_path / "loop", sample=True, activate=False)
    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    sample.fill_prerequisites(project, 8)
    page.goto(marimo_app(notebooks_dir() / "08_monitoring.py", project=project.path))
    page.get_by_role("button", name="Start the service and send the traffic").click()
    page.get_by_text(re.compile(r"Sent \d+ requests \(HTTP 200")).wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert len(feedback_frame(project)) > 0
    before = get_version(project, "support").version

    page.goto(marimo_app(notebooks_dir() / "09_maintenance.py", project=project.path))
    page.get_by_role("button", name="Add the labelled cases to the test split").click()
    page.get_by_text("test cases added").wait_for(timeout=60_000)
    page.get_by_role("button", name="Re-evaluate and check the gate").click()
    page.get_by_text("The production cases:").wait_for(timeout=120_000)
    page.get_by_text("Not ready to ship").first.wait_for(timeout=10_000)  # echo never fixes
    assert get_version(project, "support").version == before + 1
    assert not [p for p in page.problems if "page error" in p], page.problems


def test_finetuning_notebook_trains_live_and_stops_on_click(page, marimo_app, tmp_path):
    """Notebook 05 in a real browser: Train starts the fine-tune in the background, the
    monitor's curves update while it runs, Stop ends it and the best weights are saved."""
    import json

    import workbench
    from workbench import sample

    project = workbench.init_project(tmp_path / "ft", sample=True, activate=False)
    sample.fill_prerequisites(project, 5)
    page.goto(marimo_app(notebooks_dir() / "05_finetuning.py", project=project.path))
    page.get_by_role("button", name="Train", exact=True).click()
    monitor = page.locator(".wb-train")
    # A step has finished: the loss curve is drawn while training goes on.
    monitor.locator("polyline.wb-train-train").wait_for(timeout=180_000)
    step = monitor.locator("[data-fact='step']")
    import time

    deadline = time.monotonic() + 120
    while int(step.text_content().split("/")[0]) < 2:  # the page follows the training
        assert time.monotonic() < deadline, step.text_content()
        time.sleep(0.2)
    monitor.get_by_role("button", name="Stop").click()
    monitor.locator("[data-status='stopped']").wait_for(timeout=120_000)
    steps_done = int(step.text_content().split("/")[0])
    total = int(step.text_content().split("/")[1])
    assert steps_done < total
    record = json.loads((project.adapters_dir / "triage-lora" / "training.json").read_text())
    assert record["status"] == "stopped" and record["steps"] == steps_done
    page.get_by_role("button", name="Show the adapter (after training)").click()
    page.get_by_text("Adapter 'triage-lora' (stopped)").wait_for(timeout=60_000)
    assert not [p for p in page.problems if "page error" in p], page.problems
