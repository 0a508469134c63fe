"""The bundled and fake models as litellm custom providers, for code that calls litellm itself.

The gateway calls these models directly (``workbench.llm.backends``); registering them with
litellm as well means ``litellm.completion(model="local/smollm2-135m", ...)`` works too, e.g. in
tools built on litellm, once ``workbench.llm.hosted.litellm()`` has set litellm up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from workbench.llm.offline import litellm_offline

litellm_offline()  # before litellm is imported, also when this module is imported first

from litellm import CustomLLM, Usage  # noqa: E402
from litellm.exceptions import Timeout as LiteLLMTimeout  # noqa: E402
from litellm.llms.custom_llm import CustomLLMError  # noqa: E402

from workbench.llm.backends import (  # noqa: E402
    BackendError,
    BackendTimeout,
    FakeBackend,
    LocalBackend,
    Reply,
    Request,
    in_threads,
)


def _request(provider: str, model: str, messages: list, optional_params: dict,
             timeout: Any) -> Request:
    params = dict(optional_params or {})
    adapter = params.pop("adapter_path", None)
    return Request(model=f"{provider}/{model}", messages=messages, params=params,
                   timeout=timeout, adapter=adapter)


def _litellm_error(provider: str, exc: Exception) -> Exception:
    if isinstance(exc, BackendTimeout):
        return LiteLLMTimeout(message=str(exc), model=provider, llm_provider=provider)
    if isinstance(exc, BackendError):
        return CustomLLMError(status_code=exc.status_code, message=exc.message)
    return exc


def _chunk(text: str, reply: Reply | None = None) -> dict:
    usage = None
    if reply is not None:
        usage = {"prompt_tokens": reply.prompt_tokens,
                 "completion_tokens": reply.completion_tokens,
                 "total_tokens": reply.prompt_tokens + reply.completion_tokens}
    return {"text": text, "is_finished": reply is not None,
            "finish_reason": reply.finish_reason if reply else None,
            "usage": usage, "index": 0, "tool_use": None}


class _Adapter(CustomLLM):
    provider = ""
    backend: FakeBackend | LocalBackend

    def _fill(self, model_response, model: str, reply: Reply):
        model_response.choices[0].message.content = reply.text
        model_response.choices[0].finish_reason = reply.finish_reason
        model_response.model = f"{self.provider}/{model}"
        model_response.usage = Usage(prompt_tokens=reply.prompt_tokens,
                                     completion_tokens=reply.completion_tokens,
                                     total_tokens=reply.prompt_tokens + reply.completion_tokens)
        return model_response

    def completion(self, model, messages, api_base, custom_prompt_dict, model_response,
                   print_verbose, encoding, api_key, logging_obj, optional_params, acompletion=None,
                   litellm_params=None, logger_fn=None, headers={}, timeout=None, client=None):
        request = _request(self.provider, model, messages, optional_params, timeout)
        try:
            reply = self.backend.complete(request)
        except (BackendTimeout, BackendError) as exc:
            raise _litellm_error(self.provider, exc) from exc
        return self._fill(model_response, model, reply)

    async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response,
                          print_verbose, encoding, api_key, logging_obj, optional_params,
                          acompletion=None, litellm_params=None, logger_fn=None, headers={},
                          timeout=None, client=None):
        request = _request(self.provider, model, messages, optional_params, timeout)
        try:
            reply = await self.backend.acomplete(request)
        except (BackendTimeout, BackendError) as exc:
            raise _litellm_error(self.provider, exc) from exc
        return self._fill(model_response, model, reply)

    def streaming(self, model, messages, api_base, custom_prompt_dict, model_response,
                  print_verbose, encoding, api_key, logging_obj, optional_params, acompletion=None,
                  litellm_params=None, logger_fn=None, headers={}, timeout=None,
                  client=None) -> Iterator[dict]:
        request = _request(self.provider, model, messages, optional_params, timeout)
        try:
            for item in self.backend.stream(request):
                yield _chunk("", item) if isinstance(item, Reply) else _chunk(item)
        except (BackendTimeout, BackendError) as exc:
            raise _litellm_error(self.provider, exc) from exc

    async def astreaming(self, *args, **kwargs) -> AsyncIterator[dict]:
        async for chunk in in_threads(self.streaming(*args, **kwargs)):
            yield chunk


class FakeProvider(_Adapter):
    provider = "fake"
    backend = FakeBackend()


class LocalProvider(_Adapter):
    provider = "local"
    backend = LocalBackend()


PROVIDERS = {"local": LocalProvider, "fake": FakeProvider}
