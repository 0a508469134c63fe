"""The gateway with fake models: the harness, not the model, is under test here."""

import asyncio
import json
import time

import pytest

from workbench import llm
from workbench.errors import (
    HostedCallsDisabled,
    ModelCallFailed,
    ModelTimeout,
    ModelUnavailable,
    UnknownModel,
)
from workbench.tracing import spans, trace


@pytest.fixture
def counted(fake_model):
    """A scripted fake that counts how often the model itself is reached."""
    calls = []

    def answer(messages):
        calls.append(messages)
        return f"answer {len(calls)}"

    return fake_model("counted", answer), calls


def test_echo_returns_text_usage_cost_and_a_span(project):
    reply = llm.complete("hello there world", model="fake/echo")
    assert (reply.text, reply.model, reply.cost_usd, reply.cached) == (
        "hello there world", "fake/echo", 0.0, False)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 3)
    [span] = spans(project, name="llm.call")
    a = span.attributes
    assert span.trace_id == reply.trace_id and span.status == "ok"
    assert a["gen_ai.request.model"] == "fake/echo"
    assert a["gen_ai.usage.input_tokens"] == 3 and a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.input.messages"] == [{"role": "user", "content": "hello there world"}]
    assert a["gen_ai.output.messages"] == [{"role": "assistant", "content": "hello there world"}]
    assert a["workbench.cache_hit"] is False and a["workbench.cost_usd"] == 0.0


def test_messages_and_system_prompt(counted):
    model, calls = counted
    llm.complete([{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}],
                 model=model, system="Be brief.")
    assert calls[0] == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "hi"}]


def test_cache_makes_a_repeated_call_free_and_can_be_turned_off(project, counted):
    model, calls = counted
    first = llm.complete("same question", model=model)
    second = llm.complete("same question", model=model)
    assert (first.text, second.text, second.cached, len(calls)) == (
        "answer 1", "answer 1", True, 1)
    different = llm.complete("same question", model=model, temperature=0.7)
    uncached = llm.complete("same question", model=model, cache=False)
    assert (different.text, uncached.text, len(calls)) == ("answer 2", "answer 3", 3)
    hits = [s.attributes["workbench.cache_hit"] for s in spans(project, name="llm.call")]
    assert sorted(hits) == [False, False, False, True]


def test_without_a_project_nothing_is_recorded(counted, tmp_path):
    model, calls = counted
    assert llm.complete("a", model=model).trace_id is None
    assert llm.complete("a", model=model).cached is False  # no project, no cache
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_scripted_lists_and_keyword_replies(fake_model):
    fake_model("cycle", ["one", "two"])
    fake_model("router", {"refund": "billing", "password": "account", "*": "other"})
    texts = [llm.complete(f"q{i}", model="fake/cycle").text for i in range(3)]
    assert texts == ["one", "two", "one"]
    assert llm.complete("I want a refund", model="fake/router").text == "billing"
    assert llm.complete("forgot my password", model="fake/router").text == "account"
    assert llm.complete("hello", model="fake/router").text == "other"


def test_a_snapshot_of_the_fake_models_restores_replaced_and_removes_added_ones():
    from workbench.llm import fake

    fake.register_fake("kept", ["old"], output_cost_per_token=0.5)
    try:
        saved = fake.snapshot()
        fake.register_fake("kept", ["new"])
        fake.register_fake("added", ["hi"])
        fake.restore(saved, ["fake/added"])  # only the names given
        assert "fake/added" not in fake.registered_fakes()
        assert llm.complete("x", model="fake/kept", cache=False).text == "new"
        fake.register_fake("added", ["hi"])
        fake.restore(saved)
        assert fake.registered_fakes().count("fake/kept") == 1
        assert "fake/added" not in fake.registered_fakes()
        assert llm.complete("x", model="fake/kept", cache=False).text == "old"
        assert fake.price("fake/kept") == (0.0, 0.5)
    finally:
        fake.unregister_fake("kept")


def test_simulated_latency_is_real_time():
    reply = llm.complete("slow", model="fake/echo:latency=150ms")
    assert reply.latency_s >= 0.15


