"""The FastAPI app serving a project's latest deployment: it builds the ``Service`` (what is
served and the state requests share), puts the ``Guard`` in front, answers every error in one
shape, and registers the routes and the documentation."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Literal

from workbench.serve.demo import add_demo_page
from workbench.serve.docs import KEYED_ERRORS, add_docs
from workbench.serve.guard import Guard
from workbench.serve.openai_api import add_openai_routes, is_openai_path, openai_problem
from workbench.serve.protection import (
    FEEDBACK_CHARS,
    MAX_LISTED,
    TEXT_PATTERN,
    UNKNOWN_ROUTE,
    USER_CHARS,
    _checked_user,
    _clean_text,
)
from workbench.serve.service import Service

if TYPE_CHECKING:
    from workbench.project import Project


def create_app(project: Project | str | os.PathLike | None = None, *,
               api_keys: list[str] | None = None, allow_anonymous: bool = False,
               redis_url: str | None = None):
    """The FastAPI app serving the project's latest deployment.

    Endpoints: ``GET /healthz`` (no key), ``GET /v1/info``, ``POST /v1/predict`` with the
    template's variables as a JSON object (e.g. ``{"input": "..."}``), ``POST /v1/feedback``
    (``{"request_id": ..., "rating": "up"|"down", "comment": ..., "correction": ...}``). Keys are
    sent as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, exactly: only the spaces and
    tabs of the header syntax are stripped, anything else that is not printable ASCII is
    refused. Without keys the app refuses to start unless ``allow_anonymous`` (then each client
    address gets its own rate limit).

    The documentation needs no key, like ``/healthz``: ``GET /openapi.json``, ``GET /docs``
    (Swagger UI from files on this machine, never a CDN: they come with litellm, which the
    workbench installs; without them, a self-contained page listing the endpoints) and
    ``GET /redoc`` (sends to /docs: ReDoc's script exists only on a CDN). They say what to send,
    the limits, every error and how to authenticate, never which prompt or model answers
    (``GET /v1/info`` does, with a key); a client needs them before its first call, SDK
    generators fetch the document without credentials, and keying one and not the other (as
    /redoc was) only hid the same text.

    Every error answers one JSON shape, ``{"error", "fix", "request_id"}``, documented in the
    OpenAPI document for every status. A body is limited twice: each field to
    ``max_input_chars`` characters once decoded (422), and the whole body to a byte bound well
    above what such fields take even fully JSON-escaped (413), read as it arrives, chunked or
    not, and refused as soon as it passes the bound. Only requests with a valid key to the
    service's own routes take rate tokens (an unknown path is 404 and costs nothing). A refusal
    a key can repeat at will (over its rate limit, an unknown path or method) is traced only
    the first time per key, route and status in a minute; the others are counted in the
    project's ``refusal_counts`` table, which monitoring adds to the traces it counts.

    ``redis_url`` (default ``WORKBENCH_REDIS_URL``) keeps the rate limits and the response
    cache in Redis, shared with the service's other processes (``workbench.serve.shared_state``);
    when Redis stops answering, requests get 503 rather than an uncounted pass."""
    from fastapi import FastAPI

    from workbench.project import Project, open_project

    if not isinstance(project, Project):
        project = open_project(project)
    service = Service(project, api_keys=api_keys, allow_anonymous=allow_anonymous,
                      redis_url=redis_url)

    # The public docs say what to send, not which prompt or model answers (GET /v1/info does,
    # with a key).
    app = FastAPI(title="LLMOps Workbench service",
                  description="POST /v1/predict with the fields below; POST /v1/feedback to "
                              "rate an answer. Send 'Authorization: Bearer KEY' (or "
                              "'X-API-Key: KEY'). Errors answer {\"error\", \"fix\", "
                              "\"request_id\"}; unknown paths answer 404 without using up the "
                              "key's rate limit. OpenAI's clients (the openai SDK, promptfoo, "
                              "LangChain) use POST /v1/chat/completions and GET /v1/models with "
                              "base URL <this service>/v1, where errors keep OpenAI's envelope. "
                              "A page to try the service and rate its answers is at /.",
                  version=str(service.deployed_version), docs_url=None, redoc_url=None)
    _add_error_handlers(app, service)
    app.add_middleware(Guard, service=service)
    _add_routes(app, service)
    add_openai_routes(app, service)
    add_demo_page(app, service)
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if methods and route.path not in service.public:
            service.routes[route.path] = set(methods)
    if service.shared is not None:  # Redis not answering: 503 on every keyed route
        for (method, path), statuses in service.documented_errors.items():
            if path not in service.public:  # a new set: others may share (KEYED_ERRORS)
                service.documented_errors[(method, path)] = statuses | {503}
    add_docs(app, service)
    app.state.project = project
    app.state.spec = service.spec
    app.state.service = service
    return app


def _request_state(request: Any) -> tuple[str, str | None]:
    state = request.scope.get("state", {})
    return state.get("client", "unknown"), state.get("request_id")


def _add_error_handlers(app: Any, service: Service) -> None:
    """Every error FastAPI or Starlette would answer in its own shape answers in the
    service's: ``{"error", "fix", "request_id"}``, and is traced."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    spec, problem, note = service.spec, service.problem, service.note

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = list(exc.errors())
        if errors and errors[0].get("type") == "json_invalid":
            where = errors[0].get("loc", ("body", "?"))[-1]
            reason = (errors[0].get("ctx") or {}).get("error", "JSON decode error")
            message = f"The body is not valid JSON: {reason} (at character {where})."
        else:
            parts = []
            for error in errors[:MAX_LISTED]:
                where = ".".join(service.shown(p) for p in error.get("loc", ()) if p != "body")
                parts.append(f"{where or 'body'}: {error.get('msg')}")
            more = len(errors) - MAX_LISTED
            message = ("The request is not valid: " + "; ".join(parts)
                       + (f"; and {more} more problem{'s' if more > 1 else ''}" if more > 0
                          else "") + ".")
        client, request_id = _request_state(request)
        note(request.url.path, 422, message, client, request_id)
        fix = service.invalid_fix.get(request.url.path)
        if fix is not None:
            return problem(422, message, fix, request_id)
        return problem(422, message,
                       "Send a JSON object with the fields " +
                       ", ".join(f"'{v}'" for v in spec.variables) +
                       f" (text, 1 to {spec.max_input_chars} characters each) and nothing "
                       "else, as Content-Type: application/json.", request_id)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        client, request_id = _request_state(request)
        status = exc.status_code
        if status == 400:  # FastAPI could not parse the body
            message, fix = ("The body could not be read as JSON.",
                            "Send one JSON object, UTF-8 encoded.")
        elif status == 404:
            message, fix = ("There is no such path on this service.", "See /docs.")
        elif status == 405:
            message, fix = (f"{request.url.path} does not answer {request.method}.",
                            "See /docs for the methods each path answers.")
        else:
            message, fix = str(exc.detail), "See /docs."
        if request.url.path not in service.public:
            note(request.url.path, status, message, client, request_id)
        return problem(status, message, fix, request_id, **(exc.headers or {}))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        """A bug: the caller gets the one error shape and a request_id, never a traceback."""
        client, request_id = _request_state(request)
        note(request.url.path if request.url.path in service.routes else UNKNOWN_ROUTE, 500,
             f"{type(exc).__name__}: {exc}", client, request_id)
        message = "The service failed on this request."
        fix = "Try again; if it persists, give the service's operator this request_id."
        if is_openai_path(request.url.path):  # this handler sits outside OpenAIErrors
            return openai_problem(service, 500, message, fix, request_id)
        return problem(500, message, fix, request_id)


def _add_routes(app: Any, service: Service) -> None:
    """/healthz, /v1/info, /v1/predict and /v1/feedback."""
    from typing import Annotated

    from fastapi import Request
    from fastapi.responses import JSONResponse
    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

    spec, project = service.spec, service.project
    Text = Annotated[str, AfterValidator(_clean_text)]  # noqa: N806 (a type)
    plain = {"pattern": TEXT_PATTERN}
    fields: dict[str, Any] = {
        name: (Text, Field(min_length=1, max_length=spec.max_input_chars,
                           json_schema_extra=plain)) for name in spec.variables}
    PredictRequest = create_model("PredictRequest",  # noqa: N806 (a class)
                                  __config__=ConfigDict(extra="forbid"), **fields)

    class Health(BaseModel):
        status: str
        deployment: int

    @app.get("/healthz", response_model=Health, summary="Is the service up (no key)")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "deployment": service.deployed_version}

    def info(request):
        from workbench.serve.rollout import arms_info

        spec = service.spec  # the deployment served now (it follows promotions, rollbacks)
        return {"project": project.name, "deployment": service.deployed_version,
                "prompt": spec.prompt, "prompt_version": spec.prompt_version,
                "model": spec.model, "fallbacks": spec.fallbacks, "variables": spec.variables,
                "labels": spec.labels, "gate_passed": spec.gate_passed, "forced": spec.forced,
                "rate_limit_per_minute": spec.rate_limit_per_minute, "burst": spec.burst,
                "max_input_chars": spec.max_input_chars, "timeout_s": spec.timeout_s,
                "retries": spec.retries, "max_waiting": spec.max_waiting,
                "limits_basis": spec.limits_basis, **arms_info(service),
                "semantic_cache": service.semantic.threshold if service.semantic else None,
                "content_filter": spec.content_filter,
                "moderation_model": spec.moderation_model,
                "breakers": service.breakers.snapshot(),
                # the calling key's own name, limits and what is left (never another key's)
                "key": service.limits.describe(request.state.caller)}

    class Answer(BaseModel):
        output: str | None
        parsed: Any = None
        parse_ok: bool
        model: str
        fallback_used: bool
        cached: bool
        latency_ms: float
        cost_usd: float | None = None
        request_id: str
        trace_id: str
        deployment: int
        arm: str  # "live", or "canary" when a staged candidate answered
        flagged: list[str] = []  # content checks that found something (filter mode "flag")

    def predict(body, request):
        state = request.state
        try:  # header values arrive as latin-1: the bytes sent are UTF-8
            sent = request.headers.getlist("x-workbench-user")
            if len(sent) > 1:
                raise ValueError("is sent more than once")
            user = _checked_user(sent[0].encode("latin-1").decode("utf-8") if sent else None)
        except (ValueError, UnicodeError) as exc:
            reason = "is not UTF-8" if isinstance(exc, UnicodeError) else str(exc)
            message = f"The X-Workbench-User header {reason}."
            service.note("/v1/predict", 422, message, state.client, state.request_id)
            return service.problem(422, message, f"Send your id for your end user, 1 to "
                                   f"{USER_CHARS} printable characters, once, or no header.",
                                   state.request_id)
        outcome = service.answer(body.model_dump(), request_id=state.request_id,
                                 client=state.client, deadline=state.deadline, user=user)
        if outcome.status != 200:
            wait = outcome.retry_after
            return JSONResponse({"error": outcome.message, "request_id": outcome.request_id,
                                 "fix": outcome.fix}, status_code=outcome.status,
                                headers={"Retry-After": str(max(1, math.ceil(wait)))}
                                if wait is not None else None)
        result = outcome.result
        return {
            "output": result.completion.text,
            "parsed": result.parsed.value,
            "parse_ok": result.parsed.ok,
            "model": outcome.model,
            "fallback_used": outcome.fallback_used,
            "cached": result.completion.cached,
            "latency_ms": outcome.latency_ms,
            "cost_usd": result.cost_usd,
            "request_id": outcome.request_id,
            "trace_id": outcome.trace_id,
            "deployment": service.deployed_version,
            "arm": outcome.arm,
            "flagged": outcome.flags,
        }

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        request_id: Text = Field(min_length=1, max_length=64, json_schema_extra=plain)
        rating: Literal["up", "down"]
        comment: Text | None = Field(None, max_length=FEEDBACK_CHARS, json_schema_extra=plain)
        correction: Text | None = Field(None, max_length=FEEDBACK_CHARS,
                                        json_schema_extra=plain)

    class FeedbackAnswer(BaseModel):
        feedback_id: str

    def feedback(body, request):
        from workbench.monitor import MonitorError, record_feedback

        client, request_id = request.state.client, request.state.request_id
        try:
            # an OpenAI-style answer's id is chatcmpl-<request_id>: either one rates it
            feedback_id = record_feedback(project, rating=body.rating,
                                          request_id=body.request_id.removeprefix("chatcmpl-"),
                                          comment=body.comment,
                                          correction=body.correction, source="api",
                                          client=client)
        except MonitorError as exc:
            service.note("/v1/feedback", 404, exc.message, client, request_id)
            return service.problem(404, exc.message, exc.fix, request_id)
        service.note("/v1/feedback", 201, None, client, request_id)
        return JSONResponse({"feedback_id": feedback_id}, status_code=201)

    # This module's annotations are strings, and FastAPI reads the parameters' types from them:
    # give it the real classes (the request models exist only inside this function).
    info.__annotations__ = {"request": Request}
    app.get("/v1/info", summary="What is served: prompt, model, limits, and the calling key's "
                                "limits and budget")(info)
    predict.__annotations__ = {"body": PredictRequest, "request": Request}
    app.post("/v1/predict", responses={200: {"model": Answer}},
             openapi_extra={"parameters": [{
                 "name": "X-Workbench-User", "in": "header", "required": False,
                 "description": "Your id for your end user, kept (hashed) with the request's "
                                "trace; while a canary is staged each end user stays on one "
                                "arm (else the key does).",
                 "schema": {"type": "string", "maxLength": USER_CHARS}}]},
             summary="Answer one request with the deployed prompt and model")(predict)
    feedback.__annotations__ = {"body": FeedbackRequest, "request": Request}
    app.post("/v1/feedback", status_code=201, responses={201: {"model": FeedbackAnswer}},
             summary="Rate an answer (one verdict per answer, from the key that asked)")(
        feedback)
    service.answering_routes.add("/v1/predict")
    service.invalid_fix["/v1/feedback"] = (
        "Send {\"request_id\": the id of an answer, \"rating\": \"up\" or \"down\"}, with an "
        "optional \"comment\" and \"correction\".")
    service.documented_errors.update({
        ("get", "/healthz"): {500},
        ("get", "/v1/info"): KEYED_ERRORS,
        ("post", "/v1/predict"): KEYED_ERRORS | {400, 402, 422, 502, 503, 504},
        ("post", "/v1/feedback"): KEYED_ERRORS | {400, 404, 422},
    })
