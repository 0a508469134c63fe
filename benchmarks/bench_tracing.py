"""Tracing: what a span costs the caller, how many spans a second the project stores, and how
fast stored spans go out over OTLP.

1. **Caller overhead per span**, in one process, blocks alternating: the workbench's
   ``trace()`` (start, store in SQLite through the deferred writer, live OTLP export on)
   against the OpenTelemetry SDK's own per-span cost (``TracerProvider`` +
   ``BatchSpanProcessor`` + its OTLP/HTTP protobuf exporter), both sending to the same
   loopback collector, which runs in its own process and decodes every request with
   opentelemetry-proto. The same ten GenAI attributes on every span (token counts and cost
   change from span to span). The SDK stores nothing; ours also writes each span to the
   project. (opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http are installed for
   this benchmark only.)
2. **Spans stored per second, sustained**: a child process writes N spans as fast as it can
   and exits normally; the figure is N over the time until the last one is committed, and
   the rows are counted after it exited (nothing may be lost at a clean exit). Once with
   live export off and once with it on.
3. **OTLP export throughput**: ``export_spans`` (``workbench traces export``) of those spans
   to the loopback collector: spans/s and MB/s, and how many the collector decoded.

    .venv/bin/python benchmarks/bench_tracing.py [--spans N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's workbench, also in the child processes

ATTRIBUTES = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.request.temperature": 0.0,
    "gen_ai.usage.output_tokens": 41, "workbench.cache_hit": False, "workbench.attempts": 1,
    "workbench.prompt": "triage",
}  # + input tokens and cost, different on every span (varied)

def varied(i: int) -> dict:
    """The attributes of span ``i``: token counts and cost change from call to call."""
    tokens = 100 + i % 900
    return {**ATTRIBUTES, "gen_ai.usage.input_tokens": tokens,
            "workbench.cost_usd": tokens * 1.5e-7 + 2.46e-5}


# The loopback collector: its own process, so its work does not share our GIL.
COLLECTOR = r"""
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
counts = {"spans": 0, "requests": 0, "bytes": 0}
lock = threading.Lock()
ok = ExportTraceServiceResponse().SerializeToString()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with lock:
            counts["spans"] += n; counts["requests"] += 1; counts["bytes"] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(ok)))
        self.end_headers()
        self.wfile.write(ok)
    def do_GET(self):
        body = repr(counts).encode() if self.path == "/count" else b""
        if self.path == "/reset":
            with lock:
                counts.update(spans=0, requests=0, bytes=0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"""

WRITER = r"""
import json, os, sys, time
import workbench
from workbench.tracing import trace
project = workbench.open_project(sys.argv[1])
n = int(sys.argv[2])
attributes = json.loads(sys.argv[3])
t0 = time.perf_counter(); c0 = time.process_time(); k0 = time.thread_time()
for i in range(n):
    tokens = 100 + i % 900
    with trace("bench.step", project, **attributes, **{"gen_ai.usage.input_tokens": tokens,
               "workbench.cost_usd": tokens * 1.5e-7 + 2.46e-5}):
        pass
t1 = time.perf_counter(); k1 = time.thread_time()
project.store.flush()
t2 = time.perf_counter(); c2 = time.process_time()
from workbench import otlp
print(json.dumps({"write_s": t1 - t0, "stored_s": t2 - t0, "cpu_s": c2 - c0,
                  "caller_cpu_s": k1 - k0,
                  "live": otlp.live_status()}), flush=True)
"""


def start_collector() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", COLLECTOR], stdout=subprocess.PIPE,
                               text=True)
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


def collector_count(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/count", timeout=10) as answer:
        return eval(answer.read().decode())


def collector_reset(url: str) -> None:
    urllib.request.urlopen(f"{url}/reset", timeout=10).read()


# -- 1: caller overhead ----------------------------------------------------------------------------

def caller_overhead(url: str, spans: int, rounds: int) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import workbench
    from workbench import otlp
    from workbench.tracing import trace

    project = workbench.init_project(Path(tempfile.mkdtemp()) / "bench")
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("bench")

    def ours(n: int) -> None:
        for i in range(n):
            with trace("bench.step", project, **varied(i)):
                pass

    def sdk(n: int) -> None:
        for i in range(n):
            with tracer.start_as_current_span("bench.step", attributes=varied(i)):
                pass

    otlp.start_live(url)
    sides = {"workbench trace() + store + live OTLP": ours,
             "OpenTelemetry SDK + BatchSpanProcessor + OTLP": sdk}
    block = 2000
    times: dict[str, list[float]] = {name: [] for name in sides}
    for fn in sides.values():  # warm up
        fn(500)
    for _ in range(rounds):
        for name, fn in sides.items():
            for _ in range(max(1, spans // block)):
                t = time.perf_counter()
                fn(block)
                times[name].append((time.perf_counter() - t) / block)
            time.sleep(0.1)
    live = otlp.stop_live(timeout=30)
    provider.shutdown()
    project.store.flush()
    print("1. Caller overhead per span (median of blocks of 2,000; µs, wall clock in the "
          "calling thread, background work included):")
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values) * 1e6
        print(f"   {name:48s} {medians[name]:7.2f} µs   (p10 {_pct(values, 0.1):.2f}, "
              f"p90 {_pct(values, 0.9):.2f})")
    ours_us, sdk_us = medians.values()
    print(f"   ours / SDK = {ours_us / sdk_us:.2f}  (target ≤ 1.00)")
    print(f"   live export: {live['exported']} sent, {live['dropped_queue_full']} dropped "
          f"(queue full), {live['dropped_failed']} failed; stored rows "
          f"{project.store.db.execute('SELECT COUNT(*) FROM spans').fetchone()[0]}")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


# -- 2: stored per second --------------------------------------------------------------------------

def stored_per_second(url: str, spans: int) -> Path:
    import workbench

    print(f"2. Spans stored per second, sustained ({spans:,} spans by trace() in a child "
          "process that then exits normally):")
    keep = None
    for label, env_extra in (("live export off", {}),
                             ("live export on ", {"OTEL_EXPORTER_OTLP_ENDPOINT": url,
                                                  "OTEL_BSP_MAX_QUEUE_SIZE": "65536"})):
        project = workbench.init_project(Path(tempfile.mkdtemp()) / "stored")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update({"PYTHONPATH": str(REPO), **env_extra})
        collector_reset(url)
        done = subprocess.run([sys.executable, "-c", WRITER, str(project.path), str(spans),
                               json.dumps(ATTRIBUTES)], env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        if done.returncode != 0:
            print(done.stderr)
            raise SystemExit(1)
        figures = json.loads(done.stdout)
        rows = project.store.db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
        rate = spans / figures["stored_s"]
        extra = ""
        if env_extra:
            time.sleep(1)
            got = collector_count(url)
            extra = f"; the collector decoded {got['spans']:,} of them"
        caller = figures["caller_cpu_s"] / spans * 1e6
        others = (figures["cpu_s"] - figures["caller_cpu_s"]) / spans * 1e6
        print(f"   {label}: {rate:>9,.0f} spans/s stored (writing {spans / figures['write_s']:,.0f}"
              f"/s); CPU per span {caller:.1f} µs in the caller + {others:.1f} µs in the "
              f"writer/exporter threads; rows after exit: {rows:,} of {spans:,} "
              f"{'✔' if rows == spans else '✘ LOST'}{extra}")
        keep = project.path
    return keep


# -- 3: export throughput --------------------------------------------------------------------------

def export_throughput(url: str, path: Path) -> None:
    import workbench
    from workbench import otlp

    project = workbench.open_project(path)
    collector_reset(url)
    result = otlp.export_spans(project, url, batch_size=512, progress=False)
    time.sleep(0.5)
    got = collector_count(url)
    print("3. OTLP export of stored spans (workbench traces export) to the loopback collector:")
    print(f"   {result.sent:,} spans in {result.batches} batches of 512: "
          f"{result.sent / result.seconds:,.0f} spans/s, "
          f"{result.bytes / result.seconds / 1e6:.1f} MB/s of protobuf "
          f"({result.bytes / result.sent:.0f} bytes/span); the collector decoded "
          f"{got['spans']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    os.environ.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    collector, url = start_collector()
    try:
        from importlib.metadata import version

        print(f"opentelemetry-proto {version('opentelemetry-proto')}, opentelemetry-sdk "
              f"{version('opentelemetry-sdk')} (for the comparison only); load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are wall clock: "
              "run on a quiet machine)\n")
        caller_overhead(url, min(args.spans, 20_000), args.rounds)
        print()
        path = stored_per_second(url, args.spans)
        print()
        export_throughput(url, path)
    finally:
        collector.terminate()


if __name__ == "__main__":
    main()
