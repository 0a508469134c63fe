"""What project API keys and per-key limits cost a request: finding the key among N keys (the
service's ``KeyRing``: a SHA-256, a dictionary look-up, a constant-time compare), the check
for created or revoked keys (an indexed look-up at most every ``REFRESH_S``, then the changed
rows), what a starting service reads, and admitting and
debiting a request (``ServiceLimits`` on ``MemoryCounters``). Beside them, the constant-time
loop over every key that the service used before, for comparison.

    .venv/bin/python benchmarks/bench_keys.py [--keys 10 1000 10000] [--requests 20000]

Works in a temporary project with a forced ``fake/echo`` deployment. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path


def _per_call_us(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()

    import workbench
    from workbench import sample
    from workbench.runs import start_run
    from workbench.serve import keys as keys_module
    from workbench.serve import plan_deployment
    from workbench.serve.keys import KeyRing, create_key, key_hash, revoke_key
    from workbench.serve.limits import MemoryCounters, ServiceLimits
    from workbench.serve.protection import _match_key

    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        project = workbench.init_project(Path(tmp) / "bench", sample=True)
        sample.fill_prerequisites(project, 7)
        start_run(project, sample.SAMPLE_PROMPT, dataset=sample.SAMPLE_DATASET, split="test",
                  model="fake/echo", limit=2, progress=False)
        spec = plan_deployment(project, "triage", model="fake/echo", force=True).spec
        print(f"{n:,} requests per figure; REFRESH_S = {keys_module.REFRESH_S} s")
        print(f"{'keys':>7}  {'KeyRing.match':>14}  {'old loop':>10}  {'change query':>14}"
              f"  {'read 1 change':>14}  {'start read':>12}")
        made: list[str] = []
        for total in args.keys:
            while len(made) < total:
                made.append(create_key(project, f"k{len(made)}", tokens_per_minute=10**6,
                                       monthly_budget_usd=100))
            ring = KeyRing(project, [])
            last = made[-1].encode()
            ring.refresh(force=True)
            match = _per_call_us(lambda: ring.match(last), n)  # noqa: B023 (used at once)
            loop_keys = {hashlib.sha256(k.encode()).digest(): "c" for k in made}
            loop = _per_call_us(lambda: _match_key(last, loop_keys),  # noqa: B023
                                max(50, n // max(1, total // 100)))
            stamp = _per_call_us(ring.latest_version, 2000)
            revoke_key(project, f"k{total - 1}")
            started = time.perf_counter()
            ring.refresh(force=True)  # reads the one row that changed
            changed = (time.perf_counter() - started) * 1e6
            started = time.perf_counter()
            KeyRing(project, [])  # what a starting service reads: every key
            whole = (time.perf_counter() - started) * 1e3
            print(f"{total:>7,}  {match:>11.2f} µs  {loop:>7.1f} µs  {stamp:>11.1f} µs"
                  f"  {changed:>11.1f} µs  {whole:>9.1f} ms")
        caller, _ = ring.match(made[1].encode())
        limits = ServiceLimits(project, spec, MemoryCounters())
        admit = _per_call_us(lambda: limits.admit(caller, answering=True), n)
        debit = _per_call_us(lambda: limits.debit(caller.client, tokens=50, usd=0.0001), n)
        project.store.flush()
        print(f"ServiceLimits.admit (budget, tokens, requests): {admit:.1f} µs a request")
        print(f"ServiceLimits.debit (counters + a deferred spend row): {debit:.1f} µs a request")
        print("key hashes are SHA-256:", key_hash("wb_example")[:12] + "…")


if __name__ == "__main__":
    main()
