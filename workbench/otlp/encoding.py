"""What is sent: the workbench's spans in the OpenTelemetry GenAI semantic conventions,
encoded with the official opentelemetry-proto messages."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.otlp.config import (
    _proto,
)

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.tracing import Span

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
_CACHED_PER_KEY: dict[str, int] = {}
_CACHED_KINDS = (str, int, float, bool)
_CACHE_MAX = 8192
_CACHE_PER_KEY = 64
_CACHE_VALUE_CHARS = 256


_scratch = threading.local()


def _attribute_bytes(key: str, value: Any) -> bytes:
    """One attribute as the serialized ``attributes`` field of a Span. A plain number or
    string is set on a per-thread scratch Span (building three messages per value cost
    ~10 us); other values go through ``_any_value``."""
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    kind = type(value)
    if kind is int and _INT64[0] <= value <= _INT64[1] or kind in (float, str, bool):
        span = getattr(_scratch, "span", None)
        if span is None:
            span = _scratch.span = Span(attributes=[KeyValue()])
        kv = span.attributes[0]
        kv.key = key
        if kind is str:
            kv.value.string_value = value
        elif kind is bool:
            kv.value.bool_value = value
        elif kind is int:
            kv.value.int_value = value
        else:
            kv.value.double_value = value
        return span.SerializeToString()
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
        if kind in _CACHED_KINDS and (kind is not str or len(value) <= _CACHE_VALUE_CHARS):
            blob = cache.get((key, kind, value))
            if blob is None:
                blob = _attribute_bytes(key, value)
                # Names, flags and settings repeat; a cost or a token count rarely does: each
                # key keeps at most _CACHE_PER_KEY values, so those cannot fill the cache.
                seen = _CACHED_PER_KEY.get(key, 0)
                if seen < _CACHE_PER_KEY and len(cache) < _CACHE_MAX:
                    cache[(key, kind, value)] = blob
                    _CACHED_PER_KEY[key] = seen + 1
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
    """What a deployment version serves (prompt name and version, primary model), read once
    per version from the project's records: a service's request span that names only its
    deployment is exported with the deployment's ``workbench.prompt``,
    ``workbench.prompt_version`` and ``workbench.primary_model``; a span that names its own
    prompt (a canary or shadow arm) keeps its own."""

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
            for key, tag in (("prompt", "workbench.prompt"),
                             ("prompt_version", "workbench.prompt_version"),
                             ("model", "workbench.primary_model")):
                if body.get(key) is not None:
                    tags[tag] = body[key]
            self._known[version] = tags
        return self._known[version]

    def enrich(self, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
        version = attributes.get("workbench.deployment")
        if version is None or "workbench.prompt" in attributes:
            return attributes
        tags = self.tags(version)
        return {**tags, **attributes} if tags else attributes


def encode(groups: Iterable[tuple[Mapping[str, Any], Iterable[SpanRow]]]) -> bytes:
    """An ``ExportTraceServiceRequest`` (serialized) holding each (resource, spans) group."""
    trace_service_pb2, trace_pb2 = _proto()
    from workbench.version import __version__

    Status = trace_pb2.Status
    ok = Status(code=Status.STATUS_CODE_OK)
    request = trace_service_pb2.ExportTraceServiceRequest()
    for resource, rows in groups:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(_key_values(resource))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "workbench.tracing"
        scope_spans.scope.version = __version__
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


