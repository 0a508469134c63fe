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

from workbench.otlp.config import (
    DEFAULT_BATCH,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT_S,
    Endpoint,
    ExportError,
    basic_auth,
    endpoint_from_env,
    live_disabled_by_env,
    parse_key_values,
    resource_attributes,
    safe_url,
    traces_url,
)
from workbench.otlp.encoding import (
    Deployments,
    SpanRow,
    encode,
    span_name_and_attributes,
)
from workbench.otlp.export import (
    ExportResult,
    export_spans,
    export_summary,
    exports,
    parse_since,
)
from workbench.otlp.live import (
    LiveExporter,
    flush,
    live_from_env,
    live_status,
    start_live,
    stop_live,
)
from workbench.otlp.transport import Outcome, Sender, backoff_s, send_with_retries

__all__ = [
    "DEFAULT_BATCH", "DEFAULT_QUEUE", "DEFAULT_TIMEOUT_S", "Deployments", "Endpoint",
    "ExportError", "ExportResult", "LiveExporter", "Outcome", "Sender", "SpanRow", "backoff_s",
    "basic_auth", "encode", "endpoint_from_env", "export_spans", "export_summary", "exports",
    "flush", "live_disabled_by_env", "live_from_env", "live_status", "parse_key_values",
    "parse_since", "resource_attributes", "safe_url", "send_with_retries",
    "span_name_and_attributes", "start_live", "stop_live", "traces_url",
]
