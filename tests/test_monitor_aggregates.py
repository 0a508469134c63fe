"""Monitoring's per-bucket aggregates: exact against the spans they summarise, rebuilt the same,
end users hashed before anything is stored, and old projects backfilled by the migration."""

from __future__ import annotations

import math
import random
import sqlite3
import time

import numpy as np
import pytest

import workbench
from workbench import monitor, monitor_aggregates, monitor_sketch, store
from workbench.project import forget_open_projects
from workbench.tracing import Span, spans, write_span

NOW = time.time()


def _deploy(project, versions=((1, "fake/echo"), (2, "fake/echo-large"))):
    from workbench.serve import DEPLOYMENT, DeploymentSpec

    for version, model in versions:
        saved = project.records.save(DEPLOYMENT, DeploymentSpec(
            prompt="triage", prompt_version=version, model=model))
        assert saved.version == version


def _request(project, start, *, status=200, latency=0.2, user=None, arm=None, client="key-a",
             deployment=1, model="fake/echo", cost=0.001, route="/v1/predict", cached=False,
             tokens=None, parse_ok=True):
    """A service request as the service writes it (its model call first, when it made one)."""
    trace = f"{random.getrandbits(128):032x}"
    request = f"{random.getrandbits(64):016x}"
    if tokens is not None:
        write_span(project, Span("llm.call", trace, f"{random.getrandbits(64):016x}", request,
                                 start, start + latency, "ok", None,
                                 {"gen_ai.request.model": model,
                                  "gen_ai.usage.input_tokens": tokens[0],
                                  "gen_ai.usage.output_tokens": tokens[1],
                                  "workbench.cost_usd": cost}))
    a = {"http.route": route, "http.response.status_code": status, "workbench.client": client,
         "workbench.deployment": deployment, "workbench.request": {"input": "where is it"}}
    if user is not None:
        a["workbench.user"] = user
    if arm is not None:
        a["workbench.arm"] = arm
    if status == 200 and route == "/v1/predict":
        a.update({"workbench.model": model, "workbench.cost_usd": cost,
                  "workbench.cache_hit": cached, "workbench.parse_ok": parse_ok,
                  "workbench.fallback_used": False, "workbench.output": "billing"})
    write_span(project, Span("serve.request", trace, request, None, start,
                             start + (latency if status < 400 or status >= 500 else 0.0),
                             "error" if status >= 500 else "ok", None, a))
    return trace


def _traffic(project, n=600, *, days=5.0, seed=1):
    """Requests of every kind over the last ``days`` days (older than the minute rows keep)."""
    rng = random.Random(seed)
    users = [f"person-{i}@example.com" for i in range(40)]
    for _ in range(n):
        start = NOW - rng.random() * days * 86400
        roll = rng.random()
        status = 200 if roll < 0.8 else 502 if roll < 0.88 else 429 if roll < 0.94 else 422
        _request(project, start, status=status, latency=rng.lognormvariate(-1.5, 0.8),
                 user=rng.choice(users) if rng.random() < 0.9 else None,
                 arm=rng.choice([None, "live", "canary", "shadow"]),
                 client=rng.choice(["key-a", "key-b", "key-c"]),
                 deployment=rng.choice([1, 2]), cost=rng.choice([0.001, 0.002, None]),
                 cached=rng.random() < 0.2, tokens=(rng.randint(5, 50), rng.randint(1, 9))
                 if status == 200 else None, parse_ok=rng.random() < 0.9)
    for i in range(12):  # feedback posts count as requests, never as answers
        _request(project, NOW - 100 - i, status=201, route="/v1/feedback")
    project.store.flush()


def _expected(frame, *, dim=None, value=None):
    """The metrics of requests_frame rows, computed the obvious way."""
    if dim is not None:
        frame = frame[frame[dim] == value]
    predictions = frame[frame["route"] == "/v1/predict"]
    served = predictions[(predictions["status"] < 400) | (predictions["status"] >= 500)]
    answered = served[served["status"] < 400]
    latencies = answered["latency_s"].astype(float)
    return {"requests": len(frame), "answered": len(answered),
            "errors": len(served) - len(answered),
            "refused": int(frame["status"].isin(monitor.REFUSED).sum()),
            "rate_limited": int((frame["status"] == 429).sum()),
            "p50_latency": float(np.percentile(latencies, 50)) if len(latencies) else math.nan,
            "p95_latency": float(np.percentile(latencies, 95)) if len(latencies) else math.nan,
            "cost_usd": float(answered["cost_usd"].dropna().sum())}


