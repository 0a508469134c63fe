"""Phase 8: monitoring — what the served model did, what users said, and alerts on the card.

Everything here reads the project's traces: each request to the service is a
``serve.request`` span (status, latency, model, fallback, cache, cost; refused requests and
feedback posts too), and every model call an ``llm.call`` span. Refusals a caller can repeat at
will (a key over its rate limit, unknown paths, key guesses past their limit) are traced once
per key, route and status a minute and counted in ``refusal_counts`` otherwise: ``traffic``,
``window_metrics`` and ``timeline`` add those counts (to the minute they fell in). A project
that has never served a request has its model calls monitored instead (``source="calls"``);
once it has, monitoring counts requests to the service only, in every window (an hour of
evaluation calls is not traffic).

- ``traffic``: how many requests to the service (or model calls) the last hour held, and in
  all, with the sentence that says what was counted; the dashboard, ``summary_frame`` and the
  project overview all take their count from it.

- ``requests_frame`` / ``timeline`` / ``window_metrics``: the numbers, per request, per time
  bucket, and over a window, in the card's metric names (``error_rate``, ``p50_latency``,
  ``p95_latency``, ``cost_per_request``, ``parse_rate``, ``positive_feedback_rate``).
- ``dashboard``: requests and errors, latency against the target, cost against the target, and
  feedback, as one plotly figure.
- ``record_feedback`` / ``feedback_frame``: thumbs up/down with a comment and a correction,
  tied to the request's trace (the service's ``POST /v1/feedback`` calls it). Phase 9 turns bad
  feedback into test cases.
- ``alert_rules`` / ``check_alerts``: the card's targets that phase 8 can measure, plus an error
  rate of 5% when the card sets none; a rule fires when the window misses it, and firing
  alerts are stored.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

DEFAULT_WINDOW_S = 3600.0
DEFAULT_ERROR_RATE = 0.05  # used when the card sets no error_rate target
MIN_REQUESTS = 5  # fewer requests in a window than this cannot fire an alert
MIN_FEEDBACK = 5
MAX_TEXT = 2000
MONITORED = ("error_rate", "p50_latency", "p95_latency", "cost_per_request", "parse_rate",
             "positive_feedback_rate")


class MonitorError(WorkbenchError):
    """Monitoring was asked for something it cannot do."""


# -- requests --------------------------------------------------------------------------------------

_COLUMNS = ["time", "trace_id", "status", "ok", "latency_s", "model", "fallback_used", "cached",
            "cost_usd", "parse_ok", "client", "error", "route"]


_SPAN_OF = {"service": "serve.request", "calls": "llm.call"}


def resolve_source(project: Project, source: str = "auto") -> str:
    """What monitoring counts: ``"service"`` (requests to the served API) or ``"calls"`` (every
    model call). ``"auto"`` is the service once the project has served any request, ever, and
    the model calls before that: decided for the project, never per window, so a window
    without service traffic shows 0 requests rather than the evaluation's model calls."""
    if source not in ("auto", "service", "calls"):
        raise MonitorError(f"source={source!r} is not one of auto, service, calls.",
                           "Use 'service' for the served API, 'calls' for every model call.")
    if source != "auto":
        return source
    project.store.flush()
    served = project.store.db.execute(
        "SELECT 1 FROM spans WHERE name = 'serve.request' UNION ALL "
        "SELECT 1 FROM refusal_counts LIMIT 1").fetchone()
    return "service" if served else "calls"


def refusal_counts(project: Project, *, since: float | None = None,
                   until: float | None = None) -> list[tuple[float, str, str, int, int]]:
    """The service's refusals counted and not traced, as ``(minute, client, route, status,
    count)``: per minute (its start), those of the minutes that overlap [since, until)."""
    where, params = [], []
    if since is not None:
        where.append("minute > ?")
        params.append(since - 60)
    if until is not None:
        where.append("minute < ?")
        params.append(until)
    project.store.flush()
    rows = project.store.db.execute(
        "SELECT minute, client, route, status, untraced FROM refusal_counts"
        + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY minute",
        tuple(params)).fetchall()
    return [(float(m), c, r, int(s), int(n)) for m, c, r, s, n in rows]


