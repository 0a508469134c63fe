"""The service's OpenAI-compatible surface (POST /v1/chat/completions, GET /v1/models), called by
the clients people use: the real ``openai`` SDK, plain HTTP with server-sent events parsed by
hand (what curl shows), and the real promptfoo from npm — all against the service running on
127.0.0.1 with a scripted fake model behind it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from workbench.serve import plan_deployment, start_server
from workbench.tracing import spans

openai = pytest.importorskip("openai")

KEY = "wb-test-key-0123456789"
REPLY = "This message is about shipping"  # the fake's answer: five words, parses as 'shipping'
PROMPTFOO = Path(__file__).resolve().parents[1] / "tools" / "promptfoo"


@pytest.fixture
def project(sample_project, fake_model):
    """The sample project (the 'triage' prompt, one variable 'input') and ``fake/courier``,
    which answers ``REPLY`` to everything."""
    from workbench import sample

    sample.fill_prerequisites(sample_project, 7)
    fake_model("courier", lambda messages: REPLY)
    return sample_project


def serve(project, model="fake/courier", **limits):
    plan_deployment(project, "triage", model=model, force=True,
                    **{"burst": 100, "rate_limit_per_minute": 6000, **limits})
    return start_server(project, api_keys=[KEY])


@pytest.fixture
def served(project):
    server = serve(project)
    yield project, server
    server.stop()


def sdk(server, key=KEY, **options):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key,
                         **{"max_retries": 0, "timeout": 30, **options})


def end_user(project, span) -> str | None:
    """The end-user id a request span keeps, checked against the raw id's keyed hash once
    monitoring hashes it as spans are written (``workbench.monitor_aggregates``)."""
    attributes = span.attributes
    try:
        from workbench.monitor_aggregates import user_hash
    except ImportError:  # no hashing in this tree: the service's raw attribute is stored
        return attributes.get("workbench.user")
    assert "workbench.user" not in attributes  # the raw id is stored nowhere
    stored = attributes.get("workbench.user_hash")
    return None if stored is None else next(
        (raw for raw in USERS if user_hash(project, raw) == stored), stored)


USERS = ("customer-42", "customer-7", "promptfoo", "user-\u00e9-9")


def chat_spans(project):
    return [s for s in spans(project, name="serve.request")
            if s.attributes.get("http.route") == "/v1/chat/completions"]


def test_the_openai_sdk_lists_the_deployment_and_gets_traced_answers(served):
    project, server = served
    client = sdk(server)
    assert [m.id for m in client.models.list()] == ["triage"]
    assert client.models.retrieve("triage").owned_by == project.name

    completion = client.chat.completions.create(
        model="triage", messages=[{"role": "user", "content": "Where is my parcel?"}],
        user="customer-42", temperature=0.3)
    assert completion.object == "chat.completion" and completion.model == "triage"
    assert completion.id.startswith("chatcmpl-") and completion.created <= time.time()
    assert completion.system_fingerprint is None
    [choice] = completion.choices
    assert choice.message.role == "assistant" and choice.message.content == REPLY
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage.completion_tokens == 5  # fake models count words
    assert usage.prompt_tokens > 5 and usage.total_tokens == usage.prompt_tokens + 5
    extension = completion.model_extra["workbench"]
    assert extension["parsed"] == "shipping" and extension["parse_ok"] is True
    assert extension["model"] == "fake/courier" and extension["ignored"] == ["temperature"]
    assert completion.id == "chatcmpl-" + extension["request_id"]

    # text parts are joined; the model may be left out (the SDK insists on one, curl not)
    parts = httpx.post(f"{server.url}/v1/chat/completions", headers={"X-API-Key": KEY},
                       json={"messages": [{"role": "user", "content": [
                           {"type": "text", "text": "Where is"},
                           {"type": "text", "text": "my parcel?"}]}]})
    assert parts.status_code == 200 and parts.json()["choices"][0]["message"]["content"] == REPLY

    [first, second] = sorted(chat_spans(project), key=lambda s: s.start_time)
    assert first.attributes["workbench.request_id"] == extension["request_id"]
    assert end_user(project, first) == "customer-42"
    assert first.attributes["workbench.request"] == {"input": "Where is my parcel?"}
    assert first.attributes["workbench.output"] == REPLY
    assert second.attributes["workbench.request"] == {"input": "Where is\nmy parcel?"}
    assert end_user(project, second) is None
    calls = spans(project, name="llm.call", trace_id=first.trace_id)
    assert calls and calls[0].parent_id == first.span_id
    assert calls[0].attributes["gen_ai.usage.output_tokens"] == 5
    from workbench.monitor import window_metrics

    assert window_metrics(project)["answered"] == 2  # monitoring counts them as answers

    # the answer's id is what feedback takes
    voted = httpx.post(f"{server.url}/v1/feedback", headers={"X-API-Key": KEY}, json={
        "request_id": completion.id, "rating": "down", "correction": "billing"})
    assert voted.status_code == 201, voted.text
    from workbench.monitor import feedback_frame

    said = feedback_frame(project)
    assert list(said["request_id"]) == [extension["request_id"]]
    assert list(said["correction"]) == ["billing"]


def test_the_sdk_streams_the_reply_as_chunks_with_usage(served):
    project, server = served
    client = sdk(server)
    stream = client.chat.completions.create(
        model="triage", messages=[{"role": "user", "content": "My parcel never came"}],
        stream=True, stream_options={"include_usage": True}, user="customer-7")
    chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and
              c.choices[0].delta.content]
    assert "".join(pieces) == REPLY and len(pieces) == 5  # one piece per word, as written
    assert chunks[0].choices[0].delta.role == "assistant"
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finished] == ["stop"]
    assert finished[0].model_extra["workbench"]["parsed"] == "shipping"
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == 5
    assert last.usage.total_tokens == last.usage.prompt_tokens + 5
    assert all(c.usage is None for c in chunks[:-1])

    # without include_usage there is no usage chunk
    plain = list(client.chat.completions.create(
        model="triage", messages=[{"role": "user", "content": "Parcel lost again"}],
        stream=True))
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"

    [span, _] = sorted(chat_spans(project), key=lambda s: s.start_time)
    assert span.attributes["workbench.request_id"] == chunks[0].id.removeprefix("chatcmpl-")
    assert end_user(project, span) == "customer-7"
    assert span.attributes["workbench.output"] == REPLY
    assert span.attributes["http.response.status_code"] == 200


@pytest.mark.model
def test_the_bundled_model_streams_its_tokens_as_it_writes_them(project):
    """With the real bundled model the pieces are its tokens, sent as they are generated: they
    arrive spread over the generation, not all at the end."""
    from workbench.prompts import PromptVersion, save_prompt

    save_prompt(project, "helper", PromptVersion(
        system="You are a helpful assistant.", template="{{ input }}",
        params={"max_tokens": 48, "temperature": 0}))
    plan_deployment(project, "helper", model="local/smollm2-135m", force=True, cache=False)
    server = start_server(project, api_keys=[KEY])
    try:
        arrivals: list[tuple[float, str]] = []
        for chunk in sdk(server, timeout=120).chat.completions.create(
                model="helper", stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "Describe the sea in three sentences."}]):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
            elif chunk.usage:
                usage = chunk.usage
    finally:
        server.stop()
    assert len(arrivals) >= 10 and usage.completion_tokens >= len(arrivals) // 2
    first, last = arrivals[0][0], arrivals[-1][0]
    # the pieces came while the model wrote (48 tokens take it well over 0.2 s here), half of
    # them well before the last one; a reply sent whole would arrive within milliseconds
    assert last - first > 0.2, arrivals
    assert arrivals[len(arrivals) // 2][0] < last - (last - first) / 4, arrivals
    [span] = chat_spans(project)
    assert span.attributes["workbench.output"] == "".join(text for _, text in arrivals)


def test_server_sent_events_as_curl_sees_them(served):
    """No SDK: the bytes on the wire, parsed by hand: one `data:` line per event, a blank line
    after each, JSON objects in order, then `[DONE]`."""
    _, server = served
    body = {"model": "triage", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Is my parcel coming?"}]}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {KEY}"}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["cache-control"] == "no-cache"
        raw = "".join(reply.iter_text())
    assert raw.endswith("data: [DONE]\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    data = [e.removeprefix("data: ") for e in events]
    assert data[-1] == "[DONE]"
    objects = [json.loads(d) for d in data[:-1]]
    assert objects[0]["choices"][0]["delta"] == {"role": "assistant", "content": "",
                                                 "refusal": None}
    text = "".join(o["choices"][0]["delta"].get("content") or "" for o in objects
                   if o["choices"])
    assert text == REPLY
    assert objects[-2]["choices"][0]["finish_reason"] == "stop"
    assert objects[-1]["choices"] == [] and objects[-1]["usage"]["completion_tokens"] == 5
    assert len({o["id"] for o in objects}) == 1 and len({o["created"] for o in objects}) == 1


def test_refusals_raise_the_sdks_errors_with_the_fix(served):
    project, server = served
    client = sdk(server)
    ask = {"model": "triage", "messages": [{"role": "user", "content": "hello"}]}

    with pytest.raises(openai.AuthenticationError) as bad_key:
        sdk(server, key="wrong-key-000000000000").chat.completions.create(**ask)
    assert bad_key.value.code == "invalid_api_key"
    assert "API key" in bad_key.value.body["message"] and bad_key.value.body["fix"]
    assert bad_key.value.body["request_id"]

    with pytest.raises(openai.BadRequestError) as with_system:
        client.chat.completions.create(model="triage", messages=[
            {"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}])
    assert with_system.value.param == "messages"
    assert "2 message(s) (system, user)" in with_system.value.body["message"]
    assert "no system message" in with_system.value.body["fix"]

    with pytest.raises(openai.BadRequestError) as several:
        client.chat.completions.create(**ask, n=2)
    assert (several.value.code, several.value.param) == ("unsupported_parameter", "n")
    client.chat.completions.create(**ask, n=1)  # asking for one answer is fine

    with pytest.raises(openai.BadRequestError) as tools:
        client.chat.completions.create(**ask, tools=[{"type": "function", "function": {
            "name": "lookup", "parameters": {"type": "object"}}}])
    assert tools.value.code == "unsupported_parameter"

    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="triage", messages=[
            {"role": "user", "content": "x" * 4001}])
    assert "4001 characters" in too_long.value.body["message"]
    assert too_long.value.param == "messages[0].content"

    with pytest.raises(openai.BadRequestError) as hidden:
        client.chat.completions.create(model="triage", messages=[
            {"role": "user", "content": "pay \u202eyllaer\u202c now"}])
    assert "bidirectional control character" in hidden.value.body["message"]

    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(**ask, extra_body={"temprature": 0})
    assert unknown.value.code == "unknown_parameter" and unknown.value.param == "temprature"

    with pytest.raises(openai.BadRequestError) as long_user:
        client.chat.completions.create(**ask, user="u" * 129)
    assert long_user.value.param == "user" and "128" in long_user.value.body["message"]

    with pytest.raises(openai.NotFoundError) as other_model:
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}])
    assert other_model.value.code == "model_not_found"
    assert '"model": "triage"' in other_model.value.body["fix"]

    statuses = sorted(s.attributes["http.response.status_code"] for s in chat_spans(project))
    assert statuses == [200] + [400] * 7 + [401, 404]  # every refusal is traced


def test_rate_limits_raise_rate_limit_error_and_the_sdk_honours_retry_after(project):
    server = serve(project, burst=1, rate_limit_per_minute=60)  # one token a second
    try:
        ask = {"model": "triage", "messages": [{"role": "user", "content": "hello"}]}
        sdk(server).chat.completions.create(**ask)
        with pytest.raises(openai.RateLimitError) as limited:
            sdk(server).chat.completions.create(**ask)
        assert limited.value.code == "rate_limit_exceeded"
        assert int(limited.value.response.headers["retry-after"]) >= 1
        started = time.monotonic()
        answer = sdk(server, max_retries=2).chat.completions.create(**ask)
        waited = time.monotonic() - started
    finally:
        server.stop()
    assert answer.choices[0].message.content == REPLY
    assert 0.8 <= waited < 10  # it waited as Retry-After said, then got its answer


def test_a_template_with_several_variables_takes_json_or_variables(project):
    from workbench.prompts import PromptVersion, save_prompt

    save_prompt(project, "qa", PromptVersion(
        template="Question: {{ question }}\nContext: {{ context }}"))
    plan_deployment(project, "qa", model="fake/echo", force=True, burst=100)
    server = start_server(project, api_keys=[KEY])
    try:
        client = sdk(server)
        fields = {"question": "Who pays?", "context": "The buyer pays shipping."}
        as_json = client.chat.completions.create(
            model="qa", messages=[{"role": "user", "content": json.dumps(fields)}])
        assert as_json.choices[0].message.content == \
            "Question: Who pays?\nContext: The buyer pays shipping."  # fake/echo echoes
        as_extension = client.chat.completions.create(
            model="qa", messages=[], extra_body={"variables": fields})
        assert as_extension.choices[0].message.content == as_json.choices[0].message.content
        with pytest.raises(openai.BadRequestError) as plain_text:
            client.chat.completions.create(
                model="qa", messages=[{"role": "user", "content": "Who pays?"}])
        assert "'context', 'question'" in plain_text.value.body["message"]
        assert '{"context": "...", "question": "..."}' in plain_text.value.body["fix"]
        with pytest.raises(openai.BadRequestError) as missing:
            client.chat.completions.create(model="qa", messages=[
                {"role": "user", "content": json.dumps({"question": "Who pays?"})}])
        assert "missing context" in missing.value.body["message"]
        with pytest.raises(openai.BadRequestError) as both:
            client.chat.completions.create(model="qa", messages=[
                {"role": "user", "content": json.dumps(fields)}],
                extra_body={"variables": fields})
        assert "both" in both.value.body["message"]
    finally:
        server.stop()


def test_a_stream_that_fails_says_so_and_no_fallback_is_appended(project, monkeypatch):
    """Before the first piece: an ordinary error status. After it: an error event (the SDK
    raises it), and the fallback model is not asked, since its reply would be appended to a
    different model's."""
    from workbench.llm import backends

    server = serve(project, model="fake/echo:fail=500", fallbacks=["fake/courier"], retries=0)
    try:
        ask = {"model": "triage", "stream": True,
               "messages": [{"role": "user", "content": "hello"}]}
        # the first model fails at once: the fallback streams the answer
        chunks = list(sdk(server).chat.completions.create(**ask))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
        assert chunks[-1].model_extra["workbench"]["fallback_used"] is True

        # the first model fails after writing: the caller is told, nothing else is appended
        real_stream = backends.FakeBackend.stream

        def breaks_midway(self, request):
            if request.model.startswith("fake/echo"):
                yield "Half an "
                yield "answer"
                raise backends.BackendError(500, "the model crashed")
            yield from real_stream(self, request)

        monkeypatch.setattr(backends.FakeBackend, "stream", breaks_midway)
        got: list[str] = []
        with pytest.raises(openai.APIError) as broken:
            for chunk in sdk(server).chat.completions.create(
                    **{**ask, "messages": [{"role": "user", "content": "again"}]}):
                got += [chunk.choices[0].delta.content or ""] if chunk.choices else []
        assert "".join(got) == "Half an answer"
        assert "No model could answer" in str(broken.value.message)
        assert broken.value.body["request_id"]
    finally:
        server.stop()
        monkeypatch.undo()
    [failed] = [s for s in chat_spans(project)
                if s.attributes.get("workbench.request") == {"input": "again"}]
    assert failed.attributes["http.response.status_code"] == 502
    models = [c.attributes["gen_ai.request.model"]
              for c in spans(project, name="llm.call", trace_id=failed.trace_id)]
    assert models == ["fake/echo:fail=500"]  # the fallback was not called

    server = serve(project, model="fake/echo:fail=500", retries=0)
    try:
        with pytest.raises(openai.InternalServerError) as before_any:
            list(sdk(server).chat.completions.create(**ask))
    finally:
        server.stop()
    assert before_any.value.status_code == 502
    assert before_any.value.body["fix"] and before_any.value.code == "model_error"


