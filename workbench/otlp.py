"""OpenTelemetry export: the project's spans to any OTLP/HTTP collector (Phoenix, Langfuse, an
OpenTelemetry Collector, Jaeger, ...), encoded with the official ``opentelemetry-proto``
messages and sent as ``application/x-protobuf``.

Two ways out:

- **Live.** With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set,
  every span ``workbench.tracing.write_span`` stores is also queued here (a bounded queue: when
  it is full the span is dropped and counted, never waited for) and a background thread sends
  batches, retrying with backoff on 429/5xx and connection errors. A slow or absent collector
  never slows or breaks the caller; what is pending is flushed at exit within a few seconds.
  The standard variables are honoured: ``..._HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``,
  ``..._CERTIFICATE``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
  ``OTEL_SDK_DISABLED``, ``OTEL_TRACES_EXPORTER=none`` and the ``OTEL_BSP_*`` batch settings.
- **After the fact.** ``export_spans(project, url, since=...)`` (``workbench traces export
  --otlp URL``) sends the stored spans in batches with progress and remembers what it sent in
  the ``otlp_exports`` table, so ``since="last"`` sends only what is new.

Spans keep their ids (16-byte trace ids, 8-byte span ids, parent links), times in ns, status
and errors. Attributes follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``: a
model call is named ``chat MODEL``, with its provider, model, token usage and messages in the
conventions' ``parts`` form) and keep the workbench's own (``workbench.cost_usd``, prompt name
and version, deployment, run id). Phoenix and Langfuse both read ``gen_ai.*``; a few extra
keys make them show the rest in their own fields: ``gen_ai.usage.cost`` (Langfuse's cost),
``session.id`` for a run's calls, ``input.value``/``output.value`` and
``openinference.span.kind`` on the service's request spans, and the resource attribute
``openinference.project.name`` (Phoenix files the spans under the workbench project's name).
"""

from __future__ import annotations

import atexit
import base64
import gzip
import http.client
import json
import os
import random
import re
import sqlite3
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from workbench.errors import MissingDependency, WorkbenchError

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.tracing import Span

TRACES_PATH = "/v1/traces"
DEFAULT_SERVICE_NAME = "llmops-workbench"
DEFAULT_TIMEOUT_S = 10.0  # OTEL_EXPORTER_OTLP_TIMEOUT's default (10,000 ms)
DEFAULT_QUEUE = 2048  # OTEL_BSP_MAX_QUEUE_SIZE's default
DEFAULT_BATCH = 512  # OTEL_BSP_MAX_EXPORT_BATCH_SIZE's default
DEFAULT_DELAY_S = 5.0  # OTEL_BSP_SCHEDULE_DELAY's default (5,000 ms)
DEFAULT_EXPORT_TIMEOUT_S = 30.0  # OTEL_BSP_EXPORT_TIMEOUT: one batch, retries included
EXIT_BUDGET_S = 5.0  # at exit, pending spans get at most this long (one attempt per batch)
RETRY_BASE_S = 0.5  # first retry delay; doubles, with jitter, up to RETRY_MAX_S
RETRY_MAX_S = 30.0
MAX_ATTEMPTS = 6
RETRYABLE = frozenset({429, 500, 502, 503, 504})

_SECRET_HEADERS = re.compile(r"authorization|api[-_]?key|token|secret|password|cookie",
                             re.IGNORECASE)


class ExportError(WorkbenchError):
    """Spans could not be sent to the collector."""


def _proto():
    """The opentelemetry-proto modules, imported on first use (protobuf loads in ~50 ms)."""
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        from opentelemetry.proto.trace.v1 import trace_pb2
    except ImportError as exc:
        raise MissingDependency(
            "OTLP export requires optional dependencies (opentelemetry-proto).",
            "Install with: pip install opentelemetry-proto") from exc
    return trace_service_pb2, trace_pb2


# -- where to send: URLs, headers, the standard environment variables ------------------------------

