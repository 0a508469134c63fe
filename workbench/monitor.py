"""Phase 8: monitoring — what the served model did, what users said, and alerts on the card.

Everything here reads the project's traces: each request to the service is a
``serve.request`` span (status, latency, model, fallback, cache, cost, end user, deployment
arm; refused requests and feedback posts too), and every model call an ``llm.call`` span. The
numbers come from per-minute and per-hour aggregates kept as spans are written
(``workbench.monitor_aggregates``), so a dashboard over a million requests reads a few hundred
rows; only the seconds at a window's ragged edges are read from the spans. Refusals a caller
can repeat at will (a key over its rate limit, unknown paths, key guesses past their limit)
are traced once per key, route and status a minute and counted in ``refusal_counts``
otherwise: ``traffic``, ``window_metrics`` and ``timeline`` add those counts (to the minute
they fell in). A project that has never served a request has its model calls monitored
instead (``source="calls"``); once it has, monitoring counts requests to the service only, in
every window (an hour of evaluation calls is not traffic).

- ``traffic``: how many requests to the service (or model calls) the last hour held, and in
  all, with the sentence that says what was counted; the dashboard, ``summary_frame`` and the
  project overview all take their count from it.
- ``window_metrics`` / ``timeline`` / ``breakdown``: the numbers over a window, per time bucket
  (requests per second, active users, p50/p95/p99, tokens, cost), and per model, prompt
  version, deployment arm or key, in the card's metric names (``error_rate``,
  ``p50_latency``, ``p95_latency``, ``cost_per_request``, ``parse_rate``,
  ``positive_feedback_rate``). ``requests_frame`` lists single requests (for a short window).
- ``dashboard``: requests and errors, latency against the target, cost against the target, and
  feedback, as one plotly figure (more figures: ``workbench.monitor_figures``).
- ``record_feedback`` / ``feedback_frame``: thumbs up/down with a comment and a correction,
  tied to the request's trace (the service's ``POST /v1/feedback`` calls it). Phase 9 turns bad
  feedback into test cases.
- ``check_alerts``: every kind of alert, each stored with its kind and delivered by the
  notifier (``workbench.monitor_notify``): ``threshold`` (the card's targets phase 8 can
  measure, plus an error rate of 5% when the card sets none), ``budget`` (projected month-end
  spend over the card's monthly budget, ``workbench.monitor_cost``), ``anomaly`` (latency,
  error rate or cost far above their own last 7 days, ``workbench.monitor_anomaly``),
  ``drift`` (inputs unlike the training data, ``workbench.monitor_drift``) and ``quality``
  (a trusted online judge below the card's ``judge_score``, ``workbench.monitor_judge``).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench import monitor_aggregates as aggregates
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
REFUSED = aggregates.REFUSED  # statuses of requests the service refused
DIMENSIONS = aggregates.DIMENSIONS
NICE_BUCKETS = (60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
                86400, 7 * 86400)
MAX_BUCKETS = 20_000


class MonitorError(WorkbenchError):
    """Monitoring was asked for something it cannot do."""


# -- requests --------------------------------------------------------------------------------------

_COLUMNS = ["time", "trace_id", "status", "ok", "latency_s", "model", "fallback_used", "cached",
            "cost_usd", "parse_ok", "client", "error", "route", "user", "arm"]


_SPAN_OF = aggregates.SPAN_OF


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
    if aggregates.any_traffic(project, "service"):
        return "service"
    counted = project.store.db.execute("SELECT 1 FROM refusal_counts LIMIT 1").fetchone()
    return "service" if counted else "calls"


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


def requests_frame(project: Project, *, since: float | None = None, until: float | None = None,
                   source: str = "auto", include_shadow: bool = False) -> pd.DataFrame:
    """One row per request, oldest first (read from the spans: keep the window short on a busy
    service; the aggregates answer everything else): ``source="service"`` reads the service's
    requests, ``"calls"`` every model call, ``"auto"`` the service's once the project has any
    (``resolve_source``). ``user`` is the hashed end-user id. A staged shadow's calls
    answered nobody, so they are left out unless ``include_shadow``."""
    import pandas as pd

    chosen = resolve_source(project, source)
    project.store.flush()
    where, params = ["name = ?"], [_SPAN_OF[chosen]]
    if chosen == "service" and not include_shadow:  # a shadow call answered nobody
        where.append("coalesce(json_extract(attributes, '$.\"workbench.arm\"'), '') "
                     "!= 'shadow'")
    if since is not None:
        where.append("start_time >= ?")
        params.append(since)
    if until is not None:
        where.append("start_time < ?")
        params.append(until)
    rows = project.store.query(
        "SELECT trace_id, start_time, end_time, status, error, attributes FROM spans WHERE "
        + " AND ".join(where) + " ORDER BY start_time", tuple(params))
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
            arm = a.get(aggregates.ARM_ATTRIBUTE) or (
                "live" if route in aggregates.ANSWERING_ROUTES else None)
        else:
            ok = r["status"] != "error"
            status = 200 if ok else 500
            route, fallback, parse_ok, client = None, None, None, a.get("workbench.client")
            model, cost = a.get("gen_ai.request.model"), a.get("workbench.cost_usd")
            cached, arm = a.get("workbench.cache_hit"), a.get(aggregates.ARM_ATTRIBUTE)
        out.append({"time": r["start_time"], "trace_id": r["trace_id"], "status": status,
                    "ok": ok, "latency_s": r["end_time"] - r["start_time"], "model": model,
                    "fallback_used": fallback, "cached": cached, "cost_usd": cost,
                    "parse_ok": parse_ok, "client": client, "error": r["error"],
                    "route": route, "user": a.get(aggregates.USER_HASH_ATTRIBUTE),
                    "arm": arm})
    frame = pd.DataFrame(out, columns=_COLUMNS)
    frame.attrs["source"] = chosen
    return frame


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


def _requests(project: Project, source: str, since: float | None, until: float | None,
              now: float | None = None) -> int:
    """Spans of ``source`` started in [since, until), plus the service's counted refusals."""
    found = aggregates.collect(project, source, since=since, until=until, now=now)
    traced = int(sum(t.counts[0] for t in found.values()))
    if source != "service":
        return traced
    return traced + sum(row[-1] for row in refusal_counts(project, since=since, until=until))


