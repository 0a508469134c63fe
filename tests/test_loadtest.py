"""Load tests: bounded, honestly timed, local-only; fake models and a tiny local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.evaluate.loadtest import (
    LoadTestError,
    aload_test,
    check_local_url,
    load_test,
    plot,
)


def test_fake_model_latency_and_throughput_are_measured_honestly():
    report = load_test("fake/echo:latency=20ms", concurrency_levels=(1, 4), duration_s=0.4,
                       max_requests=200)
    assert sum(report.wall_s.values()) < 1.0  # bounded: 0.4 s a level plus one request's tail
    table = report.levels()
    assert list(table.columns) == ["concurrency", "requests", "ok", "errors", "error_rate",
                                   "wall_s", "throughput_rps", "p50_ms", "p95_ms", "p99_ms",
                                   "mean_ms"]
    one, four = table.iloc[0], table.iloc[1]
    assert (one["concurrency"], four["concurrency"]) == (1, 4)
    assert 20 <= one["p50_ms"] < 60 and 20 <= four["p50_ms"] < 80
    assert one["p50_ms"] <= one["p95_ms"] <= one["p99_ms"]
    # a closed loop of 20 ms calls: about 50/s alone, several times that with 4 in flight
    assert 15 < one["throughput_rps"] <= 50
    assert four["throughput_rps"] > 2 * one["throughput_rps"]
    assert one["errors"] == 0 and one["error_rate"] == 0.0
    assert one["wall_s"] >= 0.4  # the wall time includes the last request's tail
    assert "requests/s at concurrency 4" in report.summary()
    assert "<table" in report._repr_html_()


def test_max_requests_bounds_each_level_and_errors_are_counted():
    report = load_test("fake/echo:fail=500,fail_rate=0.5,seed=3", concurrency_levels=(2,),
                       duration_s=1.5, max_requests=40)
    row = report.levels().iloc[0]
    assert row["requests"] == 40
    assert 0.2 < row["error_rate"] < 0.8 and row["ok"] + row["errors"] == 40
    errors = report.errors()
    assert errors["count"].sum() == row["errors"]
    assert errors["error"].iloc[0].startswith("fake/echo:fail=500,fail_rate=0.5,seed=3 failed")


def test_a_level_given_twice_runs_once():
    report = load_test("fake/echo", concurrency_levels=(2, 2), duration_s=0.3, max_requests=10)
    assert list(report.levels()["concurrency"]) == [2]
    assert report.levels().iloc[0]["requests"] == 10


def test_bad_arguments_and_remote_hosts_are_refused():
    with pytest.raises(LoadTestError, match="only send traffic to this machine, and example.com"):
        load_test("http://example.com/v1", duration_s=0.1)
    with pytest.raises(LoadTestError, match="10.0.0.5 is another host"):
        check_local_url("http://10.0.0.5:8000/")
    assert check_local_url("http://localhost:8000/x") == "http://localhost:8000/x"
    assert check_local_url("http://[::1]:8000/") == "http://[::1]:8000/"
    with pytest.raises(LoadTestError, match="out of range"):
        load_test("fake/echo", concurrency_levels=(0,), duration_s=0.1)
    with pytest.raises(LoadTestError, match="duration_s=0"):
        load_test("fake/echo", duration_s=0)
    from workbench.errors import UnknownModel

    with pytest.raises(UnknownModel):
        load_test("fake/nope", duration_s=0.1)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(0.01)
        status = 500 if body.get("input") == "break" else 200
        payload = json.dumps({"output": body.get("input")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/complete"
    server.shutdown()
    server.server_close()


def test_local_http_endpoint_and_plot(local_server):
    report = load_test(local_server, concurrency_levels=(1, 4), duration_s=0.3,
                       max_requests=100)
    table = report.levels()
    assert (table["errors"] == 0).all() and (table["ok"] > 5).all()
    assert (table["p50_ms"] >= 10).all()
    fig = plot(report)
    assert [t.name for t in fig.data] == ["p50 latency", "p95 latency", "p99 latency",
                                          "throughput"]
    assert fig.layout.yaxis2.overlaying == "y"

    broken = load_test(local_server, concurrency_levels=(2,), duration_s=0.2, max_requests=10,
                       prompt="break")
    assert broken.levels()["error_rate"].iloc[0] == 1.0
    assert broken.errors()["error"].iloc[0] == "HTTP 500"
    assert "no answer to time" in broken.summary() and "nan" not in broken.summary()


def test_runs_inside_a_running_event_loop(run_async):
    async def notebook_cell():
        sync_report = load_test("fake/echo", concurrency_levels=(1,), duration_s=0.05,
                                max_requests=5)
        async_report = await aload_test("fake/echo", concurrency_levels=(3,), duration_s=0.05,
                                        max_requests=6)
        return sync_report, async_report

    sync_report, async_report = run_async(notebook_cell())
    assert sync_report.levels()["requests"].iloc[0] == 5
    assert async_report.levels()["requests"].iloc[0] == 6
