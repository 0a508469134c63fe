"""Per-call overhead of the gateway on a fake model, against litellm's own per-call cost.

Both sides call the same `fake/echo` custom provider through litellm in the same process; the
gateway adds message handling, the response-cache lookup, the trace span write (SQLite, WAL) and
the cache write. Blocks of calls alternate between the two so drift hits both equally.

    .venv/bin/python benchmarks/bench_gateway.py [calls]
"""

import statistics
import sys
import tempfile
import time

import workbench
from workbench import llm
from workbench.llm.gateway import _zero_priced, litellm


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(calls: int = 3000, block: int = 100) -> None:
    project = workbench.init_project(tempfile.mkdtemp() + "/bench")
    lib = litellm()
    _zero_priced(lib, "fake/echo")  # both sides use the same provider registration
    raw, gateway, gateway_nocache = [], [], []
    cpu = {"raw": 0.0, "gateway": 0.0, "nocache": 0.0}
    for i in range(50):  # warm both paths
        lib.completion(model="fake/echo", messages=[{"role": "user", "content": f"w{i}"}])
        llm.complete(f"warm {i}", model="fake/echo", project=project)
    n = 0
    while n < calls:
        c = time.process_time()
        for _ in range(block):
            msgs = [{"role": "user", "content": f"raw {n} {_}"}]
            t = time.perf_counter()
            lib.completion(model="fake/echo", messages=msgs)
            raw.append(time.perf_counter() - t)
        time.sleep(0.05)  # let litellm's background logging of this block finish on its clock
        cpu["raw"] += time.process_time() - c
        c = time.process_time()
        for _ in range(block):
            t = time.perf_counter()
            llm.complete(f"gw {n} {_}", model="fake/echo", project=project)
            gateway.append(time.perf_counter() - t)
        project.store.flush()
        cpu["gateway"] += time.process_time() - c
        c = time.process_time()
        for _ in range(block):
            t = time.perf_counter()
            llm.complete(f"nc {n} {_}", model="fake/echo", project=project, cache=False)
            gateway_nocache.append(time.perf_counter() - t)
        project.store.flush()
        cpu["nocache"] += time.process_time() - c
        n += block
    project.store.flush()
    spans = project.store.db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    ms = 1000
    r50, g50, c50 = (statistics.median(x) * ms for x in (raw, gateway, gateway_nocache))
    print(f"{calls} calls each to fake/echo ({spans} spans written)")
    print(f"litellm alone:                 p50 {r50:.3f} ms  p90 {percentile(raw, .9) * ms:.3f} ms")
    print(f"gateway (cache miss + write):  p50 {g50:.3f} ms  p90 {percentile(gateway, .9) * ms:.3f} ms"
          f"  -> +{g50 - r50:.3f} ms over litellm")
    print(f"gateway (cache off):           p50 {c50:.3f} ms  p90 "
          f"{percentile(gateway_nocache, .9) * ms:.3f} ms  -> +{c50 - r50:.3f} ms over litellm")
    print("CPU time per call, background threads included: "
          + ", ".join(f"{k} {v / n * ms:.3f} ms" for k, v in cpu.items()))
    hits = []
    for i in range(500):
        t = time.perf_counter()
        llm.complete("gw 0 0", model="fake/echo", project=project)
        hits.append(time.perf_counter() - t)
    print(f"gateway cache hit:             p50 {statistics.median(hits) * ms:.3f} ms")
    print("targets: gateway p50 <= 1 ms; gateway - litellm <= 0.2 ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
