"""One way to call any model: ``complete``, ``complete_many``, ``acomplete`` and ``stream``.

Every call returns a ``Completion`` with text, token usage, latency and cost, is recorded as an
``llm.call`` span in the active project, and is served from the project's response cache when the
same request was made before. Transient failures (timeouts, 429, 5xx, connection errors) are
retried with exponential backoff. Each model is carried by a backend with one contract
(``workbench.llm.backends.Backend``): the bundled and fake models run in this process
(``workbench.llm.backends``), hosted models go through litellm (``workbench.llm.hosted``,
imported on the first hosted call); every call takes the same steps whichever carries it.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import (
    HostedCallsDisabled,
    ModelCallFailed,
    ModelTimeout,
    ModelUnavailable,
    UnknownModel,
    WorkbenchError,
)
from workbench.llm import fake, hosted
from workbench.llm.backends import (
    ON_MACHINE_PROVIDERS,
    Backend,
    BackendError,
    BackendTimeout,
    Reply,
    Request,
    backend_for,
    provider_of,
)
from workbench.llm.hosted import litellm
from workbench.llm.local import MODEL_ID as BUNDLED_MODEL
from workbench.records import Completion, Usage
from workbench.tracing import start_span, write_span

if TYPE_CHECKING:
    from workbench.project import Project

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_RETRIES = 3
ENV_ALLOW_HOSTED = "WORKBENCH_ALLOW_HOSTED"
ENV_RETRY_BASE = "WORKBENCH_RETRY_BASE_S"

Prompt = str | list[dict[str, Any]]



def _backend(model: str) -> Backend:
    """What carries a call to ``model``: the bundled or a fake model in this process, or litellm
    for hosted models — and for every model once the user has given litellm callbacks of their
    own, so their observability sees the bundled and fake models too."""
    backend = backend_for(model)
    if backend is None or hosted.user_callbacks_set():
        return hosted.BACKEND
    return backend


def is_hosted(model: str) -> bool:
    return provider_of(model) not in ON_MACHINE_PROVIDERS


def hosted_allowed() -> bool:
    return os.environ.get(ENV_ALLOW_HOSTED, "1").lower() not in ("0", "false", "no")


def to_messages(prompt: Prompt, system: str | None = None) -> list[dict[str, Any]]:
    if isinstance(prompt, str):
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    else:
        messages = [m.model_dump() if hasattr(m, "model_dump") else dict(m) for m in prompt]
        for m in messages:
            if "role" not in m or "content" not in m:
                raise ValueError(f"Message {m!r} needs a 'role' and a 'content'.")
    if system is not None:
        messages = [{"role": "system", "content": system},
                    *(m for m in messages if m["role"] != "system")]
    return messages


@dataclass
class Call:
    """One prepared request: what is sent, where it is recorded."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    project: Project | None
    use_cache: bool
    timeout: float
    retries: int
    adapter: str | None = None
    redacted: dict[str, int] | None = None  # PII values replaced per type, when the card asked
    cache_key: str = ""
    attempts: int = 0
    span: Any = None
    started: float = field(default_factory=time.perf_counter)

    def request(self) -> Request:
        """The call as an in-process model takes it."""
        return Request(model=self.model, messages=self.messages, params=self.params,
                       timeout=self.timeout, adapter=self.adapter)


def _resolve_adapter(model: str, adapter: str | None, project: Project | None) -> tuple[str, str |
                                                                                        None]:
    """``local/smollm2-135m:NAME`` or ``adapter=NAME`` → the adapter folder in the project."""
    if provider_of(model) == "local" and ":" in model:
        model, _, name = model.partition(":")
        adapter = adapter or name
    if adapter is None:
        return model, None
    if provider_of(model) != "local":
        raise UnknownModel(f"Adapters attach to the bundled model only, not to {model}.",
                           f"Use model={BUNDLED_MODEL} with adapter={adapter!r}.")
    from pathlib import Path

    path = Path(adapter)
    if not path.is_dir() and project is not None:
        path = project.adapters_dir / adapter
    if not (path / "adapter_config.json").is_file():
        where = f" in {project.adapters_dir}" if project else " (no project is open)"
        raise ModelUnavailable(f"There is no LoRA adapter named '{adapter}'{where}.",
                               "Train one in phase 5 (notebooks/05_finetuning.py) or pass the "
                               "path of a PEFT adapter folder.")
    return model, str(path.resolve())


