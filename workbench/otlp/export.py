"""After the fact: the project's stored spans to a collector (``workbench traces export``),
remembered in the ``otlp_exports`` table."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.otlp.config import (
    DEFAULT_BATCH,
    DEFAULT_EXPORT_TIMEOUT_S,
    MAX_ATTEMPTS,
    RETRY_BASE_S,
    Endpoint,
    ExportError,
    _proto,
    endpoint_from_env,
    resource_attributes,
    safe_url,
)
from workbench.otlp.encoding import (
    Deployments,
    SpanRow,
    encode,
)
from workbench.otlp.live import (
    flush,
    live_status,
)
from workbench.otlp.transport import (
    Outcome,
    Sender,
    send_with_retries,
)

if TYPE_CHECKING:
    from workbench.project import Project

@dataclass
class ExportResult:
    """What ``export_spans`` did."""

    endpoint: str | None  # None for a dry run
    spans: int  # spans selected
    sent: int  # accepted by the collector
    rejected: int  # refused by the collector in an accepted request (partial success)
    batches: int
    bytes: int
    seconds: float
    since: float | None
    export_id: str | None = None

    @property
    def sentence(self) -> str:
        rate = f", {self.sent / self.seconds:,.0f} spans/s" if self.seconds > 0 and self.sent \
            else ""
        batches = f"{self.batches} batch{'es' if self.batches != 1 else ''}"
        if self.endpoint is None:
            return (f"Dry run: {self.spans} spans in {batches} "
                    f"({self.bytes / 1024:,.1f} KiB of OTLP protobuf) would be sent; "
                    "nothing was sent.")
        refused = f", {self.rejected} refused by the collector" if self.rejected else ""
        return (f"Sent {self.sent} of {self.spans} spans to {self.endpoint} in {batches} "
                f"({self.bytes / 1024:,.1f} KiB, {self.seconds:.2f} s{rate}){refused}.")


def parse_since(text: str | float | None, now: float | None = None) -> float | str | None:
    """``--since``: a duration back from now (``90s``, ``15m``, ``2h``, ``1d``, ``2w``), a
    date or ISO time (``2026-03-01``, ``2026-03-01T12:00:00+00:00``), seconds since the
    epoch, or ``last`` (what was not sent to this endpoint before). Returns epoch seconds,
    ``"last"`` or None."""
    if text is None or isinstance(text, (int, float)):
        return text
    value = str(text).strip().lower()
    if not value or value == "all":
        return None
    if value == "last":
        return "last"
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
    if match:
        return now - float(match.group(1)) * units[match.group(2)]
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ExportError(f"--since {text!r} is neither a duration nor a date.",
                          "Use e.g. 90m, 1d, 2w, 2026-03-01, an ISO time, or 'last'.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _last_rowid(project: Project, endpoint: str) -> int:
    row = project.store.db.execute(
        "SELECT MAX(to_rowid) FROM otlp_exports WHERE endpoint = ?", (endpoint,)).fetchone()
    return int(row[0] or 0)


def export_spans(project: Project, url: str | None, *, since: str | float | None = None,
                 headers: Mapping[str, str] | None = None, batch_size: int = DEFAULT_BATCH,
                 progress: bool | Callable[[int, int], None] = True,
                 timeout_s: float | None = None, retry_base_s: float = RETRY_BASE_S,
                 max_attempts: int = MAX_ATTEMPTS,
                 environ: Mapping[str, str] | None = None) -> ExportResult:
    """Send the project's stored spans to the OTLP collector at ``url`` (``None``: a dry run
    that encodes everything and sends nothing).

    ``since`` limits them (see ``parse_since``; ``"last"``: only spans stored after the last
    export to the same endpoint). Headers come from ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``
    and ``headers`` (which win). Spans go oldest first, ``batch_size`` per request, with the
    live exporter's retries; a batch that still fails stops the export with ``ExportError``,
    and what went before stays recorded, so ``since="last"`` resumes. Each export is
    remembered in the project (endpoint without credentials, counts, status)."""
    from workbench.privacy import project_policy, redact_for_logs

    env = dict(os.environ if environ is None else environ)
    endpoint = None
    if url is not None:
        endpoint = endpoint_from_env(env, url=url)
        assert endpoint is not None
        if headers:
            endpoint = Endpoint(endpoint.url, {**endpoint.headers, **headers},
                                endpoint.timeout_s, endpoint.compression, endpoint.certificate)
        if timeout_s is not None:
            endpoint = Endpoint(endpoint.url, endpoint.headers, timeout_s,
                                endpoint.compression, endpoint.certificate)
    _proto()
    shown = safe_url(endpoint.url) if endpoint else None
    since_value = parse_since(since)
    store = project.store
    store.flush()
    from_rowid = 0
    if since_value == "last":
        if shown is None:
            raise ExportError("--since last needs the endpoint it continues from.",
                              "Give --otlp URL, or another --since.")
        from_rowid = _last_rowid(project, shown)
        since_value = None
    where, params = ["rowid > ?"], [from_rowid]
    if since_value is not None:
        where.append("start_time >= ?")
        params.append(since_value)
    clause = " AND ".join(where)
    total = store.db.execute(f"SELECT COUNT(*), MAX(rowid) FROM spans WHERE {clause}",
                             params).fetchone()
    count, to_rowid = int(total[0]), int(total[1] or from_rowid)
    try:
        name = project.name
    except Exception:  # noqa: BLE001 (an unreadable card must not stop the export)
        name = project.path.name
    resource = resource_attributes(name, env)
    policy = project_policy(project)
    deployments = Deployments(project)
    export_id = None
    if endpoint is not None:
        export_id = uuid.uuid4().hex[:16]
        with store.write() as db:
            db.execute("INSERT INTO otlp_exports VALUES (?, ?, ?, NULL, ?, ?, ?, 0, 0, ?)",
                       (export_id, shown, time.time(), since_value, from_rowid, from_rowid,
                        "running"))
    bar = None
    if progress is True and count:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, desc=f"OTLP → {shown or 'dry run'}", unit="span")
    sender = Sender(endpoint) if endpoint is not None else None
    sent = rejected = batches = size = done = 0
    last_rowid = from_rowid
    started = time.perf_counter()
    status = "failed"
    try:
        cursor = from_rowid
        while done < count:
            rows = store.db.execute(
                f"SELECT rowid, * FROM spans WHERE {clause} AND rowid <= ? ORDER BY rowid "
                "LIMIT ?", [cursor, *params[1:], to_rowid, batch_size]).fetchall()
            if not rows:
                break
            spans = []
            for r in rows:
                attributes = json.loads(r[9])
                if policy.raw_logging_forbidden and not attributes.get(
                        "workbench.logged_redacted"):
                    attributes = redact_for_logs(attributes)  # stored before the rule
                spans.append(SpanRow(r[2], r[1], r[3], r[4], r[5], r[6], r[7], r[8],
                                     deployments.enrich(attributes)))
            body = encode([(resource, spans)])
            batches += 1
            size += len(body)
            cursor = rows[-1][0]
            if sender is not None:
                outcome, attempts = send_with_retries(
                    sender, body, deadline=time.monotonic() + max(
                        DEFAULT_EXPORT_TIMEOUT_S, sender.endpoint.timeout_s * max_attempts),
                    retry_base_s=retry_base_s, max_attempts=max_attempts)
                if not outcome.ok:
                    raise ExportError(
                        f"Sent {sent} of {count} spans to {shown}; then the collector "
                        f"{'did not answer' if outcome.status is None else 'answered'}: "
                        f"{outcome.reason}" + (f" (after {attempts} attempts)."
                                               if attempts > 1 else "."),
                        _fix_for(outcome, shown))
                sent += len(spans) - outcome.rejected
                rejected += outcome.rejected
                last_rowid = cursor
                with store.write() as db:
                    db.execute("UPDATE otlp_exports SET to_rowid = ?, spans = ?, rejected = ?"
                               " WHERE export_id = ?", (last_rowid, sent, rejected, export_id))
            done += len(spans)
            if bar is not None:
                bar.update(len(spans))
            elif callable(progress):
                progress(done, count)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if bar is not None:
            bar.close()
        if sender is not None:
            sender.close()
        if export_id is not None:
            with store.write() as db:
                db.execute("UPDATE otlp_exports SET finished_at = ?, status = ? "
                           "WHERE export_id = ?", (time.time(), status, export_id))
    return ExportResult(shown, count, sent, rejected, batches, size,
                        time.perf_counter() - started, since_value, export_id)


def _fix_for(outcome: Outcome, url: str | None) -> str:
    if outcome.status in (401, 403):
        return ("Check the credentials: set OTEL_EXPORTER_OTLP_HEADERS (e.g. "
                "'Authorization=Basic ...' for Langfuse) or pass --header.")
    if outcome.status == 404:
        return (f"Check that {url} is the collector's OTLP/HTTP traces endpoint (it usually "
                "ends in /v1/traces; Langfuse's is .../api/public/otel/v1/traces).")
    if outcome.status == 413:
        return "Send smaller batches (--batch-size)."
    return ("Check that the collector is running and reachable, then run the same command "
            "with --since last to send the rest.")


def exports(project: Project) -> list[dict[str, Any]]:
    """The project's OTLP exports, newest first."""
    project.store.flush()
    return [dict(r) for r in project.store.query(
        "SELECT * FROM otlp_exports ORDER BY started_at DESC")]