def traffic(project: Project, *, window_s: float = DEFAULT_WINDOW_S, now: float | None = None,
            source: str = "auto") -> Traffic:
    """The one count of recent traffic: the dashboard (``summary_frame``, ``dashboard``,
    ``window_metrics``) and the project overview (phase 8's card) all say this number. Spans
    started in [now - window_s, now) of the kind ``resolve_source`` picks."""
    now = time.time() if now is None else now
    chosen = resolve_source(project, source)
    return Traffic(chosen, _requests(project, chosen, now - window_s, now, now),
                   _requests(project, chosen, None, None, now), float(window_s), now)


def _feedback_counts(project: Project, since: float | None, until: float | None,
                     bucket_s: int | None = None) -> dict[float | None, tuple[int, int]]:
    """(pieces of feedback, positive ones) given in [since, until), per bucket."""
    where, params = [], []
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    if until is not None:
        where.append("created_at < ?")
        params.append(until)
    key = f"CAST(created_at / {int(bucket_s)} AS INTEGER) * {int(bucket_s)}" if bucket_s \
        else "NULL"
    rows = project.store.db.execute(
        f"SELECT {key}, COUNT(*), SUM(rating > 0) FROM feedback"
        + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY 1",
        tuple(params)).fetchall()
    return {(None if k is None else float(k)): (int(n), int(up or 0)) for k, n, up in rows}


def _with_feedback(metrics: dict[str, Any], given: tuple[int, int]) -> dict[str, Any]:
    n, up = given
    metrics.update(feedback=n, positive_feedback_rate=up / n if n else math.nan)
    return metrics