def traces_url(url: str) -> str:
    """The traces URL for ``url``: used as given when it already ends in ``/v1/traces``, else
    ``/v1/traces`` is appended (``http://127.0.0.1:6006`` for Phoenix,
    ``https://cloud.langfuse.com/api/public/otel`` for Langfuse)."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ExportError(f"{url!r} is not an http(s) URL of an OTLP collector.",
                          "Give its address, e.g. http://127.0.0.1:6006 (Phoenix) or "
                          "https://cloud.langfuse.com/api/public/otel (Langfuse).")
    if parts.path.rstrip("/").endswith(TRACES_PATH):
        return text
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + TRACES_PATH))


def safe_url(url: str) -> str:
    """``url`` without credentials or query string: the form shown and stored."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_key_values(text: str | None, what: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` with percent-encoded values (the format of ``OTEL_EXPORTER_OTLP_HEADERS``
    and ``OTEL_RESOURCE_ATTRIBUTES``)."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExportError(f"{what} has an entry without a key=value: {item.strip()!r}.",
                              f"Write {what} as key1=value1,key2=value2 (values URL-encoded).")
        out[unquote(key.strip())] = unquote(value.strip())
    return out


def basic_auth(public_key: str, secret_key: str) -> str:
    """The ``Authorization`` header value for Langfuse's OTLP endpoint from its two keys."""
    return "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()


@dataclass(frozen=True)
class Endpoint:
    """One collector: its traces URL and how to talk to it. Headers never reach the project."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S
    compression: str | None = None  # "gzip" or None
    certificate: str | None = None  # a CA bundle for https

    def __repr__(self) -> str:
        shown = {k: ("***" if _SECRET_HEADERS.search(k) else v) for k, v in self.headers.items()}
        return f"Endpoint({safe_url(self.url)!r}, headers={shown})"


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _env_ms(environ: Mapping[str, str], default_s: float, *names: str) -> float:
    value = _env(environ, *names)
    if value is None:
        return default_s
    try:
        ms = float(value)
        if ms <= 0:
            raise ValueError
        return ms / 1000
    except ValueError:
        raise ExportError(f"{names[0]}={value!r} is not a time in milliseconds.",
                          f"Set {names[0]} to a positive number of milliseconds, or unset it.")


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = _env(environ, name)
    if value is None:
        return default
    try:
        number = int(value)
        if number <= 0:
            raise ValueError
        return number
    except ValueError:
        raise ExportError(f"{name}={value!r} is not a positive whole number.",
                          f"Set {name} to a positive whole number, or unset it.")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def endpoint_from_env(environ: Mapping[str, str] | None = None, *,
                      url: str | None = None) -> Endpoint | None:
    """The collector the standard ``OTEL_EXPORTER_OTLP_*`` variables name, or ``url`` with the
    headers, timeout and TLS settings they give; None when no endpoint is set.

    ``..._TRACES_ENDPOINT`` is used as given; ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL that
    gets ``/v1/traces``. Only ``http/protobuf`` is spoken: another protocol is an error."""
    env = os.environ if environ is None else environ
    protocol = _env(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if url is None:
        full = _env(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        base = _env(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
        if full is None and base is None:
            return None
        if protocol is not None and protocol.lower() != "http/protobuf":
            raise ExportError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol!r}; the workbench sends OTLP over "
                "HTTP with protobuf only.",
                "Set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and point the endpoint at the "
                "collector's HTTP port (4318 for an OpenTelemetry Collector, 6006 for Phoenix).")
        if full is not None:
            traces_url(full)  # checks it is an http(s) URL
            url = full
        else:
            url = urlunsplit(urlsplit(base)._replace(
                path=urlsplit(base).path.rstrip("/") + TRACES_PATH))
            traces_url(url)
    else:
        url = traces_url(url)
    headers = parse_key_values(_env(env, "OTEL_EXPORTER_OTLP_HEADERS"),
                               "OTEL_EXPORTER_OTLP_HEADERS")
    headers.update(parse_key_values(_env(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
                                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS"))
    compression = _env(env, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                       "OTEL_EXPORTER_OTLP_COMPRESSION")
    if compression is not None and compression.lower() not in ("gzip", "none"):
        raise ExportError(f"OTEL_EXPORTER_OTLP_COMPRESSION={compression!r} is not supported.",
                          "Use gzip or none.")
    return Endpoint(
        url=url, headers=headers,
        timeout_s=_env_ms(env, DEFAULT_TIMEOUT_S, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                          "OTEL_EXPORTER_OTLP_TIMEOUT"),
        compression="gzip" if (compression or "").lower() == "gzip" else None,
        certificate=_env(env, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                         "OTEL_EXPORTER_OTLP_CERTIFICATE"))


def live_disabled_by_env(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the environment switches live export off, or None."""
    env = os.environ if environ is None else environ
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return "OTEL_SDK_DISABLED is true"
    exporters = [e.strip().lower() for e in (env.get("OTEL_TRACES_EXPORTER") or "").split(",")
                 if e.strip()]
    if exporters and "otlp" not in exporters:
        return f"OTEL_TRACES_EXPORTER is {env.get('OTEL_TRACES_EXPORTER')!r}"
    return None