@pytest.mark.parametrize("window", [
    (None, None),  # all time
    (NOW - 3600.5, NOW),  # the last hour, from minute rows and the spans at its edges
    (NOW - 86400 * 4.3, NOW - 86400 * 3.7),  # past the minute rows: hour rows and spans
    (NOW - 86400 * 2.2, NOW - 7.25),
])
def test_a_window_read_from_the_aggregates_matches_the_spans(project, window):
    random.seed(0)
    _deploy(project)
    _traffic(project)
    since, until = window
    got = monitor_aggregates.collect(project, "service", since=since, until=until)
    frame = monitor.requests_frame(project, since=since, until=until, source="service")
    want = _expected(frame)
    m = got[(None, "")].metrics()
    for key in ("requests", "answered", "errors", "refused", "rate_limited"):
        assert m[key] == want[key], key
    assert m["cost_usd"] == pytest.approx(want["cost_usd"])
    assert m["users"] == frame["user"].dropna().nunique()
    for q in ("p50_latency", "p95_latency"):  # within the histogram's 1%, or interpolation
        assert m[q] == pytest.approx(want[q], rel=0.03)
    # Per arm (absent means live; a shadow's calls only there, never in the traffic) and per
    # key, the same way.
    assert "shadow" not in set(frame["arm"])
    everything = monitor.requests_frame(project, since=since, until=until, source="service",
                                        include_shadow=True)
    assert len(everything) > len(frame)
    everything["arm"] = everything["arm"].where(everything["route"] == "/v1/predict")
    for dim in ("arm", "client"):
        rows = everything if dim == "arm" else frame
        parts = monitor_aggregates.collect(project, "service", since=since, until=until,
                                           dim=dim)
        assert {v for _, v in parts} == set(rows[dim].dropna())
        for (_, value), totals in parts.items():
            expected = _expected(rows, dim=dim, value=value)
            assert totals.metrics()["requests"] == expected["requests"]
            assert totals.metrics()["errors"] == expected["errors"]


def test_timeline_and_breakdown_sum_to_the_window(project):
    random.seed(1)
    _deploy(project)
    _traffic(project, n=300, days=2)
    whole = monitor.window_metrics(project, window_s=3 * 86400, now=NOW)
    line = monitor.timeline(project, bucket_s=3600, since=NOW - 3 * 86400, until=NOW)
    assert line["requests"].sum() == whole["requests"]
    assert line["errors"].sum() == whole["errors"]
    assert (line["start"].diff().dropna() == np.timedelta64(3600, "s")).all()
    assert line["users"].max() <= whole["users"] <= line["users"].sum()
    per_minute = monitor.timeline(project, bucket_s=60, since=NOW - 3600, until=NOW)
    # NOW, not the clock: in a long test session the module was imported long before
    assert per_minute["requests"].sum() == monitor.window_metrics(project, now=NOW)["requests"]
    versions = monitor.breakdown(project, "prompt_version", window_s=3 * 86400, now=NOW)
    # The deployment record names the prompt version each request was served with; every
    # request for an answer has one, refused ones included (feedback posts have none).
    assert set(versions["value"]) == {"triage v1", "triage v2"}
    asked = monitor.requests_frame(project, since=NOW - 3 * 86400, until=NOW)
    assert versions["requests"].sum() == (asked["route"] == "/v1/predict").sum()
    arms = monitor.breakdown(project, "arm", window_s=3 * 86400, now=NOW)
    assert set(arms["value"]) == {"live", "canary", "shadow"}
    assert arms["share"].sum() == pytest.approx(1.0)
    models = monitor.breakdown(project, "model", window_s=3 * 86400, now=NOW)
    # A failed request counts against the model its deployment serves.
    assert set(models["value"]) == {"fake/echo", "fake/echo-large"}
    assert models["errors"].sum() == whole["errors"]
    with pytest.raises(monitor.MonitorError, match="whole number of minutes"):
        monitor.timeline(project, bucket_s=90)
    with pytest.raises(monitor.MonitorError, match="not one of"):
        monitor.breakdown(project, "colour")


