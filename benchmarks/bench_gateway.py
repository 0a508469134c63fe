"""Per-call overhead of the gateway, on both of its routes, against litellm's own per-call cost.

1. In-process models (``fake/echo``): the gateway calls the fake model directly; litellm alone
   calls the same fake through its custom-provider registration. The gateway adds message
   handling, the response-cache lookup, the trace span write (SQLite, WAL) and the cache write.
2. Hosted models: the gateway and litellm alone both call an OpenAI-compatible server on loopback
   (tests/openai_server.py) with the same request, so the difference is the gateway's own cost
   on the litellm route.

Blocks of calls alternate between the sides so drift hits both equally.

    .venv/bin/python benchmarks/bench_gateway.py [calls]
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import openai_server  # noqa: E402

import workbench  # noqa: E402
from workbench import llm  # noqa: E402
from workbench.llm.hosted import litellm  # noqa: E402

MS = 1000


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def side_by_side(sides, calls, block, flush):
    """Time ``calls`` calls of each side (name -> function of a unique text), in blocks."""
    times = {name: [] for name in sides}
    cpu = dict.fromkeys(sides, 0.0)
    n = 0
    while n < calls:
        for name, call in sides.items():
            c = time.process_time()
            for i in range(block):
                t = time.perf_counter()
                call(f"{name} {n} {i}")
                times[name].append(time.perf_counter() - t)
            time.sleep(0.05)  # let background work of this block (logging, writes) finish
            flush()
            cpu[name] += time.process_time() - c
        n += block
    return times, {k: v / n * MS for k, v in cpu.items()}


def report(times, cpu, reference):
    r50 = statistics.median(times[reference]) * MS
    for name, values in times.items():
        p50 = statistics.median(values) * MS
        delta = "" if name == reference else f"  -> {p50 - r50:+.3f} ms against {reference}"
        print(f"  {name:<28} p50 {p50:.3f} ms  p90 {percentile(values, .9) * MS:.3f} ms  "
              f"CPU {cpu[name]:.3f} ms/call{delta}")


def main(calls: int = 3000, block: int = 100) -> None:
    project = workbench.init_project(tempfile.mkdtemp() + "/bench")
    lib = litellm()
    flush = project.store.flush

    def msgs(text):
        return [{"role": "user", "content": text}]

    print(f"{calls} calls a side; CPU per call includes background threads")
    print("in-process model (fake/echo):")
    sides = {
        "litellm alone": lambda t: lib.completion(model="fake/echo", messages=msgs(t)),
        "gateway (cache miss + write)": lambda t: llm.complete(t, model="fake/echo",
                                                               project=project),
        "gateway (cache off)": lambda t: llm.complete(t, model="fake/echo", project=project,
                                                      cache=False),
    }
    for name, call in sides.items():  # warm every path
        for i in range(50):
            call(f"warm {name} {i}")
    times, cpu = side_by_side(sides, calls, block, flush)
    report(times, cpu, "litellm alone")
    hits = []
    for _ in range(500):
        t = time.perf_counter()
        llm.complete("gateway (cache miss + write) 0 0", model="fake/echo", project=project)
        hits.append(time.perf_counter() - t)
    print(f"  {'gateway cache hit':<28} p50 {statistics.median(hits) * MS:.3f} ms")

    os.environ["WORKBENCH_ALLOW_HOSTED"] = "1"  # the "hosted" server is on loopback
    server = openai_server.start()
    options = {"api_base": server.url, "api_key": "sk-bench", "max_retries": 0}
    hosted_calls = max(200, calls // 5)
    print(f"hosted route (openai/gpt-4o-mini on a loopback server, {hosted_calls} calls a side):")
    sides = {
        "litellm alone": lambda t: lib.completion(model="openai/gpt-4o-mini", messages=msgs(t),
                                                  **options),
        "gateway (cache off)": lambda t: llm.complete(t, model="openai/gpt-4o-mini",
                                                      project=project, cache=False, **options),
    }
    for name, call in sides.items():
        for i in range(20):
            call(f"warm {name} {i}")
    times, cpu = side_by_side(sides, hosted_calls, block // 2, flush)
    report(times, cpu, "litellm alone")
    server.shutdown()
    print("targets: gateway p50 <= 1 ms on a fake model; gateway - litellm <= 0.2 ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
