"""The project overview renders and syncs in a real browser, in marimo and in JupyterLab."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"

pytestmark = pytest.mark.browser


def check_cards(page) -> None:
    """Nine card buttons in the learning path's order, phase 1 done (the sample project's card
    is filled), phase 2 next."""
    from workbench.phases import LEARNING_PATH

    cards = page.locator(".wb-overview button.wb-card[data-phase]")
    cards.first.wait_for()
    assert cards.count() == 9
    assert [cards.nth(i).get_attribute("data-phase") for i in range(9)] == [
        str(n) for n in LEARNING_PATH]
    first = page.locator('.wb-overview [data-phase="1"]')
    assert first.get_attribute("data-state") == "done"
    assert "Done" in first.inner_text()
    assert "wb-is-next" in page.locator('.wb-overview [data-phase="2"]').get_attribute("class")


def test_overview_in_marimo_syncs_a_click_to_python(page, marimo_app, tmp_path):
    import workbench

    project = workbench.init_project(tmp_path / "project", sample=True, activate=False)
    url = marimo_app(APPS / "overview_app.py", project=project.path)
    page.goto(url)
    page.locator(".wb-overview").wait_for()
    check_cards(page)
    page.get_by_text("Selected phase: 0").wait_for()

    page.locator('.wb-overview [data-phase="3"]').click()

    # The second cell re-runs only if Python received the new value.
    page.get_by_text("Selected phase: 3").wait_for()
    details = page.locator(".wb-overview .wb-details")
    assert "Model selection" in details.inner_text()
    assert page.locator('.wb-overview [data-phase="3"]').get_attribute("aria-pressed") == "true"
    assert not [p for p in page.problems if "page error" in p], page.problems

    # And back: the Refresh button makes Python re-read the project and redraw the cards.
    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    page.locator(".wb-overview .wb-refresh").click()
    page.locator('.wb-overview [data-phase="3"][data-state="done"]').wait_for()
    assert "chosen model: fake/echo" in details.inner_text()


def test_overview_in_jupyterlab_syncs_a_click_to_python(page, jupyter_lab, sample_project,
                                                        tmp_path):
    selected_file = tmp_path / "selected.txt"
    jupyter_lab.write_notebook(
        "overview.ipynb",
        "from pathlib import Path\n"
        "from widgets import ProjectOverview\n"
        f"w = ProjectOverview({str(sample_project)!r})\n"
        f"w.observe(lambda change: Path({str(selected_file)!r}).write_text(str(change['new'])),"
        " names='selected')\n"
        "w",
    )
    jupyter_lab.open_notebook(page, "overview.ipynb")
    jupyter_lab.run_all_cells(page)

    page.locator(".jp-OutputArea .wb-overview").wait_for()
    check_cards(page)
    page.locator('.wb-overview [data-phase="4"]').click()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not selected_file.exists():
        time.sleep(0.2)
    assert selected_file.read_text() == "4"
    assert "Prompt engineering" in page.locator(".wb-overview .wb-details").inner_text()