REFUSED = (400, 401, 402, 403, 404, 405, 413, 422, 429)  # statuses of requests the service refused
# The service's routes that answer with the deployed prompt (its answering_routes): their
# requests are the predictions latency, errors and cost are measured on.
ANSWERING_ROUTES = ("/v1/predict", "/v1/chat/completions")


def _span_filter(source: str, since: float | None, until: float | None
                 ) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (and its parameters) of the spans a resolved ``source`` counts in
    [since, until): the one definition ``requests_frame`` and ``traffic`` share."""
    where, params = ["name = ?"], [_SPAN_OF[source]]
    if source == "service":  # a shadow call answered nobody: not traffic (rollout.arm_metrics)
        where.append("coalesce(json_extract(attributes, '$.\"workbench.arm\"'), '') "
                     "!= 'shadow'")
    if since is not None:
        where.append("start_time >= ?")
        params.append(since)
    if until is not None:
        where.append("start_time < ?")
        params.append(until)
    return " AND ".join(where), tuple(params)


def requests_frame(project: Project, *, since: float | None = None, until: float | None = None,
                   source: str = "auto") -> pd.DataFrame:
    """One row per request, oldest first: ``source="service"`` reads the service's requests,
    ``"calls"`` every model call, ``"auto"`` the service's once the project has any
    (``resolve_source``)."""
    import pandas as pd

    chosen = resolve_source(project, source)
    project.store.flush()
    where, params = _span_filter(chosen, since, until)
    rows = project.store.query(
        "SELECT trace_id, start_time, end_time, status, error, attributes FROM spans WHERE "
        + where + " ORDER BY start_time", params)
    out = []
    for r in rows:
        a = json.loads(r["attributes"])
        if chosen == "service":
            status = int(a.get("http.response.status_code") or (500 if r["status"] == "error"
                                                                 else 200))
            ok = status < 400
            route = a.get("http.route")
            model, cost = a.get("workbench.model"), a.get("workbench.cost_usd")
            cached, fallback = a.get("workbench.cache_hit"), a.get("workbench.fallback_used")
            parse_ok, client = a.get("workbench.parse_ok"), a.get("workbench.client")
        else:
            ok = r["status"] != "error"
            status = 200 if ok else 500
            route, fallback, parse_ok, client = None, None, None, None
            model, cost = a.get("gen_ai.request.model"), a.get("workbench.cost_usd")
            cached = a.get("workbench.cache_hit")
        out.append({"time": r["start_time"], "trace_id": r["trace_id"], "status": status,
                    "ok": ok, "latency_s": r["end_time"] - r["start_time"], "model": model,
                    "fallback_used": fallback, "cached": cached, "cost_usd": cost,
                    "parse_ok": parse_ok, "client": client, "error": r["error"],
                    "route": route})
    frame = pd.DataFrame(out, columns=_COLUMNS)
    frame.attrs["source"] = chosen
    return frame


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else math.nan


def _metrics(requests: pd.DataFrame, feedback: pd.DataFrame) -> dict[str, Any]:
    """The card-named metrics of a set of requests (answered ones for latency and cost)."""
    predictions = requests[requests["route"].isin(ANSWERING_ROUTES) | requests["route"].isna()]
    # Refused requests (no key, bad input, over the rate limit: 4xx) never reached a model: they
    # are counted apart, not as errors of the service.
    served = predictions[(predictions["status"] < 400) | (predictions["status"] >= 500)]
    answered = served[served["ok"].astype(bool)]
    latencies = [float(x) for x in answered["latency_s"]]
    costs = [float(x) for x in answered["cost_usd"] if x is not None and x == x]
    parsed = [bool(x) for x in answered["parse_ok"] if x is not None and x == x]
    ratings = list(feedback["rating"]) if len(feedback) else []
    return {
        "requests": int(len(requests)),
        "answered": int(len(answered)),
        "errors": int(len(served) - len(answered)),
        "refused": int((requests["status"].isin(REFUSED)).sum()),
        "rate_limited": int((requests["status"] == 429).sum()),
        "error_rate": (len(served) - len(answered)) / len(served) if len(served) else math.nan,
        "p50_latency": _percentile(latencies, 50),
        "p95_latency": _percentile(latencies, 95),
        "cost_per_request": sum(costs) / len(costs) if costs else math.nan,
        "cost_usd": float(sum(costs)),
        "parse_rate": sum(parsed) / len(parsed) if parsed else math.nan,
        "cache_hit_rate": (float(answered["cached"].fillna(False).astype(bool).mean())
                           if len(answered) else math.nan),
        "fallback_rate": (float(answered["fallback_used"].fillna(False).astype(bool).mean())
                          if len(answered) else math.nan),
        "feedback": len(ratings),
        "positive_feedback_rate": (sum(1 for r in ratings if r > 0) / len(ratings)
                                   if ratings else math.nan),
    }


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def window_text(window_s: float) -> str:
    """``3600`` -> "60 minutes", ``86400`` -> "24 hours", ``90`` -> "90 seconds"."""
    if window_s >= 7200 and window_s % 3600 == 0:
        return _plural(int(window_s // 3600), "hour")
    if window_s >= 60 and window_s % 60 == 0:
        return _plural(int(window_s // 60), "minute")
    return f"{window_s:g} second{'' if window_s == 1 else 's'}"


@dataclass(frozen=True)
class Traffic:
    """How much traffic the project had: ``recent`` in the last ``window_s`` seconds before
    ``until``, ``total`` ever, counting ``source`` ("service": requests to the service, refused
    ones and feedback posts included; "calls": model calls, when nothing was ever served)."""

    source: str
    recent: int
    total: int
    window_s: float
    until: float

    @property
    def what(self) -> str:
        return "request to the service" if self.source == "service" else "model call"

    @property
    def label(self) -> str:
        """``12 requests to the service in the last 60 minutes (47 in all)``."""
        what = ("requests to the service" if self.source == "service" else "model calls")
        if self.recent == 1:
            what = self.what
        return (f"{self.recent:,} {what} in the last {window_text(self.window_s)} "
                f"({self.total:,} in all)")


def traffic(project: Project, *, window_s: float = DEFAULT_WINDOW_S, now: float | None = None,
            source: str = "auto") -> Traffic:
    """The one count of recent traffic: the dashboard (``summary_frame``, ``dashboard``,
    ``window_metrics``) and the project overview (phase 8's card) all say this number. Spans
    started in [now - window_s, now) of the kind ``resolve_source`` picks."""
    now = time.time() if now is None else now
    chosen = resolve_source(project, source)
    project.store.flush()

    def count(since: float | None, until: float | None) -> int:
        where, params = _span_filter(chosen, since, until)
        traced = int(project.store.db.execute(
            "SELECT COUNT(*) FROM spans WHERE " + where, params).fetchone()[0])
        if chosen != "service":
            return traced
        return traced + sum(row[-1] for row in refusal_counts(project, since=since,
                                                              until=until))

    return Traffic(chosen, count(now - window_s, now), count(None, None), float(window_s), now)


def window_metrics(project: Project, *, window_s: float = DEFAULT_WINDOW_S,
                   now: float | None = None, source: str = "auto") -> dict[str, Any]:
    """The metrics of the last ``window_s`` seconds (the card's names, canonical units);
    ``requests`` is ``traffic(...).recent``, and ``label`` says what it counted."""
    now = time.time() if now is None else now
    source = resolve_source(project, source)
    requests = requests_frame(project, since=now - window_s, until=now, source=source)
    feedback = feedback_frame(project, since=now - window_s, until=now)
    metrics = _metrics(requests, feedback)
    if requests.attrs["source"] == "service":
        for _, _, _, status, n in refusal_counts(project, since=now - window_s, until=now):
            metrics["refused"] += n if status in REFUSED else 0
            metrics["rate_limited"] += n if status == 429 else 0
    counted = traffic(project, window_s=window_s, now=now, source=source)
    metrics.update(window_s=window_s, since=now - window_s, until=now,
                   source=requests.attrs["source"], requests=counted.recent,
                   label=counted.label)
    return metrics


def timeline(project: Project, *, bucket_s: float | None = None, since: float | None = None,
             until: float | None = None, source: str = "auto") -> pd.DataFrame:
    """The metrics per time bucket (default: about 30 buckets over the traffic's span)."""
    import pandas as pd

    requests = requests_frame(project, since=since, until=until, source=source)
    counted = (refusal_counts(project, since=since, until=until)
               if requests.attrs["source"] == "service" and not requests.empty else [])
    columns = ["start", "requests", "errors", "rate_limited", "error_rate", "p50_latency",
               "p95_latency", "cost_per_request", "feedback", "positive_feedback_rate"]
    if requests.empty:
        empty = pd.DataFrame(columns=columns)
        empty.attrs["source"] = requests.attrs["source"]
        return empty
    first, last = float(requests["time"].min()), float(requests["time"].max())
    if bucket_s is None:
        span = max(last - first, 1.0)
        bucket_s = max(1.0, span / 30)
    if bucket_s <= 0:
        raise MonitorError(f"bucket_s={bucket_s} must be above 0.", "Pass seconds per bucket.")
    feedback = feedback_frame(project, since=first, until=last + bucket_s)
    rows = []
    start = first
    while start <= last:
        end = start + bucket_s
        inside = requests[(requests["time"] >= start) & (requests["time"] < end)]
        said = feedback[(feedback["time"] >= start) & (feedback["time"] < end)] \
            if len(feedback) else feedback
        m = _metrics(inside, said)
        for minute, _, _, status, n in counted:  # each count in the bucket of its minute
            at = min(max(minute, first), last)
            if start <= at < end:
                m["requests"] += n
                m["rate_limited"] += n if status == 429 else 0
        rows.append({"start": pd.Timestamp(start, unit="s", tz="UTC"),
                     **{k: m[k] for k in columns if k in m}})
        start = end
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["source"] = requests.attrs["source"]
    return frame


# -- feedback --------------------------------------------------------------------------------------

_RATINGS = {"up": 1, "good": 1, "+1": 1, "1": 1, "down": -1, "bad": -1, "-1": -1}


def _rating(value: Any) -> int:
    key = str(value).strip().lower()
    if isinstance(value, bool) or key not in _RATINGS:
        raise MonitorError(f"{value!r} is not a rating.", "Rate with 'up' or 'down' (or 1 / -1).")
    return _RATINGS[key]


def record_feedback(project: Project, *, rating: Any, request_id: str | None = None,
                    trace_id: str | None = None, comment: str | None = None,
                    correction: str | None = None, source: str = "api",
                    client: str | None = None) -> str:
    """Store a user's verdict on one answer (found by the service's ``request_id`` or the
    ``trace_id``): ``rating`` up/down, an optional comment and the correct answer. Returns the
    feedback id. One verdict per answer: a new one replaces the earlier. With ``client`` (the
    service passes the caller's key id) only the client that asked may rate the answer."""
    value = _rating(rating)
    for name, text in (("comment", comment), ("correction", correction)):
        if text is not None and len(text) > MAX_TEXT:
            raise MonitorError(f"The {name} has {len(text)} characters.",
                               f"Keep it under {MAX_TEXT}.")
    if not request_id and not trace_id:
        raise MonitorError("Feedback needs the request it is about.",
                           "Pass the request_id (or trace_id) the service returned.")
    project.store.flush()
    if trace_id is None:
        row = project.store.db.execute(
            "SELECT trace_id, json_extract(attributes, '$.\"workbench.client\"') FROM spans "
            "WHERE name = 'serve.request' AND "
            "json_extract(attributes, '$.\"workbench.request_id\"') = ?",
            (request_id,)).fetchone()
        if row is None or (client is not None and row[1] != client):
            raise MonitorError(f"There is no request {request_id!r} in this project"
                               + (" for this key." if client is not None else "."),
                               "Use the request_id of an answer the service gave you.")
        trace_id = row[0]
    elif project.store.db.execute("SELECT 1 FROM spans WHERE trace_id = ? LIMIT 1",
                                  (trace_id,)).fetchone() is None:
        raise MonitorError(f"There is no trace {trace_id!r} in this project.",
                           "Use the trace_id of an answer the service gave.")
    from workbench.privacy import redact_text_for_logs

    # Under "do not log raw inputs" a comment or correction is stored redacted, like traces.
    comment, correction = (redact_text_for_logs(project, comment),
                           redact_text_for_logs(project, correction))
    feedback_id = uuid.uuid4().hex[:16]
    with project.store.write() as db:
        db.execute("DELETE FROM feedback WHERE trace_id = ?", (trace_id,))
        db.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (feedback_id, trace_id, request_id, time.time(), value, comment, correction,
                    source))
    return feedback_id


def feedback_frame(project: Project, *, since: float | None = None,
                   until: float | None = None) -> pd.DataFrame:
    """Every piece of feedback, oldest first, with the question and answer it is about."""
    import pandas as pd

    where, params = [], []
    if since is not None:
        where.append("f.created_at >= ?")
        params.append(since)
    if until is not None:
        where.append("f.created_at < ?")
        params.append(until)
    rows = project.store.query(
        "SELECT f.*, s.name AS span, s.attributes FROM feedback f LEFT JOIN spans s ON "
        "s.trace_id = f.trace_id AND s.name IN ('serve.request', 'llm.call')"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY f.created_at, s.name DESC", tuple(params))
    out, seen = [], set()
    for r in rows:
        if r["feedback_id"] in seen:  # the service's request span comes first
            continue
        seen.add(r["feedback_id"])
        a = json.loads(r["attributes"]) if r["attributes"] else {}
        if r["span"] == "serve.request" and "workbench.request" in a:
            variables = a["workbench.request"]
            asked = variables.get("input", json.dumps(variables, ensure_ascii=False))
            output = a.get("workbench.output")
        else:  # a model call outside the service: its last user message and its reply
            users = [m.get("content") for m in a.get("gen_ai.input.messages", [])
                     if m.get("role") == "user"]
            asked = users[-1] if users else None
            output = (a.get("gen_ai.output.messages") or [{}])[0].get("content")
        out.append({"time": r["created_at"], "feedback_id": r["feedback_id"],
                    "trace_id": r["trace_id"], "request_id": r["request_id"],
                    "rating": r["rating"], "comment": r["comment"],
                    "correction": r["correction"], "source": r["source"],
                    "input": asked, "output": output})
    return pd.DataFrame(out, columns=["time", "feedback_id", "trace_id", "request_id", "rating",
                                      "comment", "correction", "source", "input", "output"])


# -- alerts ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlertRule:
    metric: str
    direction: str  # ">=" or "<="
    threshold: float  # canonical unit
    source: str  # "card" or "default"


@dataclass(frozen=True)
class Alert:
    rule: AlertRule
    status: str  # "firing", "ok" or "no data"
    value: float
    message: str


def alert_rules(project: Project, card: Any = None) -> list[AlertRule]:
    """The card's targets phase 8 can measure, plus an error-rate rule the card may override."""
    from workbench.card import load_card

    card = card if card is not None else load_card(project)
    rules = [AlertRule(m.name, m.direction, m.target_in_canonical_unit(), "card")
             for m in card.metrics if m.name in MONITORED]
    if not any(r.metric == "error_rate" for r in rules):
        rules.append(AlertRule("error_rate", "<=", DEFAULT_ERROR_RATE, "default"))
    return rules


def check_alerts(project: Project, *, window_s: float = DEFAULT_WINDOW_S,
                 now: float | None = None, record: bool = True,
                 source: str = "auto") -> list[Alert]:
    """Check every rule on the last ``window_s`` seconds; firing alerts are stored. A window with
    fewer than 5 requests (5 pieces of feedback for the feedback rule) is "no data"."""
    from workbench.card import load_card, metric_status

    card = load_card(project)
    metrics = window_metrics(project, window_s=window_s, now=now, source=source)
    alerts = []
    for rule in alert_rules(project, card):
        value = metrics.get(rule.metric, math.nan)
        enough = (metrics["feedback"] >= MIN_FEEDBACK if rule.metric == "positive_feedback_rate"
                  else metrics["answered"] + metrics["errors"] >= MIN_REQUESTS)
        if not enough or value != value:
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
    if record:
        firing = [a for a in alerts if a.status == "firing"]
        if firing:
            with project.store.write() as db:
                for a in firing:
                    db.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (uuid.uuid4().hex[:16], a.rule.metric, metrics["until"],
                                a.value, a.rule.threshold, window_s, a.message))
    return alerts


def alerts_frame(project: Project) -> pd.DataFrame:
    """Alerts that fired, newest first."""
    import pandas as pd

    rows = project.store.query("SELECT * FROM alerts ORDER BY fired_at DESC")
    return pd.DataFrame([dict(r) for r in rows],
                        columns=["alert_id", "rule", "fired_at", "value", "threshold",
                                 "window_s", "message"])


# -- the dashboard ---------------------------------------------------------------------------------

def dashboard(project: Project, *, bucket_s: float | None = None, since: float | None = None,
              source: str = "auto"):
    """Requests and errors, p50/p95 latency, cost per request and positive feedback per time
    bucket, with the card's targets drawn as dashed lines; the title says what is counted and
    the last hour's count (``traffic``, the number the project overview shows)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from workbench.card import load_card

    source = resolve_source(project, source)
    frame = timeline(project, bucket_s=bucket_s, since=since, source=source)
    counted = traffic(project, source=source)
    try:
        targets = {m.name: m.target_in_canonical_unit() for m in load_card(project).metrics}
    except WorkbenchError:
        targets = {}
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("Requests to the service and errors"
                                        if source == "service" else "Model calls and errors",
                                        "Latency (s)",
                                        "Cost per request (USD)", "Positive feedback"))
    x = frame["start"]
    fig.add_bar(x=x, y=frame["requests"], name="requests", row=1, col=1)
    fig.add_bar(x=x, y=frame["errors"], name="errors", row=1, col=1)
    fig.add_bar(x=x, y=frame["rate_limited"], name="rate limited", row=1, col=1)
    fig.add_scatter(x=x, y=frame["p50_latency"], name="p50", mode="lines+markers", row=2, col=1)
    fig.add_scatter(x=x, y=frame["p95_latency"], name="p95", mode="lines+markers", row=2, col=1)
    fig.add_scatter(x=x, y=frame["cost_per_request"], name="cost per request",
                    mode="lines+markers", row=3, col=1)
    fig.add_scatter(x=x, y=frame["positive_feedback_rate"], name="positive feedback",
                    mode="lines+markers", row=4, col=1)
    for metric, row in (("p95_latency", 2), ("cost_per_request", 3),
                        ("positive_feedback_rate", 4)):
        if metric in targets:
            fig.add_hline(y=targets[metric], line_dash="dash", line_color="red", row=row, col=1,
                          annotation_text=f"target {metric}")
    fig.update_layout(height=900, barmode="group", template="plotly_white",
                      title=f"{project.name}: monitoring — {counted.label}")
    return fig


def request_trace(project: Project, trace_id: str | None = None) -> pd.DataFrame:
    """One service request and the model calls inside it (default: the last answered request):
    span, parent, status, milliseconds, model, cache hit, cost."""
    import pandas as pd

    from workbench.tracing import spans

    if trace_id is None:
        answered = requests_frame(project, source="service")
        answered = answered[answered["status"] == 200]
        trace_id = answered["trace_id"].iloc[-1] if len(answered) else None
    rows = [{"span": s.name, "parent": s.parent_id, "status": s.status,
             "ms": round(s.duration_s * 1000, 2),
             "model": s.attributes.get("gen_ai.request.model") or s.attributes.get(
                 "workbench.model"),
             "cached": s.attributes.get("workbench.cache_hit"),
             "cost_usd": s.attributes.get("workbench.cost_usd")}
            for s in (spans(project, trace_id=trace_id) if trace_id else [])]
    return pd.DataFrame(rows, columns=["span", "parent", "status", "ms", "model", "cached",
                                       "cost_usd"])


SUMMARY = ("requests", "answered", "errors", "refused", "rate_limited", "error_rate",
           "p50_latency", "p95_latency", "cost_per_request", "parse_rate", "cache_hit_rate",
           "fallback_rate", "feedback", "positive_feedback_rate")


def summary_frame(project: Project, *, window_s: float = DEFAULT_WINDOW_S) -> pd.DataFrame:
    """``window_metrics`` as a one-row table, in the card's metric names; ``attrs["label"]``
    says what ``requests`` counted (``traffic``), e.g. "12 requests to the service in the last
    60 minutes (47 in all)"."""
    import pandas as pd

    metrics = window_metrics(project, window_s=window_s)
    frame = pd.DataFrame([{k: metrics[k] for k in SUMMARY}])
    frame.attrs.update(label=metrics["label"], source=metrics["source"])
    return frame


def rules_frame(project: Project) -> pd.DataFrame:
    """The alert rules as a table: metric, direction, threshold, and where it comes from."""
    import pandas as pd

    return pd.DataFrame([{"metric": r.metric, "direction": r.direction,
                          "threshold": r.threshold, "from": r.source}
                         for r in alert_rules(project)],
                        columns=["metric", "direction", "threshold", "from"])