def prepare(prompt: Prompt, model: str | None = None, *, system: str | None = None,
            temperature: float | None = None, max_tokens: int | None = None,
            stop: str | list[str] | None = None, seed: int | None = None,
            adapter: str | None = None, cache: bool = True, timeout: float | None = None,
            retries: int | None = None, project: Project | None = None,
            **params: Any) -> Call:
    from workbench.project import active_project

    project = project if project is not None else active_project()
    model = model or default_model(project)
    model, adapter_path = _resolve_adapter(model, adapter, project)
    _check_model_id(model)
    if is_hosted(model) and not hosted_allowed():
        raise HostedCallsDisabled(
            f"Calls to hosted models are switched off here ({ENV_ALLOW_HOSTED}=0), "
            f"so {model} was not called.",
            f"Use {BUNDLED_MODEL} or a fake/ model, or set {ENV_ALLOW_HOSTED}=1.")
    for key, value in (("temperature", temperature), ("max_tokens", max_tokens), ("stop", stop),
                       ("seed", seed)):
        if value is not None:
            params[key] = value
    call = Call(model=model, messages=to_messages(prompt, system), params=params,
                project=project, use_cache=cache and project is not None,
                timeout=DEFAULT_TIMEOUT_S if timeout is None else timeout,
                retries=DEFAULT_RETRIES if retries is None else retries, adapter=adapter_path)
    if is_hosted(model) and project is not None:
        from workbench.pii import Placeholders, redact_messages
        from workbench.privacy import project_policy

        if project_policy(project).external_pii_forbidden:  # the card says: no PII to external APIs
            placeholders = Placeholders()
            call.messages = redact_messages(call.messages, placeholders=placeholders)
            call.redacted = placeholders.counts
    if call.use_cache:
        from workbench.llm.local import adapter_stamp

        # A retrained adapter keeps its name and path: its weights' stamp keeps old answers out.
        adapter_id = f"{adapter_path}@{adapter_stamp(adapter_path)}" if adapter_path else None
        key = json.dumps([model, adapter_id, call.messages, params], sort_keys=True,
                         default=str, separators=(",", ":"))
        call.cache_key = hashlib.sha256(key.encode()).hexdigest()
    return call


def _check_model_id(model: str) -> None:
    provider = provider_of(model)
    if provider == "fake":
        fake.parse(model)
    elif provider == "local" and model != BUNDLED_MODEL:
        raise UnknownModel(f"There is no local model '{model}'.",
                           f"The bundled model is {BUNDLED_MODEL}.")


def default_model(project: Project | None) -> str:
    if project is not None:
        chosen = project.card().get("model", {}).get("chosen")
        if chosen:
            return chosen
    return BUNDLED_MODEL


# -- the cache -----------------------------------------------------------------------------------

_RECENT_MAX = 4096
_recent: OrderedDict[tuple[str, str], str] = OrderedDict()  # (db path, key) -> completion JSON
_recent_lock = threading.Lock()
# db path -> a cache several processes share (Redis: workbench.serve.shared_state), consulted
# after this process's own recent answers and before the project's SQLite cache
_shared_caches: dict[str, Any] = {}


def share_cache(project: Project, cache: Any | None) -> None:
    """Put a cache shared with other processes (``get(key) -> str | None``, ``put(key, body)``)
    in front of the project's SQLite response cache, under the same keys; None removes it."""
    if cache is None:
        _shared_caches.pop(str(project.store.path), None)
    else:
        _shared_caches[str(project.store.path)] = cache


