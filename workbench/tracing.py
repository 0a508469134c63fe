"""Traces: every model call (and anything wrapped in ``trace``) becomes a span in the project.

Attribute names follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``), and spans
leave the project over OTLP (``workbench.otlp``): live when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
set, or later with ``workbench traces export``. With no active project, tracing costs nothing
and writes nothing.

``write_span`` is on every model call's path, so it does little: the privacy rule is looked up
by one ``stat`` of the card, the attributes are serialized once, and the row and the live
exporter each get a queue append; SQLite and the network are other threads' work.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench import span_export
from workbench.span_export import set_exporter  # noqa: F401  (tracing.set_exporter)

if TYPE_CHECKING:
    from types import TracebackType

    from workbench.privacy import PrivacyPolicy
    from workbench.project import Project


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_time: float
    end_time: float = 0.0
    status: str = "ok"
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end_time - self.start_time


_current: ContextVar[Span | None] = ContextVar("workbench_span", default=None)
_tags: ContextVar[dict[str, Any] | None] = ContextVar("workbench_span_tags", default=None)
_INSERT = "INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
# One encoder for every span: json.dumps with options builds a new one per call (~1 us).
_encode = json.JSONEncoder(default=str, separators=(",", ":"), check_circular=False).encode
_bits = random.getrandbits  # ids need uniqueness, not secrecy (as OpenTelemetry's SDKs do)


def _new_id(nbytes: int) -> str:
    value = _bits(nbytes * 8)
    while not value:  # an all-zero id is invalid in OpenTelemetry
        value = _bits(nbytes * 8)
    return f"{value:0{nbytes * 2}x}"


def start_span(name: str, attributes: dict[str, Any] | None = None) -> Span:
    parent = _current.get()
    tags = _tags.get()
    if tags:
        attributes = {**tags, **attributes} if attributes else dict(tags)
    return Span(
        name=name,
        trace_id=parent.trace_id if parent else _new_id(16),
        span_id=_new_id(8),
        parent_id=parent.span_id if parent else None,
        start_time=time.time(),
        attributes=attributes or {},
    )


@contextmanager
def tagged(**attributes: Any) -> Iterator[None]:
    """Add ``attributes`` to every span started inside the block (in this thread, and in
    threads started with a copy of its context), e.g. a run's id and its prompt version on
    each of the run's model calls. Nested blocks add to the outer ones."""
    outer = _tags.get()
    token = _tags.set({**outer, **attributes} if outer else attributes)
    try:
        yield
    finally:
        _tags.reset(token)


def tags() -> dict[str, Any]:
    """The attributes ``tagged`` adds here now (for code that hands work to other threads)."""
    return dict(_tags.get() or {})


def _policy(project: Project) -> PrivacyPolicy:
    """The project's privacy policy, re-read only when the card file changed: one ``stat`` per
    span instead of building the card's path and taking the policy cache's lock (5 us)."""
    cached = project.__dict__.get("_span_policy")
    card = cached[0] if cached is not None else str(project.card_path)
    try:
        stamp = os.stat(card).st_mtime_ns
    except OSError:
        stamp = None
    if cached is not None and cached[1] == stamp:
        return cached[2]
    from workbench.privacy import project_policy

    policy = project_policy(project)
    project.__dict__["_span_policy"] = (card, stamp, policy)
    return policy


