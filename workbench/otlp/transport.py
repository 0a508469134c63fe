"""How spans are sent: one POST of an OTLP/HTTP protobuf body over a kept-alive
connection, and retries with backoff."""

from __future__ import annotations

import gzip
import http.client
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from workbench.otlp.config import (
    MAX_ATTEMPTS,
    RETRY_BASE_S,
    RETRY_MAX_S,
    RETRYABLE,
    Endpoint,
    _proto,
    basic_auth,
)


@dataclass
class Outcome:
    ok: bool
    status: int | None = None  # HTTP status; None when no answer came
    reason: str = ""
    retryable: bool = False
    rejected: int = 0  # spans the collector said it refused (OTLP partial success)
    retry_after_s: float | None = None


class Sender:
    """POSTs OTLP bodies to one endpoint over a kept-alive connection (one thread at a time)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        parts = urlsplit(endpoint.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/x-protobuf",
                         "User-Agent": _user_agent()}
        if parts.username is not None:  # credentials written into the URL
            self._headers["Authorization"] = basic_auth(unquote(parts.username),
                                                        unquote(parts.password or ""))
        self._headers.update(endpoint.headers)
        if endpoint.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                context = ssl.create_default_context(cafile=self.endpoint.certificate)
                self._conn = http.client.HTTPSConnection(self._host, self._port,
                                                         timeout=timeout, context=context)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=timeout)
        else:
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, body: bytes, timeout: float | None = None) -> Outcome:
        timeout = self.endpoint.timeout_s if timeout is None else max(0.05, timeout)
        if self.endpoint.compression == "gzip":
            body = gzip.compress(body, compresslevel=5)
        try:
            reused = self._conn is not None
            try:
                conn = self._connection(timeout)
                conn.request("POST", self._path, body=body, headers=self._headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # The collector closed the kept-alive connection while it was idle: that is
                # no failure of this request; send it again on a new connection.
                self.close()
                conn = self._connection(timeout)
                conn.request("POST", self._path, body=body, headers=self._headers)
                response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = "timed out" if isinstance(exc, TimeoutError) else (
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return Outcome(False, None, f"no answer ({reason})", retryable=True)
        status = response.status
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        if 200 <= status < 300:
            return Outcome(True, status, rejected=_rejected(payload, response))
        retry_after = _retry_after(response.getheader("Retry-After"))
        text = payload[:300].decode("utf-8", "replace").strip()
        reason = f"HTTP {status}" + (f": {text}" if text and text.isprintable() else "")
        return Outcome(False, status, reason, retryable=status in RETRYABLE,
                       retry_after_s=retry_after)


def _user_agent() -> str:
    from workbench.version import __version__

    return f"llmops-workbench/{__version__} (OTLP/HTTP protobuf)"


def _rejected(payload: bytes, response: http.client.HTTPResponse) -> int:
    """Spans the collector refused in an otherwise accepted request (OTLP partial success)."""
    if not payload or "protobuf" not in (response.getheader("Content-Type") or ""):
        return 0
    try:
        trace_service_pb2, _ = _proto()
        answer = trace_service_pb2.ExportTraceServiceResponse.FromString(payload)
        return int(answer.partial_success.rejected_spans)
    except Exception:  # noqa: BLE001 (an answer we cannot read is not a refusal)
        return 0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), RETRY_MAX_S))
    except ValueError:
        return None


def backoff_s(attempt: int, base_s: float = RETRY_BASE_S) -> float:
    """The wait before retry ``attempt`` (1, 2, ...): exponential with ±20% jitter."""
    return min(RETRY_MAX_S, base_s * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


def send_with_retries(sender: Sender, body: bytes, *, deadline: float,
                      retry_base_s: float = RETRY_BASE_S, max_attempts: int = MAX_ATTEMPTS,
                      stop: threading.Event | None = None,
                      on_retry: Callable[[Outcome], None] | None = None) -> tuple[Outcome, int]:
    """POST ``body``, retrying retryable failures with backoff until ``deadline``
    (``time.monotonic()``), ``max_attempts`` or ``stop``; returns the last outcome and the
    number of attempts."""
    attempt = 0
    while True:
        attempt += 1
        outcome = sender.post(body, timeout=min(sender.endpoint.timeout_s,
                                                deadline - time.monotonic()))
        if outcome.ok or not outcome.retryable or attempt >= max_attempts:
            return outcome, attempt
        wait = outcome.retry_after_s if outcome.retry_after_s is not None \
            else backoff_s(attempt, retry_base_s)
        if time.monotonic() + wait >= deadline or (stop is not None and stop.is_set()):
            return outcome, attempt
        if on_retry is not None:
            on_retry(outcome)
        if stop is not None:
            if stop.wait(wait):
                return outcome, attempt
        else:
            time.sleep(wait)


