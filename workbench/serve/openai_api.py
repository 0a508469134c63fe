"""The service in OpenAI's dialect, for the clients people already use (the ``openai`` SDK,
promptfoo's ``openai:chat`` provider, LangChain's ChatOpenAI, curl): ``POST
/v1/chat/completions`` (a JSON answer, or server-sent events with ``"stream": true``) and
``GET /v1/models``. Behind them is the same deployed prompt, model and adapter as ``POST
/v1/predict``, with the same keys, rate limits, text rules, traces and queue bound: every answer
goes through ``Service.answer``.

What a request means here (decided for the workbench, and documented in the OpenAPI document):

- **The deployed prompt is the conversation.** It brings its own system prompt and examples, so
  a request carries exactly one message, from the user, and that message fills the template:
  its text fills the template's one variable; a template with several variables takes a JSON
  object of them as the message's text (``{"question": "...", "context": "..."}``), or the
  extension field ``variables`` (``extra_body={"variables": {...}}`` in the SDK) with
  ``messages: []``. System messages and earlier turns are refused (400), never silently
  dropped: the answer would not have read them.
- **``model``** is the deployment's id as ``GET /v1/models`` lists it (the deployed prompt's
  name), or omitted. Another id is 404 ``model_not_found``.
- **The deployment fixes how the model is called** (that is what passed the evaluation gate):
  sampling and length parameters (``temperature``, ``top_p``, ``max_tokens``, ``seed``,
  ``stop``, ...) are accepted, since clients send their defaults (promptfoo sends
  ``temperature`` and ``max_tokens`` on every call), but not applied; the answer names them in
  the ``X-Workbench-Ignored`` header and ``workbench.ignored``. What would change the shape of
  the answer (``n`` > 1, ``tools``, ``logprobs``, ``response_format`` other than text,
  ``logit_bias``, audio) is refused with 400 ``unsupported_parameter``; an unknown parameter
  with 400 ``unknown_parameter``.
- **``user``** (or OpenAI's newer ``safety_identifier``) is the caller's id for its end user,
  stored on the request's trace as ``workbench.user``.
- **The answer** is the model's reply text as ``choices[0].message.content`` (after a repair
  turn when the reply did not parse), ``usage`` sums the model calls' tokens, ``id`` is
  ``chatcmpl-<request_id>`` (``POST /v1/feedback`` takes either form), and the extension object
  ``workbench`` carries what ``/v1/predict`` says besides: ``parsed``, ``parse_ok``, the model
  that answered, ``cached``, ``cost_usd``, ``request_id``, ``trace_id``.
- **Streaming** sends the model's reply as it is written (``chat.completion.chunk`` events,
  then ``data: [DONE]``; with ``stream_options.include_usage`` a last chunk with ``usage``).
  The streamed text is parsed when it ends (``workbench.parsed`` on the last chunk) and never
  repaired: the caller has already read it. A fallback model answers only when the first one
  failed before writing anything. A failure before the first piece is an ordinary error
  response; after it, an ``error`` event (the SDK raises it) and ``[DONE]``.
- **Errors** on these routes keep OpenAI's envelope, because the SDKs and promptfoo read
  ``error.message``, ``error.type`` and ``error.code``: ``{"error": {"message", "type",
  "code", "param", "fix", "request_id"}, "fix", "request_id"}`` — the service's ``fix`` and
  ``request_id`` are both inside (the SDK hands only ``error`` to the caller, as
  ``exc.body``) and beside it (where every other route has them). Invalid requests are 400, as
  OpenAI answers them (the SDK raises ``BadRequestError``), not the 422 of ``/v1/predict``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from typing import TYPE_CHECKING, Any, Literal

from workbench.serve.deployment import DEPLOYMENT
from workbench.serve.docs import KEYED_ERRORS
from workbench.serve.protection import (
    MAX_LISTED,
    TEXT_PATTERN,
    USER_CHARS,
    _checked_user,
    _clean_text,
)

if TYPE_CHECKING:
    from workbench.serve.outcome import Outcome
    from workbench.serve.service import Service

CHAT = "/v1/chat/completions"
MODELS = "/v1/models"
# Parameters a client may send that the deployment does not apply (it fixes how its model is
# called), with the JSON types they must have.
NOT_APPLIED = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
               "presence_penalty", "frequency_penalty", "metadata", "store", "service_tier",
               "prompt_cache_key", "reasoning_effort", "verbosity", "parallel_tool_calls")
# Parameters that would change what an answer is: refused unless they ask for nothing (the
# values listed, or null).
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "n": (1,), "tools": ([],), "tool_choice": ("none",), "functions": ([],),
    "function_call": ("none",), "logprobs": (False,), "top_logprobs": (0,),
    "response_format": ({"type": "text"},), "logit_bias": ({},), "modalities": (["text"],),
    "audio": (), "prediction": (), "web_search_options": (),
}
# status -> OpenAI's error type and code, for errors other parts of the service answer
_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "invalid_value"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "model_error"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
DESCRIPTION = """\
The deployed prompt, model and adapter behind OpenAI's chat completions: the same keys, limits,
text rules and traces as POST /v1/predict.