def _first_export(project: Project, span: Span, attributes: dict[str, Any]) -> None:
    """The first span of a process decides whether spans are exported live: only when an
    OTLP endpoint is set (then ``workbench.otlp`` is imported and its thread started)."""
    with _decide_lock:
        if span_export.offer is span_export.UNDECIDED:  # not decided by another thread meanwhile
            if not (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
                set_exporter(None)
            else:
                from workbench import otlp

                otlp.live_from_env()  # fills the slot (or empties it) through set_exporter
        offer = span_export.offer
    if offer is not None and offer is not span_export.UNDECIDED:
        offer(project, span, attributes)


_export_failed = False
_decide_lock = threading.Lock()


def _aggregate(project: Project, span: Span, retention_days: int | None) -> None:
    """Monitoring's share of a span (``workbench.monitor_aggregates.add``), imported on the
    first span: it also replaces a raw end-user id by its keyed hash before storage."""
    global _aggregate
    from workbench.monitor_aggregates import add

    _aggregate = add
    add(project, span, retention_days)


def write_span(project: Project | None, span: Span) -> None:
    """Queue a finished span; the project's background writer stores it within milliseconds,
    and with live OTLP export on, the exporter's thread sends it (``workbench.otlp``).

    The card's privacy rules apply here (``workbench.privacy``): with "do not log raw inputs"
    the span's text is stored (and exported) with its PII replaced by placeholders, and with a
    retention rule spans past it are swept (at most hourly) as new ones arrive. Monitoring's
    aggregates take their share first (``workbench.monitor_aggregates.add``), which replaces a
    raw end-user id by its keyed hash."""
    global _export_failed
    if project is None:
        return
    policy = _policy(project)  # one stat of the card a span: cached until the card changes
    _aggregate(project, span, policy.trace_retention_days)
    if policy.raw_logging_forbidden:
        from workbench.privacy import redact_for_logs

        attributes = redact_for_logs(span.attributes)
    else:
        attributes = span.attributes
    project.store.defer(_INSERT, (
        span.span_id, span.trace_id, span.parent_id, span.name, span.start_time,
        span.end_time, span.status, span.error, _encode(attributes)))
    export = span_export.offer
    if export is not None:
        try:
            if export is span_export.UNDECIDED:
                _first_export(project, span, attributes)
            else:
                export(project, span, attributes)
        except Exception as exc:  # noqa: BLE001 (exporting must never break the call)
            if not _export_failed:
                _export_failed = True
                print(f"workbench: not exporting traces: {type(exc).__name__}: {exc}",
                      file=sys.stderr)
    if policy.trace_retention_days is not None:
        from workbench.privacy import sweep_traces

        sweep_traces(project)


class trace:
    """Record a block as a span; model calls inside it become its children.

    ``with trace("step", project, key=value) as span:`` — a class, not a generator-based
    context manager: it is on every traced request's path and costs a quarter as much."""

    __slots__ = ("_attributes", "_name", "_project", "_span", "_token")

    def __init__(self, name: str, project: Project | None = None, **attributes: Any):
        self._name, self._project, self._attributes = name, project, attributes

    def __enter__(self) -> Span:
        if self._project is None:
            from workbench.project import active_project

            self._project = active_project()
        span = self._span = start_span(self._name, self._attributes)
        self._token = _current.set(span)
        return span

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        span = self._span
        if exc is not None:
            span.status, span.error = "error", f"{type(exc).__name__}: {exc}"
        _current.reset(self._token)
        span.end_time = time.time()
        write_span(self._project, span)


def spans(project: Project, *, name: str | None = None, trace_id: str | None = None,
          limit: int = 1000) -> list[Span]:
    """The newest spans first."""
    project.store.flush()
    sql = "SELECT * FROM spans"
    where, params = [], []
    if name:
        where.append("name = ?")
        params.append(name)
    if trace_id:
        where.append("trace_id = ?")
        params.append(trace_id)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY start_time DESC LIMIT ?"
    params.append(limit)
    rows = project.store.db.execute(sql, params).fetchall()
    return [Span(name=r[3], trace_id=r[1], span_id=r[0], parent_id=r[2], start_time=r[4],
                 end_time=r[5], status=r[6], error=r[7], attributes=json.loads(r[8]))
            for r in rows]


def spans_frame(project: Project, **kwargs: Any):
    """Spans as a pandas DataFrame, one row per span with the common attributes as columns."""
    import pandas as pd

    rows = []
    for s in spans(project, **kwargs):
        a = s.attributes
        rows.append({
            "time": pd.Timestamp(s.start_time, unit="s", tz="UTC"),
            "name": s.name,
            "model": a.get("gen_ai.request.model"),
            "status": s.status,
            "latency_s": s.duration_s,
            "input_tokens": a.get("gen_ai.usage.input_tokens"),
            "output_tokens": a.get("gen_ai.usage.output_tokens"),
            "cost_usd": a.get("workbench.cost_usd"),
            "cache_hit": a.get("workbench.cache_hit"),
            "error": s.error,
            "trace_id": s.trace_id,
            "span_id": s.span_id,
        })
    return pd.DataFrame(rows)