def _cache_get(call: Call) -> Completion | None:
    if not call.use_cache:
        return None
    store = call.project.store
    with _recent_lock:
        body = _recent.get((str(store.path), call.cache_key))
    if body is None:
        shared = _shared_caches.get(str(store.path))
        body = shared.get(call.cache_key) if shared is not None else None
    if body is None:
        row = store.db.execute("SELECT response FROM llm_cache WHERE key = ?",
                               (call.cache_key,)).fetchone()
        if row is None:
            return None
        body = row[0]
    return Completion.model_validate_json(body)


def _cache_put(call: Call, completion: Completion) -> None:
    body = completion.model_dump_json()
    store = call.project.store
    with _recent_lock:
        _recent[(str(store.path), call.cache_key)] = body
        if len(_recent) > _RECENT_MAX:
            _recent.popitem(last=False)
    shared = _shared_caches.get(str(store.path))
    if shared is not None:
        shared.put(call.cache_key, body)
    store.defer("INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?, ?)",
                (call.cache_key, call.model, body, time.time()))


# -- finishing a call ----------------------------------------------------------------------------

def _span_attributes(call: Call) -> dict[str, Any]:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_of(call.model),
        "gen_ai.request.model": call.model,
        "gen_ai.input.messages": call.messages,
    }
    for key in ("temperature", "max_tokens", "top_p", "seed"):
        if key in call.params:
            attrs[f"gen_ai.request.{key}"] = call.params[key]
    if call.adapter:
        attrs["workbench.adapter"] = call.adapter
    if call.redacted is not None:
        attrs["workbench.pii_redacted"] = call.redacted
    return attrs


def _begin(call: Call) -> None:
    call.span = start_span("llm.call", _span_attributes(call)) if call.project else None
    call.started = time.perf_counter()


def _cached_result(call: Call, hit: Completion) -> Completion:
    result = hit.model_copy(update={
        "cached": True, "cost_usd": 0.0, "latency_s": time.perf_counter() - call.started,
        "trace_id": call.span.trace_id if call.span else None})
    _record(call, result, cache_hit=True)
    return result


def _cost(call: Call, reply: Reply) -> float:
    if reply.cost_usd is not None:
        return reply.cost_usd
    if provider_of(call.model) == "fake":
        price_in, price_out = fake.price(call.model)
        return reply.prompt_tokens * price_in + reply.completion_tokens * price_out
    return 0.0  # the bundled model


def _finish(call: Call, reply: Reply) -> Completion:
    result = Completion(
        model=call.model,
        text=reply.text,
        usage=Usage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens),
        latency_s=time.perf_counter() - call.started,
        cost_usd=_cost(call, reply),
        finish_reason=reply.finish_reason,
        trace_id=call.span.trace_id if call.span else None,
    )
    _record(call, result)
    return result


def _record(call: Call, result: Completion | None, *, cache_hit: bool = False,
            error: BaseException | None = None) -> None:
    """Queue the span (and the cache entry) for the project's background writer."""
    span = call.span
    if call.project is None or span is None:
        return
    span.end_time = span.start_time + (time.perf_counter() - call.started)
    a = span.attributes
    a["workbench.cache_hit"] = cache_hit
    a["workbench.attempts"] = call.attempts
    if result is not None:
        a["gen_ai.usage.input_tokens"] = result.usage.prompt_tokens
        a["gen_ai.usage.output_tokens"] = result.usage.completion_tokens
        a["gen_ai.response.finish_reasons"] = [result.finish_reason]
        a["gen_ai.output.messages"] = [{"role": "assistant", "content": result.text}]
        a["workbench.cost_usd"] = result.cost_usd
    if error is not None:
        span.status = "error"
        span.error = f"{type(error).__name__}: {error}"
    write_span(call.project, span)
    if result is not None and not cache_hit and call.use_cache:
        _cache_put(call, result)


# -- hosted models, through litellm ----------------------------------------------------------------