def export_summary(project: Project, since: str = "1h") -> str:
    """Where the project's traces go, as a few lines of Markdown for a notebook: with live
    export on, its counts after a flush; without a collector, a dry run of the spans since
    ``since`` (encoded, counted, not sent) and how to send them."""
    status = live_status()
    if status["enabled"]:
        flush(5.0)
        status = live_status()
        dropped = status["dropped_queue_full"] + status["dropped_failed"]
        problem = f" {dropped} could not be sent ({status['last_error']})." if dropped else ""
        return (f"**Live export is on:** {status['exported']} spans sent to "
                f"`{status['endpoint']}` by this process so far.{problem} Spans from before "
                "it was on: `workbench traces export --otlp URL --since 1d`.")
    dry = export_spans(project, None, since=since, progress=False)
    return (f"**No OTLP collector is configured** ({status['reason']}), so nothing was sent. "
            f"A dry run encoded the spans of the last {since}: {dry.spans} "
            f"span{'s' if dry.spans != 1 else ''}, "
            f"{dry.bytes / 1024:,.1f} KiB of OTLP protobuf. To send them to Phoenix "
            "(`phoenix serve`), `workbench traces export --otlp http://127.0.0.1:6006 "
            f"--since {since}`; to send every new span as it happens, set "
            "`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:6006` before starting the notebook "
            "or the service (Langfuse: see the README).")

