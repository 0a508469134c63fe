"""The served deployment on the bundled model: uncached requests/s and latency under load, and
that no request waits past its timeout.

    .venv/bin/python benchmarks/bench_serve.py [--requests 64]

The sample project's prompt is deployed on ``local/smollm2-135m`` with the response cache off
and the limits the workbench derives from the model's measured speed (timeout, no retries, a
bound on requests in progress). Real HTTP against the service on a background thread; every
request carries a different support message. At concurrency 4 and 16 it prints requests/s,
p50/p99 latency and the status codes; then a burst of 4x the bound at once shows the bounded
queue answering 503 with Retry-After at once instead of letting requests wait past the timeout.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    args = parser.parse_args()

    import workbench
    from workbench import sample
    from workbench.data.split import load_split
    from workbench.llm import local
    from workbench.serve import plan_deployment

    print(f"machine: {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, WORKBENCH_API_KEYS=key)
    exe = os.path.join(os.path.dirname(sys.executable), "workbench")
    server = subprocess.Popen([exe, "serve", "--project", str(project.path), "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    texts = load_split(project, sample.SAMPLE_DATASET, "train")["input"].astype(str).tolist()
    count = 0

    def fresh(n: int) -> list[str]:
        nonlocal count
        out = [f"{texts[(count + i) % len(texts)]} (ref {count + i})" for i in range(n)]
        count += n
        return out

    try:
        fire(url, key, fresh(4), 4)  # warm
        print(f"1. uncached requests, {args.requests} each")
        for concurrency in (4, 16):
            wall, results = fire(url, key, fresh(args.requests), concurrency)
            report(f"concurrency {concurrency}", wall, results, spec.timeout_s)
        burst = spec.max_waiting * 4
        print(f"2. a burst of {burst} requests at once (4x the bound)")
        wall, results = fire(url, key, fresh(burst), burst)
        report("burst", wall, results, spec.timeout_s)
        refused = [s for status, s, _ in results if status == 503]
        if refused:
            hints = sorted({r for status, _, r in results if status == 503})
            print(f"   503 answered in {percentile(refused, 0.5) * 1000:.0f} ms (p50), "
                  f"{max(refused) * 1000:.0f} ms at most; Retry-After {', '.join(hints)} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
