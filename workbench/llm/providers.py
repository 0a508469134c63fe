"""The bundled and fake models as litellm custom providers.

They are registered exactly like any third-party provider, so ``local/...`` and ``fake/...`` ids
go through the same litellm call as ``openai/...``: one code path for every model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm import CustomLLM, Usage
from litellm.exceptions import Timeout as LiteLLMTimeout
from litellm.llms.custom_llm import CustomLLMError

from workbench.llm import fake, local


def _fill(model_response, model: str, text: str, prompt_tokens: int, completion_tokens: int,
          finish_reason: str):
    model_response.choices[0].message.content = text
    model_response.choices[0].finish_reason = finish_reason
    model_response.model = model
    model_response.usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                 total_tokens=prompt_tokens + completion_tokens)
    return model_response


def _timeout_seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, (int, float)):
        return float(timeout)
    return getattr(timeout, "read", None) or getattr(timeout, "connect", None)


class FakeProvider(CustomLLM):
    """``fake/...``: scripted replies, simulated latency and failures (see ``workbench.llm.fake``)."""

    def _plan(self, model: str, messages: list, timeout: Any) -> tuple[float, Exception | None,
                                                                        str]:
        spec = fake.parse(model)
        n, fails = fake.next_call(model, spec)
        limit = _timeout_seconds(timeout)
        if fails and spec.fail == "timeout" or (limit is not None and spec.latency > limit):
            wait = limit if limit is not None else spec.latency
            return wait, LiteLLMTimeout(message=f"fake/{model} timed out after {wait:.3g}s",
                                        model=f"fake/{model}", llm_provider="fake"), ""
        if fails:
            status = int(spec.fail)
            msg = "rate limit (simulated)" if status == 429 else "server error (simulated)"
            return spec.latency, CustomLLMError(status_code=status, message=msg), ""
        return spec.latency, None, fake.reply(spec, messages, n)

    def _respond(self, model, messages, model_response, text):
        prompt = sum(fake.count_tokens(str(m.get("content", ""))) for m in messages)
        return _fill(model_response, f"fake/{model}", text, prompt, fake.count_tokens(text), "stop")

    def completion(self, model, messages, api_base, custom_prompt_dict, model_response,
                   print_verbose, encoding, api_key, logging_obj, optional_params, acompletion=None,
                   litellm_params=None, logger_fn=None, headers={}, timeout=None, client=None):
        wait, error, text = self._plan(model, messages, timeout)
        if wait:
            time.sleep(wait)
        if error:
            raise error
        return self._respond(model, messages, model_response, text)

    async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response,
                          print_verbose, encoding, api_key, logging_obj, optional_params,
                          acompletion=None, litellm_params=None, logger_fn=None, headers={},
                          timeout=None, client=None):
        wait, error, text = self._plan(model, messages, timeout)
        if wait:
            await asyncio.sleep(wait)
        if error:
            raise error
        return self._respond(model, messages, model_response, text)

    def streaming(self, model, messages, api_base, custom_prompt_dict, model_response,
                  print_verbose, encoding, api_key, logging_obj, optional_params, acompletion=None,
                  litellm_params=None, logger_fn=None, headers={}, timeout=None,
                  client=None) -> Iterator[dict]:
        wait, error, text = self._plan(model, messages, timeout)
        if wait:
            time.sleep(wait)
        if error:
            raise error
        words = text.split(" ")
        for i, word in enumerate(words):
            yield _chunk(word + (" " if i < len(words) - 1 else ""))
        prompt = sum(fake.count_tokens(str(m.get("content", ""))) for m in messages)
        yield _chunk("", "stop", prompt, fake.count_tokens(text))

    async def astreaming(self, *args, **kwargs) -> AsyncIterator[dict]:
        for chunk in self.streaming(*args, **kwargs):
            yield chunk


def _chunk(text: str, finish: str | None = None, prompt_tokens: int = 0,
           completion_tokens: int = 0) -> dict:
    usage = None
    if finish is not None:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
    return {"text": text, "is_finished": finish is not None, "finish_reason": finish,
            "usage": usage, "index": 0, "tool_use": None}


def _request(messages: list, optional_params: dict, timeout: Any) -> local.GenerationRequest:
    stop = optional_params.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    limit = _timeout_seconds(timeout)
    return local.GenerationRequest(
        messages=[{"role": m["role"], "content": m["content"]} for m in messages],
        max_new_tokens=int(optional_params.get("max_tokens") or 256),
        temperature=float(optional_params.get("temperature") or 0.0),
        top_p=float(optional_params.get("top_p") or 1.0),
        stop=tuple(stop),
        seed=optional_params.get("seed"),
        adapter=optional_params.get("adapter_path"),
        deadline=time.monotonic() + limit if limit else None,
    )


def _timeout_error(model: str, exc: BaseException) -> LiteLLMTimeout:
    return LiteLLMTimeout(message=f"{model}: {exc}", model=model, llm_provider="local")


class LocalProvider(CustomLLM):
    """``local/smollm2-135m``: the bundled model, batched across concurrent callers."""

    def _check(self, model: str) -> None:
        if f"local/{model}" != local.MODEL_ID:
            raise CustomLLMError(status_code=404,
                                 message=f"unknown local model local/{model}; "
                                         f"the bundled one is {local.MODEL_ID}")

    def completion(self, model, messages, api_base, custom_prompt_dict, model_response,
                   print_verbose, encoding, api_key, logging_obj, optional_params, acompletion=None,
                   litellm_params=None, logger_fn=None, headers={}, timeout=None, client=None):
        self._check(model)
        try:
            result = local.get_model().generate(_request(messages, optional_params, timeout))
        except local.GenerationTimeout as exc:
            raise _timeout_error(local.MODEL_ID, exc) from exc
        return _fill(model_response, local.MODEL_ID, result.text, result.prompt_tokens,
                     result.completion_tokens, result.finish_reason)

    async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response,
                          print_verbose, encoding, api_key, logging_obj, optional_params,
                          acompletion=None, litellm_params=None, logger_fn=None, headers={},
                          timeout=None, client=None):
        self._check(model)
        engine = await asyncio.to_thread(local.get_model)
        try:
            result = await asyncio.wrap_future(engine.submit(_request(messages, optional_params,
                                                                      timeout)))
        except local.GenerationTimeout as exc:
            raise _timeout_error(local.MODEL_ID, exc) from exc
        return _fill(model_response, local.MODEL_ID, result.text, result.prompt_tokens,
                     result.completion_tokens, result.finish_reason)

    def streaming(self, model, messages, api_base, custom_prompt_dict, model_response,
                  print_verbose, encoding, api_key, logging_obj, optional_params, acompletion=None,
                  litellm_params=None, logger_fn=None, headers={}, timeout=None,
                  client=None) -> Iterator[dict]:
        from transformers import TextIteratorStreamer

        self._check(model)
        engine = local.get_model()
        request = _request(messages, optional_params, timeout)
        request.streamer = TextIteratorStreamer(engine.tokenizer, skip_prompt=True,
                                                skip_special_tokens=True)
        future = engine.submit(request)
        for piece in request.streamer:
            if piece:
                yield _chunk(piece)
        try:
            result = future.result()
        except local.GenerationTimeout as exc:
            raise _timeout_error(local.MODEL_ID, exc) from exc
        yield _chunk("", result.finish_reason, result.prompt_tokens, result.completion_tokens)

    async def astreaming(self, *args, **kwargs) -> AsyncIterator[dict]:
        iterator = self.streaming(*args, **kwargs)
        sentinel = object()
        while True:
            chunk = await asyncio.to_thread(next, iterator, sentinel)
            if chunk is sentinel:
                break
            yield chunk


PROVIDERS = {"local": LocalProvider, "fake": FakeProvider}
