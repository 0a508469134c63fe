"""Where spans go: collector URLs, headers, the standard ``OTEL_*`` variables, the
resource every span is sent with."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from workbench.errors import MissingDependency, WorkbenchError

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
    from workbench.version import __version__

    env = os.environ if environ is None else environ
    attributes: dict[str, Any] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": __version__,
        "telemetry.sdk.name": "llmops-workbench",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
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


