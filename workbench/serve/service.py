"""One served deployment: what it serves (spec, prompt, keys, limits) and what its requests
share (rate buckets, the load, refusal sampling), with the few things every route does — answer
an error in the one shape, trace a request that calls no model, count a refusal, and answer one
item with the deployed prompt and models (``Service.answer``, which every answering route uses).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.serve.deployment import ENV_API_KEYS, NotDeployed, latest_deployment
from workbench.serve.protection import (
    _COUNT_REFUSAL,
    BODY_SLACK,
    BYTES_PER_CHAR,
    FEEDBACK_CHARS,
    RateLimiter,
    _checked_keys,
    _key_id,
    api_keys_from_env,
)

if TYPE_CHECKING:
    from workbench.project import Project


# Paths anyone may read (no key, no rate token): health and the documentation.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/redoc",
                          "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css",
                          "/docs/favicon.png"})


@dataclass
class Outcome:
    """How one item was answered: ``status`` 200 with ``result`` and ``model``, or an error
    status with the message and fix a caller may see (details stay in the trace)."""

    status: int
    request_id: str
    trace_id: str
    latency_ms: float
    model: str | None = None
    result: Any = None  # workbench.prompts.run.ItemResult when status == 200
    message: str | None = None
    fix: str | None = None
    primary: str = ""  # the deployment's first model: another one answering is a fallback

    @property
    def fallback_used(self) -> bool:
        return self.model is not None and self.model != self.primary


class Service:
    """The state of one running service (one per ``create_app``)."""

    def __init__(self, project: Project, *, api_keys: list[str] | None = None,
                 allow_anonymous: bool = False, redis_url: str | None = None):
        from workbench.prompts import load_prompt

        self.project = project
        stored = latest_deployment(project)
        self.spec, self.deployed_version = stored.value, stored.version
        spec = self.spec
        self.prompt = load_prompt(project, spec.prompt, spec.prompt_version).value
        self.keys = _checked_keys(list(api_keys) if api_keys is not None
                                  else api_keys_from_env())
        if not self.keys and not allow_anonymous:
            raise NotDeployed("The service has no API keys, so anyone could call it.",
                              f"Set {ENV_API_KEYS}=key1,key2 (or pass api_keys=[...]); for a "
                              "local try-out only, start it with --no-auth.")
        self.train = None
        if spec.few_shot_dataset:
            from workbench.data.split import load_split

            self.train = load_split(project, spec.few_shot_dataset, "train",
                                    version=spec.few_shot_version)
        from workbench.privacy import project_policy

        if project_policy(project).raw_logging_forbidden:
            from workbench import pii

            pii.analyzer()  # traces are stored redacted: load the scanner now, not on a request
        from workbench.serve.shared_state import shared_state

        # Several processes (workers, replicas) share limits and the cache through Redis.
        self.shared = shared_state(project, redis_url)
        self.counters = self.shared.counters if self.shared is not None else None
        self.limiter = RateLimiter(spec.rate_limit_per_minute, spec.burst,
                                   counters=self.counters)
        from workbench.serve.semantic_cache import SemanticCache

        self.semantic = SemanticCache.for_service(self)  # None unless the deployment has it
        # requests answering now, and a moving average of how long one takes (event loop only)
        self.load = {"in_progress": 0, "latency_s": spec.timeout_s / 3}
        self.by_key = {hashlib.sha256(key.encode()).digest(): _key_id(key)
                       for key in self.keys}
        # Requests refused before a key is known are limited per address, so guessing keys or
        # flooding the service cannot fill the traces.
        self.unknown_callers = RateLimiter(per_minute=30, burst=10, counters=self.counters,
                                           name="unknown")
        # Characters are limited per field once decoded (the request models); bytes at this
        # separate, higher bound: every field at its limit, each character in its longest escape.
        self.max_body = BODY_SLACK + BYTES_PER_CHAR * max(
            len(spec.variables) * spec.max_input_chars, 2 * FEEDBACK_CHARS + 64)
        self.public = set(PUBLIC_PATHS)
        self.routes: dict[str, set[str]] = {}  # path -> methods of the keyed routes
        # Routes that call a model: bounded by the deployment's queue (max_waiting) and timeout.
        self.answering_routes: set[str] = set()
        # (method, path) -> the error statuses the OpenAPI document lists for it
        self.documented_errors: dict[tuple[str, str], set[int]] = {}
        # path -> what a 422 there tells the caller to send (else the template's fields)
        self.invalid_fix: dict[str, str] = {}
        self._sampled: dict[str, Any] = {"minute": 0.0, "seen": set()}

    # -- answers every route gives ---------------------------------------------------------------
    def redact(self, text: str) -> str:
        for key in self.keys:
            if key in text:
                text = text.replace(key, "[an API key]")
        return text

    def problem(self, status: int, message: str, fix: str, request_id: str | None = None, *,
                close: bool = False, **headers: str):
        """The one error shape, ``{"error", "fix", "request_id"}``, with no key in it."""
        from fastapi.responses import JSONResponse

        body = {"error": self.redact(message), "fix": self.redact(fix)}
        if request_id:
            body["request_id"] = request_id
        if close:  # the rest of the body is never read: the connection cannot be reused
            headers["Connection"] = "close"
        return JSONResponse(body, status_code=status, headers=headers or None)

    def shown(self, part: Any) -> str:
        """A field name as an error may show it: no key, escaped, at most 40 characters."""
        text = self.redact(str(part))
        if not text.isprintable():
            text = text.encode("unicode_escape").decode("ascii")
        return text if len(text) <= 40 else text[:39] + "…"

    # -- what is recorded --------------------------------------------------------------------------
    def note(self, route: str, status: int, message: str | None, client: str,
             request_id: str | None = None) -> None:
        """Requests that call no model (refusals, feedback) are traced too: monitoring counts
        every request (phase 8)."""
        from workbench.tracing import start_span, write_span

        attributes = {"http.route": route, "http.response.status_code": status,
                      "workbench.client": client, "workbench.deployment": self.deployed_version}
        if request_id:  # not workbench.request_id: that one names answers feedback can rate
            attributes["workbench.refused_request_id"] = request_id
        span = start_span("serve.request", attributes)
        if message is not None:
            span.status, span.error = "error", self.redact(message)
        span.end_time = span.start_time
        write_span(self.project, span)

    def count_refusal(self, route: str, status: int, message: str, client: str,
                      request_id: str, *, trace_first: bool = True) -> None:
        """A refusal the caller can repeat at will: traced the first time per client, route and
        status in a minute (with ``trace_first``), counted in ``refusal_counts`` otherwise."""
        minute = float(int(time.time() // 60) * 60)
        sampled = self._sampled
        if minute != sampled["minute"]:
            sampled["minute"], sampled["seen"] = minute, set()
        bucket = (client, route, status)
        if trace_first and bucket not in sampled["seen"]:
            sampled["seen"].add(bucket)
            self.note(route, status, message, client, request_id)
        else:
            self.project.store.defer(_COUNT_REFUSAL, (minute, client, route, status))

    # -- answering ---------------------------------------------------------------------------------
    def answer(self, item: dict[str, Any], *, request_id: str, client: str, deadline: float,
               route: str = "/v1/predict") -> Outcome:
        """Answer one item (the template's variables) with the deployed prompt: the primary
        model (with its adapter), then each fallback, within the request's deadline. Traced as
        one ``serve.request`` span with the model calls inside."""
        from workbench.prompts.run import complete_item
        from workbench.tracing import trace

        spec = self.spec
        started = time.perf_counter()
        with trace("serve.request", self.project, **{
                "http.route": route, "workbench.request_id": request_id,
                "workbench.client": client,
                "workbench.request": item,
                "workbench.deployment": self.deployed_version}) as span:
            errors: list[str] = []
            result = None
            model = spec.model
            hit, vector = self.semantic.lookup(item) if self.semantic else (None, None)
            if hit is not None:  # answered from a request close in meaning
                result, model = hit.result, hit.model
                span.attributes["workbench.semantic_similarity"] = round(hit.similarity, 4)
            try:
                for i, model in enumerate([] if hit else [spec.model, *spec.fallbacks]):
                    result = complete_item(
                        self.project, self.prompt, item, model=model, train=self.train,
                        repair_retries=spec.repair_retries, cache=spec.cache,
                        timeout=spec.timeout_s, retries=spec.retries, deadline=deadline,
                        **({"adapter": spec.adapter} if spec.adapter and i == 0 else {}))
                    if result.completion is not None:
                        break
                    errors.append(f"{model}: {result.error}")
            except Exception as exc:  # a bug, not a model failure: say so, keep serving
                errors.append(f"{type(exc).__name__}: {exc}")
                status, message = 500, "The service failed on this request."
            else:
                status = 200 if result is not None and result.completion is not None else (
                    504 if errors and all("did not answer" in e for e in errors) else 502)
                message = (f"No model answered within the service's {spec.timeout_s:g} s "
                           "timeout." if status == 504 else
                           "No model could answer this request.")
            if status != 200:
                # The details (model names, provider errors) stay in the trace, not the reply.
                span.status, span.error = "error", self.redact(" | ".join(errors))
                span.attributes["http.response.status_code"] = status
                fix = ("Try again shortly, or with a shorter input. If it keeps happening, the "
                       "service's operator can raise the deployment's timeout (workbench deploy "
                       "--timeout SECONDS), lower the prompt's max_tokens, or serve fewer "
                       "requests at once (--max-waiting); give them this request_id."
                       if status == 504 else "Try again shortly; if it persists, give the "
                                             "service's operator this request_id.")
                return Outcome(status, request_id, span.trace_id,
                               round((time.perf_counter() - started) * 1000, 2),
                               message=message, fix=fix, primary=spec.model)
            completion = result.completion
            if vector is not None and hit is None and result.parsed.ok:
                self.semantic.store(vector, model, result)
            span.attributes.update({
                "http.response.status_code": 200, "workbench.model": model,
                "workbench.fallback_used": model != spec.model,
                "workbench.cache_hit": completion.cached, "workbench.cost_usd": result.cost_usd,
                "workbench.parse_ok": result.parsed.ok,
                "workbench.output": completion.text})
            return Outcome(200, request_id, span.trace_id,
                           round((time.perf_counter() - started) * 1000, 2), model=model,
                           result=result, primary=spec.model)