def _check_credentials(call: Call) -> None:
    """A hosted model without its key fails fast with the variable to set (litellm would report
    a server error, which looks transient and would be retried)."""
    if not is_hosted(call.model) or "api_key" in call.params:
        return
    try:
        missing = litellm().validate_environment(model=call.model).get("missing_keys") or []
    except Exception:  # litellm cannot tell for this provider: let the call decide
        return
    if missing:
        raise ModelUnavailable(f"{call.model} needs {', '.join(missing)}, which is not set.",
                               f"Set {missing[0]} in your environment (see `workbench models`).")


# -- errors and retries --------------------------------------------------------------------------

def _transient(exc: BaseException) -> bool:
    exc = _unwrap(exc)
    if isinstance(exc, BackendTimeout):
        return exc.retryable
    if isinstance(exc, BackendError):
        return exc.transient
    return hosted.is_litellm_error(exc, "Timeout", "RateLimitError", "InternalServerError",
                          "ServiceUnavailableError", "APIConnectionError")


def _backoff(attempt: int) -> float:
    base = float(os.environ.get(ENV_RETRY_BASE, "0.5"))
    return min(base * 2 ** attempt, 20.0) * (0.5 + random.random() / 2)


def _retry(call: Call, exc: BaseException, *, shown: bool = False) -> float:
    """Seconds to wait before trying ``call`` again; raises the translated error (and records
    it) when the failure is not worth retrying, the retries are spent, or part of the reply was
    already shown."""
    if shown or call.attempts > call.retries or not _transient(exc):
        raise _fail(call, exc) from exc
    return _backoff(call.attempts - 1)


def _unwrap(exc: BaseException) -> BaseException:
    """litellm wraps errors raised while streaming (MidStreamFallbackError); use the cause."""
    seen = 0
    while seen < 5 and getattr(exc, "original_exception", None) is not None:
        exc, seen = exc.original_exception, seen + 1
    return exc


def _translate(call: Call, exc: BaseException) -> WorkbenchError:
    exc = _unwrap(exc)
    if isinstance(exc, WorkbenchError):
        return exc
    tries = f" after {call.attempts} tries" if call.attempts > 1 else ""
    detail = str(getattr(exc, "message", exc)).strip().splitlines()[0][:300] if str(exc) else ""
    status = getattr(exc, "status_code", None) if isinstance(exc, BackendError) else None
    if isinstance(exc, BackendTimeout) or hosted.is_litellm_error(exc, "Timeout"):
        return ModelTimeout(f"{call.model} did not answer within {call.timeout:g}s{tries}.",
                            "Raise timeout=..., ask for fewer max_tokens, or try again later.")
    if hosted.is_litellm_error(exc, "AuthenticationError"):
        return ModelUnavailable(f"{call.model} refused the API key ({detail}).",
                                "Check the key in your environment (see `workbench models`).")
    if status == 429 or hosted.is_litellm_error(exc, "RateLimitError"):
        return ModelCallFailed(f"{call.model} kept answering 'rate limited'{tries}.",
                               "Lower the concurrency or wait a minute, then retry.")
    if status == 404 or hosted.is_litellm_error(exc, "NotFoundError"):
        return UnknownModel(f"The provider does not know {call.model} ({detail}).",
                            "Check the model id (see `workbench models`).")
    if hosted.is_litellm_error(exc, "BadRequestError") and "LLM Provider NOT provided" in str(exc):
        return UnknownModel(f"litellm does not know the provider of {call.model}.",
                            "See `workbench models` for ids that work.")
    return ModelCallFailed(f"{call.model} failed{tries}: {type(exc).__name__}: "
                           f"{detail.rstrip('.')}.",
                           "Retry; if it keeps failing, check the model id and your key.")


def _fail(call: Call, exc: BaseException) -> WorkbenchError:
    error = _translate(call, exc)
    _record(call, None, error=error)
    return error


# -- the public calls ----------------------------------------------------------------------------

def _start(call: Call) -> Completion | None:
    """Open the call's span; answer from the cache when the same request was made before, and
    fail at once when a hosted model's key is missing."""
    _begin(call)
    hit = _cache_get(call)
    if hit is not None:
        return _cached_result(call, hit)
    try:
        _check_credentials(call)
    except WorkbenchError as exc:
        raise _fail(call, exc) from None
    return None