def test_transient_failures_are_retried(project):
    reply = llm.complete("x", model="fake/echo:fail=429,fail_first=2")
    assert reply.text == "x"
    [span] = spans(project, name="llm.call")
    assert span.attributes["workbench.attempts"] == 3


def test_persistent_failure_gives_a_clear_error_and_an_error_span(project):
    with pytest.raises(ModelCallFailed, match="after 3 tries") as info:
        llm.complete("x", model="fake/echo:fail=500", retries=2)
    assert info.value.fix
    [span] = spans(project, name="llm.call")
    assert span.status == "error" and "ModelCallFailed" in span.error
    with pytest.raises(ModelCallFailed, match="rate limited"):
        llm.complete("x", model="fake/echo:fail=429", retries=1)


def test_timeouts_are_enforced():
    started = time.perf_counter()
    with pytest.raises(ModelTimeout, match="within 0.2s"):
        llm.complete("x", model="fake/echo:latency=5", timeout=0.2, retries=0)
    assert time.perf_counter() - started < 2
    with pytest.raises(ModelTimeout):
        llm.complete("x", model="fake/echo:fail=timeout", timeout=0.05, retries=1)


def test_fail_rate_is_seeded_and_partial():
    results = llm.complete_many([f"q{i}" for i in range(40)],
                                model="fake/echo:fail=500,fail_rate=0.3,seed=1", retries=0,
                                progress=False, on_error="return")
    failures = sum(isinstance(r, ModelCallFailed) for r in results)
    assert 0 < failures < 40
    assert [r.text for r in results if not isinstance(r, Exception)] == [
        f"q{i}" for i, r in enumerate(results) if not isinstance(r, Exception)]


def test_batch_keeps_order_bounds_concurrency_and_reports_progress():
    seen = []
    started = time.perf_counter()
    results = llm.complete_many([f"item {i}" for i in range(12)], model="fake/echo:latency=100ms",
                                concurrency=4, progress=lambda done, total: seen.append(
                                    (done, total)))
    elapsed = time.perf_counter() - started
    assert [r.text for r in results] == [f"item {i}" for i in range(12)]
    assert seen[-1] == (12, 12) and len(seen) == 12
    # 12 calls of 0.1 s, four at a time, take three rounds: not one (unbounded), not twelve.
    assert 0.3 <= elapsed < 1.0


def test_batch_errors_raise_by_default():
    with pytest.raises(ModelCallFailed):
        llm.complete_many(["a", "b"], model="fake/echo:fail=500", retries=0, progress=False)


def test_async_calls_run_concurrently(project, run_async):
    async def main():
        return await asyncio.gather(*(llm.acomplete(f"a{i}", model="fake/echo:latency=200ms")
                                      for i in range(8)))

    started = time.perf_counter()
    replies = run_async(main())
    assert [r.text for r in replies] == [f"a{i}" for i in range(8)]
    assert time.perf_counter() - started < 1.0
    assert len(spans(project, name="llm.call")) == 8


def test_stream_yields_pieces_and_records_the_whole_reply(project):
    reply = llm.stream("one two three", model="fake/echo")
    pieces = list(reply)
    assert len(pieces) == 3 and "".join(pieces) == "one two three"
    assert reply.completion.text == "one two three"
    assert reply.completion.usage.completion_tokens == 3
    [span] = spans(project, name="llm.call")
    assert span.attributes["gen_ai.output.messages"][0]["content"] == "one two three"


def test_spans_nest_under_a_traced_block(project):
    with trace("triage.pipeline", step="classify") as outer:
        llm.complete("x", model="fake/echo")
    recorded = {s.name: s for s in spans(project)}
    assert recorded["llm.call"].parent_id == outer.span_id
    assert recorded["llm.call"].trace_id == outer.trace_id
    assert recorded["triage.pipeline"].attributes == {"step": "classify"}


def test_hosted_models_are_refused_in_tests(project):
    with pytest.raises(HostedCallsDisabled, match="WORKBENCH_ALLOW_HOSTED"):
        llm.complete("x", model="openai/gpt-4o-mini")
    assert spans(project) == []