def window_metrics(project: Project, *, window_s: float = DEFAULT_WINDOW_S,
                   now: float | None = None, source: str = "auto") -> dict[str, Any]:
    """The metrics of the last ``window_s`` seconds (the card's names, canonical units);
    ``requests`` is ``traffic(...).recent``, and ``label`` says what it counted. Also:
    ``users`` (distinct end users), ``requests_per_s``, ``p99_latency``, tokens and
    ``cost_usd`` (the window's spend)."""
    now = time.time() if now is None else now
    source = resolve_source(project, source)
    since = now - window_s
    totals = aggregates.collect(project, source, since=since, until=now, now=now)
    metrics = totals.get((None, ""), aggregates.Totals()).metrics()
    _with_feedback(metrics, _feedback_counts(project, since, now).get(None, (0, 0)))
    if source == "service":
        for _, _, _, status, n in refusal_counts(project, since=since, until=now):
            metrics["refused"] += n if status in REFUSED else 0
            metrics["rate_limited"] += n if status == 429 else 0
    counted = traffic(project, window_s=window_s, now=now, source=source)
    metrics.update(window_s=window_s, since=since, until=now, source=source,
                   requests=counted.recent, label=counted.label,
                   requests_per_s=counted.recent / window_s if window_s else math.nan)
    return metrics


TIMELINE = ["start", "requests", "answered", "errors", "refused", "rate_limited", "error_rate",
            "p50_latency", "p95_latency", "p99_latency", "cost_per_request", "cost_usd",
            "input_tokens", "output_tokens", "users", "requests_per_s", "feedback",
            "positive_feedback_rate"]


def auto_bucket(span_s: float, *, oldest_age_s: float = 0.0) -> int:
    """About 30 buckets over ``span_s`` seconds, in a round size; at least an hour once the
    window reaches back past the minute aggregates (kept 3 days)."""
    floor = 3600 if oldest_age_s > aggregates.MINUTE_KEEP_S else 60
    return next((b for b in NICE_BUCKETS if b >= max(span_s / 30, floor)), NICE_BUCKETS[-1])


def _check_bucket(bucket_s: float) -> int:
    if not bucket_s > 0 or bucket_s % 60:
        raise MonitorError(f"bucket_s={bucket_s} is not a whole number of minutes.",
                           "Pass seconds per bucket in whole minutes (60, 300, 3600, 86400).")
    return int(bucket_s)


def timeline(project: Project, *, bucket_s: float | None = None, since: float | None = None,
             until: float | None = None, source: str = "auto", dim: str = "",
             now: float | None = None) -> pd.DataFrame:
    """The metrics per time bucket, buckets aligned on the clock (UTC), every bucket from the
    first with traffic to the last (empty ones hold zero requests). ``bucket_s`` is a whole
    number of minutes (default: a round size giving about 30 buckets). With ``dim`` (one of
    ``DIMENSIONS``) there is one row per bucket and value, in a ``value`` column."""
    import pandas as pd

    now = time.time() if now is None else now
    source = resolve_source(project, source)
    if dim and dim not in DIMENSIONS:
        raise MonitorError(f"dim={dim!r} is not one of {', '.join(DIMENSIONS)}.",
                           "Break the traffic down by model, prompt_version, arm or client.")
    columns = TIMELINE[:1] + (["value"] if dim else []) + TIMELINE[1:]
    extent = aggregates.extent(project, source)
    counted = refusal_counts(project, since=since, until=until) \
        if source == "service" and not dim else []
    if extent is None and not counted:
        empty = pd.DataFrame(columns=columns)
        empty.attrs.update(source=source, bucket_s=bucket_s)
        return empty
    first = since if since is not None else min(
        ([extent[0]] if extent else []) + [m for m, *_ in counted])
    last = until if until is not None else max(
        ([min(extent[1], now)] if extent else []) + [m + 60 for m, *_ in counted])
    bucket = _check_bucket(bucket_s) if bucket_s is not None else \
        auto_bucket(last - first, oldest_age_s=now - first)
    if (last - first) / bucket > MAX_BUCKETS:
        raise MonitorError(f"{bucket} s buckets over {window_text(last - first)} make more "
                           f"than {MAX_BUCKETS:,} buckets.", "Pass a larger bucket_s.")
    groups = aggregates.collect(project, source, since=first, until=last, dim=dim,
                                bucket_s=bucket, now=now)
    given = _feedback_counts(project, first, last, bucket) if not dim else {}
    refused: dict[float, list[int]] = {}
    for minute, _, _, status, n in counted:  # each count in the bucket of its minute
        key = math.floor(max(minute, first) / bucket) * bucket
        total = refused.setdefault(float(key), [0, 0, 0])
        total[0] += n
        total[1] += n if status in REFUSED else 0
        total[2] += n if status == 429 else 0
    starts = {k[0] for k in groups} | set(refused) | {k for k in given if k is not None}
    if not starts:
        empty = pd.DataFrame(columns=columns)
        empty.attrs.update(source=source, bucket_s=bucket)
        return empty
    start, stop = min(starts), max(starts)
    values = sorted({v for _, v in groups}) if dim else [""]
    rows = []
    while start <= stop:
        for value in values:
            totals = groups.get((start, value))
            m = (totals or aggregates.Totals()).metrics()
            if not dim:
                extra = refused.get(start, [0, 0, 0])
                m["requests"] += extra[0]
                m["refused"] += extra[1]
                m["rate_limited"] += extra[2]
                _with_feedback(m, given.get(start, (0, 0)))
            else:
                _with_feedback(m, (0, 0))
            seconds = min(start + bucket, last) - max(start, first)
            m["requests_per_s"] = m["requests"] / seconds if seconds > 0 else math.nan
            rows.append({"start": pd.Timestamp(start, unit="s", tz="UTC"),
                         **({"value": value} if dim else {}),
                         **{k: m[k] for k in columns if k in m}})
        start += bucket
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs.update(source=source, bucket_s=bucket)
    return frame


