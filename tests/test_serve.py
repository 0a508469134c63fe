"""Phase 7: the deployment gate and the served API, over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from workbench.records import RecordNotFound
from workbench.serve import (
    DeploymentRefused,
    DeploymentSpec,
    NotDeployed,
    plan_deployment,
    start_server,
)
from workbench.tracing import spans

KEY = "wb-test-key-0123456789"
EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"


@pytest.fixture
def ready(oracle_project, fake_model):
    """The sample project with its data and prompt, ``fake/oracle`` that knows every answer of
    the test split (so the gate can pass) and ``fake/broken``."""
    project, test, _ = oracle_project
    fake_model("broken", lambda messages: "never reached")
    return project, test


def evaluate(project, model, limit=12):
    from workbench import sample
    from workbench.runs import start_run

    return start_run(project, sample.SAMPLE_PROMPT, dataset=sample.SAMPLE_DATASET, split="test",
                     model=model, limit=limit, progress=False)


def test_unevaluated_or_failing_configs_are_refused_and_nothing_is_written(ready):
    project, _ = ready
    with pytest.raises(DeploymentRefused, match="never been evaluated on fake/echo"):
        plan_deployment(project, "triage", model="fake/echo")
    evaluate(project, "fake/echo")
    with pytest.raises(DeploymentRefused, match="accuracy misses its target") as refused:
        plan_deployment(project, "triage", model="fake/echo")
    assert "force=True" in refused.value.fix
    assert list(project.deploy_dir.iterdir()) == []
    with pytest.raises(RecordNotFound):
        project.records.get(DeploymentSpec, "service")

    forced = plan_deployment(project, "triage", model="fake/echo", force=True)
    assert forced.spec.forced and forced.spec.gate_passed is False
    decision = project.card()["decisions"][-1]
    assert decision["phase"] == 7 and "fails the evaluation gate" in decision["decision"]
    assert "accuracy" in decision["reason"]


def test_a_config_that_passes_the_gate_is_deployed_with_its_files(ready):
    project, _ = ready
    run = evaluate(project, "fake/oracle")
    deployment = plan_deployment(project, "triage", model="fake/oracle", fallbacks=["fake/echo"],
                                 burst=5)
    spec = deployment.spec
    assert spec.gate_passed is True and not spec.forced and spec.evidence_run == run.run_id
    assert spec.variables == ["input"] and "billing" in spec.labels
    service = json.loads((project.deploy_dir / "service.json").read_text())
    assert service["model"] == "fake/oracle" and service["fallbacks"] == ["fake/echo"]
    assert service["deployment_version"] == deployment.version == 1
    dockerfile = (project.deploy_dir / "Dockerfile").read_text()
    assert "torch" not in dockerfile  # no local model in this deployment
    assert re.search(r'^CMD \["workbench", "serve", "--project", "/srv/project"', dockerfile,
                     re.M)
    with pytest.raises(DeploymentRefused, match="not 'triage' v1 on fake/echo"):
        plan_deployment(project, "triage", model="fake/echo", run_id=run.run_id)
    for bad in ({"burst": 0}, {"burst": 0.5}, {"rate_limit_per_minute": 0.5}):
        with pytest.raises(DeploymentRefused, match="whole number of at least 1"):
            plan_deployment(project, "triage", model="fake/oracle", **bad)
    with pytest.raises(DeploymentRefused, match="timeout_s"):
        plan_deployment(project, "triage", model="fake/oracle", timeout_s=float("nan"))


def test_a_failed_write_leaves_the_last_deployment_as_it_was(ready):
    project, _ = ready
    evaluate(project, "fake/oracle")
    first = plan_deployment(project, "triage", model="fake/oracle")
    before = (project.deploy_dir / "service.json").read_text()
    (project.deploy_dir / "Dockerfile").unlink()
    (project.deploy_dir / "Dockerfile").mkdir()  # the file cannot be replaced now
    with pytest.raises(DeploymentRefused, match="Dockerfile is not a file"):
        plan_deployment(project, "triage", model="fake/oracle", burst=3)
    assert project.records.get(DeploymentSpec, "service").version == first.version
    assert (project.deploy_dir / "service.json").read_text() == before
    assert not [p for p in project.deploy_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def served(ready):
    project, test = ready
    evaluate(project, "fake/oracle")
    plan_deployment(project, "triage", model="fake/oracle", burst=3, rate_limit_per_minute=30)
    server = start_server(project, api_keys=[KEY, "second-key-abcdef"])
    client = httpx.Client(base_url=server.url, timeout=30)
    yield project, test, client
    client.close()
    server.stop()


def test_the_service_answers_with_keys_and_traces_every_request(served):
    project, test, client = served
    assert client.get("/healthz").json()["status"] == "ok"
    row = test.iloc[0]
    assert client.post("/v1/predict", json={"input": row["input"]}).status_code == 401
    wrong = client.post("/v1/predict", json={"input": row["input"]},
                        headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    reply = client.post("/v1/predict", json={"input": row["input"]},
                        headers={"Authorization": f"Bearer {KEY}"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["parsed"] == row["expected"] and body["parse_ok"]
    assert body["model"] == "fake/oracle" and not body["fallback_used"]
    info = client.get("/v1/info", headers={"X-API-Key": KEY}).json()
    assert info["prompt"] == "triage" and info["variables"] == ["input"]

    project.store.flush()
    served_spans = spans(project, name="serve.request")
    assert sorted(s.attributes["http.response.status_code"] for s in served_spans) == \
        [200, 401, 401]  # refused requests are traced too
    [request] = [s for s in served_spans if s.attributes["http.response.status_code"] == 200]
    calls = [s for s in spans(project, name="llm.call") if s.trace_id == body["trace_id"]]
    assert request.trace_id == body["trace_id"] and calls
    assert all(c.parent_id == request.span_id for c in calls)
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["workbench.client"].startswith("key-")
    raw = b"".join(p.read_bytes() for p in project.path.rglob("*") if p.is_file())
    assert KEY.encode() not in raw  # keys never reach the project


def test_bad_input_is_refused_with_what_to_send(served):
    _, _, client = served
    headers = {"Authorization": f"Bearer {KEY}"}
    extra = client.post("/v1/predict", json={"input": "hi", "admin": True}, headers=headers)
    assert extra.status_code == 422
    assert "admin: Extra inputs are not permitted" in extra.json()["error"]
    assert "'input'" in extra.json()["fix"]
    empty = client.post("/v1/predict", json={"input": ""}, headers=headers)
    assert empty.status_code == 422 and "at least 1 character" in empty.json()["error"]


def test_each_key_has_its_own_rate_limit(served):
    _, test, client = served
    headers = {"Authorization": f"Bearer {KEY}"}
    codes = [client.post("/v1/predict", json={"input": test.iloc[i]["input"]},
                         headers=headers).status_code for i in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    project = served[0]
    project.store.flush()
    statuses = [s.attributes["http.response.status_code"]
                for s in spans(project, name="serve.request")]
    # the first refusal of the minute is traced, the next is counted: monitoring sees both
    assert statuses.count(429) == 1 and statuses.count(200) == 3
    from workbench.monitor import traffic, window_metrics

    assert traffic(project).recent == 5 and window_metrics(project)["rate_limited"] == 2
    limited = client.post("/v1/predict", json={"input": "x"}, headers=headers)
    assert int(limited.headers["Retry-After"]) >= 1 and "Rate limit" in limited.json()["error"]
    other = client.post("/v1/predict", json={"input": "x"},
                        headers={"Authorization": "Bearer second-key-abcdef"})
    assert other.status_code == 200


def test_fallbacks_answer_when_the_main_model_fails(ready):
    project, test = ready
    evaluate(project, "fake/oracle")
    plan_deployment(project, "triage", model="fake/echo:fail=500", fallbacks=["fake/oracle"],
                    force=True)
    server = start_server(project, api_keys=[KEY])
    try:
        reply = httpx.post(f"{server.url}/v1/predict", json={"input": test.iloc[1]["input"]},
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    finally:
        server.stop()
    assert reply.status_code == 200, reply.text
    assert reply.json()["fallback_used"] and reply.json()["model"] == "fake/oracle"

    plan_deployment(project, "triage", model="fake/echo:fail=500",
                    fallbacks=["fake/echo:fail=429"], force=True, retries=0)
    server = start_server(project, api_keys=[KEY])
    try:
        failed = httpx.post(f"{server.url}/v1/predict", json={"input": "x"},
                            headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    finally:
        server.stop()
    assert failed.status_code == 502
    body = failed.json()
    # The caller gets a request id, not model names or provider errors; the trace has them.
    assert "fake/echo" not in json.dumps(body) and body["request_id"]
    project.store.flush()
    [span] = [s for s in spans(project, name="serve.request")
              if s.attributes.get("workbench.request_id") == body["request_id"]]
    assert "fake/echo:fail=500" in span.error and "rate limited" in span.error


def test_past_its_bound_the_service_answers_503_at_once_and_a_timeout_says_what_to_change(
        ready):
    """A bounded queue: with one request in progress allowed, others get 503 with Retry-After
    at once instead of waiting behind it; a model that runs out of time gets 504 with a fix."""
    from concurrent.futures import ThreadPoolExecutor

    project, test = ready
    plan_deployment(project, "triage", model="fake/echo:latency=1500ms", force=True,
                    max_waiting=1, cache=False)
    server = start_server(project, api_keys=[KEY])

    def ask(i):
        started = time.perf_counter()
        reply = httpx.post(f"{server.url}/v1/predict", json={"input": f"message {i}"},
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        return reply, time.perf_counter() - started

    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(ask, range(4)))
    finally:
        server.stop()
    answered = [(r, s) for r, s in results if r.status_code == 200]
    refused = [(r, s) for r, s in results if r.status_code == 503]
    assert len(answered) >= 1 and len(refused) >= 2, [r.status_code for r, _ in results]
    for reply, seconds in refused:
        assert seconds < 1.0  # not queued behind the 1.5 s answer
        assert int(reply.headers["retry-after"]) >= 1
        assert "busy" in reply.json()["error"] and "Retry after" in reply.json()["fix"]

    deployment = plan_deployment(project, "triage", model="fake/echo:latency=2s", force=True,
                                 timeout_s=0.5, retries=0, cache=False)
    assert (deployment.spec.timeout_s, deployment.spec.retries) == (0.5, 0)
    assert "set by hand" in deployment.spec.limits_basis
    server = start_server(project, api_keys=[KEY])
    try:
        slow = httpx.post(f"{server.url}/v1/predict", json={"input": "x"},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    finally:
        server.stop()
    assert slow.status_code == 504
    assert "0.5 s timeout" in slow.json()["error"] and "--timeout" in slow.json()["fix"]


@pytest.mark.model
def test_limits_for_the_bundled_model_come_from_its_measured_speed(ready):
    """No retries (a retry only queues more on the same CPU), a timeout from the speed measured
    here and the prompt's reply budget, and a bound on requests in progress."""
    project, _ = ready
    deployment = plan_deployment(project, "triage", model="local/smollm2-135m", force=True)
    spec = deployment.spec
    assert spec.retries == 0
    assert 5 <= spec.timeout_s <= 60
    assert 2 <= spec.max_waiting <= 256
    assert "tokens/s" in spec.limits_basis and "set by hand" not in spec.limits_basis

    # with an adapter, measured on the engine that serves adapters
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.llm import local

    base = AutoModelForCausalLM.from_pretrained(local.cache_dir(), dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(
        project.adapters_dir / "tiny")
    tuned = plan_deployment(project, "triage", model="local/smollm2-135m", adapter="tiny",
                            force=True)
    assert tuned.spec.adapter == "tiny" and "tokens/s" in tuned.spec.limits_basis
    assert local.get_model()._reference is not None  # the adapter's engine was measured
    hosted = plan_deployment(project, "triage", model="fake/oracle", force=True)
    assert (hosted.spec.timeout_s, hosted.spec.retries, hosted.spec.max_waiting) == (30, 2, 64)


def test_feedback_is_one_verdict_per_answer_from_the_key_that_asked(served):
    project, test, client = served
    mine = {"Authorization": f"Bearer {KEY}"}
    other = {"Authorization": "Bearer second-key-abcdef"}
    answer = client.post("/v1/predict", json={"input": test.iloc[2]["input"]},
                         headers=mine).json()
    vote = {"request_id": answer["request_id"], "rating": "up"}
    assert client.post("/v1/feedback", json=vote, headers=other).status_code == 404
    assert client.post("/v1/feedback", json=vote, headers=mine).status_code == 201
    changed = {**vote, "rating": "down", "correction": "billing"}
    assert client.post("/v1/feedback", json=changed, headers=mine).status_code == 201
    from workbench.monitor import feedback_frame

    said = feedback_frame(project)
    assert list(said["rating"]) == [-1] and list(said["correction"]) == ["billing"]


def test_oversized_bodies_and_key_guessing_are_cut_short(served):
    project, _, client = served
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    huge = client.post("/v1/predict", content=b'{"input": "' + b"x" * 80_000 + b'"}',
                       headers=headers)
    assert huge.status_code == 413
    # under the byte bound, a field too long is refused in characters
    long = client.post("/v1/predict", content=b'{"input": "' + b"x" * 40_000 + b'"}',
                       headers=headers)
    assert long.status_code == 422 and "at most 4000 characters" in long.json()["error"]
    codes = [client.post("/v1/predict", json={"input": "x"},
                         headers={"Authorization": f"Bearer guess-{i:012d}"}).status_code
             for i in range(15)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
    project.store.flush()
    refused = [s for s in spans(project, name="serve.request")
               if s.attributes.get("http.response.status_code") == 401]
    assert len(refused) == 10  # the guesses beyond the limit write nothing


def test_no_keys_and_no_deployment_are_clear_errors(ready, monkeypatch):
    project, _ = ready
    with pytest.raises(NotDeployed, match="no deployment yet"):
        start_server(project, api_keys=[KEY])
    evaluate(project, "fake/echo")
    plan_deployment(project, "triage", model="fake/echo", force=True)
    monkeypatch.delenv("WORKBENCH_API_KEYS", raising=False)
    with pytest.raises(NotDeployed, match="no API keys"):
        start_server(project)
    with pytest.raises(NotDeployed, match="no API keys"):
        start_server(project, api_keys=["", "  "])  # empty keys are no keys
    with pytest.raises(NotDeployed, match="shorter than 16 characters"):
        start_server(project, api_keys=["letmein"])
    server = start_server(project, allow_anonymous=True)
    try:
        assert httpx.post(f"{server.url}/v1/predict", json={"input": "x"}).status_code == 200
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_cli_deploys_and_serves_what_the_dockerfile_runs(sample_project):
    """`workbench deploy`, then the Dockerfile's own CMD (with this project's path and a free
    port) as a real process, called over HTTP."""
    from workbench import sample

    # The sample's data, and its prompt as one version (v1): the fill for phase 7 would
    # bring all the versions phase 4 leaves.
    sample.fill_prerequisites(sample_project, 4)
    sample.save_sample_prompt(sample_project)
    evaluate(sample_project, "fake/echo")
    env = {**os.environ, "WORKBENCH_PROJECT": str(sample_project.path)}
    refused = subprocess.run([EXE, "deploy", "triage", "--model", "fake/echo"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "accuracy misses its target" in refused.stderr
    made = subprocess.run([EXE, "deploy", "triage", "--model", "fake/echo", "--force",
                           "--burst", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "FORCED" in made.stdout and "Dockerfile" in made.stdout

    cmd_line = next(line for line in (sample_project.deploy_dir / "Dockerfile").read_text()
                    .splitlines() if line.startswith("CMD "))
    argv = json.loads(cmd_line[4:])
    port = _free_port()
    argv = [EXE if a == "workbench" else str(sample_project.path) if a == "/srv/project" else
            "127.0.0.1" if a == "0.0.0.0" else str(port) if a == "8000" else a
            for a in argv]
    server = subprocess.Popen(argv, env={**env, "WORKBENCH_API_KEYS": KEY},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            time.sleep(0.2)
        reply = httpx.post(f"{url}/v1/predict", json={"input": "where is my parcel"},
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert reply.status_code == 200, reply.text
        assert "where is my parcel" in reply.json()["output"]  # fake/echo echoes the prompt
    finally:
        server.terminate()
        server.wait(timeout=20)

    open_to_all = subprocess.run([EXE, "serve", "--no-auth", "--host", "0.0.0.0"], env=env,
                                 capture_output=True, text=True, timeout=60)
    assert open_to_all.returncode == 1 and "--no-auth" in open_to_all.stderr
