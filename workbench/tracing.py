"""Traces: every model call (and anything wrapped in ``trace``) becomes a span in the project.

Attribute names follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``) so spans can be
exported to any OTLP collector later. With no active project, tracing costs nothing and writes
nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def _new_id(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


def start_span(name: str, attributes: dict[str, Any] | None = None) -> Span:
    parent = _current.get()
    return Span(
        name=name,
        trace_id=parent.trace_id if parent else _new_id(16),
        span_id=_new_id(8),
        parent_id=parent.span_id if parent else None,
        start_time=time.time(),
        attributes=attributes or {},
    )


def write_span(project: Project | None, span: Span) -> None:
    """Queue a finished span; the project's background writer stores it within milliseconds.

    The card's privacy rules apply here (``workbench.privacy``): with "do not log raw inputs"
    the span's text is stored with its PII replaced by placeholders, and with a retention rule
    spans past it are swept (at most hourly) as new ones arrive. Monitoring's aggregates take
    their share first (``workbench.monitor_aggregates.add``), which also replaces a raw
    end-user id by its keyed hash."""
    if project is None:
        return
    from workbench import monitor_aggregates
    from workbench.privacy import project_policy, redact_for_logs, sweep_traces

    monitor_aggregates.add(project, span)  # first: it hashes the end-user id before storage

    policy = project_policy(project)
    attributes = redact_for_logs(span.attributes) if policy.raw_logging_forbidden \
        else span.attributes
    project.store.defer(
        "INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (span.span_id, span.trace_id, span.parent_id, span.name, span.start_time,
         span.end_time, span.status, span.error,
         json.dumps(attributes, default=str, separators=(",", ":"))),
    )
    if policy.trace_retention_days is not None:
        sweep_traces(project)


@contextmanager
def trace(name: str, project: Project | None = None, **attributes: Any) -> Iterator[Span]:
    """Record a block as a span; model calls inside it become its children."""
    from workbench.project import active_project

    project = project or active_project()
    span = start_span(name, attributes)
    token = _current.set(span)
    try:
        yield span
    except BaseException as exc:
        span.status, span.error = "error", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _current.reset(token)
        span.end_time = time.time()
        write_span(project, span)


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
