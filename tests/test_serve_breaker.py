"""The circuit breaker per model: its states on a controlled clock, then the service over real
HTTP with fake models that fail: a failing primary is skipped (not called, no time lost) while
its circuit is open, tried once after the cool-off, and back in service when it answers."""

from __future__ import annotations

import time

import httpx
import pytest

from workbench.prompts.run import ItemResult
from workbench.records import Completion
from workbench.serve import plan_deployment, start_server
from workbench.serve.breaker import Breakers, BreakerSettings
from workbench.tracing import spans

KEY = "wb-breaker-key-0123456789"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ok() -> ItemResult:
    from workbench.prompts.parsing import Parsed

    return ItemResult([{"role": "user", "content": "x"}], Completion(model="m", text="a"),
                      Parsed("a", True, None), 0, None)


def _failed(messages=True) -> ItemResult:
    from workbench.prompts.parsing import Parsed

    return ItemResult([{"role": "user", "content": "x"}] if messages else [], None,
                      Parsed(None, False, "boom"), 0, "m failed: 500")


def test_consecutive_failures_open_the_circuit_and_one_trial_closes_it():
    clock = Clock()
    breakers = Breakers(["m"], BreakerSettings(failures=3, cooloff_s=10), clock=clock)
    for _ in range(2):
        assert breakers.allow("m")
        breakers.record("m", _failed())
    breakers.record("m", _ok())  # a success resets the run of failures
    for _ in range(3):
        assert breakers.allow("m")
        breakers.record("m", _failed())
    assert not breakers.allow("m")
    state = breakers.snapshot()["m"]
    assert state["state"] == "open" and state["failures_in_a_row"] == 3 and state["opened"] == 1
    assert state["reopens_in_s"] == 10 and state["reopens_at"].endswith("+00:00")
    assert breakers.retry_after(["m"]) == 10

    clock.now += 10  # cooled off: exactly one request gets the trial
    assert breakers.snapshot()["m"]["state"] == "half_open"
    assert breakers.allow("m") and not breakers.allow("m")
    breakers.record("m", _failed())  # the trial failed: open for another cool-off
    assert not breakers.allow("m") and breakers.snapshot()["m"]["opened"] == 2
    clock.now += 10
    assert breakers.allow("m")
    breakers.record("m", _ok())
    assert breakers.snapshot()["m"]["state"] == "closed" and breakers.allow("m")


def test_a_failure_rate_over_the_window_opens_it_too():
    clock = Clock()
    breakers = Breakers(["m"], BreakerSettings(failures=100, failure_rate=0.5, window=6),
                        clock=clock)
    for outcome in (_ok, _failed, _ok, _failed, _ok):  # 2 of 5: not yet a full window
        breakers.record("m", outcome())
    assert breakers.allow("m")
    breakers.record("m", _failed())  # 3 of the last 6
    assert not breakers.allow("m")


def test_what_is_not_the_models_fault_counts_for_nothing():
    clock = Clock()
    breakers = Breakers(["m"], BreakerSettings(failures=1, cooloff_s=5), clock=clock)
    breakers.record("m", _failed(messages=False))  # a template error: no call was made
    breakers.record("m", _failed(), counted=False)  # the request's time ran out before
    assert breakers.allow("m") and breakers.snapshot()["m"]["failures_in_a_row"] == 0
    breakers.record("m", _failed())
    clock.now += 5
    assert breakers.allow("m")  # the trial ...
    breakers.record("m", _failed(), counted=False)  # ... had no time left: released, not lost
    assert breakers.allow("m")
    # A trial that never reports back is given up after a cool-off.
    assert not breakers.allow("m")
    clock.now += 5
    assert breakers.allow("m")


def test_breakers_off_never_skip():
    breakers = Breakers(["m"], BreakerSettings(failures=0))
    for _ in range(10):
        breakers.record("m", _failed())
    assert breakers.allow("m") and breakers.snapshot()["m"]["state"] == "closed"