BREAKDOWN = ["value", "requests", "answered", "errors", "error_rate", "p50_latency",
             "p95_latency", "p99_latency", "cost_usd", "cost_per_request", "users",
             "input_tokens", "output_tokens", "cache_hit_rate", "share"]


def breakdown(project: Project, dim: str, *, window_s: float | None = 86400.0,
              since: float | None = None, until: float | None = None,
              now: float | None = None, source: str = "auto") -> pd.DataFrame:
    """The window's traffic per value of ``dim`` (``model``, ``prompt_version``, ``arm`` —
    live, canary or shadow — or ``client``, the API key's id), busiest first: requests, errors,
    latency percentiles, spend, distinct users, tokens, and each value's share of requests.
    ``window_s=None`` and no ``since`` is all time."""
    import pandas as pd

    if dim not in DIMENSIONS:
        raise MonitorError(f"dim={dim!r} is not one of {', '.join(DIMENSIONS)}.",
                           "Break the traffic down by model, prompt_version, arm or client.")
    now = time.time() if now is None else now
    source = resolve_source(project, source)
    until = now if until is None and window_s is not None else until
    if since is None and window_s is not None:
        since = (until if until is not None else now) - window_s
    groups = aggregates.collect(project, source, since=since, until=until, dim=dim, now=now)
    rows = [{"value": value, **totals.metrics()} for (_, value), totals in groups.items()]
    total = sum(r["requests"] for r in rows)
    for r in rows:
        r["share"] = r["requests"] / total if total else math.nan
    frame = pd.DataFrame(rows, columns=BREAKDOWN).sort_values(
        ["requests", "value"], ascending=[False, True]).reset_index(drop=True)
    frame.attrs.update(source=source, dim=dim, since=since, until=until)
    return frame


def active_users(project: Project, *, window_s: float = 86400.0, now: float | None = None,
                 dim: str = "", source: str = "auto") -> dict[str, int]:
    """Distinct end users in the last ``window_s`` seconds (``{"": n}``), or per value of
    ``dim`` (a user who used two models counts once for each)."""
    now = time.time() if now is None else now
    source = resolve_source(project, source)
    groups = aggregates.collect(project, source, since=now - window_s, until=now, dim=dim,
                                now=now)
    return {value: totals.users() for (_, value), totals in sorted(groups.items())}


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

ALERT_KINDS = ("threshold", "budget", "anomaly", "drift", "quality")


@dataclass(frozen=True)
class AlertRule:
    metric: str
    direction: str  # ">=" or "<="
    threshold: float  # canonical unit
    source: str  # "card", "default", or where a learned threshold came from ("baseline", ...)
    kind: str = "threshold"  # one of ALERT_KINDS


@dataclass(frozen=True)
class Alert:
    rule: AlertRule
    status: str  # "firing", "ok" or "no data"
    value: float
    message: str
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        return self.rule.kind


class Alerts(list):
    """The alerts of one check; ``delivery`` says what the notifier did with them (None when
    it was not asked to deliver)."""

    delivery: Any = None