def resource_attributes(project_name: str | None,
                        environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The resource every span is sent with: the service, the workbench, the project; then
    ``OTEL_RESOURCE_ATTRIBUTES``, then ``OTEL_SERVICE_NAME`` (the standard precedence)."""
    import workbench

    env = os.environ if environ is None else environ
    attributes: dict[str, Any] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": workbench.__version__,
        "telemetry.sdk.name": "llmops-workbench",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": workbench.__version__,
    }
    if project_name:
        attributes["workbench.project.name"] = project_name
        attributes["openinference.project.name"] = project_name  # Phoenix's project
    attributes.update(parse_key_values(_env(env, "OTEL_RESOURCE_ATTRIBUTES"),
                                       "OTEL_RESOURCE_ATTRIBUTES"))
    service = _env(env, "OTEL_SERVICE_NAME")
    if service:
        attributes["service.name"] = service
    return attributes


# -- what is sent: the workbench's spans in the GenAI semantic conventions -------------------------

_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):  # OpenAI-style content parts
        parts = []
        for piece in content:
            if isinstance(piece, Mapping) and piece.get("type") == "text":
                parts.append({"type": "text", "content": piece.get("text", "")})
            else:
                parts.append({"type": "generic", "content": piece})
        return parts
    return [] if content is None else [{"type": "text", "content": str(content)}]


def _messages(messages: Any, finish_reasons: Sequence[str] | None = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chat messages as the GenAI conventions write them (``role`` + ``parts``), with system
    messages apart (they go to ``gen_ai.system_instructions``)."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        parts = _parts(message.get("content"))
        if role == "system":
            system.extend(parts)
            continue
        converted: dict[str, Any] = {"role": role, "parts": parts}
        if finish_reasons is not None and i < len(finish_reasons) and finish_reasons[i]:
            converted["finish_reason"] = finish_reasons[i]
        out.append(converted)
    return system, out


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _error_message(error: str | None) -> str:
    """The message of a stored error ("ValueError: bad input" → "bad input")."""
    if not error:
        return ""
    head, sep, rest = error.partition(":")
    return rest.strip() if sep and head.strip().isidentifier() else error


def _error_type(error: str | None) -> str:
    if error:
        head = error.split(":", 1)[0].strip()
        if head.isidentifier():
            return head
    return "error"


def span_name_and_attributes(name: str, attributes: Mapping[str, Any]
                             ) -> tuple[str, int, dict[str, Any]]:
    """The OpenTelemetry name, kind (a ``SpanKind`` number) and attributes of a stored span."""
    out = {k: v for k, v in attributes.items() if v is not None}
    out["workbench.span.name"] = name
    operation = out.get("gen_ai.operation.name")
    if operation is not None:  # a model call
        model = out.get("gen_ai.request.model")
        provider = out.get("gen_ai.provider.name")
        if provider is not None:
            out.setdefault("gen_ai.system", provider)  # the name older consumers read
        if model is not None:
            out.setdefault("gen_ai.response.model", model)
        reasons = out.get("gen_ai.response.finish_reasons")
        if isinstance(reasons, str):
            reasons = [reasons]
        if "gen_ai.input.messages" in out:
            system, messages = _messages(out.pop("gen_ai.input.messages"))
            out["gen_ai.input.messages"] = _json(messages)
            if system:
                out["gen_ai.system_instructions"] = _json(system)
        if "gen_ai.output.messages" in out:
            _, messages = _messages(out.pop("gen_ai.output.messages"), reasons)
            out["gen_ai.output.messages"] = _json(messages)
        cost = out.get("workbench.cost_usd")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            out["gen_ai.usage.cost"] = float(cost)
        if "workbench.run_id" in out:
            out.setdefault("session.id", out["workbench.run_id"])
        otel_name = f"{operation} {model}" if model else str(operation)
        return otel_name, 3, out  # SPAN_KIND_CLIENT
    if name == "serve.request":
        out.setdefault("openinference.span.kind", "CHAIN")
        if "workbench.request" in out:
            out.setdefault("input.value", _json(out["workbench.request"]))
            out.setdefault("input.mime_type", "application/json")
        if "workbench.output" in out:
            out.setdefault("output.value", out["workbench.output"])
        return name, 2, out  # SPAN_KIND_SERVER
    out.setdefault("openinference.span.kind", "CHAIN")  # Phoenix: a step around model calls
    return name, 1, out  # SPAN_KIND_INTERNAL


def _any_value(value: Any) -> Any:
    """``value`` as an OTLP ``AnyValue``: scalars as themselves, lists of one scalar type as
    arrays, anything else (mappings, mixed or nested lists) as a JSON string, as the
    conventions do for structured values."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, (list, tuple)) and _one_scalar_kind(value):
        return AnyValue(array_value=ArrayValue(values=[_any_value(v) for v in value]))
    return AnyValue(string_value=_json(value))


def _one_scalar_kind(values: Sequence[Any]) -> bool:
    """Whether ``values`` can be an OTLP array: non-empty, all strings, all booleans or all
    numbers."""
    kinds = {"bool" if isinstance(v, bool) else "num" if isinstance(v, (int, float))
             else "str" if isinstance(v, str) else "other" for v in values}
    return len(kinds) == 1 and "other" not in kinds


# Most attribute pairs repeat from span to span (the model, the provider, the operation, a
# flag). Each pair is serialized once by opentelemetry-proto, as a Span holding only that
# attribute, and the bytes are kept: a span's attributes are then the concatenation of its
# pairs' bytes, parsed into the span by protobuf in one call (concatenated messages merge,
# repeated fields append). Three times faster than building KeyValue messages one by one.
_ATTRIBUTE_BYTES: dict[tuple[str, type, Any], bytes] = {}
_CACHE_MAX = 8192
_CACHE_VALUE_CHARS = 256


def _attribute_bytes(key: str, value: Any) -> bytes:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    return Span(attributes=[KeyValue(key=key, value=_any_value(value))]).SerializeToString()


def _key_values(attributes: Mapping[str, Any]) -> list[Any]:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    return [KeyValue(key=key, value=_any_value(value)) for key, value in attributes.items()
            if value is not None]


def _attributes_blob(attributes: Mapping[str, Any]) -> bytes:
    """``attributes`` as the serialized ``attributes`` field of a Span."""
    parts = []
    cache = _ATTRIBUTE_BYTES
    for key, value in attributes.items():
        if value is None:
            continue
        kind = type(value)
        # Names, flags and small counts repeat; costs, latencies and token counts rarely do
        # and would fill the cache with values never seen again.
        if (kind is str and len(value) <= _CACHE_VALUE_CHARS) or kind is bool or (
                kind is int and -1 <= value <= 64):
            blob = cache.get((key, kind, value))
            if blob is None:
                blob = _attribute_bytes(key, value)
                if len(cache) < _CACHE_MAX:
                    cache[(key, kind, value)] = blob
        else:
            blob = _attribute_bytes(key, value)
        parts.append(blob)
    return b"".join(parts)


def _id(hex_id: str | None, size: int) -> bytes:
    """A stored hex id as OTLP bytes; anything else (hand-made ids) hashed to the right size."""
    if not hex_id:
        return b""
    try:
        raw = bytes.fromhex(hex_id)
        if len(raw) == size and any(raw):
            return raw
    except ValueError:
        pass
    import hashlib

    return hashlib.sha256(hex_id.encode()).digest()[:size]


@dataclass
class SpanRow:
    """A span as stored: what the encoder needs, whether it came from the table or live."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_time: float
    end_time: float
    status: str
    error: str | None
    attributes: Mapping[str, Any]

    @classmethod
    def of(cls, span: Span, attributes: Mapping[str, Any]) -> SpanRow:
        return cls(span.trace_id, span.span_id, span.parent_id, span.name, span.start_time,
                   span.end_time, span.status, span.error, attributes)


class Deployments:
    """What a deployment version serves (prompt name and version, model), read once per
    version from the project's records: a service's request spans name only the deployment,
    and exported spans should say which prompt version answered."""

    def __init__(self, project: Project):
        self.project = project
        self._known: dict[Any, dict[str, Any]] = {}

    def tags(self, version: Any) -> dict[str, Any]:
        if version not in self._known:
            tags: dict[str, Any] = {}
            try:
                row = self.project.store.db.execute(
                    "SELECT body FROM records WHERE kind = 'deployment' AND name = 'service' "
                    "AND version = ?", (int(version),)).fetchone()
                body = json.loads(row[0]) if row else {}
            except (ValueError, TypeError, sqlite3.Error):
                body = {}
            for key, tag in (("prompt", "workbench.prompt.name"),
                             ("prompt_version", "workbench.prompt.version"),
                             ("model", "workbench.deployment.model"),
                             ("adapter", "workbench.deployment.adapter")):
                if body.get(key) is not None:
                    tags[tag] = body[key]
            self._known[version] = tags
        return self._known[version]

    def enrich(self, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
        version = attributes.get("workbench.deployment")
        if version is None or "workbench.prompt.name" in attributes:
            return attributes
        tags = self.tags(version)
        return {**tags, **attributes} if tags else attributes


def encode(groups: Iterable[tuple[Mapping[str, Any], Iterable[SpanRow]]]) -> bytes:
    """An ``ExportTraceServiceRequest`` (serialized) holding each (resource, spans) group."""
    trace_service_pb2, trace_pb2 = _proto()
    import workbench

    Status = trace_pb2.Status
    ok = Status(code=Status.STATUS_CODE_OK)
    request = trace_service_pb2.ExportTraceServiceRequest()
    for resource, rows in groups:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(_key_values(resource))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "workbench.tracing"
        scope_spans.scope.version = workbench.__version__
        add = scope_spans.spans.add
        for row in rows:
            name, kind, attributes = span_name_and_attributes(row.name, row.attributes)
            start = int(row.start_time * 1e9)
            end = max(start, int(row.end_time * 1e9))
            if row.status == "error":
                error_type = _error_type(row.error)
                attributes.setdefault("error.type", error_type)
                span = add(status=Status(code=Status.STATUS_CODE_ERROR,
                                         message=row.error or ""))
                span.events.add(name="exception", time_unix_nano=end, attributes=_key_values(
                    {"exception.type": error_type,
                     "exception.message": _error_message(row.error)}))
            else:
                span = add(status=ok)
            span.trace_id = _id(row.trace_id, 16)
            span.span_id = _id(row.span_id, 8)
            if row.parent_id:
                span.parent_span_id = _id(row.parent_id, 8)
            span.name = name
            span.kind = kind
            span.start_time_unix_nano = start
            span.end_time_unix_nano = end
            span.MergeFromString(_attributes_blob(attributes))
    return request.SerializeToString()


# -- how it is sent: one POST, retries with backoff ----------------------------------------------

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
    import workbench

    return f"llmops-workbench/{workbench.__version__} (OTLP/HTTP protobuf)"


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


# -- live export -----------------------------------------------------------------------------------

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
    from workbench import tracing

    env = dict(os.environ if environ is None else environ)
    stop_live()
    off = live_disabled_by_env(env) if url is None else None
    endpoint = None if off else endpoint_from_env(env, url=url)
    if endpoint is None:
        _live_off_reason = off or ("no OTEL_EXPORTER_OTLP_ENDPOINT or "
                                   "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set")
        tracing.set_exporter(None)
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
    tracing.set_exporter(_live.offer)
    return _live


def stop_live(timeout: float | None = None) -> dict[str, Any] | None:
    """Flush (one last attempt, within ``timeout``) and stop live export; returns its counts."""
    global _live, _live_off_reason
    from workbench import tracing

    with _live_lock:
        live, _live = _live, None
    tracing.set_exporter(None)
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


# -- after the fact: stored spans ------------------------------------------------------------

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