# -- over HTTP -------------------------------------------------------------------------------------

@pytest.fixture
def project(sample_project, fake_model):
    from workbench import sample

    sample.save_sample_prompt(sample_project)
    fake_model("steady", lambda m: "billing")
    return sample_project


def _calls(project, model: str) -> int:
    """How many times the gateway called ``model`` (its llm.call spans)."""
    project.store.flush()
    return sum(1 for s in spans(project, name="llm.call", limit=10_000)
               if s.attributes.get("gen_ai.request.model") == model)


def test_a_failing_primary_is_skipped_then_tried_again_after_the_cool_off(project):
    primary = "fake/steady:latency=300ms,fail=500,fail_first=3"
    plan_deployment(project, "triage", model=primary, fallbacks=["fake/steady"], force=True,
                    timeout_s=10, retries=0, max_waiting=8, cache=False, breaker_failures=3,
                    breaker_cooloff_s=1.5)
    server = start_server(project, api_keys=[KEY])
    client = httpx.Client(base_url=server.url, timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"})
    try:
        def ask(i):
            began = time.perf_counter()
            reply = client.post("/v1/predict", json={"input": f"my parcel {i} is late"})
            assert reply.status_code == 200, reply.text
            return reply.json(), time.perf_counter() - began

        for i in range(3):  # the primary fails (after 300 ms each), the fallback answers
            body, took = ask(i)
            assert body["fallback_used"] and took >= 0.3
        assert _calls(project, primary) == 3
        breaker = client.get("/v1/info").json()["breakers"][primary]
        assert breaker["state"] == "open" and breaker["failures_in_a_row"] == 3
        assert breaker["reopens_at"] and 0 < breaker["reopens_in_s"] <= 1.5

        for i in range(3, 6):  # answered by the fallback at once, the primary not called
            body, took = ask(i)
            assert body["fallback_used"] and body["model"] == "fake/steady"
            assert took < 0.3
        assert _calls(project, primary) == 3
        project.store.flush()
        [span] = [s for s in spans(project, name="serve.request")
                  if s.attributes.get("workbench.request_id") == body["request_id"]]
        assert span.attributes["workbench.breaker.skipped"] == [primary]

        time.sleep(1.6)  # cooled off: the next request is the trial, and the primary is well
        body, _ = ask(6)
        assert not body["fallback_used"] and body["model"] == primary
        assert _calls(project, primary) == 4
        assert client.get("/v1/info").json()["breakers"][primary]["state"] == "closed"
        body, _ = ask(7)
        assert not body["fallback_used"]
    finally:
        client.close()
        server.stop()


def test_when_every_model_rests_the_service_answers_503_at_once(project):
    model = "fake/steady:fail=500"
    plan_deployment(project, "triage", model=model, force=True, timeout_s=10, retries=0,
                    max_waiting=8, cache=False, breaker_failures=2, breaker_cooloff_s=30)
    server = start_server(project, api_keys=[KEY])
    try:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"}) as client:
            codes = [client.post("/v1/predict", json={"input": f"order {i}"}).status_code
                     for i in range(2)]
            assert codes == [502, 502]
            resting = client.post("/v1/predict", json={"input": "order 3"})
            info = client.get("/v1/info").json()
    finally:
        server.stop()
    assert resting.status_code == 503
    assert 1 <= int(resting.headers["Retry-After"]) <= 30
    assert "resting" in resting.json()["error"] and "fake/" not in resting.text
    assert _calls(project, model) == 2
    assert info["breakers"][model]["state"] == "open"
    project.store.flush()
    [span] = [s for s in spans(project, name="serve.request")
              if s.attributes.get("workbench.request_id") == resting.json()["request_id"]]
    assert span.attributes["http.response.status_code"] == 503
    assert span.attributes["workbench.breaker.skipped"] == [model]