- Send **one user message**: its text fills the template's variable (a template with several
  takes a JSON object of them as the text, or the extension field `variables` with
  `"messages": []`). System messages and earlier turns are refused: the deployed prompt brings
  its own.
- `model` is the id GET /v1/models lists, or left out.
- The deployment fixes how its model is called: `temperature`, `top_p`, `max_tokens`, `seed`,
  `stop` and the like are accepted but not applied (named in the `X-Workbench-Ignored` header
  and `workbench.ignored`); `n` > 1, `tools`, `logprobs`, `response_format` and the like are
  refused (400 `unsupported_parameter`).
- `user` (or `safety_identifier`): your id for your end user, kept with the trace.
- `"stream": true` answers server-sent events: `chat.completion.chunk` objects as the model
  writes, then `data: [DONE]` (`stream_options.include_usage` adds a chunk with `usage`). The
  streamed text is parsed when it ends and never repaired.
- The answer's `workbench` object has `parsed`, `parse_ok`, `request_id` (for POST
  /v1/feedback, which also takes the answer's `id`), `trace_id`, `cached` and `cost_usd`.
- Errors keep OpenAI's envelope, `{"error": {"message", "type", "code", "param", "fix",
  "request_id"}, "fix", "request_id"}`; invalid requests are 400, as OpenAI answers them.
"""


def model_id(service: Service) -> str:
    """The deployment's id in the OpenAI routes: the deployed prompt's name, which stays the same
    when a new version of it is deployed (clients keep working)."""
    return service.spec.prompt


def is_openai_path(path: str) -> bool:
    return path == CHAT or path == MODELS or path.startswith(MODELS + "/")


# -- errors in OpenAI's envelope -------------------------------------------------------------------

def error_body(status: int, message: str, fix: str, request_id: str | None, *,
               code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope for ``status``, with the service's fix and request_id inside
    (the SDK hands the caller only ``error``) and beside it (where the other routes have
    them)."""
    kind, default_code = _KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None))
    error = {"message": message, "type": kind, "code": code or default_code, "param": param,
             "fix": fix}
    body: dict[str, Any] = {"error": error, "fix": fix}
    if request_id:
        error["request_id"] = body["request_id"] = request_id
    return body


def openai_problem(service: Service, status: int, message: str, fix: str,
                   request_id: str | None, *, code: str | None = None,
                   param: str | None = None, **headers: str):
    """``service.problem`` in OpenAI's envelope (keys redacted the same way)."""
    from fastapi.responses import JSONResponse

    body = error_body(status, service.redact(message), service.redact(fix), request_id,
                      code=code, param=param)
    return JSONResponse(body, status_code=status, headers=headers or None)


class OpenAIErrors:
    """ASGI middleware outside the guard: an error answered on an OpenAI route in the service's
    shape (by the guard: keys, rate limits, bounds; by the app's handlers: unknown paths and
    methods) is rewritten into OpenAI's envelope, same status, same headers, same words."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_openai_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"], held["body"] = message, b""
                return
            if "start" not in held:
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if message.get("more_body", False):
                return
            start, body = held.pop("start"), held.pop("body")
            body = _in_openai_envelope(start["status"], body, scope["path"])
            headers = [(k, v) for k, v in start.get("headers", [])
                       if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, sending)


def _in_openai_envelope(status: int, body: bytes, path: str) -> bytes:
    try:
        found = json.loads(body)
    except ValueError:
        return body
    if not isinstance(found, dict) or not isinstance(found.get("error"), str):
        return body  # already OpenAI's envelope, or not an error of the service's
    code = "model_not_found" if status == 404 and path.startswith(MODELS + "/") else None
    return json.dumps(error_body(status, found["error"], str(found.get("fix", "")),
                                 found.get("request_id"), code=code)).encode()


# -- reading a request -----------------------------------------------------------------------------

class Refused(Exception):
    """A request this route answers with 400 (or ``status``), naming the parameter."""

    def __init__(self, message: str, fix: str, *, param: str | None = None,
                 code: str = "invalid_request", status: int = 400):
        super().__init__(message)
        self.message, self.fix, self.param, self.code, self.status = (
            message, fix, param, code, status)


def _request_models(service: Service):
    """The pydantic models of a chat-completions request, for this deployment."""
    from typing import Annotated

    from pydantic import (
        AfterValidator,
        BaseModel,
        ConfigDict,
        Field,
        WithJsonSchema,
        create_model,
    )

    spec = service.spec
    Text = Annotated[str, AfterValidator(_clean_text)]  # noqa: N806 (a type)
    limit = spec.max_input_chars
    plain = {"pattern": TEXT_PATTERN}

    text = {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN}
    if len(spec.variables) == 1:  # else the text is a JSON object of fields of `limit` each
        text["maxLength"] = limit
    # Text or text parts; the text rules are checked on the joined text (item_of), so an error
    # names the message, not each branch of a union.
    Content = Annotated[Any, AfterValidator(_content), WithJsonSchema({  # noqa: N806 (a type)
        "description": "The text that fills the template's variable (a template with several "
                       "takes a JSON object of them), or a list of text parts, joined by "
                       "newlines.",
        "anyOf": [text, {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["type", "text"], "additionalProperties": False,
            "properties": {"type": {"const": "text"}, "text": text}}}]})]

    class Message(BaseModel):
        """One message: the user's, with the text that fills the template."""

        model_config = ConfigDict(extra="forbid")
        role: Literal["user"] = Field(description="Only the user speaks: the deployed prompt "
                                                  "brings its own system prompt.")
        content: Content
        name: str | None = Field(None, max_length=64)

    class StreamOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        include_usage: bool = False

    variable_fields = {name: (Text, Field(min_length=1, max_length=limit,
                                          json_schema_extra=plain))
                       for name in spec.variables}
    Variables = create_model("Variables", __config__=ConfigDict(extra="forbid"),  # noqa: N806
                             **variable_fields)

    class ChatRequest(BaseModel):
        """A chat completion request (OpenAI's), for the deployed prompt."""

        model_config = ConfigDict(extra="forbid")
        messages: list[Message] = Field(
            max_length=1, description="Exactly one user message; empty when `variables` "
                                      "fills the template.")
        model: Literal[model_id(service)] | None = Field(  # type: ignore[valid-type]
            None, description="The deployment's id (GET /v1/models), or omitted.")
        stream: bool = False
        stream_options: StreamOptions | None = None
        user: str | None = Field(None, max_length=USER_CHARS,
                                 description="Your id for your end user (stored with the "
                                             "trace as workbench.user).")
        safety_identifier: str | None = Field(None, max_length=USER_CHARS,
                                              description="OpenAI's newer name for `user`.")
        variables: Variables | None = Field(  # type: ignore[valid-type]
            None, description="Extension: the template's variables by name, with "
                              "`messages: []`.")
        temperature: float | None = Field(None, ge=0, le=2)
        top_p: float | None = Field(None, ge=0, le=1)
        max_tokens: int | None = Field(None, ge=1)
        max_completion_tokens: int | None = Field(None, ge=1)
        seed: int | None = None
        stop: str | list[str] | None = None
        presence_penalty: float | None = Field(None, ge=-2, le=2)
        frequency_penalty: float | None = Field(None, ge=-2, le=2)
        metadata: dict[str, str] | None = None
        store: bool | None = None
        service_tier: str | None = None
        prompt_cache_key: str | None = None
        reasoning_effort: str | None = None
        verbosity: str | None = None
        parallel_tool_calls: bool | None = None

    return ChatRequest


def _content(value: Any) -> str:
    """A message's text: its content, or its text parts joined by newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            and set(p) <= {"type", "text"} for p in value):
        return "\n".join(p["text"] for p in value)
    if isinstance(value, list) and any(isinstance(p, dict) and p.get("type") != "text"
                                       for p in value):
        raise ValueError("has a part that is not text; this service reads text only")
    raise ValueError("must be text, or a list of text parts ({\"type\": \"text\", "
                     "\"text\": ...})")


def _where(loc: tuple) -> str:
    """``("messages", 0, "content")`` as ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def read_request(service: Service, model: Any, raw: bytes) -> Any:
    """The validated request, or ``Refused`` saying what is wrong and what to send."""
    from pydantic import ValidationError

    shown = service.shown
    fix_shape = ("Send a JSON object such as {\"model\": \"" + shown(model_id(service)) +
                 "\", \"messages\": [{\"role\": \"user\", \"content\": TEXT}]}; see /docs.")
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        raise Refused(f"The body is not valid JSON: {exc}.", fix_shape) from None
    if not isinstance(body, dict):
        raise Refused("The body is not a JSON object.", fix_shape)
    known = set(model.model_fields)
    for name, value in body.items():
        if name in UNSUPPORTED:
            if value is None or value in UNSUPPORTED[name]:
                continue
            raise Refused(
                f"'{name}' is not supported by this service: it answers one request with its "
                "deployed prompt, one text reply at a time.",
                f"Leave out '{name}'" + (" (n must be 1)" if name == "n" else "") + ".",
                param=name, code="unsupported_parameter")
        if name not in known:
            raise Refused(f"Unrecognized request argument supplied: '{shown(name)}'.",
                          "Send only OpenAI's chat completion parameters; see /docs.",
                          param=shown(name), code="unknown_parameter")
    body = {k: v for k, v in body.items() if k not in UNSUPPORTED}
    asked = body.get("model")
    if asked is not None and asked != model_id(service):
        raise Refused(f"The model '{shown(asked)}' does not exist here: this service serves "
                      f"'{shown(model_id(service))}'.", _fix_for(service, "model"),
                      param="model", code="model_not_found", status=404)
    messages = body.get("messages")
    if isinstance(messages, list) and (len(messages) > 1 or any(
            isinstance(m, dict) and m.get("role") != "user" for m in messages)):
        roles = ", ".join(shown(m.get("role")) if isinstance(m, dict) else "?"
                          for m in messages[:MAX_LISTED])
        raise Refused(f"The request has {len(messages)} message(s) ({roles}); this service "
                      "answers one user message with its deployed prompt, which brings its own "
                      "instructions and examples.",
                      "Send only the user's message: [{\"role\": \"user\", \"content\": "
                      "TEXT}] (no system message, no earlier turns).", param="messages")
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()

        def where_of(error: dict) -> str:
            return _where(tuple(p if isinstance(p, int) else shown(p)
                                for p in error.get("loc", ())))

        parts = [f"{where_of(e) or 'body'}: {e.get('msg')}" for e in errors[:MAX_LISTED]]
        more = len(errors) - MAX_LISTED
        where = where_of(errors[0]) or None
        raise Refused("The request is not valid: " + "; ".join(parts)
                      + (f"; and {more} more" if more > 0 else "") + ".",
                      _fix_for(service, where), param=where, code="invalid_value") from None
    if request.stream_options is not None and not request.stream:
        raise Refused("stream_options is only allowed with \"stream\": true.",
                      "Send \"stream\": true, or leave out stream_options.",
                      param="stream_options")
    return request


def _fix_for(service: Service, where: str | None) -> str:
    spec = service.spec
    if where == "model":
        return (f"Send \"model\": \"{model_id(service)}\" (GET /v1/models lists it), or leave "
                "it out.")
    if where in ("user", "safety_identifier"):
        return f"Send an id of 1 to {USER_CHARS} printable characters."
    return (f"Send one user message whose text (1 to {spec.max_input_chars} characters, no "
            "control characters) fills the template" +
            ("" if len(spec.variables) == 1 else
             " as a JSON object of " + ", ".join(f"'{v}'" for v in spec.variables)) +
            "; see /docs.")


def item_of(service: Service, request: Any) -> dict[str, str]:
    """The template's variables from a valid request (see the module's docstring)."""
    spec = service.spec
    names = spec.variables
    if request.variables is not None:
        if request.messages:
            raise Refused("The request has both messages and variables.",
                          "Send the template's variables either as the user message or as "
                          "\"variables\" with \"messages\": [], not both.", param="messages")
        return request.variables.model_dump()
    if not request.messages:
        raise Refused("The request has no message.",
                      "Send one user message: {\"role\": \"user\", \"content\": TEXT}.",
                      param="messages")
    text = request.messages[0].content
    if len(names) == 1:  # the text is the variable
        if not 1 <= len(text) <= spec.max_input_chars:
            raise Refused(f"The user message has {len(text)} characters; the service takes 1 "
                          f"to {spec.max_input_chars}.", _fix_for(service, None),
                          param="messages[0].content")
        try:
            return {names[0]: _clean_text(text)}
        except ValueError as exc:
            raise Refused(f"The user message {exc}.", _fix_for(service, None),
                          param="messages[0].content") from None
    example = json.dumps({n: "..." for n in names})
    fix = (f"Send the user message's text as a JSON object of the template's variables, e.g. "
           f"{example}, or send \"variables\": {example} with \"messages\": [].")
    try:
        given = json.loads(text)
    except ValueError:
        given = None
    if not isinstance(given, dict):
        raise Refused("The deployed prompt has the variables " +
                      ", ".join(f"'{n}'" for n in names) + ", and the user message is not a "
                      "JSON object of them.", fix, param="messages[0].content")
    missing = [n for n in names if n not in given]
    extra = [service.shown(k) for k in given if k not in names]
    bad = [n for n in names if n in given and not isinstance(given[n], str)]
    if missing or extra or bad:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"unknown {', '.join(extra)}"] if extra else []) + \
                   ([f"not text: {', '.join(bad)}"] if bad else [])
        raise Refused("The user message's variables do not match the template: " +
                      "; ".join(problems) + ".", fix, param="messages[0].content")
    for name in names:
        value = given[name]
        try:
            _clean_text(value)
        except ValueError as exc:
            raise Refused(f"The variable '{name}' {exc}.", fix,
                          param="messages[0].content") from None
        if not 1 <= len(value) <= spec.max_input_chars:
            raise Refused(f"The variable '{name}' has {len(value)} characters; the service "
                          f"takes 1 to {spec.max_input_chars}.", fix,
                          param="messages[0].content")
    return {n: given[n] for n in names}


def user_of(request: Any) -> str | None:
    ids = {v for v in (request.user, request.safety_identifier) if v}
    if len(ids) > 1:
        raise Refused("user and safety_identifier name different end users.",
                      "Send one of them.", param="safety_identifier")
    value = ids.pop() if ids else None
    try:
        return _checked_user(value)
    except ValueError as exc:
        raise Refused(f"The end-user id {exc}.", f"Send an id of 1 to {USER_CHARS} printable "
                      "characters (a user number, or a hash of one).", param="user") from None


def ignored_of(request: Any) -> list[str]:
    """The parameters sent that the deployment does not apply."""
    return [name for name in NOT_APPLIED if getattr(request, name) is not None]


# -- answers ---------------------------------------------------------------------------------------

def _finish_reason(outcome: Outcome) -> str:
    reason = outcome.result.completion.finish_reason
    return reason if reason in ("length", "content_filter") else "stop"


def _usage(outcome: Outcome) -> dict[str, int]:
    completions = outcome.result.completions or [outcome.result.completion]
    prompt = sum(c.usage.prompt_tokens for c in completions)
    completion = sum(c.usage.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _extension(service: Service, outcome: Outcome, ignored: list[str]) -> dict[str, Any]:
    result = outcome.result
    return {"request_id": outcome.request_id, "trace_id": outcome.trace_id,
            "parsed": result.parsed.value, "parse_ok": result.parsed.ok,
            "model": outcome.model, "fallback_used": outcome.fallback_used,
            "cached": result.completion.cached, "cost_usd": result.cost_usd,
            "latency_ms": outcome.latency_ms, "deployment": service.deployed_version,
            "ignored": ignored}


def completion_body(service: Service, outcome: Outcome, created: int,
                    ignored: list[str]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + outcome.request_id, "object": "chat.completion",
        "created": created, "model": model_id(service),
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": outcome.result.completion.text,
                                             "refusal": None},
                     "finish_reason": _finish_reason(outcome), "logprobs": None}],
        "usage": _usage(outcome),
        "workbench": _extension(service, outcome, ignored),
    }


def _event(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class _Done:
    def __init__(self, outcome: Any):
        self.outcome = outcome


_working: set[asyncio.Future] = set()  # answers still running for a stream (kept referenced)


def add_openai_routes(app: Any, service: Service) -> None:
    """``POST /v1/chat/completions``, ``GET /v1/models`` (and ``GET /v1/models/{id}``), their
    errors in OpenAI's envelope, and their documentation."""
    from fastapi import Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel
    from starlette.concurrency import run_in_threadpool

    ChatRequest = _request_models(service)  # noqa: N806 (a class)
    name = model_id(service)
    stored = service.project.records.get(type(service.spec), DEPLOYMENT,
                                         service.deployed_version)
    listed = {"id": name, "object": "model", "created": int(stored.created_at),
              "owned_by": service.project.name}

    def refuse(refused: Refused, client: str, request_id: str):
        service.note(CHAT, refused.status, refused.message, client, request_id)
        return openai_problem(service, refused.status, refused.message, refused.fix,
                              request_id, code=refused.code, param=refused.param)

    def failure(outcome: Outcome | Exception) -> tuple[int, str, str]:
        if isinstance(outcome, Exception):  # answer() turns failures into outcomes: a bug
            return (500, "The service failed on this request.",
                    "Try again; if it persists, give the service's operator this request_id.")
        return outcome.status, outcome.message or "", outcome.fix or ""

    def failed(outcome: Outcome | Exception, request_id: str):
        status, message, fix = failure(outcome)
        wait = getattr(outcome, "retry_after", None)  # every model resting: when to come back
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if wait is not None else {}
        return openai_problem(service, status, message, fix, request_id, **headers)

    async def chat(request: Request):
        state = request.state
        client, request_id = state.client, state.request_id
        try:
            body = read_request(service, ChatRequest, await request.body())
            item, user = item_of(service, body), user_of(body)
        except Refused as refused:
            return refuse(refused, client, request_id)
        ignored = ignored_of(body)
        headers = {"X-Request-Id": request_id}
        if ignored:
            headers["X-Workbench-Ignored"] = ", ".join(ignored)
        created = int(time.time())
        answer = {"request_id": request_id, "client": client, "deadline": state.deadline,
                  "route": CHAT, "user": user}
        if not body.stream:
            outcome = await run_in_threadpool(lambda: service.answer(item, **answer))
            if outcome.status != 200:
                return failed(outcome, request_id)
            return JSONResponse(completion_body(service, outcome, created, ignored),
                                headers=headers)
        return await stream(answer, item, created, ignored, headers,
                            include_usage=bool(body.stream_options and
                                               body.stream_options.include_usage))

    async def stream(answer: dict[str, Any], item: dict[str, str], created: int,
                     ignored: list[str], headers: dict[str, str], *, include_usage: bool):
        """The answer as server-sent events: the model runs on a worker thread and passes each
        piece through a queue to this event loop as it writes it."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def put(event: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the server stopped while the model was writing
                pass

        def work() -> None:
            try:
                outcome: Any = service.answer(item, on_text=put, **answer)
            except Exception as exc:  # a bug: answer() turns failures into outcomes
                outcome = exc
            put(_Done(outcome))

        task = asyncio.ensure_future(run_in_threadpool(work))
        _working.add(task)
        task.add_done_callback(_working.discard)
        first = await events.get()
        if isinstance(first, _Done) and (isinstance(first.outcome, Exception)
                                         or first.outcome.status != 200):
            return failed(first.outcome, answer["request_id"])  # before any piece: a status
        base = {"id": "chatcmpl-" + answer["request_id"], "object": "chat.completion.chunk",
                "created": created, "model": name}

        def chunk(delta: dict[str, Any], finish: str | None = None,
                  **extra: Any) -> bytes:
            data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                         "logprobs": None}], **extra}
            if include_usage:
                data["usage"] = None
            return _event(data)

        async def written():
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            event, pieces = first, 0
            while not isinstance(event, _Done):
                pieces += 1
                yield chunk({"content": event})
                event = await events.get()
            outcome = event.outcome
            if isinstance(outcome, Exception) or outcome.status != 200:  # after pieces
                status, message, fix = failure(outcome)
                yield _event(error_body(status, service.redact(message),
                                        service.redact(fix), answer["request_id"]))
                yield _event("[DONE]")
                return
            if not pieces and outcome.result.completion.text:  # not streamed (a ReAct prompt)
                yield chunk({"content": outcome.result.completion.text})
            yield chunk({}, _finish_reason(outcome),
                        workbench=_extension(service, outcome, ignored))
            if include_usage:
                yield _event({**base, "choices": [], "usage": _usage(outcome)})
            yield _event("[DONE]")

        return StreamingResponse(written(), media_type="text/event-stream", headers={
            **headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    class Model(BaseModel):
        id: str
        object: Literal["model"]
        created: int
        owned_by: str

    class ModelList(BaseModel):
        object: Literal["list"]
        data: list[Model]

    def models() -> dict[str, Any]:
        return {"object": "list", "data": [listed]}

    def one_model() -> dict[str, Any]:
        return listed

    chat.__annotations__ = {"request": Request}
    app.post(CHAT, summary="Answer one request, OpenAI's way (JSON, or server-sent events)",
             description=DESCRIPTION,
             responses={200: {"model": _response_model(), "content": {
                 "text/event-stream": {"schema": _EVENT_SCHEMA}}}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": _inline(ChatRequest.model_json_schema())}}}},
             )(chat)
    app.get(MODELS, response_model=ModelList,
            summary="The deployment, as OpenAI's list of models")(models)
    paths = [MODELS]
    if _URL_SAFE.fullmatch(name):
        app.get(f"{MODELS}/{name}", response_model=Model,
                summary="The deployment, as an OpenAI model")(one_model)
        paths.append(f"{MODELS}/{name}")
    app.add_middleware(OpenAIErrors)
    service.answering_routes.add(CHAT)
    schema = _error_schema()
    service.error_schema.update({CHAT: schema, **{p: schema for p in paths}})
    service.documented_errors[("post", CHAT)] = KEYED_ERRORS | {400, 404, 422, 502, 503, 504}
    for path in paths:
        service.documented_errors[("get", path)] = KEYED_ERRORS
    service.error_text.update({
        ("post", CHAT, 400): "The request is not valid or asks for what the service does not "
                             "do (error.code: invalid_value, unsupported_parameter, "
                             "unknown_parameter, invalid_request), or the body is not UTF-8 "
                             "JSON.",
        ("post", CHAT, 404): "The model is not this deployment's (error.code: "
                             "model_not_found).",
        ("post", CHAT, 422): "The content filter refused the input or withheld the answer "
                             "(prompt injection, jailbreak, system-prompt extraction or "
                             "leakage, a blocked term, the moderation model): the error says "
                             "which, never what matched.",
    })


def _response_model():
    from pydantic import BaseModel

    class ChatMessage(BaseModel):
        role: Literal["assistant"]
        content: str
        refusal: None = None

    class Choice(BaseModel):
        index: int
        message: ChatMessage
        finish_reason: Literal["stop", "length", "content_filter"]
        logprobs: None = None

    class ChatUsage(BaseModel):
        prompt_tokens: int
        completion_tokens: int
        total_tokens: int

    class ChatExtension(BaseModel):
        """What the workbench adds (the SDK keeps it: ``completion.workbench``)."""

        request_id: str
        trace_id: str
        parsed: Any = None
        parse_ok: bool
        model: str
        fallback_used: bool
        cached: bool
        cost_usd: float | None = None
        latency_ms: float
        deployment: int
        ignored: list[str]

    class ChatCompletion(BaseModel):
        id: str
        object: Literal["chat.completion"]
        created: int
        model: str
        choices: list[Choice]
        usage: ChatUsage
        workbench: ChatExtension

    return ChatCompletion


# One server-sent event (OpenAPI 3.1: the schema of an event stream describes each event).
_EVENT_SCHEMA = {
    "type": "object", "required": ["data"],
    "description": "With \"stream\": true: chat.completion.chunk objects as the model writes "
                   "(the last with finish_reason and the `workbench` object; with "
                   "stream_options.include_usage one more with `usage` and no choices), an "
                   "error object if the model fails after it began, then [DONE].",
    "properties": {"data": {"type": "string", "description": "A JSON object, or [DONE]."},
                   "event": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer"}}}


def _error_schema() -> dict[str, Any]:
    text = {"type": "string"}
    maybe = {"type": ["string", "null"]}
    return {
        "type": "object", "required": ["error", "fix"],
        "description": "OpenAI's error envelope, with the service's fix and request_id inside "
                       "it and beside it.",
        "properties": {
            "error": {"type": "object", "required": ["message", "type", "code", "param", "fix"],
                      "properties": {"message": text, "type": text, "code": maybe,
                                     "param": maybe, "fix": text, "request_id": text}},
            "fix": text, "request_id": text}}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` written in place (the OpenAPI document has no room for
    a request model's own definitions)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)
