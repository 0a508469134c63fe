"""The models that run inside this process: the bundled model and the fake ones.

The gateway calls them directly: they need no HTTP client, no API key and no price lookup, so
going through litellm would only add its ~2.5 s import, a millisecond of bookkeeping per call and
a slow interpreter exit. Hosted models keep going through litellm. Both routes end in the same
gateway steps (cache, trace, retries, cost), so a ``local/`` or ``fake/`` id is called exactly
like ``openai/...``.

A backend answers with a ``Reply``; it signals trouble with ``BackendTimeout`` (the model ran out
of time) or ``BackendError`` (an HTTP-like status; 429 and 5xx are worth retrying).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.errors import UnknownModel
from workbench.llm import fake, local


class BackendTimeout(TimeoutError):
    """The in-process model did not answer in time. ``retryable`` is False for the bundled model:
    trying again only queues more work on the same CPU that just ran out of time."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class BackendError(Exception):
    """An in-process model failed with an HTTP-like status (429, 500, 404, ...)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status_code == 429 or self.status_code >= 500


LOCAL_PROVIDERS = ("local", "fake")  # models this process runs itself
# Providers that run on the user's machine: never billed, never "external" for privacy rules.
ON_MACHINE_PROVIDERS = (*LOCAL_PROVIDERS, "ollama", "ollama_chat")


def provider_of(model: str) -> str:
    """The provider part of a model id (``fake/echo`` → ``fake``), or a clear refusal."""
    provider, sep, _ = model.partition("/")
    if not sep or not provider:
        raise UnknownModel(f"'{model}' does not name a provider.",
                           f"Write models as provider/name, e.g. {local.MODEL_ID}, fake/echo "
                           "or openai/gpt-4o-mini (see `workbench models`).")
    return provider


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = "stop"
    cost_usd: float | None = None  # None: the gateway prices it (local $0, fake per its price)


@dataclass
class Request:
    """What an in-process model needs of a call."""

    model: str  # the full id, e.g. fake/echo:latency=50ms
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    adapter: str | None = None


class Backend(Protocol):
    """What carries a model's calls: the bundled model and the fake ones here, hosted models
    through litellm (``workbench.llm.hosted``). The gateway does the rest the same way for each:
    cache, retries, traces, prices."""

    def complete(self, request: Request) -> Reply: ...

    async def acomplete(self, request: Request) -> Reply: ...

    def stream(self, request: Request) -> Iterator[str | Reply]:
        """Text pieces as they come, then one ``Reply`` with the usage (its text empty)."""
        ...


def _timeout_seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, (int, float)):
        return float(timeout)
    return getattr(timeout, "read", None) or getattr(timeout, "connect", None)


# -- fake models -----------------------------------------------------------------------------------

class FakeBackend:
    """``fake/...``: scripted replies, simulated latency and failures (``workbench.llm.fake``)."""

    def _plan(self, request: Request) -> tuple[float, Exception | None, str]:
        spec = fake.parse(request.model)
        n, fails = fake.next_call(request.model, spec)
        limit = _timeout_seconds(request.timeout)
        if fails and spec.fail == "timeout" or (limit is not None and spec.latency > limit):
            wait = limit if limit is not None else spec.latency
            return wait, BackendTimeout(f"{request.model} timed out after {wait:.3g}s"), ""
        if fails:
            status = int(spec.fail)
            msg = "rate limit (simulated)" if status == 429 else "server error (simulated)"
            return spec.latency, BackendError(status, msg), ""
        return spec.latency, None, fake.reply(spec, request.messages, n)

    @staticmethod
    def _reply(request: Request, text: str) -> Reply:
        prompt = sum(fake.count_tokens(str(m.get("content", ""))) for m in request.messages)
        return Reply(text, prompt, fake.count_tokens(text), "stop")

    def complete(self, request: Request) -> Reply:
        wait, error, text = self._plan(request)
        if wait:
            time.sleep(wait)
        if error:
            raise error
        return self._reply(request, text)

    async def acomplete(self, request: Request) -> Reply:
        wait, error, text = self._plan(request)
        if wait:
            await asyncio.sleep(wait)
        if error:
            raise error
        return self._reply(request, text)

    def stream(self, request: Request) -> Iterator[str | Reply]:
        """Text pieces (a word at a time), then the whole ``Reply``."""
        reply = self.complete(request)
        words = reply.text.split(" ")
        for i, word in enumerate(words):
            yield word + (" " if i < len(words) - 1 else "")
        yield reply


# -- the bundled model -----------------------------------------------------------------------------

def _generation(request: Request) -> local.GenerationRequest:
    params = request.params
    stop = params.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    limit = _timeout_seconds(request.timeout)
    return local.GenerationRequest(
        messages=[{"role": m["role"], "content": m["content"]} for m in request.messages],
        max_new_tokens=int(params.get("max_tokens") or local.DEFAULT_MAX_TOKENS),
        temperature=float(params.get("temperature") or 0.0),
        top_p=float(params.get("top_p") or 1.0),
        stop=tuple(stop),
        seed=params.get("seed"),
        adapter=request.adapter,
        deadline=time.monotonic() + limit if limit else None,
    )


class LocalBackend:
    """``local/smollm2-135m``: the bundled model, batched across concurrent callers."""

    @staticmethod
    def _check(request: Request) -> None:
        if request.model != local.MODEL_ID:
            raise BackendError(404, f"unknown local model {request.model}; "
                                    f"the bundled one is {local.MODEL_ID}")

    @staticmethod
    def _reply(result: local.GenerationResult) -> Reply:
        return Reply(result.text, result.prompt_tokens, result.completion_tokens,
                     result.finish_reason)

    def complete(self, request: Request) -> Reply:
        self._check(request)
        try:
            return self._reply(local.get_model().generate(_generation(request)))
        except local.GenerationTimeout as exc:
            raise BackendTimeout(f"{local.MODEL_ID}: {exc}", retryable=False) from exc

    async def acomplete(self, request: Request) -> Reply:
        self._check(request)
        engine = await asyncio.to_thread(local.get_model)
        try:
            result = await asyncio.wrap_future(engine.submit(_generation(request)))
        except local.GenerationTimeout as exc:
            raise BackendTimeout(f"{local.MODEL_ID}: {exc}", retryable=False) from exc
        return self._reply(result)

    def stream(self, request: Request) -> Iterator[str | Reply]:
        """Text pieces as the model writes them, then the whole ``Reply``."""
        self._check(request)
        engine = local.get_model()
        generation = _generation(request)
        generation.stream = local.TextStream()
        future = engine.submit(generation)
        for piece in generation.stream:
            yield piece
        try:
            yield self._reply(future.result())
        except local.GenerationTimeout as exc:
            raise BackendTimeout(f"{local.MODEL_ID}: {exc}", retryable=False) from exc


BACKENDS: dict[str, Backend] = {"fake": FakeBackend(), "local": LocalBackend()}


def backend_for(model: str) -> Backend | None:
    """The in-process backend serving ``model``, or None for a model litellm calls
    (``workbench.llm.hosted``)."""
    return BACKENDS.get(model.partition("/")[0])


async def in_threads(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    """Iterate a blocking iterator (a stream) from asyncio code, each step in a worker thread."""
    sentinel = object()
    while True:
        item = await asyncio.to_thread(next, iterator, sentinel)
        if item is sentinel:
            return
        yield item
