"""One served deployment: what it serves (spec, prompt, keys, limits) and what its requests
share (rate buckets, the load, refusal sampling), with the few things every route does — answer
an error in the one shape, trace a request that calls no model, count a refusal, and answer one
item with the deployed prompt and models (``Service.answer``, which every answering route uses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.serve.breaker import Breakers, resting
from workbench.serve.deployment import (
    ENV_API_KEYS,
    NotDeployed,
    latest_deployment,
    max_body_bytes,
)
from workbench.serve.limits import RateLimiter
from workbench.serve.outcome import Outcome
from workbench.serve.protection import _COUNT_REFUSAL, _checked_keys, api_keys_from_env
from workbench.serve.safety import ContentFilter, refused

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.serve.limits import Counters


# Paths anyone may read (no key, no rate token): health and the documentation.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/redoc",
                          "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css",
                          "/docs/favicon.png"})


SHADOW_CLIENT = "shadow"  # whose spend a shadow's calls are: the service's, never a key's


class Service:
    """The state of one running service (one per ``create_app``)."""

    def __init__(self, project: Project, *, api_keys: list[str] | None = None,
                 allow_anonymous: bool = False, counters: Counters | None = None,
                 redis_url: str | None = None):
        from workbench.serve import rollout
        from workbench.serve.keys import KeyRing
        from workbench.serve.limits import MemoryCounters, ServiceLimits

        self.project = project
        # What is served: the live arm and a staged candidate, swapped as a whole when the
        # project's deployment changes (``refresh``); ``spec``, ``prompt`` and ``train`` are
        # the live arm's.
        self.arms = rollout.load_arms(project, latest_deployment(project))
        spec = self.spec
        self.following = rollout.Following(rollout.request_shape(spec))
        self.shadows = rollout.ShadowRunner()
        self.keys = _checked_keys(list(api_keys) if api_keys is not None
                                  else api_keys_from_env())
        # the project's keys (workbench keys create) beside those: created and revoked live
        self.keyring = KeyRing(project, self.keys)
        if not self.keys and not self.keyring.active_project_keys and not allow_anonymous:
            raise NotDeployed("The service has no API keys, so anyone could call it.",
                              "Make one with `workbench keys create NAME`, or set "
                              f"{ENV_API_KEYS}=key1,key2 (or pass api_keys=[...]); for a "
                              "local try-out only, start it with --no-auth.")
        # Without keys at start (--no-auth), callers are anonymous; with keys, a key is needed
        # for as long as the service runs, even once every key is revoked.
        self.auth_required = not allow_anonymous or bool(
            self.keys or self.keyring.active_project_keys)
        from workbench.privacy import project_policy

        if project_policy(project).raw_logging_forbidden:
            from workbench import pii

            pii.analyzer()  # traces are stored redacted: load the scanner now, not on a request
        from workbench.serve.shared_state import shared_state

        # Every limit is kept in ``counters``: this process's memory, or Redis when several
        # processes (workers, replicas) serve; the response cache is shared there too.
        self.shared = shared_state(project, redis_url)
        if counters is None:
            counters = self.shared.counters if self.shared is not None else MemoryCounters()
        self.counters = counters
        self.limits = ServiceLimits(project, spec, self.counters)
        self.limiter = self.limits.requests  # the deployment's requests a minute per key
        # The content filter is per arm (its prompt and settings, ``filter_for``); the circuit
        # breakers are per model, with the thresholds of the deployment served at start.
        self._filters: dict[int, tuple[Any, ContentFilter]] = {}
        self.breakers = Breakers.for_spec(spec)
        from workbench.serve.semantic_cache import SemanticCache

        self.semantic = SemanticCache.for_service(self)  # None unless the deployment has it
        # requests answering now, and a moving average of how long one takes (event loop only)
        self.load = {"in_progress": 0, "latency_s": spec.timeout_s / 3}
        # Requests refused before a key is known are limited per address, so guessing keys or
        # flooding the service cannot fill the traces.
        self.unknown_callers = RateLimiter(per_minute=30, burst=10, counters=self.counters,
                                           prefix="unknown:")
        # Characters are limited per field once decoded (the request models); bytes at this
        # separate, higher bound: every field at its limit, each character in its longest escape.
        self.max_body = max_body_bytes(spec)
        self.public = set(PUBLIC_PATHS)
        self.routes: dict[str, set[str]] = {}  # path -> methods of the keyed routes
        # Routes that call a model: bounded by the deployment's queue (max_waiting) and timeout.
        self.answering_routes: set[str] = set()
        # (method, path) -> the error statuses the OpenAPI document lists for it
        self.documented_errors: dict[tuple[str, str], set[int]] = {}
        # path -> what a 422 there tells the caller to send (else the template's fields)
        self.invalid_fix: dict[str, str] = {}
        # path -> the JSON schema of its error bodies where they are not the one shape (the
        # OpenAI-compatible routes), and (method, path, status) -> what an error means there
        self.error_schema: dict[str, dict[str, Any]] = {}
        self.error_text: dict[tuple[str, str, int], str] = {}
        self._sampled: dict[str, Any] = {"minute": 0.0, "seen": set()}

    @property
    def spec(self):
        return self.arms.live.spec

    @property
    def prompt(self):
        return self.arms.live.prompt

    @property
    def train(self):
        return self.arms.live.train

    @property
    def deployed_version(self) -> int:
        return self.arms.version

    def refresh(self) -> None:
        """Follow the project's latest deployment (a promotion, a rollback, a staged
        candidate) without a restart; looks at most once a second."""
        from workbench.serve.rollout import follow

        follow(self)

    def adopt(self, spec: Any) -> None:
        """What else a newly followed live arm's settings decide: the request rate and burst
        (the buckets are kept), the limits' texts, the circuit breakers (made again only when
        their settings change: a fresh circuit per model) and the semantic cache (its entries are
        per deployment version: the new live arm starts its own, or none)."""
        from workbench.serve.breaker import BreakerSettings
        from workbench.serve.semantic_cache import SemanticCache

        self.limiter.rate, self.limiter.burst = spec.rate_limit_per_minute / 60.0, float(
            spec.burst)
        self.limits.spec = spec
        if BreakerSettings.of(spec) != self.breakers.settings:
            self.breakers = Breakers.for_spec(spec)
        self.semantic = SemanticCache.for_service(self)

    def filter_for(self, arm: Any) -> ContentFilter:
        """The content filter of one arm: its prompt (for leak checks) and its settings; made
        once per arm, again when the service follows a new deployment."""
        made = self._filters.get(id(arm))
        if made is None or made[0] is not arm:
            if len(self._filters) > 8:  # arms of deployments no longer served
                self._filters.clear()
            made = self._filters[id(arm)] = (arm, ContentFilter(self.project, arm.spec,
                                                                 arm.prompt))
        return made[1]

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
               route: str = "/v1/predict", user: str | None = None,
               on_text: Callable[[str], None] | None = None) -> Outcome:
        """Answer one item (the template's variables) with the deployed prompt: the primary
        model (with its adapter), then each fallback, within the request's deadline. Traced as
        one ``serve.request`` span with the model calls inside; ``user`` (the caller's own id
        for its end user) is recorded on it as ``workbench.user``.

        With ``on_text``, the model's reply is streamed: each piece is passed to it as the model
        writes it, once the content filter has seen it (``ContentFilter.stream_gate``: a reply
        that must be moderated or redacted whole arrives whole). A streamed reply is never
        repaired (the caller has seen it: it is parsed as it stands), and once a piece has been
        passed on no fallback is tried (its reply would be appended to a different model's).

        With a staged candidate (``workbench.serve.rollout``) the arm is picked here: a canary
        answers its share of the callers (by key, or ``user``, an end-user id, sticky); a
        shadow is called on the same item in the background once the live answer is made."""
        from functools import partial

        from workbench.serve.rollout import unit_of

        arms = self.arms
        arm = arms.pick(unit_of(client, user))
        if arm is not arms.live:  # the guard's deadline counts the live arm's timeout
            deadline += arm.spec.timeout_s - arms.live.spec.timeout_s
        outcome = self._answer_with(arm, arms.version, item, request_id=request_id,
                                    client=client, deadline=deadline, route=route, user=user,
                                    on_text=on_text)
        shadow = arms.shadow
        if shadow is not None and outcome.status == 200:  # what the live arm refused, it keeps
            self.shadows.submit(partial(self._answer_with, shadow, arms.version, dict(item),
                                        request_id=request_id, client=client, deadline=None,
                                        route=route, user=user, live=outcome),
                                bound=arms.live.spec.max_waiting)
        return outcome

    def _answer_with(self, arm: Any, version: int, item: dict[str, Any], *, request_id: str,
                     client: str, deadline: float | None, route: str,
                     user: str | None = None, live: Outcome | None = None,
                     on_text: Callable[[str], None] | None = None) -> Outcome:
        """Answer with one arm. A shadow call (``live``: the live arm's outcome) starts its
        own trace, linked to the live request, and records whether the answers agree."""
        from workbench.prompts.run import complete_item
        from workbench.serve.rollout import agrees
        from workbench.tracing import trace

        spec = arm.spec
        started = time.perf_counter()
        if deadline is None:
            deadline = time.monotonic() + spec.timeout_s
        # a shadow carries no request_id: feedback and lookups find the live answer only
        ids = ({"workbench.shadow_of": request_id, "workbench.live_trace_id": live.trace_id}
               if live is not None else {"workbench.request_id": request_id})
        with trace("serve.request", self.project, **{
                "http.route": route, **ids,
                "workbench.client": client,
                "workbench.request": item,
                "workbench.deployment": version, "workbench.arm": arm.name,
                "workbench.prompt": spec.prompt, "workbench.prompt_version": spec.prompt_version,
                "workbench.primary_model": spec.model,
                **({"workbench.user": user} if user is not None else {})}) as span:
            content_filter = self.filter_for(arm)
            screened = content_filter.check_input(item, span, deadline=deadline)
            if screened.blocked:
                return refused(screened, span, request_id=request_id, started=started,
                               primary=spec.model)
            gate = content_filter.stream_gate(item, on_text) if on_text is not None else None
            streaming = {"on_text": gate.feed} if gate is not None else {}
            errors: list[str] = []
            skipped: list[str] = []  # resting models (their circuit is open)
            result = None
            model = spec.model
            # The semantic cache holds the live deployment's answers it was started with: a
            # candidate arm, a shadow or a deployment followed since then answers for itself.
            semantic = self.semantic if (
                self.semantic is not None and live is None and arm is self.arms.live
                and version == self.semantic.deployment) else None
            hit, vector = semantic.lookup(item) if semantic else (None, None)
            if hit is not None:  # answered from a request close in meaning
                result, model = hit.result, hit.model
                span.attributes["workbench.semantic_similarity"] = round(hit.similarity, 4)
            try:
                for i, model in enumerate([] if hit else [spec.model, *spec.fallbacks]):
                    # A circuit per model, and per model + adapter for an adapted primary: a
                    # candidate's broken adapter never rests the live arm's model.
                    circuit = f"{model} + {spec.adapter}" if spec.adapter and i == 0 else model
                    # (a shadow neither asks nor tells the breakers: it may not take the one
                    # trial a resting model allows, nor rest a model the live arm serves)
                    if live is None and not self.breakers.allow(circuit):
                        skipped.append(circuit)
                        continue
                    if gate is not None:
                        gate.reset()  # nothing reached the caller: the fallback starts afresh
                    began = time.monotonic()
                    result = complete_item(
                        self.project, arm.prompt, item, model=model, train=arm.train,
                        repair_retries=0 if streaming else spec.repair_retries,
                        cache=spec.cache, timeout=spec.timeout_s, retries=spec.retries,
                        deadline=deadline, trace_steps=True, **streaming,
                        **({"adapter": spec.adapter} if spec.adapter and i == 0 else {}))
                    if live is None:  # a shadow's failures are the candidate's, not serving's
                        self.breakers.record(circuit, result, counted=began < deadline)
                    if result.completion is not None:
                        break
                    errors.append(f"{model}: {result.error}")
                    if gate is not None and gate.started:
                        break
            except Exception as exc:  # a bug, not a model failure: say so, keep serving
                errors.append(f"{type(exc).__name__}: {exc}")
                status, message = 500, "The service failed on this request."
            else:
                status = 200 if result is not None and result.completion is not None else (
                    504 if errors and all("did not answer" in e for e in errors) else 502)
                message = (f"No model answered within the service's {spec.timeout_s:g} s "
                           "timeout." if status == 504 else
                           "No model could answer this request.")
            if skipped:
                span.attributes["workbench.breaker.skipped"] = skipped
                errors.append(f"skipped (circuit open): {', '.join(skipped)}")
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
                wait = None
                if status == 502 and len(errors) == 1 and skipped:  # no model was called
                    wait = self.breakers.retry_after(skipped)
                    status, (message, fix) = 503, resting(wait)
                    span.attributes["http.response.status_code"] = status
                return Outcome(status, request_id, span.trace_id,
                               round((time.perf_counter() - started) * 1000, 2),
                               message=message, fix=fix, primary=spec.model, arm=arm.name,
                               retry_after=wait)
            # What the model calls used is spent whatever the filter decides next: tokens a
            # minute and this month's spend for the key (a shadow's count for the service only).
            self.limits.debit_result(client if live is None else SHADOW_CLIENT, result)
            span.attributes["workbench.cost_usd"] = result.cost_usd
            result, checked = content_filter.check_output(item, result, span, deadline=deadline)
            if checked.blocked:
                return refused(checked, span, request_id=request_id, started=started,
                               primary=spec.model)
            if gate is not None:
                gate.finish()  # the held-back end of a reply that passed
            completion = result.completion
            if vector is not None and hit is None and result.parsed.ok:
                semantic.store(vector, model, result)
            span.attributes.update({
                "http.response.status_code": 200, "workbench.model": model,
                "workbench.fallback_used": model != spec.model,
                "workbench.cache_hit": completion.cached, "workbench.cost_usd": result.cost_usd,
                "workbench.parse_ok": result.parsed.ok,
                "workbench.output": completion.text})
            if live is not None and live.status == 200:
                span.attributes["workbench.agrees"] = agrees(live.result, result)
            return Outcome(200, request_id, span.trace_id,
                           round((time.perf_counter() - started) * 1000, 2), model=model,
                           result=result, primary=spec.model, arm=arm.name,
                           flags=[*screened.flags, *checked.flags])
