"""The served deployment: on the bundled model (uncached requests/s, latency under load, no
request waiting past its timeout), and the service's own overhead on a 0 ms fake model side by
side with a LiteLLM proxy, cached answers at a steady rate, and --workers 2 with Redis.

    .venv/bin/python benchmarks/bench_serve.py [--requests 64] [--skip-local]
        [--overhead-requests 3000] [--litellm PATH] [--redis-server PATH]

1. The sample project's prompt deployed on ``local/smollm2-135m`` with the response cache off
   and the limits the workbench derives from the model's measured speed (timeout, no retries,
   a bound on requests in progress). Every request carries a different support message. At
   concurrency 4 and 16: requests/s, p50/p99 latency and the status codes; then a burst of 4x
   the bound at once shows the bounded queue answering 503 with Retry-After at once.
2. One worker, ``fake/echo`` (0 ms), cache off, every request different, against a LiteLLM
   proxy (``litellm --config``: a ``mock_response`` model, a master key, one worker) on the
   same machine, at concurrency 16 and 64 (rounds alternate between the two): requests/s and
   p50/p99. Targets: at least 3x the proxy's requests/s, at most 1/5 of its p99.
3. Cached answers (cache on, warmed) sent at a steady 200 requests/s (open loop): p50/p99.
   Target: p99 <= 5 ms.
4. ``--workers 2 --redis`` against ``--workers 1 --redis`` (Redis from Debian's
   ``redis-server`` on a free port): requests/s at concurrency 64. Target: >= 1.6x.

Servers run in their own processes (``workbench serve``, ``litellm``); the load comes from
this process over keep-alive HTTP/1.1 connections (a small asyncio client: a client written
with a general HTTP library would be the bottleneck). On a shared machine the figures move
with the other load: the load average is printed first. A missing LiteLLM proxy or
redis-server skips its part.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def fire(url: str, key: str, texts: list[str], concurrency: int) -> tuple[float, list]:
    import httpx

    def one(text: str):
        started = time.perf_counter()
        with httpx.Client(timeout=300) as client:
            reply = client.post(f"{url}/v1/predict", json={"input": text},
                                headers={"Authorization": f"Bearer {key}"})
        return reply.status_code, time.perf_counter() - started, reply.headers.get("retry-after")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, texts))
    return time.perf_counter() - started, results


def report(label: str, wall: float, results: list, timeout: float) -> None:
    codes: dict[int, int] = {}
    for status, _, _ in results:
        codes[status] = codes.get(status, 0) + 1
    ok = [s for status, s, _ in results if status == 200]
    longest = max(s for _, s, _ in results)
    print(f"   {label:<16} {len(ok) / wall:6.1f} answered requests/s   p50 "
          f"{percentile(ok, 0.5):5.2f} s   p99 {percentile(ok, 0.99):5.2f} s   longest "
          f"{longest:5.2f} s (timeout {timeout:g} s)   status {dict(sorted(codes.items()))}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's workbench, here and in the servers it starts


def workbench_serve(project_path: str, key: str, *args: str) -> tuple[subprocess.Popen, str]:
    """``workbench serve`` of this checkout in its own process; returns it and its URL."""
    port = free_port()
    env = dict(os.environ, WORKBENCH_API_KEYS=key,
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    log = _log()
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--project",
                               project_path, "--port", str(port), *args], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=log, text=True)
    server.log = log
    return server, f"http://127.0.0.1:{port}"


def _log():
    """A file for a server's log (a pipe nobody reads would stall a chatty server)."""
    return tempfile.NamedTemporaryFile("w+", prefix="bench-serve-", suffix=".log", delete=False)


def _tail(server: subprocess.Popen) -> str:
    with open(server.log.name) as text:
        return text.read()[-2000:]


