"""Checking every alert at once: the card's thresholds, the monthly budget, anomalies against
the last 7 days, drift of the inputs and a trusted online judge's quality; firing alerts are
stored and handed to the notifier.

It sits above ``workbench.monitor`` (windows, rules, the ``Alert`` type) and the detectors
(``monitor_cost``, ``monitor_anomaly``, ``monitor_drift``, ``monitor_judge``), which use
``monitor`` and must not be imported by it.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from workbench import (
    monitor_anomaly,
    monitor_config,
    monitor_cost,
    monitor_drift,
    monitor_judge,
)
from workbench.card import metric_status
from workbench.monitor import (
    DEFAULT_WINDOW_S,
    MIN_FEEDBACK,
    MIN_REQUESTS,
    Alert,
    AlertRule,
    Alerts,
    alert_rules,
    resolve_source,
    window_metrics,
)
from workbench.monitor_notify import deliver

if TYPE_CHECKING:
    from workbench.project import Project


def _threshold_alerts(card: Any, rules: list[AlertRule], metrics: dict[str, Any]) -> list[Alert]:
    alerts = []
    for rule in rules:
        value = metrics.get(rule.metric, math.nan)
        enough = (metrics["feedback"] >= MIN_FEEDBACK if rule.metric == "positive_feedback_rate"
                  else metrics["answered"] + metrics["errors"] >= MIN_REQUESTS)
        if not enough or math.isnan(value):
            alerts.append(Alert(rule, "no data", value,
                                f"{rule.metric}: not enough traffic in the window to judge."))
            continue
        if rule.source == "card":
            status, text = metric_status(card, rule.metric, value)
        else:
            ok = value <= rule.threshold
            status = "pass" if ok else "fail"
            text = (f"{rule.metric} {value:.3g} (default limit <= {rule.threshold:g}; set a "
                    f"target in the card to change it): {status}")
        alerts.append(Alert(rule, "ok" if status == "pass" else "firing", value, text))
    return alerts


def check_alerts(project: Project, *, window_s: float = DEFAULT_WINDOW_S,
                 now: float | None = None, record: bool = True, source: str = "auto",
                 notify: bool | None = None, settings: Any = None) -> Alerts:
    """Check every alert on the last ``window_s`` seconds and return them (``Alerts``):

    - ``threshold``: each rule of ``alert_rules`` (a window with fewer than 5 requests, 5
      pieces of feedback for the feedback rule, is "no data");
    - ``budget``: the month's spend, projected to its end, against the card's monthly budget;
    - ``anomaly``: p95 latency, error rate and spend against their own last 7 days;
    - ``drift``: the latest drift check of the inputs (``monitor_drift.check_drift``);
    - ``quality``: a trusted online judge's score against the card's ``judge_score``.

    With ``record``, firing alerts are stored (with their kind); with ``notify`` (default:
    ``record``) the notifier delivers them as ``settings`` (default: the card's
    ``[monitoring]`` table) says: a JSON-lines log in the project and a webhook."""
    from workbench.card import load_card

    now = time.time() if now is None else now
    settings = settings if settings is not None else monitor_config.settings(project)
    card = load_card(project)
    source = resolve_source(project, source)
    metrics = window_metrics(project, window_s=window_s, now=now, source=source)
    alerts = Alerts(_threshold_alerts(card, alert_rules(project, card), metrics))
    alerts.append(monitor_cost.budget_alert(project, card, now=now))
    alerts += monitor_anomaly.anomaly_alerts(project, source=source, now=now, window_s=window_s,
                                             settings=settings, current=metrics)
    alerts += monitor_drift.drift_alerts(project, now=now, settings=settings)
    alerts += monitor_judge.quality_alerts(project, card, now=now, settings=settings)
    if record:
        firing = [a for a in alerts if a.status == "firing"]
        if firing:
            with project.store.write() as db:
                db.executemany(
                    "INSERT INTO alerts (alert_id, rule, fired_at, value, threshold, window_s, "
                    "message, kind, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(uuid.uuid4().hex[:16], a.rule.metric, now,
                      None if math.isnan(a.value) else a.value, a.rule.threshold, window_s,
                      a.message, a.kind, json.dumps(a.details, default=str) if a.details
                      else None) for a in firing])
    if record if notify is None else notify:
            alerts.delivery = deliver(project, alerts, settings, now=now)
    return alerts
