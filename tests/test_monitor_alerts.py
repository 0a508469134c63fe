"""Alerts beyond the card's thresholds — budget burn and anomalies against the metric's own
past — and the notifier that delivers them: a JSON-lines log in the project and a webhook,
tested against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workbench import monitor, monitor_alerts, monitor_config, monitor_cost
from workbench.monitor_notify import read_log
from workbench.tracing import Span, write_span

EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"
# A fixed moment in the middle of a month: budgets project to its end.
NOW = dt.datetime(2026, 11, 16, 12, 0, tzinfo=dt.UTC).timestamp()


def _call(project, start, *, cost=0.0, latency=0.2, failed=False):
    write_span(project, Span("llm.call", f"{random.getrandbits(128):032x}",
                             f"{random.getrandbits(64):016x}", None, start, start + latency,
                             "error" if failed else "ok", "boom" if failed else None,
                             {"gen_ai.request.model": "fake/echo", "workbench.cost_usd": cost}))


def _request(project, start, *, latency=0.2, status=200, cost=0.001, client="key-a"):
    a = {"http.route": "/v1/predict", "http.response.status_code": status,
         "workbench.client": client}
    if status == 200:
        a.update({"workbench.model": "fake/echo", "workbench.cost_usd": cost})
    write_span(project, Span("serve.request", f"{random.getrandbits(128):032x}",
                             f"{random.getrandbits(64):016x}", None, start, start + latency,
                             "error" if status >= 500 else "ok", None, a))


def _budget(project, usd):
    def change(card):
        card.setdefault("constraints", {})["monthly_budget_usd"] = usd
        card["constraints"].pop("expected_requests_per_day", None)  # no check against targets

    project.update_card(change)


# -- budget ----------------------------------------------------------------------------------------

def test_budget_burn_projects_the_month_and_fires_before_the_bill(sample_project):
    project = sample_project
    _budget(project, 30)
    # Two days of spending at $1.20 an hour: $57.60 so far, and 14.5 days to go.
    for h in range(48):
        _call(project, NOW - (h + 0.5) * 3600, cost=1.2)
    project.store.flush()
    state = monitor_cost.budget_status(project, now=NOW)
    assert state.spent == pytest.approx(57.6)
    assert state.rate_per_day == pytest.approx(28.8)
    month_end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    assert state.projected == pytest.approx(57.6 + 1.2 * (month_end - NOW) / 3600)
    assert state.status == "over" and "already spent" in state.sentence
    _budget(project, 400)
    alert = monitor_cost.budget_alert(project, now=NOW)
    assert (alert.kind, alert.status) == ("budget", "firing")
    assert "Projected month-end spend $475.20" in alert.message
    _budget(project, 500)
    assert monitor_cost.budget_alert(project, now=NOW).status == "ok"
    # Spend per day and per key come from the same aggregates.
    days = monitor_cost.spend_frame(project, days=3, now=NOW)
    assert days["model_spend_usd"].sum() == pytest.approx(57.6)
    assert list(days["day"].astype(str)) == ["2026-11-14", "2026-11-15", "2026-11-16"]


def test_budget_needs_a_budget_and_some_history(sample_project):
    project = sample_project
    _call(project, NOW - 600, cost=0.5)
    project.store.flush()
    _budget(project, 100)
    early = monitor_cost.budget_status(project, now=NOW)
    assert early.status == "too early" and "too little to project" in early.sentence
    assert monitor_cost.budget_alert(project, now=NOW).status == "no data"
    _budget(project, 0.25)  # already over: no projection needed
    assert monitor_cost.budget_alert(project, now=NOW).status == "firing"
    project.update_card(lambda c: c["constraints"].pop("monthly_budget_usd"))
    assert monitor_cost.budget_status(project, now=NOW).status == "no budget"


def test_spend_per_key_splits_the_services_spend(sample_project):
    project = sample_project
    for i in range(30):
        _request(project, NOW - 3600 - i * 60, cost=0.01, client="key-a")
    for i in range(10):
        _request(project, NOW - 3600 - i * 60, cost=0.03, client="key-b")
    project.store.flush()
    keys = monitor_cost.spend_by_key(project, now=NOW)
    assert list(keys["client"]) == ["key-a", "key-b"] or list(keys["client"]) == ["key-b",
                                                                                  "key-a"]
    by = keys.set_index("client")
    assert by.loc["key-a", "cost_usd"] == pytest.approx(0.30)
    assert by.loc["key-b", "spend_share"] == pytest.approx(0.5)
    assert by.loc["key-b", "cost_per_request"] == pytest.approx(0.03)


# -- anomalies -------------------------------------------------------------------------------------

def _steady(project, hours, *, per_hour=20, seed=0):
    rng = random.Random(seed)
    for h in range(1, hours + 1):
        for _ in range(per_hour):
            _request(project, NOW - h * 3600 - rng.random() * 3500,
                     latency=rng.lognormvariate(-1.6, 0.25), cost=0.001)


def test_anomalies_fire_against_the_metrics_own_past(project):
    _steady(project, 30)
    rng = random.Random(9)
    for _ in range(25):  # the last hour: three times slower, a fifth failing, 4x the spend
        _request(project, NOW - rng.random() * 3500, latency=rng.lognormvariate(-0.5, 0.25),
                 status=502 if rng.random() < 0.2 else 200, cost=0.004)
    for _ in range(60):
        _request(project, NOW - rng.random() * 3500, latency=rng.lognormvariate(-0.5, 0.25),
                 cost=0.004)
    project.store.flush()
    from workbench.monitor_anomaly import anomaly_alerts

    alerts = {a.rule.metric: a for a in anomaly_alerts(project, source="service", now=NOW)}
    for name in ("p95_latency_anomaly", "error_rate_anomaly", "spend_anomaly"):
        assert alerts[name].status == "firing", alerts[name].message
        assert alerts[name].kind == "anomaly" and alerts[name].details["z"] >= 4
        assert alerts[name].details["baseline_hours"] >= 24
    assert "robust z from its last 7 days" in alerts["p95_latency_anomaly"].message
    # check_alerts stores them with their kind.
    checked = monitor_alerts.check_alerts(project, now=NOW, notify=False)
    stored = monitor.alerts_frame(project, kind="anomaly")
    assert set(stored["rule"]) == {a.rule.metric for a in checked
                                   if a.kind == "anomaly" and a.status == "firing"}
    assert json.loads(stored["details"].iloc[0])["baseline_hours"] >= 24


def test_a_normal_hour_and_a_short_history_do_not_fire(project):
    from workbench.monitor_anomaly import anomaly_alerts

    _steady(project, 30, seed=1)
    rng = random.Random(2)
    for _ in range(20):
        _request(project, NOW - rng.random() * 3500, latency=rng.lognormvariate(-1.6, 0.25))
    project.store.flush()
    statuses = {a.rule.metric: a.status for a in anomaly_alerts(project, source="service",
                                                                now=NOW)}
    assert statuses == {"p95_latency_anomaly": "ok", "error_rate_anomaly": "ok",
                        "spend_anomaly": "ok"}
    # Ten hours of history are not a baseline yet.
    young = anomaly_alerts(project, source="service", now=NOW - 20 * 3600)
    assert {a.status for a in young} == {"no data"}
    assert "it has" in young[0].message


# -- the notifier ----------------------------------------------------------------------------------

class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST's JSON; ``replies`` says what to
    answer to each (a status code, or ("sleep", seconds))."""

    def __init__(self, replies=()):
        self.bodies: list[dict] = []
        self.replies = list(replies)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                reply = outer.replies.pop(0) if outer.replies else 200
                if isinstance(reply, tuple):
                    time.sleep(reply[1])
                    reply = 200
                outer.bodies.append(body)
                self.send_response(reply)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token-123"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(replies=()):
        made.append(Receiver(replies))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _failing(project, at):
    for i in range(10):
        _request(project, at - 60 - i, status=502 if i < 6 else 200)
    project.store.flush()


