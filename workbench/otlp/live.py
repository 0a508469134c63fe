"""Live export: every span ``workbench.tracing.write_span`` stores is also queued here and
sent in batches by a background thread."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.span_export import set_exporter
from workbench.otlp.config import (
    DEFAULT_BATCH,
    DEFAULT_DELAY_S,
    DEFAULT_EXPORT_TIMEOUT_S,
    DEFAULT_QUEUE,
    EXIT_BUDGET_S,
    MAX_ATTEMPTS,
    RETRY_BASE_S,
    Endpoint,
    _env_int,
    _env_ms,
    _proto,
    endpoint_from_env,
    live_disabled_by_env,
    resource_attributes,
    safe_url,
)
from workbench.otlp.encoding import (
    Deployments,
    SpanRow,
    encode,
)
from workbench.otlp.transport import (
    Outcome,
    Sender,
    send_with_retries,
)

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.tracing import Span

class LiveExporter:
    """Batches spans to one collector from a background thread.

    ``offer`` is the only thing callers run: a length check and a deque append (no lock, no
    I/O, no encoding). The thread wakes every ``delay_s`` or when a batch is full, encodes and
    sends; failures are retried with backoff, then the batch is dropped and counted. Nothing
    here ever raises into the caller or makes it wait."""

    def __init__(self, endpoint: Endpoint, *, max_queue: int = DEFAULT_QUEUE,
                 batch_size: int = DEFAULT_BATCH, delay_s: float = DEFAULT_DELAY_S,
                 export_timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S,
                 retry_base_s: float = RETRY_BASE_S, max_attempts: int = MAX_ATTEMPTS,
                 exit_budget_s: float = EXIT_BUDGET_S,
                 environ: Mapping[str, str] | None = None):
        self.endpoint = endpoint
        self.max_queue = max_queue
        self.batch_size = min(batch_size, max_queue)
        self.delay_s = delay_s
        self.export_timeout_s = export_timeout_s
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.exit_budget_s = exit_budget_s
        self._environ = dict(os.environ if environ is None else environ)
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()  # shutting down: no more retries or waits
        self._lock = threading.Lock()
        self._sender = Sender(endpoint)
        self._resources: dict[str, tuple[float, dict[str, Any]]] = {}
        self._deployments: dict[str, Deployments] = {}
        self.pid = os.getpid()
        self._final_deadline = 0.0
        self.exported = 0
        self.dropped_queue_full = 0
        self.dropped_failed = 0
        self.rejected = 0
        self.retries = 0
        self.batches = 0
        self.last_error: str | None = None
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="workbench-otlp-export",
                                        daemon=True)
        self._thread.start()

    # the caller's side ----------------------------------------------------------------------
    def offer(self, project: Project, span: Span, attributes: Mapping[str, Any]) -> None:
        queue = self._queue
        if len(queue) >= self.max_queue:
            with self._lock:
                self.dropped_queue_full += 1
            return
        queue.append((project, span, attributes))
        if len(queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued so far; True when it all went (or was dropped and counted)
        within ``timeout``."""
        marker = threading.Event()
        self._queue.append(marker)
        self._wake.set()
        return marker.wait(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the thread after one last attempt per pending batch, within ``timeout``."""
        budget = self.exit_budget_s if timeout is None else timeout
        deadline = self._final_deadline = time.monotonic() + budget
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = sum(1 for item in list(self._queue) if isinstance(item, tuple))
        if left:
            with self._lock:
                self.dropped_failed += left
            self._queue.clear()
            self.last_error = self.last_error or f"not sent within {budget:g} s at exit"
        self._sender.close()

    def stats(self) -> dict[str, Any]:
        return {"endpoint": safe_url(self.endpoint.url), "queued": self._pending(),
                "exported": self.exported, "batches": self.batches,
                "dropped_queue_full": self.dropped_queue_full,
                "dropped_failed": self.dropped_failed, "rejected": self.rejected,
                "retries": self.retries, "last_error": self.last_error}

    def _pending(self) -> int:
        return sum(1 for item in list(self._queue) if isinstance(item, tuple))

    # the thread's side ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.delay_s)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # noqa: BLE001 (the thread must live on; said once)
                self._note_failure(f"{type(exc).__name__}: {exc}", 0)
            if self._stop.is_set():
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            batch: list[tuple] = []
            markers: list[threading.Event] = []
            while queue and len(batch) < self.batch_size:
                item = queue.popleft()
                if isinstance(item, tuple):
                    batch.append(item)
                else:
                    markers.append(item)
                    break  # everything before the marker goes in this batch
            if batch:
                self._send(batch)
            for marker in markers:
                marker.set()

    def _send(self, batch: list[tuple]) -> None:
        try:
            body = encode(self._groups(batch))
        except Exception as exc:  # noqa: BLE001 (a span that cannot be encoded is dropped)
            self._note_failure(f"could not encode spans: {type(exc).__name__}: {exc}",
                               len(batch))
            return
        final = self._stop.is_set()
        deadline = self._final_deadline if final else \
            time.monotonic() + self.export_timeout_s
        if deadline <= time.monotonic():
            self._note_failure("no time left at exit", len(batch))
            return
        outcome, attempts = send_with_retries(
            self._sender, body, deadline=deadline,
            retry_base_s=self.retry_base_s, max_attempts=1 if final else self.max_attempts,
            stop=self._stop, on_retry=self._count_retry)
        self.batches += 1
        if outcome.ok:
            self.exported += len(batch) - outcome.rejected
            self.rejected += outcome.rejected
            return
        self._note_failure(outcome.reason + (f" after {attempts} attempts" if attempts > 1
                                             else ""), len(batch))

    def _count_retry(self, outcome: Outcome) -> None:
        self.retries += 1
        self.last_error = outcome.reason

    def _note_failure(self, reason: str, dropped: int) -> None:
        with self._lock:
            self.dropped_failed += dropped
        self.last_error = reason
        if not self._warned and not self._stop.is_set():
            self._warned = True
            print(f"workbench: could not export traces to {safe_url(self.endpoint.url)}: "
                  f"{reason}. They stay in the project; `workbench traces export --otlp URL` "
                  "sends them later.", file=sys.stderr)

    def _groups(self, batch: list[tuple]) -> list[tuple[dict[str, Any], list[SpanRow]]]:
        by_project: dict[str, tuple[dict[str, Any], list[SpanRow]]] = {}
        for project, span, attributes in batch:
            key = str(project.path)
            group = by_project.get(key)
            if group is None:
                group = by_project[key] = (self._resource(key, project), [])
            deployments = self._deployments.get(key)
            if deployments is None or deployments.project is not project:
                deployments = self._deployments[key] = Deployments(project)
            group[1].append(SpanRow.of(span, deployments.enrich(attributes)))
        return list(by_project.values())

    def _resource(self, key: str, project: Project) -> dict[str, Any]:
        """The project's resource attributes, its name re-read from the card at most once a
        minute (reading the card is a TOML parse)."""
        cached = self._resources.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < 60:
            return cached[1]
        try:
            name = project.name
        except Exception:  # noqa: BLE001 (an unreadable card must not stop the export)
            name = project.path.name
        resource = resource_attributes(name, self._environ)
        self._resources[key] = (now, resource)
        return resource


_live: LiveExporter | None = None
_live_lock = threading.Lock()
_live_off_reason: str | None = "not started"


def start_live(url: str | None = None, *, headers: Mapping[str, str] | None = None,
               environ: Mapping[str, str] | None = None, **options: Any) -> LiveExporter | None:
    """Send every span written from now on to ``url`` (default: from the ``OTEL_*`` variables),
    replacing a running live exporter. Returns it, or None when nothing is configured or the
    environment switches export off. ``options`` go to ``LiveExporter`` (``max_queue``,
    ``batch_size``, ``delay_s``, ``retry_base_s``, ...); by default they come from the
    ``OTEL_BSP_*`` variables."""
    global _live, _live_off_reason
    env = dict(os.environ if environ is None else environ)
    stop_live()
    off = live_disabled_by_env(env) if url is None else None
    endpoint = None if off else endpoint_from_env(env, url=url)
    if endpoint is None:
        _live_off_reason = off or ("no OTEL_EXPORTER_OTLP_ENDPOINT or "
                                   "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set")
        set_exporter(None)
        return None
    if headers:
        endpoint = Endpoint(endpoint.url, {**endpoint.headers, **headers}, endpoint.timeout_s,
                            endpoint.compression, endpoint.certificate)
    _proto()  # a missing package fails here, not on the background thread
    defaults = {
        "max_queue": _env_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE),
        "batch_size": _env_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_BATCH),
        "delay_s": _env_ms(env, DEFAULT_DELAY_S, "OTEL_BSP_SCHEDULE_DELAY"),
        "export_timeout_s": _env_ms(env, DEFAULT_EXPORT_TIMEOUT_S, "OTEL_BSP_EXPORT_TIMEOUT"),
    }
    with _live_lock:
        _live = LiveExporter(endpoint, environ=env, **{**defaults, **options})
        _live_off_reason = None
    set_exporter(_live.offer)
    return _live


def stop_live(timeout: float | None = None) -> dict[str, Any] | None:
    """Flush (one last attempt, within ``timeout``) and stop live export; returns its counts."""
    global _live, _live_off_reason
    with _live_lock:
        live, _live = _live, None
    set_exporter(None)
    if live is None or live.pid != os.getpid():
        return None
    live.shutdown(timeout)
    _live_off_reason = "stopped"
    return live.stats()


def live_from_env() -> Callable[..., None] | None:
    """Called by ``workbench.tracing`` when the first span is written in a process: start live
    export if the environment asks for it. A bad setting is said once, never raised."""
    global _live_off_reason
    try:
        live = start_live()
    except WorkbenchError as exc:
        _live_off_reason = exc.one_line()
        print(f"workbench: not exporting traces: {exc.one_line()}", file=sys.stderr)
        return None
    return live.offer if live is not None else None


def flush(timeout: float = 10.0) -> bool:
    """Send the live exporter's pending spans now; True when done within ``timeout``."""
    live = _live
    return True if live is None else live.flush(timeout)


def live_status() -> dict[str, Any]:
    """Whether spans are exported live, where to, and what happened to them so far."""
    live = _live
    if live is None or live.pid != os.getpid():
        return {"enabled": False, "reason": _live_off_reason}
    return {"enabled": True, **live.stats()}


def _after_fork() -> None:
    global _live, _live_off_reason
    _live, _live_off_reason = None, "not started"


os.register_at_fork(after_in_child=_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    live = _live
    if live is None or live.pid != os.getpid():
        return
    live.shutdown()
    if live.dropped_failed or live.dropped_queue_full:
        print(f"workbench: {live.dropped_failed + live.dropped_queue_full} spans were not "
              f"exported to {safe_url(live.endpoint.url)} ({live.last_error or 'queue full'}); "
              "they are in the project: `workbench traces export --otlp URL` sends them.",
              file=sys.stderr)


