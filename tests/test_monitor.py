"""Phase 8: monitoring the served API — metrics from real traffic, feedback, alerts, dashboard."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from workbench import llm
from workbench.monitor import (
    MonitorError,
    alerts_frame,
    dashboard,
    feedback_frame,
    record_feedback,
    requests_frame,
    timeline,
    window_metrics,
)
from workbench.monitor_alerts import check_alerts
from workbench.serve import plan_deployment, start_server

KEY = "monitor-test-key-0123"
EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"


@pytest.fixture
def traffic(sample_project):
    """A deployment on a fake model that fails about half its calls (no retries, no fallback),
    20 requests over real HTTP, 3 refused ones, and feedback on 6 answers."""
    from workbench import sample
    from workbench.runs import start_run

    project = sample_project
    sample.fill_prerequisites(project, 7)
    model = "fake/echo:fail=500,fail_rate=0.5,seed=3"
    start_run(project, "triage", dataset="support", split="test", model="fake/echo", limit=4,
              progress=False)
    plan_deployment(project, "triage", model=model, force=True, retries=0, burst=40,
                    cache=False)
    server = start_server(project, api_keys=[KEY])
    headers = {"Authorization": f"Bearer {KEY}"}
    codes, ids = [], []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(20):
            reply = client.post("/v1/predict", json={"input": f"message {i}"}, headers=headers)
            codes.append(reply.status_code)
            if reply.status_code == 200:
                ids.append(reply.json()["request_id"])
        refused = [client.post("/v1/predict", json={"input": "x"}).status_code,  # no key
                   client.post("/v1/predict", json={"text": "x"}, headers=headers).status_code]
        ratings = ["up", "up", "down", "up", "down", "up"]
        for request_id, rating in zip(ids, ratings, strict=False):
            sent = client.post("/v1/feedback", headers=headers, json={
                "request_id": request_id, "rating": rating,
                **({"correction": "billing"} if rating == "down" else {})})
            assert sent.status_code == 201, sent.text
    server.stop()
    return project, codes, refused, ids, ratings


def test_metrics_match_what_the_clients_saw(traffic):
    project, codes, refused, ids, ratings = traffic
    assert refused == [401, 422]
    answered, failed = codes.count(200), codes.count(502)
    assert answered + failed == 20 and 0 < failed < 20
    m = window_metrics(project)
    assert m["source"] == "service"
    assert (m["answered"], m["errors"]) == (answered, failed)
    assert m["requests"] == 20 + 2 + len(ratings)  # predictions, refusals, feedback posts
    assert m["refused"] == 2
    assert m["error_rate"] == pytest.approx(failed / 20)
    assert 0 < m["p50_latency"] <= m["p95_latency"]
    assert m["feedback"] == len(ratings)
    assert m["positive_feedback_rate"] == pytest.approx(ratings.count("up") / len(ratings))
    frame = requests_frame(project)
    assert sorted(frame[frame["route"] == "/v1/predict"]["status"].value_counts().items()) == \
        sorted({**{200: answered, 502: failed}, 401: 1, 422: 1}.items())
    buckets = timeline(project, bucket_s=3600)
    assert buckets["requests"].sum() == m["requests"] and buckets["errors"].sum() == failed


def test_feedback_keeps_the_question_the_answer_and_the_correction(traffic):
    project, _, _, ids, ratings = traffic
    frame = feedback_frame(project)
    assert list(frame["request_id"]) == ids[:len(ratings)]
    assert list(frame["rating"]) == [1 if r == "up" else -1 for r in ratings]
    bad = frame[frame["rating"] < 0].iloc[0]
    assert bad["input"].startswith("message ") and bad["correction"] == "billing"
    assert bad["input"] in bad["output"]  # the echo model answered with the prompt
    with pytest.raises(MonitorError, match="no request 'nope'"):
        record_feedback(project, rating="down", request_id="nope")
    with pytest.raises(MonitorError, match="not a rating"):
        record_feedback(project, rating="meh", request_id=ids[0])
    with pytest.raises(MonitorError, match="Keep it under 2000"):
        record_feedback(project, rating="up", request_id=ids[0], comment="x" * 2001)
    assert len(feedback_frame(project)) == len(ratings)  # nothing half-written


def test_alerts_fire_on_the_card_and_the_default_error_rate(traffic):
    project, codes, *_ = traffic
    alerts = {a.rule.metric: a for a in check_alerts(project)}
    assert alerts["error_rate"].status == "firing"
    assert alerts["error_rate"].rule.source == "default"
    assert "default limit <= 0.05" in alerts["error_rate"].message
    assert alerts["p95_latency"].status == "ok" and alerts["p95_latency"].rule.source == "card"
    fired = alerts_frame(project)
    assert list(fired["rule"]) == ["error_rate"]
    assert fired["value"].iloc[0] == pytest.approx(codes.count(502) / 20)

    project.update_card(lambda c: c["metrics"].append(
        {"name": "error_rate", "target": 0.9, "direction": "<=", "unit": "fraction"}))
    relaxed = {a.rule.metric: a for a in check_alerts(project, record=False)}
    assert relaxed["error_rate"].status == "ok" and relaxed["error_rate"].rule.source == "card"


def test_the_cli_reports_and_fails_on_alert_for_cron(traffic):
    project = traffic[0]
    env = {**os.environ, "WORKBENCH_PROJECT": str(project.path)}
    shown = subprocess.run([EXE, "monitor"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "[FIRING] error_rate" in shown.stdout and "service requests" in shown.stdout
    gated = subprocess.run([EXE, "monitor", "--window", "1h", "--fail-on-alert", "--json"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert gated.returncode == 3
    body = json.loads(gated.stdout)
    assert {a["metric"]: a["status"] for a in body["alerts"]}["error_rate"] == "firing"
    bad = subprocess.run([EXE, "monitor", "--window", "soon"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_the_dashboard_draws_the_targets(traffic):
    fig = dashboard(traffic[0])
    names = {trace.name for trace in fig.data}
    assert {"requests", "errors", "p95", "cost per request", "positive feedback"} <= names
    assert len(fig.layout.shapes) >= 2  # the card's p95 latency and cost targets


def test_without_traffic_there_is_no_data_and_model_calls_are_monitored(project):
    assert {a.status for a in check_alerts(project)} == {"no data"}
    assert alerts_frame(project).empty
    empty = subprocess.run([EXE, "monitor", "--json", "--project", str(project.path)],
                           capture_output=True, text=True, timeout=120)
    assert json.loads(empty.stdout)["metrics"]["error_rate"] is None  # strict JSON, no NaN
    for i in range(6):
        llm.complete(f"hello {i}", model="fake/echo", project=project)
    m = window_metrics(project)
    assert m["source"] == "calls" and m["answered"] == 6 and m["error_rate"] == 0
    assert timeline(project)["requests"].sum() == 6


def test_the_sample_fills_a_deployment_and_plays_users(sample_project):
    from workbench import sample

    project = sample_project
    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    assert "deployment" in sample.missing_prerequisites(project, 8)
    done = sample.fill_prerequisites(project, 8)
    assert any("demo deployment" in d for d in done)
    assert sample.missing_prerequisites(project, 8) == []
    assert "fails the evaluation gate" in project.card()["decisions"][-1]["decision"]
    # The fake answers at once: room for every request of the simulation in one burst.
    plan_deployment(project, "triage", model="fake/echo", force=True, burst=100)
    server = start_server(project, api_keys=[KEY])
    try:
        sent = sample.simulate_users(project, server.url, KEY, requests=10, feedback_share=1.0)
    finally:
        server.stop()
    assert sent["statuses"] == {200: 10, 401: 1, 422: 1}
    assert sent["feedback"] == {"up": 0, "down": 10}  # the echo model never names the team
    said = feedback_frame(project)
    assert len(said) == 10 and said["correction"].notna().all()


def test_the_tables_a_notebook_shows(traffic):
    from workbench.monitor import request_trace, rules_frame, summary_frame

    project, codes, *_ = traffic
    summary = summary_frame(project).iloc[0]
    assert summary["answered"] == codes.count(200) and summary["errors"] == codes.count(502)
    assert set(rules_frame(project)["metric"]) >= {"error_rate", "p95_latency"}
    tree = request_trace(project)
    # the request, the content filter's checks of its input and answer, rendering, the model
    # call, parsing its reply
    assert set(tree["span"]) == {"serve.request", "serve.filter", "prompt.render", "llm.call",
                                 "prompt.parse"}


# -- one count of the last hour: the dashboard and the overview agree ------------------------------

def _span(project, name: str, age_s: float, **attributes) -> None:
    import time

    from workbench.tracing import start_span, write_span

    span = start_span(name, attributes)
    span.start_time = time.time() - age_s
    span.end_time = span.start_time + 0.05
    write_span(project, span)


def _overview_phase8(project) -> str:
    from widgets.overview import ProjectOverview

    phases = ProjectOverview(project).phases
    return next(p for p in phases if p["number"] == 8)["summary"]


def test_the_dashboard_and_the_overview_count_the_same_last_hour(project):
    from workbench.monitor import summary_frame, traffic

    # Service requests of every kind in the last hour: answered, refused, feedback posts.
    for age in (30, 600, 1800, 3500):
        _span(project, "serve.request", age, **{"http.route": "/v1/predict",
                                               "http.response.status_code": 200})
    _span(project, "serve.request", 900, **{"http.route": "/v1/predict",
                                           "http.response.status_code": 401})
    _span(project, "serve.request", 1200, **{"http.route": "/v1/feedback",
                                            "http.response.status_code": 201})
    # Older service requests, and many more model calls (an evaluation) in the last hour.
    for age in (3700, 7200, 86400 * 3):
        _span(project, "serve.request", age, **{"http.route": "/v1/predict",
                                               "http.response.status_code": 200})
    for i in range(40):
        _span(project, "llm.call", 60 + i, **{"gen_ai.request.model": "fake/echo"})
    _span(project, "rag.retrieve", 100)

    counted = traffic(project)
    assert (counted.source, counted.recent, counted.total) == ("service", 6, 9)
    assert counted.label == "6 requests to the service in the last 60 minutes (9 in all)"
    summary = summary_frame(project)
    assert int(summary.iloc[0]["requests"]) == 6 and summary.attrs["label"] == counted.label
    assert window_metrics(project)["requests"] == 6
    assert counted.label in dashboard(project).layout.title.text
    assert _overview_phase8(project).startswith(counted.label + ", 0 feedback, 0 alerts fired")

    # An hour without service traffic is 0 requests, not the hour's model calls.
    quiet = traffic(project, now=counted.until + 3 * 3600)
    assert (quiet.source, quiet.recent) == ("service", 0)
    assert window_metrics(project, now=counted.until + 3 * 3600)["requests"] == 0


def test_before_anything_is_served_both_count_model_calls(project):
    from workbench.monitor import summary_frame, traffic

    for age in (10, 20, 5000):
        _span(project, "llm.call", age, **{"gen_ai.request.model": "fake/echo"})
    counted = traffic(project)
    assert counted.label == "2 model calls in the last 60 minutes (3 in all)"
    assert int(summary_frame(project).iloc[0]["requests"]) == 2
    assert _overview_phase8(project) == counted.label
    _span(project, "llm.call", 5)
    assert traffic(project, window_s=60).label == "3 model calls in the last 1 minute (4 in all)"
    assert traffic(project, window_s=7).label == "1 model call in the last 7 seconds (4 in all)"
    assert traffic(project, window_s=7200).label.startswith("4 model calls in the last 2 hours")
