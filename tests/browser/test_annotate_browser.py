"""The annotator renders in a real browser (marimo) and its keyboard shortcuts reach Python."""

from __future__ import annotations

from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"

pytestmark = pytest.mark.browser


def test_annotator_keyboard_shortcuts_reach_python(page, marimo_app):
    page.goto(marimo_app(APPS / "annotate_app.py"))
    root = page.locator(".wb-annotate")
    root.wait_for()
    count = page.locator(".wb-annotate .wb-ann-count")
    assert count.inner_text() == "0 / 5 labelled"
    assert "I was charged twice" in page.locator(".wb-annotate .wb-ann-input").inner_text()
    assert [b.inner_text().split() for b in page.locator(".wb-ann-label").all()] == [
        ["1", "billing"], ["2", "technical"], ["3", "shipping"]]
    page.get_by_text('Python saw: {}').wait_for()

    root.click(position={"x": 5, "y": 5})  # focus the annotator, as a person would
    page.keyboard.press("1")
    page.locator(".wb-annotate .wb-ann-count", has_text="1 / 5 labelled").wait_for()
    assert "The app crashes" in page.locator(".wb-annotate .wb-ann-input").inner_text()

    page.keyboard.press("s")  # skip item 2
    page.locator(".wb-annotate .wb-ann-skipped", has_text="1 skipped").wait_for()
    page.keyboard.press("u")  # undo the skip: item 2 again
    page.locator(".wb-annotate .wb-ann-input", has_text="The app crashes").wait_for()
    for key in "2311":  # a burst, no waiting: none of it may get lost on the way
        page.keyboard.press(key)

    page.locator(".wb-annotate .wb-ann-done").wait_for()
    assert count.inner_text() == "5 / 5 labelled"
    assert page.locator(".wb-annotate .wb-ann-skipped").count() == 0
    # The downstream cell re-ran with what Python holds.
    page.get_by_text('Python saw: {"1": "billing", "2": "technical", "3": "shipping", '
                     '"4": "billing", "5": "billing"}').wait_for()
    assert not [p for p in page.problems if "page error" in p], page.problems
