"""OTLP export into a REAL Arize Phoenix server, started on 127.0.0.1 from the checkout's
``.venv-phoenix`` (``bash scripts/setup.sh`` makes it), read back through Phoenix's REST API.

A served request (``serve.request`` with its model call inside), a run's calls and a judge's
call go out live; then ``workbench traces export`` sends the stored spans to a second Phoenix
project. Both must arrive with their parent/child structure, model, tokens, cost and prompt
version. Without the virtualenv the tests skip, unless ``WORKBENCH_REQUIRE_PHOENIX=1`` (CI)
makes them fail.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.proto")

from workbench import otlp

REPO = Path(__file__).resolve().parents[1]
PHOENIX = REPO / ".venv-phoenix" / "bin" / "phoenix"
KEY = "wb-phoenix-test-key-0123456789"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory):
    """One real Phoenix for the session (its own working dir, telemetry and external resources
    off, loopback only): its base URL."""
    if not PHOENIX.exists():
        reason = (f"no Phoenix server to test against: {PHOENIX} is missing "
                  "(bash scripts/setup.sh installs arize-phoenix into .venv-phoenix)")
        if os.environ.get("WORKBENCH_REQUIRE_PHOENIX") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    env.update({"PHOENIX_WORKING_DIR": str(work), "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(_free_port()),
                "PHOENIX_TELEMETRY_ENABLED": "false",
                "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false"})
    log = open(work / "phoenix.log", "w")  # noqa: SIM115 (closed after the server stops)
    process = subprocess.Popen([str(PHOENIX), "serve"], env=env, cwd=work, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # first start creates its database: ~30 s here
        while True:
            if process.poll() is not None:
                pytest.fail(f"Phoenix exited ({process.returncode}): "
                            f"{(work / 'phoenix.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("Phoenix did not answer within 240 s")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def phoenix_spans(url: str, project: str, want: int, timeout: float = 30) -> list[dict]:
    """The project's spans as Phoenix returns them, once ``want`` have been ingested (Phoenix
    inserts in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            spans, cursor = [], None
            while True:
                page = _get(f"{url}/v1/projects/{project}/spans?limit=1000"
                            + (f"&cursor={cursor}" if cursor else ""))
                spans += page["data"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        except urllib.error.HTTPError as exc:  # 404 until the project's first span lands
            if exc.code != 404:
                raise
            spans = []
        if len(spans) >= want:
            return spans
        if time.monotonic() > deadline:
            projects = [p["name"] for p in _get(f"{url}/v1/projects")["data"]]
            pytest.fail(f"Phoenix holds {len(spans)} of the {want} spans sent to its project "
                        f"{project!r} after {timeout:g} s (its projects: {projects})")
        time.sleep(0.3)


@pytest.fixture
def traffic(sample_project):
    """The sample project with its card, data and prompt (phase 7's prerequisites)."""
    from workbench import sample

    sample.fill_prerequisites(sample_project, 7)
    return sample_project


def _make_traffic(project) -> dict:
    """Every kind of span the workbench stores: a run and a judge on fake/echo, and a forced
    deployment of the sample prompt on fake/echo answering real HTTP requests."""
    import httpx

    from workbench import sample
    from workbench.evaluate.judge import Rubric, judge
    from workbench.runs import start_run
    from workbench.serve import latest_deployment, plan_deployment, start_server

    run = start_run(project, sample.SAMPLE_PROMPT, dataset=sample.SAMPLE_DATASET, split="test",
                    model="fake/echo", limit=3, progress=False, cache=False)
    judge(project, Rubric(criteria=["The answer names a team."]), question="Where?",
          answer="billing", judge_model="fake/echo", cache=False)
    plan_deployment(project, sample.SAMPLE_PROMPT, model="fake/echo", force=True)
    deployment = latest_deployment(project)
    server = start_server(project, api_keys=[KEY])
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for text in ("My card was charged twice", "The app crashes on login"):
                answer = client.post("/v1/predict", json={"input": text},
                                     headers={"Authorization": f"Bearer {KEY}"})
                assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    return {"run": run, "deployment": deployment}


def _check(spans: list[dict], stored: list, made: dict) -> None:
    by_id = {s["context"]["span_id"]: s for s in spans}
    assert set(by_id) == {s.span_id for s in stored}  # every stored span, none twice
    for s in stored:  # the same ids, parents, times and status as in the project
        got = by_id[s.span_id]
        assert got["context"]["trace_id"] == s.trace_id
        assert got["parent_id"] == s.parent_id
        assert got["status_code"] == ("ERROR" if s.status == "error" else "OK")

    deployment = made["deployment"]
    requests = [s for s in spans if s["name"] == "serve.request"
                and s["attributes"].get("http.route") == "/v1/predict"]
    assert len(requests) == 2
    for request in requests:
        a = request["attributes"]
        assert a["workbench.deployment"] == deployment.version
        assert a["workbench.prompt"] == deployment.value.prompt
        assert a["workbench.prompt_version"] == deployment.value.prompt_version
        children = [s for s in spans if s["parent_id"] == request["context"]["span_id"]]
        checks = [s for s in children if s["name"] == "serve.filter"]
        assert checks and all(s["span_kind"] == "CHAIN" for s in checks)  # input, answer
        steps = {s["name"] for s in children if s["name"].startswith("prompt.")}
        assert steps == {"prompt.render", "prompt.parse"}  # the request's other steps
        children = [s for s in children if s["name"].startswith("chat ")]
        assert children, "the model call inside the request"
        for call in children:  # a model call, inside the request
            assert call["context"]["trace_id"] == request["context"]["trace_id"]
            assert call["name"] == "chat fake/echo" and call["span_kind"] == "LLM"
            c = call["attributes"]
            assert c["gen_ai.request.model"] == c["llm.model_name"] == "fake/echo"
            assert c["gen_ai.usage.input_tokens"] == c["llm.token_count.prompt"] > 0
            assert c["gen_ai.usage.output_tokens"] == c["llm.token_count.completion"] > 0
            assert c["gen_ai.usage.cost"] == c["workbench.cost_usd"] >= 0
            assert c["gen_ai.system"] == "fake"

    run = made["run"]
    run_calls = [s for s in spans if s["attributes"].get("workbench.run_id") == run.run_id]
    assert len(run_calls) >= 3
    for call in run_calls:
        a = call["attributes"]
        assert a["workbench.prompt"] == run.prompt
        assert a["workbench.prompt_version"] == run.prompt_version
        assert a["session.id"] == run.run_id and a["workbench.item_id"]
    judged = [s for s in spans if "workbench.judge.name" in s["attributes"]]
    assert len(judged) == 1 and judged[0]["span_kind"] == "LLM"


def test_spans_go_to_phoenix_with_traces_export_and_live(phoenix, traffic):
    from workbench.tracing import spans as stored_spans

    project = traffic
    # After the fact: traffic with live export off, then the CLI sends every stored span, in
    # batches. (Phoenix keeps the first copy of a span id, so each part sends its own spans.)
    made = _make_traffic(project)
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    cli_env.update({"PYTHONPATH": str(REPO),
                    "OTEL_RESOURCE_ATTRIBUTES": "openinference.project.name=exported"})
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "traces", "export",
                           "--otlp", phoenix, "--since", "1d", "--batch-size", "7",
                           "--project", str(project.path)], cwd=REPO, env=cli_env,
                          capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    stored = stored_spans(project, limit=100_000)
    assert f"Sent {len(stored)} of {len(stored)} spans" in done.stdout
    _check(phoenix_spans(phoenix, "exported", len(stored)), stored, made)

    # Live: the same kinds of traffic again, each span sent as it is written.
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": phoenix,
           "OTEL_RESOURCE_ATTRIBUTES": "openinference.project.name=live"}
    assert otlp.start_live(environ=env, delay_s=0.2) is not None
    try:
        made = _make_traffic(project)
        assert otlp.flush(20)
        status = otlp.live_status()
    finally:
        otlp.stop_live(timeout=5)
    assert status["dropped_queue_full"] == status["dropped_failed"] == 0, status
    before = {s.span_id for s in stored}
    new = [s for s in stored_spans(project, limit=100_000) if s.span_id not in before]
    assert status["exported"] == len(new)
    _check(phoenix_spans(phoenix, "live", len(new)), new, made)
