"""Every widget's front end, as anywidget sends it (one string, the shared helpers written in),
loads from a blob URL in a real browser, draws its Python state and reports a click.

This is how JupyterLab and marimo load ``_esm``: a blob has no folder, so a module that still
imported ``./_dom.js`` would fail here. The training monitor has no notebook test of its own, so
its chart and Stop button are checked here too."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

# A stand-in for the host's model (the same few calls anywidget's and marimo's offer): it holds
# the widget's state, records what the front end saves, and lets Python's changes be replayed.
HOST = """
async ([esm, state]) => {
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const module = await import(url);
  URL.revokeObjectURL(url);
  const handlers = {};
  const model = {
    get: (name) => state[name],
    set: (name, value) => { state[name] = value; },
    save_changes: () => { window.saved.push(JSON.parse(JSON.stringify(state))); },
    on: (event, fn) => { (handlers[event] ||= []).push(fn); },
    off: (event, fn) => { handlers[event] = (handlers[event] || []).filter((f) => f !== fn); },
    send: () => {},
  };
  window.saved = [];
  window.change = (name, value) => {
    state[name] = value;
    for (const fn of handlers[`change:${name}`] || []) fn();
  };
  const el = document.createElement("div");
  el.id = "widget";
  document.body.replaceChildren(el);
  await module.default.render({ model, el });
  return el.childElementCount;
}
"""


def _show(page, widget) -> None:
    state = widget.get_state()
    page.set_content("<!doctype html><html><body></body></html>")
    assert page.evaluate(HOST, [state["_esm"], state]) > 0, type(widget).__name__


def _saved(page) -> list[dict]:
    return page.evaluate("window.saved")


def test_each_widget_module_loads_from_a_blob_and_draws(page, sample_project):
    from widgets import (
        Annotator,
        CardForm,
        ComparisonGrid,
        Playground,
        ProjectOverview,
        TraceViewer,
    )

    overview = ProjectOverview(sample_project)
    _show(page, overview)
    assert page.locator("#widget [data-phase]").count() == 9
    page.locator("#widget [data-phase='2']").click()
    assert _saved(page)[-1]["selected"] == 2

    _show(page, TraceViewer(sample_project))
    page.locator("#widget select[data-filter='window']").wait_for()
    page.locator("#widget .wb-tv-refresh").click()
    assert _saved(page)[-1]["refresh_count"] == 1  # the shared bump

    _show(page, CardForm(sample_project))
    assert page.locator("#widget textarea").count() >= 2

    _show(page, ComparisonGrid(sample_project, []))
    assert "No runs to compare" in page.locator("#widget").inner_text()

    _show(page, Playground(sample_project, "untitled", dataset="support", n_items=2))
    assert page.locator("#widget textarea.wb-pg-template").input_value() == "{{ input }}"

    _show(page, Annotator([{"id": 1, "input": "<b>not markup</b>"}], ["yes", "no"]))
    assert page.locator("#widget .wb-ann-input").inner_text() == "<b>not markup</b>"
    assert page.problems == []


def test_the_training_monitor_draws_its_curves_and_sends_stop(page):
    from widgets import TrainingMonitor

    monitor = TrainingMonitor()
    monitor.state = {"name": "adapter", "status": "training", "step": 2, "total_steps": 4,
                     "epoch": 1, "epochs": 1, "train_losses": [[1, 2.0], [2, 1.5]],
                     "validation_losses": [[2, 1.7]], "best_step": 2,
                     "best_validation_loss": 1.7, "message": ""}
    _show(page, monitor)
    assert page.locator("#widget svg.wb-train-chart polyline").count() == 2
    assert page.locator("#widget [data-fact='step']").inner_text() == "2 / 4"
    page.locator("#widget .wb-train-stop").click()
    assert _saved(page)[-1]["stop_requests"] == 1
    assert page.locator("#widget .wb-train-stop").is_disabled()
    assert page.problems == []
