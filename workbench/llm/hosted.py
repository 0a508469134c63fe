"""The third backend: hosted models (and any model litellm knows) called through litellm, with
the same contract as the bundled and fake models (``workbench.llm.backends.Backend``), so the
gateway's cache, retries, traces and prices treat every model alike.

litellm is imported on the first hosted call, with its network look-ups (the price map, the
model list) switched off and the bundled and fake models registered as its custom providers.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

from workbench.llm.backends import (
    LOCAL_PROVIDERS,
    ON_MACHINE_PROVIDERS,
    Reply,
    Request,
    provider_of,
)
from workbench.llm.offline import litellm_offline

_litellm = None
_litellm_lock = threading.Lock()


def litellm():
    """litellm, imported on first use with its network look-ups switched off."""
    global _litellm
    if _litellm is None:
        with _litellm_lock:
            if _litellm is None:
                litellm_offline()
                import litellm as lib

                # litellm builds some pydantic schemas lazily and warns about its own typing.
                warnings.filterwarnings("ignore", message=r".*`ReadOnly` qualifier",
                                        category=UserWarning)

                from workbench.llm.providers import PROVIDERS

                lib.suppress_debug_info = True
                lib.telemetry = False
                known = {entry["provider"] for entry in lib.custom_provider_map}
                lib.custom_provider_map = [
                    *lib.custom_provider_map,
                    *({"provider": name, "custom_handler": cls()}
                      for name, cls in PROVIDERS.items() if name not in known),
                ]
                from litellm.utils import custom_llm_setup

                custom_llm_setup()
                _litellm = lib
    return _litellm


def _user_callbacks(lib) -> bool:
    return bool(lib.callbacks or lib.success_callback or lib.failure_callback
                or getattr(lib, "_async_success_callback", None))


def user_callbacks_set() -> bool:
    """Whether the user set up litellm callbacks of their own (e.g. to send traces elsewhere);
    never imports litellm to find out."""
    lib = sys.modules.get("litellm")
    return lib is not None and _user_callbacks(lib)


def is_litellm_error(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` is one of litellm's exception classes (never, if litellm is not loaded)."""
    if _litellm is None:
        return False
    return isinstance(exc, tuple(getattr(_litellm, name) for name in names))


def _without_litellm_logging():
    """The gateway traces and prices every call itself, so litellm's background success logging
    (a thread-pool job per call, ~0.4 ms of CPU) is pure overhead — unless the user has set up
    litellm callbacks of their own, which then keep working."""
    lib = litellm()
    if _user_callbacks(lib):
        return nullcontext()
    try:
        from litellm._internal_context import internal_sub_call
    except ImportError:  # a litellm without it: keep its logging
        return nullcontext()
    return internal_sub_call()


def _kwargs(request: Request) -> dict[str, Any]:
    kwargs = dict(request.params)
    # The gateway retries (and counts the tries); the provider SDK retrying as well would
    # multiply the requests and hide them.
    kwargs.setdefault("max_retries", 0)
    if request.adapter is not None:
        kwargs["adapter_path"] = request.adapter
    return kwargs


def _cost(request: Request, response: Any) -> float | None:
    if provider_of(request.model) in LOCAL_PROVIDERS:
        return None  # priced by the gateway, as on the direct route
    if provider_of(request.model) in ON_MACHINE_PROVIDERS:
        return 0.0
    cost = getattr(response, "_hidden_params", {}).get("response_cost")
    if cost is None:
        try:
            cost = litellm().completion_cost(completion_response=response)
        except Exception:  # a model missing from the price map: unknown, not free
            return float("nan")
    return float(cost)


def _stream_cost(request: Request, prompt_tokens: int, completion_tokens: int) -> float | None:
    if provider_of(request.model) in LOCAL_PROVIDERS:
        return None
    if provider_of(request.model) in ON_MACHINE_PROVIDERS:
        return 0.0
    try:
        prompt_cost, completion_cost = litellm().cost_per_token(
            model=request.model, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens)
        return float(prompt_cost + completion_cost)
    except Exception:
        return float("nan")


def _reply(request: Request, response: Any) -> Reply:
    choice = response.choices[0]
    usage = getattr(response, "usage", None)
    return Reply(text=choice.message.content or "",
                 prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                 completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                 finish_reason=choice.finish_reason,
                 cost_usd=_cost(request, response))


class LitellmBackend:
    """Any model litellm can call: complete, acomplete and stream, as the other backends."""

    def complete(self, request: Request) -> Reply:
        lib = litellm()
        with _without_litellm_logging():
            response = lib.completion(model=request.model, messages=request.messages,
                                      timeout=request.timeout, **_kwargs(request))
        return _reply(request, response)

    async def acomplete(self, request: Request) -> Reply:
        lib = litellm()
        with _without_litellm_logging():
            response = await lib.acompletion(model=request.model, messages=request.messages,
                                             timeout=request.timeout, **_kwargs(request))
        return _reply(request, response)

    def stream(self, request: Request) -> Iterator[str | Reply]:
        """Text pieces, then a ``Reply`` with the usage and the finish reason (no text)."""
        response = litellm().completion(model=request.model, messages=request.messages,
                                        stream=True, stream_options={"include_usage": True},
                                        timeout=request.timeout, **_kwargs(request))
        usage = None
        finish = None
        for chunk in response:
            if getattr(chunk, "usage", None):
                usage = chunk.usage
            if not chunk.choices:
                continue
            if chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
            piece = chunk.choices[0].delta.content
            if piece:
                yield piece
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
        yield Reply("", prompt_tokens, completion_tokens, finish,
                    cost_usd=_stream_cost(request, prompt_tokens, completion_tokens))


BACKEND = LitellmBackend()
