"""The ASGI guard in front of the service's routes: keys, rate limits, the byte bound and the
queue bound, applied before FastAPI sees a request (plain ASGI: the body is read here, as it
arrives, up to the bound)."""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

from workbench.serve.deployment import ENV_API_KEYS, FEEDBACK_CHARS
from workbench.serve.keys import Caller
from workbench.serve.protection import (
    MAX_DEPTH,
    UNKNOWN_ROUTE,
    _depth,
    _offered_key,
)
from workbench.serve.shared_state import SharedStateUnavailable

if TYPE_CHECKING:
    from workbench.serve.service import Service


def _unavailable(service: Service, exc: SharedStateUnavailable, request_id: str) -> Any:
    """503: the rate limit could not be counted (Redis is down), so nothing is granted."""
    return service.problem(503, "The service cannot check its rate limits right now.",
                           "Retry in a few seconds; if it persists, tell the service's operator "
                           f"(shared state: {exc.message}).", request_id,
                           **{"Retry-After": "5"})


class Guard:
    """ASGI middleware; ``service`` holds the keys, limits and counters it applies."""

    def __init__(self, app: Any, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.service
        service.refresh()  # a new deployment version (promoted, rolled back) is served now
        spec, routes = service.spec, service.routes
        problem, note, count_refusal = service.problem, service.note, service.count_refusal
        state = scope.setdefault("state", {})
        request_id = state["request_id"] = os.urandom(8).hex()  # as uuid4().hex[:16], cheaper
        path, method = scope["path"], scope["method"]

        async def answer(response: Any) -> None:
            await response(scope, receive, send)

        if path in service.public:
            await self.app(scope, receive, send)
            return
        route = path if path in routes else UNKNOWN_ROUTE
        address = scope["client"][0] if scope.get("client") else "unknown"
        if service.auth_required:
            offered, why = _offered_key(scope.get("headers") or [])
            caller = None
            if offered is not None:
                caller, why = service.keyring.match(offered)
            if caller is None:
                try:
                    wait = service.unknown_callers.take(address)
                except SharedStateUnavailable as exc:
                    return await answer(_unavailable(service, exc, request_id))
                if wait:  # counted, never traced: key guesses cannot fill the traces
                    count_refusal(route, 429, "too many requests without a valid key",
                                  "unknown", request_id, trace_first=False)
                    return await answer(problem(
                        429, "Too many requests without a valid key.",
                        f"Retry after {wait:.1f} s with a valid key.", request_id,
                        **{"Retry-After": str(max(1, round(wait)))}))
                note(route, 401, why or "missing or unknown API key", "unknown", request_id)
                return await answer(problem(
                    401, f"The API key is not valid: {why}." if why else
                    "Missing or unknown API key.",
                    "Send 'Authorization: Bearer KEY' (or 'X-API-Key: KEY') with a valid key "
                    f"(from `workbench keys create` or {ENV_API_KEYS}), exactly as it is.",
                    request_id,
                    **{"WWW-Authenticate": "Bearer"}))
        else:
            caller = Caller(client="anonymous-" + address, kind="anonymous")
        state["caller"], state["client"] = caller, caller.client
        client = caller.client
        allowed = routes.get(path)
        if allowed is None:  # no rate token: probing unknown paths costs the key nothing
            count_refusal(UNKNOWN_ROUTE, 404, "unknown path", client, request_id)
            return await answer(problem(
                404, "There is no such path on this service.",
                "The service answers " + ", ".join(
                    f"{'/'.join(sorted(m - {'HEAD'}))} {p}" for p, m in routes.items())
                + "; see /docs.", request_id))
        if method not in allowed:
            count_refusal(path, 405, "method not allowed", client, request_id)
            return await answer(problem(
                405, f"{path} does not answer {method}.",
                f"Use {' or '.join(sorted(allowed - {'HEAD'}))} {path}.", request_id,
                Allow=", ".join(sorted(allowed))))
        # requests a minute; on routes that call a model, tokens a minute and budgets too
        try:
            refused = service.limits.admit(caller,
                                           answering=path in service.answering_routes)
        except SharedStateUnavailable as exc:
            note(path, 503, exc.message, client, request_id)
            return await answer(_unavailable(service, exc, request_id))
        if refused is not None:
            count_refusal(path, refused.status, refused.reason, client, request_id)
            return await answer(problem(refused.status, refused.message, refused.fix,
                                        request_id, **refused.headers))
        max_body = service.max_body
        def too_big() -> Any:  # made only when needed: most requests fit
            return problem(
                413, f"The request body has more than {max_body:,} bytes.",
                f"Keep each field to at most {spec.max_input_chars} characters (comments and "
                f"corrections to {FEEDBACK_CHARS}); a body of such fields stays under "
                f"{max_body:,} bytes even fully JSON-escaped.", request_id, close=True)

        sizes = [v for k, v in scope.get("headers") or [] if k.lower() == b"content-length"]
        if any(not s.strip().isdigit() or int(s) > max_body for s in sizes):
            note(path, 413, "body over the byte bound (Content-Length)", client, request_id)
            return await answer(too_big())
        body = bytearray()
        while True:  # read as it arrives (chunked bodies have no Content-Length)
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > max_body:
                note(path, 413, "body over the byte bound", client, request_id)
                return await answer(too_big())
            if not message.get("more_body", False):
                break
        if method == "POST" and body:
            try:
                bytes(body).decode("utf-8")
            except UnicodeDecodeError as exc:
                note(path, 400, "the body is not UTF-8", client, request_id)
                return await answer(problem(
                    400, f"The body is not valid UTF-8 (at byte {exc.start}).",
                    "Send JSON encoded as UTF-8 (as json.dumps and HTTP clients do).",
                    request_id))
            depth = _depth(bytes(body))
            if depth > MAX_DEPTH:
                note(path, 400, f"JSON nested {depth} deep", client, request_id)
                return await answer(problem(
                    400, f"The body nests JSON {depth} levels deep; at most {MAX_DEPTH} "
                         "are read.", "Send one flat JSON object of text fields.",
                    request_id))
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        if path not in service.answering_routes:
            await self.app(scope, replay, send)
            return
        # A bounded queue: past max_waiting requests in progress, answer 503 at once rather
        # than let requests wait past their timeout behind the ones already running.
        load = service.load
        if load["in_progress"] >= spec.max_waiting:
            wait = max(1, math.ceil(load["latency_s"]))
            note(path, 503, "busy", client, request_id)
            return await answer(problem(
                503, f"The service is busy: {load['in_progress']} requests are in "
                     f"progress, its limit is {spec.max_waiting}.",
                f"Retry after {wait} s.", request_id, **{"Retry-After": str(wait)}))
        load["in_progress"] += 1
        # the timeout counts from here: time spent waiting for a worker thread is part of it
        state["deadline"] = time.monotonic() + spec.timeout_s
        started = time.perf_counter()
        status = {"code": 0}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, sending)
        finally:
            load["in_progress"] -= 1
        if status["code"] == 200:  # how long an answer takes now, for Retry-After
            load["latency_s"] += 0.2 * (time.perf_counter() - started - load["latency_s"])