def wait_ready(url: str, server: subprocess.Popen, path: str = "/healthz",
               timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server at {url} exited: {_tail(server)}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not answer within {timeout:g} s")


def stop(server: subprocess.Popen) -> None:
    import signal

    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


# -- a small HTTP/1.1 load generator ---------------------------------------------------------------

async def _read_response(reader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked = None, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readline()).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
        return status, bytes(body)
    return status, await reader.readexactly(length or 0)


def _request(url: str, path: str, token: str, body: bytes) -> bytes:
    from urllib.parse import urlsplit

    host = urlsplit(url).netloc
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def closed_loop(url: str, path: str, token: str, bodies: list[bytes],
                concurrency: int) -> dict:
    """``concurrency`` keep-alive connections, each sending its next request as soon as the
    last is answered, until ``bodies`` are all sent. Requests/s, latencies, status codes."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[float] = []
    codes: dict[int, int] = {}
    queue = iter(range(len(bodies)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in queue:
                started = time.perf_counter()
                writer.write(_request(url, path, token, bodies[i]))
                status, _ = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                codes[status] = codes.get(status, 0) + 1
        finally:
            writer.close()

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(concurrency)))
        return time.perf_counter() - started

    wall = asyncio.run(run())
    ok = codes.get(200, 0)
    return {"rps": ok / wall, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "codes": dict(sorted(codes.items()))}


def open_loop(url: str, path: str, token: str, bodies: list[bytes], rate: float,
              connections: int = 32) -> dict:
    """Requests sent at a steady ``rate`` a second whatever the answers do (an open loop),
    over a pool of keep-alive connections; latency from the moment each was due."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[float] = []
    codes: dict[int, int] = {}

    async def run() -> float:
        pool: asyncio.Queue = asyncio.Queue()
        for _ in range(connections):
            pool.put_nowait(await asyncio.open_connection(parts.hostname, parts.port))

        async def one(i: int, due: float) -> None:
            reader, writer = await pool.get()
            writer.write(_request(url, path, token, bodies[i]))
            status, _ = await _read_response(reader)
            latencies.append(time.perf_counter() - due)
            codes[status] = codes.get(status, 0) + 1
            pool.put_nowait((reader, writer))

        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        tasks = []
        for i in range(len(bodies)):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
        while not pool.empty():
            pool.get_nowait()[1].close()
        return wall

    wall = asyncio.run(run())
    return {"rps": len(bodies) / wall, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "codes": dict(sorted(codes.items()))}


def show(label: str, figures: dict) -> None:
    print(f"   {label:<34} {figures['rps']:7.0f} requests/s   p50 {figures['p50'] * 1000:6.2f} ms"
          f"   p99 {figures['p99'] * 1000:6.2f} ms   status {figures['codes']}")


def median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda f: f["rps"])[len(rounds) // 2]


# -- the parts -------------------------------------------------------------------------------------

def bundled_model(args: argparse.Namespace) -> None:
    import workbench
    from workbench import sample
    from workbench.data.split import load_split
    from workbench.llm import local
    from workbench.serve import plan_deployment

    project = workbench.init_project(tempfile.mkdtemp() + "/bench-serve")
    sample.prepare_sample_data(project)
    sample.save_sample_prompt(project)
    deployment = plan_deployment(project, sample.SAMPLE_PROMPT, model=local.MODEL_ID,
                                 force=True, cache=False, rate_limit_per_minute=100_000,
                                 burst=10_000)
    spec = deployment.spec
    print(f"deployment: timeout {spec.timeout_s:g} s, {spec.retries} retries, at most "
          f"{spec.max_waiting} requests in progress ({spec.limits_basis}); "
          f"engine {local.get_model().engine_name}")
    key = "bench-serve-key-0123456789"
    # The service in its own process, as `workbench serve` runs it (clients here would otherwise
    # share the server's interpreter lock).
    server, url = workbench_serve(str(project.path), key)
    wait_ready(url, server)
    texts = load_split(project, sample.SAMPLE_DATASET, "train")["input"].astype(str).tolist()
    count = 0

    def fresh(n: int) -> list[str]:
        nonlocal count
        out = [f"{texts[(count + i) % len(texts)]} (ref {count + i})" for i in range(n)]
        count += n
        return out

    try:
        fire(url, key, fresh(4), 4)  # warm
        print(f"1. the bundled model, uncached requests, {args.requests} each")
        for concurrency in (4, 16):
            wall, results = fire(url, key, fresh(args.requests), concurrency)
            report(f"concurrency {concurrency}", wall, results, spec.timeout_s)
        burst = spec.max_waiting * 4
        print(f"   a burst of {burst} requests at once (4x the bound)")
        wall, results = fire(url, key, fresh(burst), burst)
        report("burst", wall, results, spec.timeout_s)
        refused = [s for status, s, _ in results if status == 503]
        if refused:
            hints = sorted({r for status, _, r in results if status == 503})
            print(f"   503 answered in {percentile(refused, 0.5) * 1000:.0f} ms (p50), "
                  f"{max(refused) * 1000:.0f} ms at most; Retry-After {', '.join(hints)} s")
    finally:
        stop(server)


def fake_project(cache: bool):
    import workbench
    from workbench import sample
    from workbench.serve import plan_deployment

    project = workbench.init_project(tempfile.mkdtemp() + "/bench-serve-fake")
    sample.prepare_sample_data(project)
    sample.save_sample_prompt(project)
    plan_deployment(project, sample.SAMPLE_PROMPT, model="fake/echo", force=True, cache=cache,
                    rate_limit_per_minute=100_000_000, burst=1_000_000, timeout_s=30,
                    retries=0, max_waiting=1024)
    return project


def litellm_proxy(exe: str, master_key: str) -> tuple[subprocess.Popen, str, str]:
    folder = tempfile.mkdtemp(prefix="bench-litellm-")
    config = os.path.join(folder, "config.yaml")
    with open(config, "w") as out:
        out.write("model_list:\n  - model_name: fake\n    litellm_params:\n"
                  "      model: openai/fake\n      api_key: sk-not-used\n"
                  "      mock_response: \"billing\"\n"
                  f"general_settings:\n  master_key: {master_key}\n"
                  "litellm_settings:\n  telemetry: false\n")
    port = free_port()
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true",
               LITELLM_LOG="ERROR")
    log = _log()
    server = subprocess.Popen([exe, "--config", config, "--host", "127.0.0.1", "--port",
                               str(port), "--num_workers", "1"], env=env, cwd=folder,
                              stdout=subprocess.DEVNULL, stderr=log, text=True)
    server.log = log
    return server, f"http://127.0.0.1:{port}", folder