@pytest.mark.parametrize("model, message", [
    ("gpt-4o", "does not name a provider"),
    ("fake/nobody", "no fake model"),
    ("fake/echo:latency", "has no value"),
    ("fake/echo:colour=red", "Unknown fake model options"),
    ("fake/echo:fail=404", "not a failure"),
    ("local/llama-70b", "no local model"),
])
def test_bad_model_ids_say_what_to_do(model, message):
    with pytest.raises(UnknownModel, match=message) as info:
        llm.complete("x", model=model)
    assert info.value.fix


def test_unknown_provider_is_reported_as_unknown_model(monkeypatch):
    monkeypatch.setenv("WORKBENCH_ALLOW_HOSTED", "1")
    with pytest.raises(UnknownModel, match="provider"):
        llm.complete("x", model="nosuchprovider/model", retries=0)


def test_models_lists_what_is_usable_and_why_not(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    found = {m.id: m for m in llm.models()}
    assert found["fake/echo"].usable
    assert found[llm.BUNDLED_MODEL].kind == "bundled"
    assert not found["openai/gpt-4o-mini"].usable
    assert "WORKBENCH_ALLOW_HOSTED" in found["openai/gpt-4o-mini"].reason
    monkeypatch.setenv("WORKBENCH_ALLOW_HOSTED", "1")
    found = {m.id: m for m in llm.models()}
    assert found["openai/gpt-4o-mini"].reason == "set OPENAI_API_KEY to use it"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert {m.id: m for m in llm.models()}["openai/gpt-4o-mini"].usable
    assert found["openai/gpt-4o-mini"].input_cost_per_1m > 0  # from litellm's price map


def test_secrets_never_reach_the_project(project, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    llm.complete("hello", model="fake/echo")
    project.close()  # everything written
    for path in project.path.rglob("*"):
        if path.is_file():
            assert b"sk-secret-value-123" not in path.read_bytes()


def test_the_project_card_chooses_the_default_model(project):
    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    assert llm.complete("who answers?").model == "fake/echo"


def test_span_attributes_are_json(project):
    llm.complete("x", model="fake/echo", temperature=0.2, max_tokens=5, seed=3)
    project.store.flush()
    raw = project.store.db.execute("SELECT attributes FROM spans").fetchone()[0]
    attrs = json.loads(raw)
    assert (attrs["gen_ai.request.temperature"], attrs["gen_ai.request.max_tokens"],
            attrs["gen_ai.request.seed"]) == (0.2, 5, 3)


@pytest.mark.hosted
def test_a_hosted_model_answers(project):
    reply = llm.complete("Reply with the single word: yes", model="openai/gpt-4o-mini",
                         max_tokens=5)
    assert "yes" in reply.text.lower() and reply.cost_usd > 0


def test_a_missing_key_is_reported_at_once_with_the_variable(monkeypatch, project):
    monkeypatch.setenv("WORKBENCH_ALLOW_HOSTED", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="OPENAI_API_KEY"):
        llm.complete("x", model="openai/gpt-4o-mini")
    assert time.perf_counter() - started < 1.0  # no retries, no network
    [span] = spans(project, name="llm.call")
    assert span.status == "error"


def test_streams_retry_before_the_first_piece_and_report_rate_limits_plainly():
    reply = llm.stream("one two", model="fake/echo:fail=429,fail_first=2")
    assert "".join(reply) == "one two"
    with pytest.raises(ModelCallFailed, match="kept answering 'rate limited'"):
        list(llm.stream("x", model="fake/echo:fail=429", retries=1))


def test_the_engine_groups_prompts_of_similar_length():
    from workbench.llm.local import _by_length

    groups = _by_length([100, 30, 104, 31, 180, 60], parallel=2, new_tokens=8)
    assert sorted(map(sorted, groups)) == [[0, 2], [1, 3], [4], [5]]
    # every core gets a batch when there are enough prompts
    assert len(_by_length([50, 50, 50, 50], parallel=2, new_tokens=8)) == 2
    assert _by_length([50], parallel=2, new_tokens=8) == [[0]]
