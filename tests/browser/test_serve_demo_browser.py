"""The service's page at / in a real browser: a beta user enters their key once, asks, reads
the answer and corrects it with a thumbs down; the verdict lands in the project's feedback."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

KEY = "wb-demo-key-0123456789"
REPLY = "This message is about shipping"


@pytest.fixture
def service(tmp_path, fake_model):
    import workbench
    from workbench import sample
    from workbench.serve import plan_deployment, start_server

    project = workbench.init_project(tmp_path / "project", sample=True, activate=False)
    sample.fill_prerequisites(project, 7)
    fake_model("courier", lambda messages: REPLY)
    plan_deployment(project, "triage", model="fake/courier", force=True)
    server = start_server(project, api_keys=[KEY])
    yield project, server
    server.stop()


def test_a_beta_user_asks_and_corrects_an_answer_from_the_page(page, service):
    from workbench.monitor import feedback_frame

    project, server = service
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/")  # no key needed to load the page
    ask = page.get_by_role("button", name="Ask", exact=True)
    assert ask.is_disabled()
    assert page.get_by_text("Enter your API key first.").is_visible()

    # A mistyped key: the service's error and fix are shown, and the page asks for the key again
    page.get_by_label("API key", exact=True).fill("not-the-key-00000000")
    page.get_by_role("button", name="Use this key").click()
    page.get_by_label("Input", exact=True).fill("Where is my parcel?")
    ask.click()
    alert = page.locator("#ask-error")
    alert.wait_for()
    assert "Missing or unknown API key." in alert.inner_text()
    assert "Authorization: Bearer KEY" in alert.inner_text()  # the fix, from the body
    page.get_by_label("API key", exact=True).wait_for()

    # Keyboard only from here: the key, then the question, then Ask
    page.get_by_label("API key", exact=True).focus()
    page.keyboard.type(KEY)
    page.keyboard.press("Enter")
    page.get_by_text("A key is set for this tab.").wait_for()
    assert page.evaluate("document.activeElement.id") == "var-0"  # the first field
    page.keyboard.press("Control+A")
    page.keyboard.type("Where is my parcel? It is a week late.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    answer = page.locator("#answer")
    answer.wait_for()
    assert answer.inner_text() == "shipping"  # the parsed answer, not the raw reply
    request_id = page.locator("#answer-meta").inner_text().split()[2]

    # Thumbs down, with the right answer
    page.get_by_role("button", name="No, wrong").click()
    assert page.get_by_role("button", name="No, wrong").get_attribute("aria-pressed") == "true"
    page.get_by_label("The right answer").fill("billing")
    page.get_by_label("Comment").fill("It was about a refund.")
    page.get_by_role("button", name="Send feedback").click()
    page.get_by_text("Thanks: recorded, with your correction.").wait_for()

    said = feedback_frame(project)
    assert list(said["request_id"]) == [request_id]
    assert list(said["rating"]) == [-1] and list(said["correction"]) == ["billing"]
    assert list(said["comment"]) == ["It was about a refund."]

    # The key stays in this tab's sessionStorage: never in a URL, a cookie or localStorage
    assert page.evaluate("sessionStorage.getItem('workbench-service-key')") == KEY
    assert page.evaluate("localStorage.length") == 0 and not page.context.cookies()
    assert all(KEY not in url for url in requests + [page.url])
    # Offline: everything came from the service itself
    assert requests and all(url.startswith(server.url) for url in requests), requests
    # No script or style was blocked by the page's CSP, no script failed; the one console
    # error is the browser reporting the mistyped key's 401
    errors = [p for p in page.problems if "401" not in p]
    assert not errors, errors
