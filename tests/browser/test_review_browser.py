"""The weekly review opens in a real browser with the network cut: every figure draws from the
plotly.js inlined in the file, and the page asks for nothing but itself."""

from __future__ import annotations

import pytest

from workbench.review import weekly_review

pytestmark = pytest.mark.browser


def test_the_weekly_review_renders_offline(page, shop):
    review = weekly_review(shop.project)
    asked: list[str] = []

    def only_the_file(route):
        asked.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_the_file)
    page.goto(review.path.as_uri())
    page.locator(".js-plotly-plot .main-svg").first.wait_for()
    # The dashboard, the cost projection and the failure patterns per day.
    assert page.locator(".js-plotly-plot").count() == 3
    assert page.evaluate("typeof window.Plotly") == "object"
    bars = page.locator(".js-plotly-plot .bars path")
    assert bars.count() > 0
    assert [url for url in asked if not url.startswith("file://")] == []
    assert page.problems == []
    headings = page.locator("h2").all_inner_texts()
    assert headings[0] == "This week" and "Failure patterns per day" in headings