def test_firing_alerts_go_to_the_log_and_the_webhook_once_then_resolve(project, receiver):
    hook = receiver()
    project.update_card(lambda c: c.__setitem__("monitoring", {
        "webhook_url": hook.url, "webhook_timeout_s": 2}))
    now = time.time()
    _failing(project, now)
    first = monitor_alerts.check_alerts(project, now=now)
    assert first.delivery.webhook == "sent" and first.delivery.attempts == 1
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert body["project"] == project.name and "error_rate" in body["text"]
    sent = {(a["kind"], a["rule"]): a["status"] for a in body["alerts"]}
    assert sent[("threshold", "error_rate")] == "firing"
    log = read_log(project)
    assert [line["event"] for line in log][-1] == "webhook"
    assert {(line["kind"], line["rule"]) for line in log if line["event"] == "alert"} == \
        set(sent)
    assert "secret-token-123" not in (project.path / "logs" / "alerts.jsonl").read_text()

    # Still firing a minute later: not sent again (a cron job would page every run).
    again = monitor_alerts.check_alerts(project, now=now + 60)
    assert again.delivery.notified == [] and "error_rate" in " ".join(again.delivery.suppressed)
    assert len(hook.bodies) == 1
    # Hours later with the errors gone: one "resolved".
    later = now + 5 * 3600
    for i in range(10):
        _request(project, later - 60 - i)
    project.store.flush()
    resolved = monitor_alerts.check_alerts(project, now=later)
    assert len(hook.bodies) == 2
    assert {a["rule"]: a["status"] for a in hook.bodies[1]["alerts"]} == \
        {"error_rate": "resolved"}
    assert "resolved" in resolved.delivery.sentence