def test_a_request_carries_its_model_calls_tokens(project):
    _deploy(project)
    _request(project, NOW - 30, tokens=(120, 7))
    _request(project, NOW - 20, tokens=(80, 3))
    project.store.flush()
    service = monitor.window_metrics(project, source="service")
    calls = monitor.window_metrics(project, source="calls")
    assert (service["input_tokens"], service["output_tokens"]) == (200, 10)
    assert (calls["input_tokens"], calls["output_tokens"]) == (200, 10)
    monitor_aggregates.rebuild(project)
    again = monitor.window_metrics(project, source="service")
    assert (again["input_tokens"], again["output_tokens"]) == (200, 10)


def _rows(project):
    rows = project.store.db.execute(
        "SELECT * FROM monitor_buckets ORDER BY source, bucket_s, dim, start, value").fetchall()
    out = []
    for row in rows:
        *head, latency, users = row
        dense = monitor_sketch.histogram([latency])
        ids = monitor_sketch.count_users(users)
        out.append((*head[:5], *[round(x, 9) for x in head[5:]], dense.tobytes(), ids))
    return out


def test_rebuilding_from_the_spans_gives_the_same_rows(project):
    random.seed(2)
    _deploy(project)
    _traffic(project, n=250, days=4)
    incremental = _rows(project)
    assert incremental
    read = monitor_aggregates.rebuild(project)
    assert read == len(spans(project, limit=10_000))
    assert _rows(project) == incremental


def test_the_end_user_id_is_hashed_before_anything_is_stored(project, tmp_path):
    raw = "jane.doe+vip@example.com"
    _request(project, NOW - 5, user=raw)
    _request(project, NOW - 4, user=raw)
    _request(project, NOW - 3, user="someone-else")
    project.store.flush()
    stored = spans(project, name="serve.request")
    hashed = monitor_aggregates.user_hash(project, raw)
    assert {s.attributes.get("workbench.user_hash") for s in stored} == {
        hashed, monitor_aggregates.user_hash(project, "someone-else")}
    assert all("workbench.user" not in s.attributes for s in stored)
    assert monitor.window_metrics(project)["users"] == 2
    project.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in project.path.glob("workbench.db*"):
        assert raw.encode() not in path.read_bytes(), path
    # Another project's salt makes another hash: ids cannot be joined across projects.
    other = workbench.init_project(tmp_path / "other")
    assert monitor_aggregates.user_hash(other, raw) != hashed
    assert len(hashed) == 32 and raw not in hashed


def test_minute_rows_expire_and_old_windows_stay_exact(project):
    random.seed(3)
    _deploy(project)
    _traffic(project, n=200, days=1)
    window = (NOW - 7200.5, NOW - 1800.25)
    before = monitor_aggregates.collect(project, "service", since=window[0],
                                        until=window[1])[(None, "")].metrics()
    with project.store.write() as db:
        monitor_aggregates.prune(db, now=NOW + 10 * 86400)
    assert not project.store.db.execute(
        "SELECT COUNT(*) FROM monitor_buckets WHERE bucket_s = 60").fetchone()[0]
    # Ten days on, the same window is read from hour rows and the spans.
    after = monitor_aggregates.collect(project, "service", since=window[0], until=window[1],
                                       now=NOW + 10 * 86400)[(None, "")].metrics()
    assert {k: after[k] for k in ("requests", "errors", "users")} == \
        {k: before[k] for k in ("requests", "errors", "users")}
    assert after["p95_latency"] == pytest.approx(before["p95_latency"])