def overhead(args: argparse.Namespace) -> None:
    import json

    from workbench import sample
    from workbench.data.split import load_split

    key = "bench-serve-key-0123456789"
    master = "sk-bench-master-0123456789"
    project = fake_project(cache=False)
    texts = load_split(project, sample.SAMPLE_DATASET, "train")["input"].astype(str).tolist()
    n = args.overhead_requests

    def ours(offset: int) -> list[bytes]:
        return [json.dumps({"input": f"{texts[i % len(texts)]} (ref {offset + i})"}).encode()
                for i in range(n)]

    def theirs(offset: int) -> list[bytes]:
        return [json.dumps({"model": "fake", "messages": [
            {"role": "user", "content": f"{texts[i % len(texts)]} (ref {offset + i})"}]}
        ).encode() for i in range(n)]

    wb_server, wb_url = workbench_serve(str(project.path), key)
    proxy = None
    exe = args.litellm or os.path.join(os.path.dirname(sys.executable), "litellm")
    if os.path.exists(exe):
        proxy, proxy_url, _ = litellm_proxy(exe, master)
    else:
        print(f"2. (no LiteLLM proxy at {exe}: pip install 'litellm[proxy]'; its side skipped)")
    try:
        wait_ready(wb_url, wb_server)
        if proxy is not None:
            wait_ready(proxy_url, proxy, "/health/liveliness")
        print(f"2. one worker, fake/echo (0 ms), cache off, {n} different requests a round, "
              f"{args.rounds} rounds alternating (median round shown)")
        offset = 0
        closed_loop(wb_url, "/v1/predict", key, ours(10 ** 6)[:300], 16)  # warm
        if proxy is not None:
            closed_loop(proxy_url, "/v1/chat/completions", master, theirs(10 ** 6)[:300], 16)
        results = {}
        for concurrency in (16, 64):
            rounds: dict[str, list[dict]] = {"workbench": [], "litellm": []}
            for _ in range(args.rounds):
                offset += n
                rounds["workbench"].append(closed_loop(wb_url, "/v1/predict", key,
                                                       ours(offset), concurrency))
                if proxy is not None:
                    rounds["litellm"].append(closed_loop(
                        proxy_url, "/v1/chat/completions", master, theirs(offset),
                        concurrency))
            for side, figures in rounds.items():
                if figures:
                    results[(side, concurrency)] = median_round(figures)
                    show(f"{side} POST "
                         f"{'/v1/predict' if side == 'workbench' else '/v1/chat/completions'}"
                         f" c{concurrency}", results[(side, concurrency)])
            if proxy is not None:
                ours_c, theirs_c = results[("workbench", concurrency)], \
                    results[("litellm", concurrency)]
                print(f"   c{concurrency}: workbench/proxy requests/s "
                      f"{ours_c['rps'] / theirs_c['rps']:.1f}x (target >= 3x); p99 "
                      f"{ours_c['p99'] / theirs_c['p99']:.2f} of the proxy's (target <= 0.20)")
    finally:
        stop(wb_server)
        if proxy is not None:
            stop(proxy)