def test_predict_takes_the_end_user_id_as_a_header(served):
    project, server = served
    headers = {"Authorization": f"Bearer {KEY}"}
    answered = httpx.post(f"{server.url}/v1/predict", json={"input": "hi"},
                          headers={**headers, "X-Workbench-User": "user-\u00e9-9".encode()})
    assert answered.status_code == 200, answered.text
    request_id = answered.json()["request_id"]
    for bad, why in (("u" * 129, "129 characters"), ("a\tb", "not printable")):
        refused = httpx.post(f"{server.url}/v1/predict", json={"input": "hi"},
                             headers={**headers, "X-Workbench-User": bad})
        assert refused.status_code == 422 and why in refused.json()["error"]
        assert "X-Workbench-User" in refused.json()["error"]
    [span] = [s for s in spans(project, name="serve.request")
              if s.attributes.get("workbench.request_id") == request_id]
    assert end_user(project, span) == "user-\u00e9-9"


def test_the_openapi_document_describes_the_openai_routes(served):
    _, server = served
    doc = httpx.get(f"{server.url}/openapi.json").json()
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] and "one user message" in chat["description"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["model"]["anyOf"][0]["const"] == "triage"
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    for status in ("400", "401", "404", "429", "502"):
        error = chat["responses"][status]["content"]["application/json"]["schema"]
        assert error["properties"]["error"]["type"] == "object"
    assert "unsupported_parameter" in chat["responses"]["400"]["description"]
    assert "/v1/models" in doc["paths"]
    predict = doc["paths"]["/v1/predict"]["post"]
    assert [p["name"] for p in predict["parameters"]] == ["X-Workbench-User"]


def _promptfoo_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    if not (PROMPTFOO / "node_modules" / ".bin" / "promptfoo").exists():
        return f"promptfoo is not installed: run `npm ci` in {PROMPTFOO} (scripts/setup.sh does)"
    return None


def test_promptfoo_evaluates_the_service_through_its_openai_provider(served, tmp_path):
    missing = _promptfoo_missing()
    if missing:
        if os.environ.get("WORKBENCH_REQUIRE_PROMPTFOO") == "1":
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    project, server = served
    questions = ["Where is my parcel?", "The courier left my box in the rain",
                 "Tracking says delivered but nothing came"]
    config = {
        "description": "the workbench service through promptfoo's OpenAI provider",
        "prompts": ["{{input}}"],
        "providers": [{"id": "openai:chat:triage", "config": {
            "apiBaseUrl": f"{server.url}/v1", "apiKey": KEY, "user": "promptfoo"}}],
        "tests": [{"vars": {"input": q}, "assert": [
            {"type": "contains", "value": "shipping"}]} for q in questions],
    }
    (tmp_path / "promptfooconfig.yaml").write_text(json.dumps(config))  # JSON is YAML
    home = tmp_path / "home"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
           "PROMPTFOO_CONFIG_DIR": str(home / ".promptfoo"),
           "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
           "PROMPTFOO_DISABLE_SHARING": "1", "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true",
           "PROMPTFOO_CACHE_ENABLED": "false", "NO_PROXY": "127.0.0.1,localhost"}
    out = tmp_path / "results.json"
    run = subprocess.run(
        [str(PROMPTFOO / "node_modules" / ".bin" / "promptfoo"), "eval",
         "-c", str(tmp_path / "promptfooconfig.yaml"), "-o", str(out), "--no-cache",
         "--no-progress-bar", "--no-table", "--max-concurrency", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    rows = results["results"]
    assert len(rows) == 3, run.stdout[-3000:]
    assert all(r["success"] for r in rows), [r.get("error") for r in rows]
    assert {r["response"]["output"] for r in rows} == {REPLY}
    assert {r["vars"]["input"] for r in rows} == set(questions)
    assert results["stats"]["successes"] == 3
    # the answers came from the service: one traced request per test, for promptfoo's user
    traced = chat_spans(project)
    assert sorted(s.attributes["workbench.request"]["input"] for s in traced) == \
        sorted(questions)
    assert {end_user(project, s) for s in traced} == {"promptfoo"}
    assert {s.attributes["http.response.status_code"] for s in traced} == {200}