def test_the_retention_rule_drops_user_sketches_with_the_traces(project):
    _request(project, NOW - 40 * 86400, user="old-user")
    _request(project, NOW - 60, user="new-user")
    project.store.flush()
    with project.store.write() as db:
        monitor_aggregates.prune(db, retention_days=30)
    counts = dict(project.store.db.execute(
        "SELECT start < ?, COUNT(users) FROM monitor_buckets WHERE dim = '' GROUP BY 1",
        (NOW - 30 * 86400,)).fetchall())
    assert counts == {1: 0, 0: 2}  # the old hour keeps its counts, not its users
    assert monitor.breakdown(project, "client", window_s=None)["requests"].sum() == 2


def test_an_old_project_is_backfilled_by_the_migration(tmp_path, monkeypatch):
    path = tmp_path / "old"
    before = [fn for fn in store.MIGRATIONS if fn.__name__ != "m009_monitoring_aggregates"]
    monkeypatch.setattr(store, "MIGRATIONS", before)
    project = workbench.init_project(path)
    db = project.store.db
    answered = ('{"http.route": "/v1/predict", "http.response.status_code": 200, '
                '"workbench.client": "key-a", "workbench.cost_usd": 0.5}')
    rows = [("s1", "t1", None, "serve.request", NOW - 120, NOW - 119.5, "ok", None, answered),
            ("s2", "t2", None, "serve.request", NOW - 7200, NOW - 7199, "error", "boom",
             '{"http.route": "/v1/predict", "http.response.status_code": 502}'),
            ("s3", "t3", None, "llm.call", NOW - 90000, NOW - 89999, "ok", None,
             '{"gen_ai.request.model": "fake/echo", "gen_ai.usage.input_tokens": 9}')]
    db.executemany("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    project.close()
    forget_open_projects()
    monkeypatch.undo()
    reopened = workbench.open_project(path)
    assert "m009_monitoring_aggregates" in reopened.store.applied_migrations()
    everything = monitor.window_metrics(reopened, window_s=86400 * 2, source="service")
    assert (everything["answered"], everything["errors"]) == (1, 1)
    assert everything["cost_usd"] == pytest.approx(0.5)
    assert monitor.traffic(reopened, source="calls").total == 1
    kinds = reopened.store.db.execute("SELECT COUNT(*) FROM alerts WHERE kind != 'threshold'"
                                      ).fetchone()[0]
    assert kinds == 0
    assert sqlite3.connect(path / "workbench.db").execute(
        "SELECT value FROM meta WHERE key = 'user_salt'").fetchone()[0]


def test_sketches_merge_exactly_then_estimate():
    ids = [random.getrandbits(64) for _ in range(5000)]
    small = [monitor_sketch.users_blob(ids[i:i + 100]) for i in range(0, 600, 100)]
    assert monitor_sketch.count_users(monitor_sketch.merge_users(small)) == 600
    big = monitor_sketch.merge_users([monitor_sketch.users_blob(ids[:3000]),
                                      monitor_sketch.users_blob(ids[2000:])])
    assert monitor_sketch.count_users(big) == pytest.approx(5000, rel=0.05)
    latencies = np.random.default_rng(0).lognormal(-1, 1, 2000)
    counts: dict[int, int] = {}
    for x in latencies:
        b = monitor_sketch.latency_bin(float(x))
        counts[b] = counts.get(b, 0) + 1
    dense = monitor_sketch.histogram([monitor_sketch.encode_histogram(counts)])
    got = monitor_sketch.quantiles(dense, (50, 95, 99))
    assert got == pytest.approx(list(np.percentile(latencies, [50, 95, 99])), rel=0.015)


def test_a_failure_in_the_aggregates_never_loses_the_spans(project, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError("disk full of bugs")

    monkeypatch.setattr(monitor_aggregates, "_write", broken)
    _request(project, NOW - 10, user="someone")
    project.store.flush()
    assert len(spans(project, name="serve.request")) == 1
    assert "workbench monitor --rebuild" in capsys.readouterr().err
    assert monitor.traffic(project).total == 0  # the aggregates missed it ...
    monkeypatch.undo()
    assert monitor_aggregates.rebuild(project) == 1  # ... until they are rebuilt
    assert monitor.traffic(project).total == 1
    assert monitor.window_metrics(project)["users"] == 1