def alert_rules(project: Project, card: Any = None) -> list[AlertRule]:
    """The card's targets phase 8 can measure, plus an error-rate rule the card may override."""
    from workbench.card import load_card

    card = card if card is not None else load_card(project)
    rules = [AlertRule(m.name, m.direction, m.target_in_canonical_unit(), "card")
             for m in card.metrics if m.name in MONITORED]
    if not any(r.metric == "error_rate" for r in rules):
        rules.append(AlertRule("error_rate", "<=", DEFAULT_ERROR_RATE, "default"))
    return rules


def alerts_frame(project: Project, *, kind: str | None = None) -> pd.DataFrame:
    """Alerts that fired, newest first (of one ``kind`` if given)."""
    import pandas as pd

    rows = project.store.query(
        "SELECT * FROM alerts" + (" WHERE kind = ?" if kind else "")
        + " ORDER BY fired_at DESC", (kind,) if kind else ())
    return pd.DataFrame([dict(r) for r in rows],
                        columns=["alert_id", "rule", "kind", "fired_at", "value", "threshold",
                                 "window_s", "message", "details"])


def alerts_table(alerts: list[Alert]) -> pd.DataFrame:
    """One check's alerts as a table: kind, rule, status, value, threshold, message."""
    import pandas as pd

    return pd.DataFrame([{"kind": a.kind, "rule": a.rule.metric, "status": a.status,
                          "value": a.value, "threshold": a.rule.threshold,
                          "message": a.message} for a in alerts],
                        columns=["kind", "rule", "status", "value", "threshold", "message"])


# -- the dashboard ---------------------------------------------------------------------------------

def dashboard(project: Project, *, bucket_s: float | None = None, since: float | None = None,
              source: str = "auto"):
    """Requests and errors, p50/p95 latency, cost per request and positive feedback per time
    bucket, with the card's targets drawn as dashed lines; the title says what is counted and
    the last hour's count (``traffic``, the number the project overview shows)."""
    import plotly.graph_objects as go  # noqa: F401 (make_subplots needs it loaded)
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
    for q in ("p50", "p95", "p99"):
        fig.add_scatter(x=x, y=frame[f"{q}_latency"], name=q, mode="lines+markers", row=2,
                        col=1)
    fig.add_scatter(x=x, y=frame["cost_per_request"], name="cost per request",
                    mode="lines+markers", row=3, col=1)
    fig.add_scatter(x=x, y=frame["positive_feedback_rate"], name="positive feedback",
                    mode="lines+markers", row=4, col=1)
    for metric, row in (("p95_latency", 2), ("cost_per_request", 3),
                        ("positive_feedback_rate", 4)):
        if metric in targets:
            fig.add_hline(y=targets[metric], line_dash="dash", line_color="red", row=row, col=1,
                          annotation_text=f"target {metric}")
    bucket = frame.attrs.get("bucket_s")
    per = f" per {window_text(bucket)}" if bucket else ""
    fig.update_layout(height=900, barmode="group", template="plotly_white",
                      title=f"{project.name}: monitoring{per} — {counted.label}")
    return fig


def request_trace(project: Project, trace_id: str | None = None) -> pd.DataFrame:
    """One service request and the model calls inside it (default: the last answered request):
    span, parent, status, milliseconds, model, cache hit, cost."""
    import pandas as pd

    from workbench.tracing import spans

    if trace_id is None:
        project.store.flush()
        row = project.store.db.execute(
            "SELECT trace_id FROM spans WHERE name = 'serve.request' AND "
            "json_extract(attributes, '$.\"http.response.status_code\"') = 200 AND "
            "json_extract(attributes, '$.\"http.route\"') IN ('/v1/predict', "
            "'/v1/chat/completions') AND "
            "coalesce(json_extract(attributes, '$.\"workbench.arm\"'), '') != 'shadow' "
            "ORDER BY start_time DESC LIMIT 1").fetchone()
        trace_id = row[0] if row else None
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
           "p50_latency", "p95_latency", "p99_latency", "cost_per_request", "cost_usd",
           "parse_rate", "cache_hit_rate", "fallback_rate", "users", "requests_per_s",
           "feedback", "positive_feedback_rate")


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
