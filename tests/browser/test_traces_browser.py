"""The trace viewer in a real browser (marimo): it lists served traces, filters them, opens one
as a tree of spans with timing bars, and shows a long input whole on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from served_traces import FLAKY, LONG, serve_traffic

APPS = Path(__file__).resolve().parent / "apps"

pytestmark = pytest.mark.browser


def test_trace_viewer_filters_and_opens_a_trace_in_marimo(page, marimo_app, tmp_path):
    from playwright.sync_api import expect

    import workbench
    from workbench.project import forget_open_projects

    project = workbench.init_project(tmp_path / "project", activate=False)
    codes = serve_traffic(project)
    forget_open_projects()  # marimo's kernel opens it in its own process
    page.goto(marimo_app(APPS / "traces_app.py", project=project.path))

    rows = page.locator(".wb-traces tr[data-trace]")
    rows.first.wait_for()
    assert rows.count() == 11  # ten requests and a run's model call
    page.get_by_text("Selected trace: none").wait_for()

    # Status: only the failed requests remain, each marked as failed.
    page.locator('.wb-traces select[data-filter="status"]').select_option("error")
    expect(rows).to_have_count(codes.count(502))
    assert set(page.locator(".wb-traces tr[data-trace] .wb-tv-status").all_inner_texts()) == {
        "error"}

    # Back to every status; one end user's service requests (the id as the client sent it).
    page.locator('.wb-traces select[data-filter="status"]').select_option("")
    page.locator('.wb-traces select[data-filter="kind"]').select_option("serve.request")
    user = page.locator('.wb-traces input[data-filter="user"]')
    user.fill("user-1")
    user.press("Enter")
    expect(rows).to_have_count(3)
    first = rows.first
    trace_id = first.get_attribute("data-trace")
    assert FLAKY in first.inner_text() and "triage v1" in first.inner_text()

    # Open the newest: user-1's long message. Python hears the click and draws the tree.
    first.click()
    page.get_by_text(f"Selected trace: {trace_id}").wait_for()
    spans = page.locator(".wb-traces .wb-tv-span")
    spans.first.wait_for()
    names = [spans.nth(i).get_attribute("data-name") for i in range(spans.count())]
    # request -> filter (input) -> render -> model call(s) -> parse -> filter (output)
    assert names[0] == "serve.request" and names[1] == names[-1] == "serve.filter"
    assert names[2] == "prompt.render" and names[3] == "llm.call" and "prompt.parse" in names
    assert set(names[3:-1]) <= {"llm.call", "prompt.parse"}
    call = names.index("llm.call")
    assert "chat " + FLAKY in spans.nth(call).inner_text()
    root_bar = spans.first.locator(".wb-tv-bar").get_attribute("style")
    assert "left: 0%" in root_bar and "100%" in root_bar

    # The root span's input is cut; "Show more" brings the whole message from Python.
    value = page.locator('.wb-traces pre[data-field="workbench.request"]')
    assert len(value.inner_text()) < len(LONG)
    page.locator(".wb-traces .wb-tv-more").first.click()
    expect(value).to_contain_text(LONG.strip())

    # A model call's span: its messages in, and what it said (or its error) out.
    spans.nth(call).click()
    page.locator('.wb-traces pre[data-field="gen_ai.input.messages"]').wait_for()
    assert "system: You are a support triage assistant" in page.locator(
        ".wb-traces .wb-tv-detail").inner_text()
    assert not [p for p in page.problems if "page error" in p], page.problems


def test_trace_viewer_opens_a_trace_in_jupyterlab(page, jupyter_lab, tmp_path):
    import workbench
    from workbench.project import forget_open_projects

    project = workbench.init_project(tmp_path / "project", activate=False)
    serve_traffic(project)
    forget_open_projects()
    jupyter_lab.write_notebook(
        "traces.ipynb",
        "from widgets import TraceViewer\n"
        f"TraceViewer({str(project.path)!r}, kind='llm.call')")
    jupyter_lab.open_notebook(page, "traces.ipynb")
    jupyter_lab.run_all_cells(page)

    row = page.locator(".jp-OutputArea .wb-traces tr[data-trace]")
    row.first.wait_for()
    assert row.count() == 1 and "run run-1" in row.first.inner_text()
    row.first.click()
    page.locator('.wb-traces .wb-tv-span[data-name="llm.call"]').wait_for()
    detail = page.locator(".wb-traces .wb-tv-detail")
    assert "user: Where is my parcel?" in detail.inner_text()
    assert "gen_ai.output.messages" in detail.inner_text()