def complete(prompt: Prompt, model: str | None = None, **options: Any) -> Completion:
    """Call a model once. ``prompt`` is a string (one user message) or a list of messages.

    Options: ``system``, ``temperature``, ``max_tokens``, ``stop``, ``seed``, ``adapter`` (a LoRA
    adapter of the bundled model), ``cache`` (default on), ``timeout`` (seconds), ``retries``,
    ``project`` (default: the active one), and any provider parameter litellm accepts."""
    call = prepare(prompt, model, **options)
    return run_call(call)


def run_call(call: Call) -> Completion:
    cached = _start(call)
    if cached is not None:
        return cached
    backend = _backend(call.model)
    while True:
        call.attempts += 1
        try:
            reply = backend.complete(call.request())
            break
        except Exception as exc:
            time.sleep(_retry(call, exc))
    return _finish(call, reply)


async def acomplete(prompt: Prompt, model: str | None = None, **options: Any) -> Completion:
    """``complete`` for asyncio code."""
    call = prepare(prompt, model, **options)
    cached = _start(call)
    if cached is not None:
        return cached
    backend = _backend(call.model)
    while True:
        call.attempts += 1
        try:
            reply = await backend.acomplete(call.request())
            break
        except Exception as exc:
            await asyncio.sleep(_retry(call, exc))
    return _finish(call, reply)


Progress = bool | Callable[[int, int], None]


def complete_many(prompts: Iterable[Prompt], model: str | None = None, *,
                  concurrency: int | None = None, progress: Progress = True,
                  on_error: Literal["raise", "return"] = "raise",
                  **options: Any) -> list[Completion | WorkbenchError]:
    """Call a model on many prompts with bounded concurrency, in input order.

    Requests to the bundled model that are in flight together are generated as one batch.
    ``progress`` is True (a tqdm bar), False, or a function ``(done, total)``. With
    ``on_error="return"``, a failed item holds its error instead of stopping the batch."""
    calls = [prepare(p, model, **options) for p in prompts]
    total = len(calls)
    if concurrency is None:
        concurrency = 16 if calls and provider_of(calls[0].model) == "local" else 8
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"{calls[0].model if calls else ''}", unit="call")
    results: list[Completion | WorkbenchError] = [None] * total  # type: ignore[list-item]
    done = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal done
        try:
            results[i] = run_call(calls[i])
        except WorkbenchError as exc:
            results[i] = exc
        with lock:
            done += 1
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(done, total)

    # Each call runs in a copy of the caller's context, so an enclosing trace() is its
    # parent and tracing.tagged() attributes reach its span, as for a call made inline.
    context = contextvars.copy_context()
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, total or 1))) as pool:
            list(pool.map(lambda i: context.copy().run(one, i), range(total)))
    finally:
        if bar is not None:
            bar.close()
    if on_error == "raise":
        for r in results:
            if isinstance(r, WorkbenchError):
                raise r
    return results


class Stream:
    """Iterate for text pieces as they arrive; ``.completion`` holds the whole result after."""

    def __init__(self, call: Call):
        self.call = call
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        call = self.call
        cached = _start(call)
        if cached is not None:
            self.completion = cached
            yield cached.text
            return
        backend = _backend(call.model)
        pieces: list[str] = []
        while True:  # retry transient failures, but only before the first piece was shown
            call.attempts += 1
            last: Reply | None = None
            try:
                for item in backend.stream(call.request()):
                    if isinstance(item, Reply):
                        last = item
                    elif item:
                        pieces.append(item)
                        yield item
                break
            except Exception as exc:
                time.sleep(_retry(call, exc, shown=bool(pieces)))
        last = last or Reply("", 0, 0, None)
        last.text = "".join(pieces)
        self.completion = _finish(call, last)


def stream(prompt: Prompt, model: str | None = None, **options: Any) -> Stream:
    """Like ``complete``, but yields the reply piece by piece as the model writes it."""
    return Stream(prepare(prompt, model, **options))
