"""Phase 8 at scale: 1,000,000 stored spans, and how long each dashboard query takes.

    .venv/bin/python benchmarks/bench_monitor.py [--spans 1000000] [--days 30] [--keep DIR]
                                                 [--skip-detectors]

1. **Writing**: a project gets ``--spans`` spans over ``--days`` days through the real path
   (``tracing.write_span``: the monitoring hook, the background writer): half of them
   requests to the service (``serve.request``: 5,000 end users, 8 API keys, 2 deployments —
   two prompt versions — with live, canary and shadow arms, 2% failures, 3% refusals), each
   with its model call (``llm.call``: tokens, cost). Prints spans/s, and what the hook adds
   per span (the same spans written with the hook switched off).
2. **Rebuild**: the aggregates recomputed from the spans (what the migration does once on an
   old project).
3. **Dashboard queries**: each query the dashboard, the CLI and notebook 08 make, timed cold
   (first call) and warm (median of 3); the target is 1 s each.
4. **Detectors** (unless ``--skip-detectors``): false and missed alarms of the anomaly alerts
   on simulated hourly traffic (5 weeks with a daily cycle, checked every hour; then the same
   with injected incidents), and of the drift check on the bundled data (windows of the
   support dataset's test split, which the threshold never saw, against windows of the
   independently written product questions, and half-and-half mixes).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("refund", "invoice", "password", "login", "parcel", "delivery", "broken", "screen",
         "charger", "account", "billing", "cancel", "order", "tracking", "address", "upgrade",
         "plan", "discount", "warranty", "battery", "crash", "app", "email", "payment", "card",
         "declined", "shipping", "late", "missing", "item", "return", "label")


def _message(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))).capitalize() + "?"


def _deploy(project) -> None:
    from workbench.serve import DEPLOYMENT, DeploymentSpec

    for version, model in ((1, "openai/gpt-4o-mini"), (2, "openai/gpt-4o-mini")):
        project.records.save(DEPLOYMENT, DeploymentSpec(
            prompt="triage", prompt_version=version, model=model,
            fallbacks=["anthropic/claude-3-5-haiku-latest"]))


def generate(project, n: int, days: float, *, seed: int = 0, hook: bool = True) -> float:
    """Write ``n`` spans (a service request and its model call, in pairs) over ``days`` days
    ending now; returns the seconds it took, the background writer included."""
    from workbench import monitor_aggregates
    from workbench.tracing import Span, write_span

    rng = random.Random(seed)
    now = time.time()
    begin = now - days * 86400
    users = [f"user-{i}@example.com" for i in range(5000)]
    clients = [f"key-{i}" for i in range(8)]
    original = monitor_aggregates.add
    if not hook:
        monitor_aggregates.add = lambda project, span: None
    started = time.perf_counter()
    pairs = round(n / 1.97)  # refused requests (3%) make no model call
    written = 0
    try:
        for i in range(pairs):
            start = begin + (now - begin) * i / pairs
            trace = f"{rng.getrandbits(128):032x}"
            request, call = f"{rng.getrandbits(64):016x}", f"{rng.getrandbits(64):016x}"
            roll = rng.random()
            arm = "live" if roll < 0.9 else "canary" if roll < 0.98 else "shadow"
            deployment = 2 if arm == "canary" or start > now - 3 * 86400 else 1
            text = _message(rng)
            failed, refused = rng.random() < 0.02, rng.random() < 0.03
            latency = rng.lognormvariate(-0.7, 0.5)
            cost = 0.00015 + 0.000002 * len(text)
            tokens_in, tokens_out = 80 + len(text) // 4, rng.randint(1, 12)
            fallback = rng.random() < 0.01
            model = "anthropic/claude-3-5-haiku-latest" if fallback else "openai/gpt-4o-mini"
            written += 1 + (not refused)
            if not refused:
                write_span(project, Span(
                    "llm.call", trace, call, request, start + 0.001, start + latency,
                    "error" if failed else "ok", "RateLimitError: 429" if failed else None, {
                        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": model,
                        "gen_ai.input.messages": [
                            {"role": "system", "content": "Route the message to a team."},
                            {"role": "user", "content": text}],
                        "workbench.cache_hit": False, "workbench.attempts": 1,
                        **({} if failed else {
                            "gen_ai.usage.input_tokens": tokens_in,
                            "gen_ai.usage.output_tokens": tokens_out,
                            "gen_ai.output.messages": [{"role": "assistant",
                                                        "content": "billing"}],
                            "workbench.cost_usd": cost})}))
            status = 422 if refused else 502 if failed else 200
            attributes = {"http.route": "/v1/predict", "workbench.request_id": request,
                          "workbench.client": rng.choice(clients),
                          "workbench.request": {"input": text}, "workbench.deployment": deployment,
                          "workbench.user": rng.choice(users), "workbench.arm": arm,
                          "http.response.status_code": status}
            if status == 200:
                attributes.update({"workbench.model": model, "workbench.fallback_used": fallback,
                                   "workbench.cache_hit": False, "workbench.cost_usd": cost,
                                   "workbench.parse_ok": rng.random() > 0.01,
                                   "workbench.output": "billing"})
            write_span(project, Span("serve.request", trace, request, None, start,
                                     start + (0.0 if refused else latency + 0.002),
                                     "error" if failed else "ok",
                                     "No model could answer" if failed else None, attributes))
            if i % 20_000 == 19_999:
                project.store.flush()  # bound the writer's queue (memory), as a real load would
        project.store.flush()
    finally:
        monitor_aggregates.add = original
    return time.perf_counter() - started, written


def timed(fn, runs: int = 3) -> tuple[float, float]:
    started = time.perf_counter()
    fn()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm)


def queries(project) -> list[tuple[str, object]]:
    from workbench import (
        monitor,
        monitor_alerts,
        monitor_anomaly,
        monitor_cost,
        monitor_figures,
    )

    return [
        ("resolve_source (service or calls)", lambda: monitor.resolve_source(project)),
        ("traffic: last hour + all time", lambda: monitor.traffic(project)),
        ("window_metrics: last hour", lambda: monitor.window_metrics(project)),
        ("window_metrics: last 24 h", lambda: monitor.window_metrics(project, window_s=86400)),
        ("summary_frame (notebook table)", lambda: monitor.summary_frame(project)),
        ("timeline: all time, auto buckets", lambda: monitor.timeline(project)),
        ("timeline: last 24 h per hour", lambda: monitor.timeline(
            project, bucket_s=3600, since=time.time() - 86400)),
        ("timeline: last hour per minute", lambda: monitor.timeline(
            project, bucket_s=60, since=time.time() - 3600)),
        ("timeline: 7 days per hour, per arm", lambda: monitor.timeline(
            project, bucket_s=3600, since=time.time() - 7 * 86400, dim="arm")),
        ("dashboard figure (all time)", lambda: monitor.dashboard(project)),
        ("breakdown per model, 24 h", lambda: monitor.breakdown(project, "model")),
        ("breakdown per prompt version, 30 d", lambda: monitor.breakdown(
            project, "prompt_version", window_s=30 * 86400)),
        ("breakdown per arm, 30 d", lambda: monitor.breakdown(project, "arm",
                                                              window_s=30 * 86400)),
        ("breakdown per key, 30 d", lambda: monitor.breakdown(project, "client",
                                                              window_s=30 * 86400)),
        ("active users: 24 h", lambda: monitor.active_users(project)),
        ("active users: 30 d per arm", lambda: monitor.active_users(
            project, window_s=30 * 86400, dim="arm")),
        ("spend per day, 31 days", lambda: monitor_cost.spend_frame(project)),
        ("spend per key, this month", lambda: monitor_cost.spend_by_key(project)),
        ("budget status (projection)", lambda: monitor_cost.budget_status(project)),
        ("anomaly alerts (7-day baseline)", lambda: monitor_anomaly.anomaly_alerts(
            project, source="service")),
        ("check_alerts: every kind", lambda: monitor_alerts.check_alerts(project, record=False,
                                                                  notify=False)),
        ("figure: traffic and users, 7 d", lambda: monitor_figures.traffic_figure(project)),
        ("figure: cost against the budget", lambda: monitor_figures.cost_figure(project)),
        ("figure: breakdown per arm, 24 h", lambda: monitor_figures.breakdown_figure(
            project, "arm")),
    ]


def bench_scale(args) -> None:
    import workbench
    from workbench import monitor_aggregates

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    project_path = folder / "project"
    if (project_path / "workbench.db").exists():
        project = workbench.open_project(project_path)
        print(f"1. Reusing {project_path}")
    else:
        project = workbench.init_project(project_path, sample=True)
        project.update_card(lambda c: c.setdefault("constraints", {}).update(
            monthly_budget_usd=200))
        _deploy(project)
        print(f"1. Writing {args.spans:,} spans over {args.days:g} days into {project_path} "
              "through tracing.write_span ...")
        seconds, written = generate(project, args.spans, args.days)
        print(f"   {written / seconds:,.0f} spans/s with the monitoring hook "
              f"({seconds:.1f} s, the background writer included)")
        sample = min(100_000, args.spans)
        for days in (30, 1):  # sparse traffic, and a busy day (more users per bucket)
            other = workbench.init_project(folder / f"hook-{days}")
            _deploy(other)
            with_hook, n = generate(other, sample, days, seed=1)
            other.close()
            third = workbench.init_project(folder / f"nohook-{days}")
            without, _ = generate(third, sample, days, seed=1, hook=False)
            third.close()
            print(f"   {n:,} spans over {days} day(s): {with_hook:.1f} s with the hook, "
                  f"{without:.1f} s without: the hook adds "
                  f"{(with_hook - without) / n * 1e6:+.1f} µs per span")
    db = project.store.db
    count = db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    rows = db.execute("SELECT bucket_s, COUNT(*) FROM monitor_buckets GROUP BY 1").fetchall()
    size = sum(f.stat().st_size for f in project.path.glob("workbench.db*")) / 1e6
    print(f"   {count:,} spans stored; aggregate rows: "
          + ", ".join(f"{n:,} of {b} s" for b, n in rows) + f"; database {size:,.0f} MB")

    if not args.skip_rebuild:
        started = time.perf_counter()
        read = monitor_aggregates.rebuild(project)
        seconds = time.perf_counter() - started
        print(f"2. Rebuild from the spans: {read:,} spans in {seconds:.1f} s "
              f"({read / seconds:,.0f} spans/s)")

    print("3. Dashboard queries (target <= 1 s each): cold, then warm (median of 3)")
    worst = 0.0
    for label, fn in queries(project):
        cold, warm = timed(fn)
        worst = max(worst, cold, warm)
        flag = "" if max(cold, warm) <= 1.0 else "   OVER 1 s"
        print(f"   {label:<40} {cold * 1000:8.1f} ms {warm * 1000:8.1f} ms{flag}")
    print(f"   slowest: {worst * 1000:.0f} ms")
    project.close()


# -- detectors -------------------------------------------------------------------------------------

def bench_anomalies() -> None:
    """Hourly traffic for 5 weeks (a daily cycle, lognormal latency, 1% errors) written as
    spans; the anomaly check runs at every hour of the last 2 weeks. Counts alarms on clean
    traffic, then with an incident injected at each of 20 hours (its latency x3, its errors
    to 10%, or its spend x4)."""
    import workbench
    from workbench import monitor_anomaly
    from workbench.tracing import Span, write_span

    def build(folder: Path, incidents: dict[int, str], seed: int) -> tuple:
        project = workbench.init_project(folder)
        rng = random.Random(seed)
        now = time.time()
        start = (now // 3600) * 3600 - 35 * 86400
        hours = 35 * 24
        for h in range(hours):
            kind = incidents.get(h)
            base = start + h * 3600
            volume = int(40 + 30 * (1 + __import__("math").sin(h / 24 * 6.283)))
            for _ in range(volume * (4 if kind == "spend" else 1)):
                t = base + rng.random() * 3600
                latency = rng.lognormvariate(-1, 0.4) * (3 if kind == "latency" else 1)
                bad = rng.random() < (0.10 if kind == "errors" else 0.01)
                write_span(project, Span("serve.request", "t", f"{rng.getrandbits(60):x}",
                                         None, t, t + latency, "error" if bad else "ok", None,
                                         {"http.route": "/v1/predict",
                                          "http.response.status_code": 502 if bad else 200,
                                          "workbench.cost_usd": 0.001}))
        project.store.flush()
        return project, start

    folder = Path(tempfile.mkdtemp(prefix="bench-anomaly-"))
    clean, start = build(folder / "clean", {}, 0)
    checks = range(21 * 24, 35 * 24)

    def alarms(project, hours) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for h in hours:
            for a in monitor_anomaly.anomaly_alerts(project, source="service",
                                                    now=start + (h + 1) * 3600):
                if a.status == "firing":
                    out.setdefault(a.rule.metric, []).append(h)
        return out

    false = alarms(clean, checks)
    print("4a. Anomaly alerts on 14 days of clean hourly traffic (336 checks per metric):")
    for metric in ("p95_latency_anomaly", "error_rate_anomaly", "spend_anomaly"):
        print(f"   {metric:<22} {len(false.get(metric, []))} false alarms "
              f"({len(false.get(metric, [])) / 336:.1%} of checks)")
    rng = random.Random(7)
    kinds = {"latency": "p95_latency_anomaly", "errors": "error_rate_anomaly",
             "spend": "spend_anomaly"}
    hours = rng.sample(list(checks), 20)
    incidents = {h: rng.choice(list(kinds)) for h in hours}
    hurt, _ = build(folder / "incidents", incidents, 0)
    found = alarms(hurt, sorted(incidents))
    print("   with incidents injected at 20 hours (checked at the end of each):")
    for kind, metric in kinds.items():
        at = [h for h, k in incidents.items() if k == kind]
        caught = [h for h in at if h in found.get(metric, [])]
        print(f"   {kind:<8} x{len(at)}: {len(caught)} caught by {metric}")


def bench_drift() -> None:
    """Windows of 40 distinct inputs, each checked against the sample's train split."""
    import numpy as np

    import workbench
    from workbench.data.splitting import load_split
    from workbench.data.versioning import find_split
    from workbench.llm import embed
    from workbench.monitor_drift import null_distances, reference
    from workbench.sample import fill_prerequisites

    folder = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    project = workbench.init_project(folder / "p", sample=True)
    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    fill_prerequisites(project, 8)  # the sample data, prompt and a deployment of it
    ref = reference(project)
    train, validation = embed(ref.train), embed(ref.validation)
    centre = train.mean(axis=0)
    stored = find_split(project)
    test = [str(t) for t in load_split(project, stored.name, "test")["input"]]
    here = Path(__file__).resolve().parents[1] / "datasets" / "product_qa.jsonl"
    other = [json.loads(line)["question"] for line in here.read_text().splitlines() if line]
    test_v, other_v = embed(test), embed(other)
    rng = np.random.default_rng(0)
    n, windows = 30, 200

    def flagged(pool_a, pool_b=None, share_b: float = 0.0) -> float:
        hits = 0
        null = np.quantile(null_distances(validation, centre, n, seed=1), 0.95)
        for _ in range(windows):
            k = round(n * share_b)
            parts = [pool_a[rng.choice(len(pool_a), n - k, replace=False)]]
            if k:
                parts.append(pool_b[rng.choice(len(pool_b), k, replace=False)])
            window = np.concatenate(parts)
            hits += float(np.linalg.norm(window.mean(axis=0) - centre)) > null
        return hits / windows

    print(f"4b. Drift: windows of {n} inputs against {ref.dataset} v{ref.version} "
          f"({len(ref.train)} train, {len(ref.validation)} validation inputs), "
          f"{windows} windows each:")
    print(f"   test split (unseen, same source)      flagged {flagged(test_v):.1%} "
          "(false alarms; 5% by design)")
    print(f"   product questions (other topic)       flagged {flagged(other_v):.1%}")
    print(f"   half test, half product questions     flagged "
          f"{flagged(test_v, other_v, 0.5):.1%}")
    print(f"   a fifth product questions              flagged "
          f"{flagged(test_v, other_v, 0.2):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--keep", help="folder to keep (and reuse) the generated project in")
    parser.add_argument("--skip-rebuild", action="store_true")
    parser.add_argument("--skip-detectors", action="store_true")
    parser.add_argument("--only-detectors", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("WORKBENCH_ALLOW_HOSTED", "0")
    if not args.only_detectors:
        bench_scale(args)
    if not args.skip_detectors:
        bench_anomalies()
        bench_drift()


if __name__ == "__main__":
    main()
