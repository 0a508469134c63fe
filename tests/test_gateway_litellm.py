"""The gateway's litellm route, over real HTTP to an OpenAI-compatible server on loopback.

Hosted models go through litellm; nothing here leaves the machine: the server (openai_server.py)
speaks the OpenAI chat-completions protocol (JSON and server-sent events) and each model name
scripts a behaviour. The bundled and fake models do not use this route (see test_gateway.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import openai_server
import pytest

from workbench import llm
from workbench.errors import ModelCallFailed, ModelTimeout
from workbench.tracing import spans

PRICED = "openai/gpt-4o-mini"  # in litellm's bundled price map


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("WORKBENCH_ALLOW_HOSTED", "1")  # "hosted" here means loopback
    srv = openai_server.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def ask(server, model, prompt="ping", **options):
    return llm.complete(prompt, model=f"openai/{model}", api_base=server.url, api_key="sk-test",
                        **options)


def test_a_hosted_call_returns_text_usage_cost_and_a_span(project, server):
    from workbench.llm.hosted import litellm

    reply = llm.complete("ping", model=PRICED, api_base=server.url, api_key="sk-test")
    assert reply.text == "pong: ping"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 2)
    entry = litellm().model_cost["gpt-4o-mini"]
    expected = 7 * entry["input_cost_per_token"] + 2 * entry["output_cost_per_token"]
    assert reply.cost_usd == pytest.approx(expected) and reply.cost_usd > 0
    [span] = spans(project, name="llm.call")
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["workbench.cost_usd"] == pytest.approx(expected)
    assert "sk-test" not in json.dumps(span.attributes)
    again = llm.complete("ping", model=PRICED, api_base=server.url, api_key="sk-test")
    assert again.cached and again.cost_usd == 0 and server.count("gpt-4o-mini") == 1


def test_a_model_missing_from_the_price_map_has_an_unknown_cost_not_zero(server):
    reply = ask(server, "no-such-model-anywhere")
    assert reply.text == "pong: ping"
    assert reply.cost_usd != reply.cost_usd  # NaN: unknown, never silently free


def test_rate_limits_are_retried_then_reported_plainly(project, server):
    assert ask(server, "flaky", retries=3).text == "pong: ping"
    assert server.count("flaky") == 3  # two 429s, then the answer: the gateway alone retries
    with pytest.raises(ModelCallFailed, match="kept answering 'rate limited' after 2 tries"):
        ask(server, "limited", retries=1)
    assert server.count("limited") == 2
    with pytest.raises(ModelCallFailed, match="openai/down failed"):
        ask(server, "down", retries=1)
    failed = [s for s in spans(project, name="llm.call") if s.status == "error"]
    assert len(failed) == 2


def test_timeouts_become_model_timeouts(server):
    with pytest.raises(ModelTimeout, match="within 0.5s"):
        ask(server, "slow", timeout=0.5, retries=0)


def test_streaming_over_http(project, server):
    stream = llm.stream("one two three", model=PRICED, api_base=server.url, api_key="sk-test")
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == "pong: one two three"
    done = stream.completion
    assert done.text == "pong: one two three" and done.usage.completion_tokens == 4
    assert done.cost_usd > 0 and done.finish_reason == "stop"
    [span] = spans(project, name="llm.call")
    assert span.attributes["gen_ai.output.messages"][0]["content"] == "pong: one two three"


def test_async_calls_over_http(server, run_async):
    async def both():
        import asyncio

        return await asyncio.gather(*(llm.acomplete(f"q{i}", model="openai/m",
                                                    api_base=server.url, api_key="sk-test")
                                      for i in range(4)))

    assert [r.text for r in run_async(both())] == [f"pong: q{i}" for i in range(4)]


def test_code_using_litellm_directly_can_call_the_fake_and_bundled_ids():
    """The in-process models stay registered with litellm for tools built on it."""
    from workbench.llm.hosted import litellm

    lib = litellm()
    response = lib.completion(model="fake/echo", messages=[{"role": "user", "content": "hi you"}])
    assert response.choices[0].message.content == "hi you"
    assert response.usage.completion_tokens == 2
    with pytest.raises(lib.RateLimitError):
        lib.completion(model="fake/echo:fail=429", messages=[{"role": "user", "content": "x"}],
                       num_retries=0)


def test_calls_to_in_process_models_never_import_litellm(tmp_path):
    code = (
        "import sys, workbench\n"
        "from workbench import llm\n"
        f"workbench.init_project({str(tmp_path / 'p')!r})\n"
        "assert llm.complete('a b', model='fake/echo').text == 'a b'\n"
        "assert ''.join(llm.stream('c d', model='fake/echo')) == 'c d'\n"
        "llm.complete_many(['e', 'f'], model='fake/echo:fail=500,fail_first=1', progress=False)\n"
        "print('litellm' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_with_litellm_callbacks_of_their_own_users_see_every_model_there(project, fake_model):
    """Someone who sends litellm's callbacks to their own observability keeps seeing the bundled
    and fake models there: the gateway then routes them through litellm too."""
    from workbench.llm.hosted import litellm

    lib = litellm()
    seen = []

    def callback(kwargs, response, start, end):
        seen.append(kwargs["model"])

    model = fake_model("billed", lambda m: "one two", input_cost_per_token=0.01,
                       output_cost_per_token=0.02)
    lib.success_callback = [callback]
    try:
        reply = llm.complete("a b c", model=model, cache=False)
        echoed = llm.complete("f g", model="fake/echo", cache=False)
        streamed = llm.stream("d e", model="fake/echo", cache=False)
        assert "".join(streamed) == "d e" and echoed.text == "f g"
    finally:
        lib.success_callback = []
    for _ in range(50):  # litellm runs success callbacks on a background thread
        if len(seen) >= 2:
            break
        time.sleep(0.05)
    assert len(seen) >= 2 and {"billed", "echo"} <= {m.rpartition("/")[2] for m in seen}
    assert reply.text == "one two"
    assert reply.cost_usd == pytest.approx(3 * 0.01 + 2 * 0.02)  # priced as on the direct route
    assert streamed.completion.usage.completion_tokens == 2
    assert len(spans(project, name="llm.call")) == 3


def test_every_model_is_carried_by_a_backend_with_one_contract():
    """The bundled, fake and hosted routes are three backends of one shape: the gateway has no
    route of its own for hosted models."""
    import inspect

    from workbench.llm import gateway, hosted
    from workbench.llm.backends import BACKENDS, Backend

    carriers = {"local": gateway._backend("local/smollm2-135m"),
                "fake": gateway._backend("fake/echo"),
                "hosted": gateway._backend("openai/gpt-4o-mini")}
    assert carriers["hosted"] is hosted.BACKEND
    assert carriers["local"] is BACKENDS["local"] and carriers["fake"] is BACKENDS["fake"]
    for name, backend in carriers.items():
        for method in ("complete", "acomplete", "stream"):
            ours = inspect.signature(getattr(backend, method))
            contract = inspect.signature(getattr(Backend, method))
            assert list(ours.parameters) == list(contract.parameters)[1:], (name, method)
        assert inspect.iscoroutinefunction(backend.acomplete), name


def test_importing_the_litellm_providers_first_still_keeps_litellm_offline():
    """litellm fetches its price map from the network on import unless told not to; the custom
    providers module imports litellm itself, so it must tell it first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    code = ("import os, workbench.llm.providers, litellm; "
            "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'], os.environ['LITELLM_OFFLINE_MODE'])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "true"]
    assert "fetch" not in done.stderr.lower()  # no attempt to reach the network was logged