def cached(args: argparse.Namespace) -> None:
    import json

    key = "bench-serve-key-0123456789"
    project = fake_project(cache=True)
    server, url = workbench_serve(str(project.path), key)
    try:
        wait_ready(url, server)
        distinct = [json.dumps({"input": f"Where is my parcel number {i}?"}).encode()
                    for i in range(50)]
        closed_loop(url, "/v1/predict", key, distinct * 4, 4)  # every answer cached
        bodies = [distinct[i % len(distinct)] for i in range(args.cached_seconds * 200)]
        print(f"3. cached answers at a steady 200 requests/s for {args.cached_seconds} s "
              "(open loop, latency from when each request was due)")
        show("workbench, cached", open_loop(url, "/v1/predict", key, bodies, 200))
        print("   target: p99 <= 5 ms")
    finally:
        stop(server)


def workers(args: argparse.Namespace) -> None:
    import json
    import shutil

    exe = args.redis_server or shutil.which("redis-server")
    if not exe:
        print("4. (no redis-server: apt-get install redis-server; skipped)")
        return
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    port = free_port()
    redis = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--dir", folder],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{port}/0"
    key = "bench-serve-key-0123456789"
    project = fake_project(cache=False)
    n = args.overhead_requests
    print(f"4. --workers 1 and 2 with Redis (and 1 without, for reference) ({redis_url}), fake/echo (0 ms), cache off, "
          f"concurrency 64, {n} different requests a round, median of {args.rounds}")
    results = {}
    offset = 0
    try:
        time.sleep(0.5)
        for count in (0, 1, 2):  # 0: one worker without Redis, for reference
            server, url = workbench_serve(str(project.path), key, "--workers", str(count or 1),
                                          *(("--redis", redis_url) if count else ()))
            try:
                wait_ready(url, server)
                closed_loop(url, "/v1/predict", key, [b'{"input": "warm"}'] * 300, 64)
                rounds = []
                for _ in range(args.rounds):
                    offset += n
                    bodies = [json.dumps({"input": f"Question {offset + i} about an invoice"})
                              .encode() for i in range(n)]
                    rounds.append(closed_loop(url, "/v1/predict", key, bodies, 64))
                results[count] = median_round(rounds)
                show(f"--workers {count} --redis c64" if count else "--workers 1, no Redis, c64",
                     results[count])
            finally:
                stop(server)
        print(f"   2 workers / 1 worker: {results[2]['rps'] / results[1]['rps']:.2f}x "
              f"(target >= 1.6x; {os.cpu_count()} CPUs, the load generator uses one too)")
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64,
                        help="requests per concurrency on the bundled model")
    parser.add_argument("--skip-local", action="store_true", help="skip part 1")
    parser.add_argument("--only", help="comma-separated parts to run (1,2,3,4)")
    parser.add_argument("--overhead-requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cached-seconds", type=int, default=15)
    parser.add_argument("--litellm", help="the litellm proxy command (default: beside python)")
    parser.add_argument("--redis-server", help="redis-server (default: on PATH)")
    args = parser.parse_args()
    parts = set((args.only or "1,2,3,4").split(","))
    if args.skip_local:
        parts.discard("1")
    print(f"machine: {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for number, part in (("1", bundled_model), ("2", overhead), ("3", cached),
                         ("4", workers)):
        if number in parts:
            part(args)


if __name__ == "__main__":
    main()