def test_a_failing_receiver_is_retried_and_a_dead_one_never_hangs_the_check(project, receiver):
    flaky = receiver(replies=[503, 200])
    project.update_card(lambda c: c.__setitem__("monitoring", {
        "webhook_url": flaky.url, "webhook_retries": 2, "webhook_timeout_s": 2}))
    now = time.time()
    _failing(project, now)
    alerts = monitor_alerts.check_alerts(project, now=now)
    assert (alerts.delivery.webhook, alerts.delivery.attempts) == ("sent", 2)
    assert len(flaky.bodies) == 2

    slow = receiver(replies=[("sleep", 3)] * 5)
    settings = monitor_config.settings(project, webhook_url=slow.url, webhook_timeout_s=0.3,
                                       webhook_retries=1)
    _failing(project, now + 5 * 3600)  # still failing hours later: due to be sent again
    started = time.monotonic()
    later = monitor_alerts.check_alerts(project, now=now + 5 * 3600, settings=settings)
    took = time.monotonic() - started
    assert later.delivery.webhook == "failed" and later.delivery.attempts == 2
    assert "no answer within 0.3 s" in later.delivery.error
    assert took < 3, took  # two 0.3 s attempts and a 0.5 s pause, not the receiver's 3 s
    assert read_log(project)[-1]["status"] == "failed"
    # Not marked as sent: the next check tries again.
    retried = monitor_alerts.check_alerts(project, now=now + 5 * 3600 + 60,
                                   settings=settings.model_copy(update={
                                       "webhook_url": flaky.url}))
    assert retried.delivery.webhook == "sent"


def test_a_4xx_is_not_retried(project, receiver):
    gone = receiver(replies=[404, 200])
    now = time.time()
    _failing(project, now)
    settings = monitor_config.settings(project, webhook_url=gone.url)
    alerts = monitor_alerts.check_alerts(project, now=now, settings=settings)
    assert (alerts.delivery.webhook, alerts.delivery.attempts) == ("failed", 1)
    assert alerts.delivery.error == "HTTP 404"


def test_the_cli_delivers_to_a_webhook_given_as_a_flag(project, receiver):
    hook = receiver()
    _failing(project, time.time())
    env = {**os.environ, "WORKBENCH_PROJECT": str(project.path)}
    done = subprocess.run([EXE, "monitor", "--webhook", hook.url, "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["delivery"]["webhook"] == "sent" and len(hook.bodies) == 1
    assert {a["kind"] for a in out["alerts"]} >= {"threshold", "budget", "anomaly", "drift"}
    quiet = subprocess.run([EXE, "monitor", "--no-notify", "--fail-on-alert"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert quiet.returncode == 3 and "[FIRING]" in quiet.stdout
    assert "notifier:" not in quiet.stdout and len(hook.bodies) == 1


def test_the_monitoring_table_is_validated(project):
    project.update_card(lambda c: c.__setitem__("monitoring", {"webhook_retry": 3,
                                                               "judge_sample_rate": 2}))
    with pytest.raises(monitor.MonitorError) as err:
        monitor_config.settings(project)
    assert "did you mean webhook_retries?" in err.value.message
    assert "judge_sample_rate" in err.value.message
    project.update_card(lambda c: c.__setitem__("monitoring", {
        "webhook_url_env": "MY_HOOK"}))
    os.environ["MY_HOOK"] = "http://127.0.0.1:9/x"
    try:
        assert monitor_config.settings(project).webhook() == "http://127.0.0.1:9/x"
    finally:
        del os.environ["MY_HOOK"]
    assert monitor_config.settings(project).webhook() is None
