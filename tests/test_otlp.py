"""OTLP export against a real OTLP/HTTP receiver on 127.0.0.1, written here: it decodes every
request with the official ``opentelemetry-proto`` messages, and can answer 500, hang, or
refuse connections, so the tests see what a collector would see and what the caller pays.
(tests/test_otlp_phoenix.py does the same against a real Phoenix server.)"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pb = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

from workbench import otlp
from workbench.llm import gateway
from workbench.tracing import Span, start_span, tagged, trace, write_span

REPO = Path(__file__).resolve().parents[1]


class Receiver:
    """An OTLP/HTTP traces endpoint: keeps each decoded request and its headers. ``fail``
    answers that many requests with ``fail_status`` first; ``hold`` makes a request wait on
    an event before it is answered."""

    def __init__(self):
        self.requests: list = []
        self.headers: list[dict[str, str]] = []
        self.posts = 0
        self.fail = 0
        self.fail_status = 500
        self.hold: threading.Event | None = None
        self.drop_idle = False
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts += 1
                receiver.arrived.set()
                if receiver.hold is not None:
                    receiver.hold.wait(10)
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self._answer(receiver.fail_status, b"collector is unwell")
                    return
                if self.path != "/v1/traces":
                    self._answer(404, b"not here")
                    return
                receiver.headers.append(dict(self.headers))
                receiver.requests.append(pb.ExportTraceServiceRequest.FromString(body))
                answer = pb.ExportTraceServiceResponse().SerializeToString()
                self._answer(200, answer, "application/x-protobuf")

            def _answer(self, status, body, kind="text/plain"):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if receiver.drop_idle:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list:
        return [(rs, s) for req in self.requests for rs in req.resource_spans
                for ss in rs.scope_spans for s in ss.spans]

    def close(self):
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attrs(message) -> dict:
    return {kv.key: _value(kv.value) for kv in message.attributes}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _no_live_export():
    otlp.stop_live(timeout=1)
    yield
    otlp.stop_live(timeout=1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _span(name="workbench.test", **attributes) -> Span:
    span = start_span(name, attributes)
    span.end_time = span.start_time + 0.001
    return span


# -- what is sent --------------------------------------------------------------------------------

def test_live_export_keeps_structure_and_genai_attributes(project, receiver):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
           "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20cGs6c2s=,x-team=llm ops",
           "OTEL_SERVICE_NAME": "support-bot",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging"}
    live = otlp.start_live(environ=env, delay_s=0.05)
    assert live is not None
    with trace("workbench.pipeline", project, step="answer") as parent:
        reply = gateway.complete([{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "hello there"}],
                                 "fake/echo", project=project, cache=False, temperature=0)
    assert otlp.flush(5)
    assert otlp.live_status()["exported"] == 2

    sent = {s.name: (rs, s) for rs, s in receiver.spans()}
    assert set(sent) == {"workbench.pipeline", "chat fake/echo"}
    resource = attrs(sent["chat fake/echo"][0].resource)
    assert resource["service.name"] == "support-bot"
    assert resource["deployment.environment"] == "staging"
    assert resource["openinference.project.name"] == project.name
    assert receiver.headers[0]["Authorization"] == "Basic cGs6c2s="
    assert receiver.headers[0]["x-team"] == "llm ops"
    assert receiver.headers[0]["Content-Type"] == "application/x-protobuf"

    root, call = sent["workbench.pipeline"][1], sent["chat fake/echo"][1]
    assert len(root.trace_id) == 16 and len(root.span_id) == 8
    assert call.trace_id == root.trace_id and call.parent_span_id == root.span_id
    assert root.parent_span_id == b""
    assert root.trace_id.hex() == parent.trace_id == reply.trace_id
    assert call.kind == 3 and root.kind == 1  # CLIENT, INTERNAL
    assert call.status.code == 1  # OK
    assert root.start_time_unix_nano <= call.start_time_unix_nano
    assert call.end_time_unix_nano <= root.end_time_unix_nano
    assert root.start_time_unix_nano == int(parent.start_time * 1e9)

    a = attrs(call)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == a["gen_ai.provider.name"] == "fake"
    assert a["gen_ai.request.model"] == "fake/echo"
    assert a["gen_ai.request.temperature"] == 0
    assert a["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert a["workbench.cost_usd"] == a["gen_ai.usage.cost"] == reply.cost_usd
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}]
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello there"}]}]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": reply.text}],
         "finish_reason": "stop"}]
    assert a["workbench.span.name"] == "llm.call"
    assert attrs(root) == {"step": "answer", "workbench.span.name": "workbench.pipeline",
                           "openinference.span.kind": "CHAIN"}


def test_errors_become_error_status_with_an_exception_event(project, receiver):
    otlp.start_live(receiver.url, delay_s=0.05)
    with pytest.raises(ValueError), trace("workbench.step", project):
        raise ValueError("bad input")
    assert otlp.flush(5)
    (_, span), = receiver.spans()
    assert span.status.code == 2 and span.status.message == "ValueError: bad input"
    assert attrs(span)["error.type"] == "ValueError"
    event, = span.events
    assert event.name == "exception"
    assert attrs(event) == {"exception.type": "ValueError", "exception.message": "bad input"}


def test_runs_of_complete_many_keep_their_parent_and_tags(project, receiver):
    otlp.start_live(receiver.url, delay_s=0.05)
    with tagged(**{"workbench.run_id": "run-1", "workbench.prompt": "triage",
                   "workbench.prompt_version": 3}), trace("workbench.batch", project) as root:
        gateway.complete_many(["a", "b", "c"], "fake/echo", project=project, progress=False,
                              cache=False, concurrency=3)
    assert otlp.flush(5)
    calls = [s for _, s in receiver.spans() if s.name == "chat fake/echo"]
    assert len(calls) == 3
    for call in calls:  # calls made on the pool's threads are still the batch's children
        assert call.parent_span_id.hex() == root.span_id
        a = attrs(call)
        assert a["workbench.prompt"] == "triage" and a["workbench.prompt_version"] == 3
        assert a["session.id"] == a["workbench.run_id"] == "run-1"


def test_the_privacy_rule_applies_to_what_is_exported(project, receiver):
    project.update_card(lambda c: c.setdefault("constraints", {}).update(
        privacy=["do not log raw inputs"]))
    otlp.start_live(receiver.url, delay_s=0.05)
    gateway.complete("Write to priya@example.com please", "fake/echo", project=project,
                     cache=False)
    assert otlp.flush(5)
    (_, span), = receiver.spans()
    text = json.dumps(attrs(span))
    assert "priya@example.com" not in text and attrs(span)["workbench.logged_redacted"]


# -- the standard environment variables ------------------------------------------------------------

def test_endpoints_headers_and_switches_from_the_environment():
    base = otlp.endpoint_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318/"})
    assert base.url == "http://h:4318/v1/traces" and base.timeout_s == 10.0
    lf = otlp.endpoint_from_env({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://cloud.langfuse.com/api/public/otel",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic abc,x-langfuse-ingestion-version=4",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
    assert lf.url == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    assert lf.headers == {"Authorization": "Basic abc", "x-langfuse-ingestion-version": "4"}
    assert lf.timeout_s == 2.5 and lf.compression == "gzip"
    assert "abc" not in repr(lf)  # credentials never shown
    full = otlp.endpoint_from_env({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:9999/custom/path",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=2", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=3",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "100"})
    assert full.url == "http://h:9999/custom/path"  # the signal's own endpoint: as given
    assert full.headers == {"a": "1", "b": "3"} and full.timeout_s == 0.1
    assert otlp.endpoint_from_env({}) is None
    assert otlp.traces_url("http://127.0.0.1:6006") == "http://127.0.0.1:6006/v1/traces"
    assert otlp.traces_url("http://h/v1/traces") == "http://h/v1/traces"
    assert otlp.basic_auth("pk-lf-1", "sk-lf-2") == "Basic cGstbGYtMTpzay1sZi0y"

    for env, words in [({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4317",
                         "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf"),
                       ({"OTEL_EXPORTER_OTLP_ENDPOINT": "h:4318"}, "not an http"),
                       ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h",
                         "OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "key=value"),
                       ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h",
                         "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "milliseconds")]:
        with pytest.raises(otlp.ExportError, match=words):
            otlp.endpoint_from_env(env)

    assert otlp.live_disabled_by_env({"OTEL_SDK_DISABLED": "true"})
    assert otlp.live_disabled_by_env({"OTEL_TRACES_EXPORTER": "none"})
    assert otlp.live_disabled_by_env({"OTEL_TRACES_EXPORTER": "otlp"}) is None
    assert otlp.start_live(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h",
                                    "OTEL_SDK_DISABLED": "true"}) is None
    assert "OTEL_SDK_DISABLED" in otlp.live_status()["reason"]

    resource = otlp.resource_attributes("proj", {
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=a%2Cb",
        "OTEL_SERVICE_NAME": "from-name"})
    assert resource["service.name"] == "from-name" and resource["team"] == "a,b"
    assert otlp.resource_attributes(None, {})["service.name"] == "llmops-workbench"


# -- the caller never pays for the collector -------------------------------------------------------

def _block_mean_s(project, n: int) -> tuple[float, float]:
    """Mean and worst time of write_span over ``n`` spans, in seconds."""
    times = []
    for i in range(n):
        span = _span(**{"gen_ai.operation.name": "chat", "gen_ai.request.model": "fake/echo",
                        "gen_ai.usage.input_tokens": i})
        t = time.perf_counter()
        write_span(project, span)
        times.append(time.perf_counter() - t)
    return statistics.fmean(times), max(times)


@pytest.mark.parametrize("collector", ["down", "hanging"])
def test_an_absent_or_hanging_collector_never_slows_or_breaks_the_caller(project, collector):
    from workbench import tracing

    if collector == "down":  # nothing listens: connections are refused
        url, keep = f"http://127.0.0.1:{_free_port()}", None
    else:  # accepts connections and never answers
        keep = socket.socket()
        keep.bind(("127.0.0.1", 0))
        keep.listen(64)
        url = f"http://127.0.0.1:{keep.getsockname()[1]}"
    blocks, per_block = 20, 150
    off, on, worst = [], [], 0.0
    try:
        live = otlp.start_live(url, delay_s=0.01, batch_size=100, max_queue=500,
                               retry_base_s=0.05, export_timeout_s=2.0,
                               environ={"OTEL_EXPORTER_OTLP_TIMEOUT": "1000"})
        _block_mean_s(project, 300)  # warm up
        started = time.perf_counter()
        for block in range(blocks):  # alternate, so the machine's load hits both alike
            exporting = block % 2 == 1
            tracing.set_exporter(live.offer if exporting else None)
            mean, block_worst = _block_mean_s(project, per_block)
            (on if exporting else off).append(mean)
            if exporting:
                worst = max(worst, block_worst)
        wall = time.perf_counter() - started
        status = otlp.live_status()
    finally:
        otlp.stop_live(timeout=0.5)
        if keep is not None:
            keep.close()
    off_us, on_us = statistics.median(off) * 1e6, statistics.median(on) * 1e6
    print(f"\n{collector}: write_span {off_us:.1f} us without export, {on_us:.1f} us with "
          f"export to a {collector} collector, worst {worst * 1e3:.2f} ms; {status}")
    # The export adds a queue append to the caller, not a network wait: no call comes near
    # the collector's 1 s timeout, and the typical call costs about the same.
    assert worst < 0.25
    assert on_us < off_us + 50
    assert wall < 5.0
    assert status["exported"] == 0
    assert status["dropped_queue_full"] + status["dropped_failed"] > 0
    project.store.flush()
    count = project.store.db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    assert count == 300 + blocks * per_block  # every span is still stored


def test_a_collector_answering_500_is_retried_then_the_batch_is_dropped_and_counted(
        project, receiver):
    receiver.fail = 100  # always 500
    otlp.start_live(receiver.url, delay_s=0.02, retry_base_s=0.01, max_attempts=3)
    for _ in range(5):
        write_span(project, _span())
    assert otlp.flush(5)
    status = otlp.live_status()
    assert receiver.posts == 3  # one batch, tried three times
    assert status["retries"] == 2 and status["dropped_failed"] == 5
    assert status["exported"] == 0 and "HTTP 500" in status["last_error"]


def test_a_collector_that_recovers_gets_the_batch(project, receiver):
    receiver.fail = 2
    receiver.fail_status = 503
    otlp.start_live(receiver.url, delay_s=0.02, retry_base_s=0.01)
    for _ in range(5):
        write_span(project, _span())
    assert otlp.flush(5)
    status = otlp.live_status()
    assert receiver.posts == 3 and status["retries"] == 2
    assert status["exported"] == 5 and status["dropped_failed"] == 0
    assert len(receiver.spans()) == 5


def test_a_connection_the_collector_closed_while_idle_is_reopened(project, receiver):
    receiver.drop_idle = True  # closes each connection after answering, without saying so
    otlp.start_live(receiver.url, delay_s=0.02, retry_base_s=5)
    for _ in range(3):
        write_span(project, _span())
        assert otlp.flush(5)
    status = otlp.live_status()
    assert status["exported"] == 3 and status["retries"] == 0 and receiver.posts == 3


def test_a_client_error_is_not_retried(project, receiver):
    receiver.fail, receiver.fail_status = 100, 401
    otlp.start_live(receiver.url, delay_s=0.02, retry_base_s=0.01)
    write_span(project, _span())
    assert otlp.flush(5)
    assert receiver.posts == 1 and otlp.live_status()["dropped_failed"] == 1


def test_a_full_queue_drops_and_counts_instead_of_waiting(project, receiver):
    receiver.hold = threading.Event()
    otlp.start_live(receiver.url, max_queue=10, delay_s=0.01)
    for _ in range(10):
        write_span(project, _span())
    assert receiver.arrived.wait(5)  # the thread is stuck sending the first 10
    t = time.perf_counter()
    for _ in range(25):
        write_span(project, _span())
    assert time.perf_counter() - t < 0.5
    assert otlp.live_status()["dropped_queue_full"] == 15
    receiver.hold.set()
    assert otlp.flush(5)
    status = otlp.live_status()
    assert status["exported"] == 20 and status["dropped_queue_full"] == 15


# -- at exit ---------------------------------------------------------------------------------------

SCRIPT = """
import sys, workbench
from workbench.tracing import trace
project = workbench.open_project(sys.argv[1])
for i in range(int(sys.argv[2])):
    with trace("workbench.job", project, i=i):
        pass
