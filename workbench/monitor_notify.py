"""The notifier: alerts leave the project as JSON lines in a log file and as a webhook POST.

``deliver`` (called by ``monitor_alerts.check_alerts``) sends what changed since the last check:

- an alert that starts firing is sent at once; one that keeps firing is sent again only after
  ``renotify_after_h`` (default 4 h), so a cron job checking every five minutes does not page
  every five minutes; an alert that stops firing is sent once as ``resolved``;
- every notification is appended to ``<project>/logs/alerts.jsonl`` (one JSON object a line:
  ``event``, ``kind``, ``rule``, ``status``, ``value``, ``threshold``, ``message``, ...), with
  a line for each webhook delivery's outcome;
- the webhook gets one POST per check holding every notification (``text`` for chat tools,
  ``alerts`` for programs), with a timeout per attempt, retries with backoff on timeouts,
  connection errors, 429 and 5xx (not on other 4xx: a wrong URL stays wrong), and a hard
  ceiling on the whole delivery (``MAX_DELIVERY_S``): a dead receiver delays a check by
  seconds, never hangs it. A failed delivery is not marked as sent, so the next check tries
  again.

The webhook's URL is never written to the log or the project (it often holds a token): the
log names its host.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from workbench.monitor import Alert
    from workbench.project import Project

LOG_FILE = Path("logs") / "alerts.jsonl"
MAX_DELIVERY_S = 30.0
BACKOFF_S = 0.5  # before the first retry; doubles each time
RETRY_STATUSES = (408, 425, 429, 500, 502, 503, 504)


@dataclass
class Delivery:
    """What one check sent. ``webhook``: "sent", "failed", "not configured" or "nothing to
    send"."""

    notified: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)  # still firing, sent recently
    log: Path | None = None
    webhook: str = "nothing to send"
    host: str | None = None
    attempts: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def sentence(self) -> str:
        if not self.notified:
            held = f" ({len(self.suppressed)} still firing, sent recently)" \
                if self.suppressed else ""
            return f"No alert changed{held}: nothing sent."
        firing = sum(n["status"] == "firing" for n in self.notified)
        parts = [f"{firing} firing and {len(self.notified) - firing} resolved alert(s)"]
        if self.log:
            parts.append(f"logged to {self.log}")
        if self.webhook == "sent":
            parts.append(f"posted to {self.host} ({self.attempts} attempt(s))")
        elif self.webhook == "failed":
            parts.append(f"webhook to {self.host} FAILED after {self.attempts} attempt(s): "
                         f"{self.error}")
        return "; ".join(parts) + "."


def _key(alert: Alert) -> str:
    return f"{alert.kind}:{alert.rule.metric}"


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _notification(alert: Alert, status: str, now: float) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:16], "kind": alert.kind, "rule": alert.rule.metric,
            "status": status, "value": _plain(alert.value),
            "threshold": _plain(alert.rule.threshold), "message": alert.message,
            "details": {k: _plain(v) for k, v in alert.details.items()},
            "at": dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(timespec="seconds")}


def _append_log(path: Path, lines: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(line, default=str, ensure_ascii=False) + "\n" for line in lines)
    with open(path, "a", encoding="utf-8") as f:  # appends: one write per check
        f.write(text)


def post(url: str, payload: dict[str, Any], *, timeout_s: float, retries: int,
         deadline_s: float = MAX_DELIVERY_S) -> tuple[bool, int, str | None]:
    """POST ``payload`` as JSON: (delivered, attempts, last error). Retries transient
    failures with backoff, and gives up when ``deadline_s`` is spent."""
    import httpx

    started = time.monotonic()
    error = None
    attempt = 0
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        for attempt in range(1, retries + 2):
            left = deadline_s - (time.monotonic() - started)
            if left <= 0:
                break
            try:
                reply = client.post(url, json=payload, timeout=min(timeout_s, left),
                                    headers={"User-Agent": "llmops-workbench-monitor"})
            except httpx.TimeoutException:
                error = f"no answer within {min(timeout_s, left):g} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if reply.status_code < 300:
                    return True, attempt, None
                error = f"HTTP {reply.status_code}"
                if reply.status_code not in RETRY_STATUSES:
                    break
            pause = BACKOFF_S * 2 ** (attempt - 1)
            if attempt <= retries and time.monotonic() - started + pause < deadline_s:
                time.sleep(pause)
    return False, attempt, error


def deliver(project: Project, alerts: list[Alert], settings: Any, *,
            now: float | None = None) -> Delivery:
    """Send what changed among ``alerts`` through the log and the webhook (see the module)."""
    now = time.time() if now is None else now
    started = time.monotonic()
    db = project.store.db
    state = {key: (bool(firing), last) for key, firing, last in
             db.execute("SELECT key, firing, last_sent FROM alert_notifications")}
    renotify = settings.renotify_after_h * 3600
    out = Delivery()
    sending: list[tuple[str, bool, dict[str, Any]]] = []
    for alert in alerts:
        key = _key(alert)
        was_firing, last = state.get(key, (False, 0.0))
        if alert.status == "firing":
            if was_firing and now - last < renotify:
                out.suppressed.append(key)
                continue
            sending.append((key, True, _notification(alert, "firing", now)))
        elif alert.status == "ok" and was_firing:
            sending.append((key, False, _notification(alert, "resolved", now)))
    if not sending:
        return out
    out.notified = [n for _, _, n in sending]
    lines = [{"event": "alert", "project": project.name, **n} for n in out.notified]
    url = settings.webhook()
    delivered = True
    if url:
        out.host = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
        firing = [n for n in out.notified if n["status"] == "firing"]
        text = "\n".join(f"[{n['status'].upper()}] {n['message']}" for n in out.notified)
        payload = {"project": project.name, "text": f"{project.name}: {len(firing)} alert(s) "
                   f"firing\n{text}", "alerts": out.notified}
        delivered, out.attempts, out.error = post(
            url, payload, timeout_s=settings.webhook_timeout_s,
            retries=settings.webhook_retries)
        out.webhook = "sent" if delivered else "failed"
        lines.append({"event": "webhook", "project": project.name, "host": out.host,
                      "status": out.webhook, "attempts": out.attempts, "error": out.error,
                      "alerts": [n["id"] for n in out.notified]})
    else:
        out.webhook = "not configured"
    if settings.alert_log:
        out.log = project.path / LOG_FILE
        _append_log(out.log, lines)
    if delivered:
        with project.store.write() as w:
            w.executemany("INSERT OR REPLACE INTO alert_notifications VALUES (?, ?, ?, ?)",
                          [(key, int(firing), now, n["message"]) for key, firing, n in sending])
    out.seconds = time.monotonic() - started
    return out


def read_log(project: Project, *, limit: int = 200) -> list[dict[str, Any]]:
    """The last ``limit`` lines of the project's alert log (oldest first)."""
    path = project.path / LOG_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[-limit:]
    return [json.loads(line) for line in lines if line.strip()]