print("done", flush=True)
"""


def _child(project, url: str, n: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(project.path), str(n)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_pending_spans_are_flushed_at_exit(project, receiver):
    done = _child(project, receiver.url, 40)
    assert done.returncode == 0, done.stderr
    assert len(receiver.spans()) == 40  # the default 5 s schedule never came: exit sent them
    assert done.stderr == ""


def test_exit_is_not_held_up_by_an_absent_collector(project):
    started = time.perf_counter()
    done = _child(project, f"http://127.0.0.1:{_free_port()}", 40)
    took = time.perf_counter() - started
    assert done.returncode == 0 and done.stdout == "done\n"
    assert "40 spans were not exported" in done.stderr
    assert "workbench traces export" in done.stderr
    assert took < 10  # interpreter start + imports; the exit flush gives up at once
    assert project.store.db.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 40


# -- after the fact: workbench traces export -------------------------------------------------------

def _cli(*args, project) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "workbench.cli", "traces", "export", *args,
                           "--project", str(project.path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120,
                          check=False)


def test_traces_export_sends_stored_spans_in_batches_and_remembers(project, receiver):
    with trace("workbench.pipeline", project):
        gateway.complete_many([f"q{i}" for i in range(7)], "fake/echo", project=project,
                              progress=False, cache=False)
    project.store.flush()
    done = _cli("--otlp", receiver.url, "--batch-size", "3", "--header", "x-key=v",
                project=project)
    assert done.returncode == 0, done.stderr
    assert "Sent 8 of 8 spans" in done.stdout and "3 batches" in done.stdout
    assert len(receiver.requests) == 3 and receiver.headers[0]["x-key"] == "v"
    stored = {r[0]: r for r in project.store.db.execute(
        "SELECT span_id, trace_id, parent_id, start_time FROM spans")}
    sent = {s.span_id.hex(): s for _, s in receiver.spans()}
    assert set(sent) == set(stored)
    for span_id, (_, trace_id, parent_id, start) in stored.items():
        assert sent[span_id].trace_id.hex() == trace_id
        assert sent[span_id].parent_span_id.hex() == (parent_id or "")
        assert sent[span_id].start_time_unix_nano == int(start * 1e9)

    again = _cli("--otlp", receiver.url, "--since", "last", project=project)
    assert "Sent 0 of 0 spans" in again.stdout
    write_span(project, _span())
    project.store.flush()
    again = _cli("--otlp", receiver.url, "--since", "last", "--json", project=project)
    assert json.loads(again.stdout)["sent"] == 1
    history = otlp.exports(project)
    assert [h["status"] for h in history] == ["finished"] * 3
    assert history[0]["endpoint"] == receiver.url + "/v1/traces"

    dry = _cli("--dry-run", "--since", "1d", project=project)
    assert "Dry run: 9 spans in 1 batch" in dry.stdout and len(receiver.requests) == 4


def test_traces_export_failure_is_one_clear_line_and_resumable(project, receiver):
    for _ in range(4):
        write_span(project, _span())
    project.store.flush()
    receiver.fail = 100
    done = _cli("--otlp", receiver.url, "--batch-size", "2", project=project)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]  # after the progress bar
    assert error.startswith("workbench: error: Sent 0 of 4 spans")
    assert "HTTP 500" in error and "--since last" in error
    assert otlp.exports(project)[0]["status"] == "failed"
    receiver.fail = 0
    done = _cli("--otlp", receiver.url, "--since", "last", project=project)
    assert "Sent 4 of 4 spans" in done.stdout

    bad = _cli("--otlp", "localhost:6006", project=project)
    assert bad.returncode == 1 and "not an http(s) URL" in bad.stderr
    missing = _cli(project=project)
    assert missing.returncode == 1 and "--otlp URL" in missing.stderr


def test_export_summary_is_a_dry_run_without_a_collector(project):
    write_span(project, _span())
    text = otlp.export_summary(project)
    assert text.startswith("**No OTLP collector is configured**")
    assert "1 span," in text and "traces export --otlp" in text
    assert otlp.exports(project) == []  # a dry run is not an export
