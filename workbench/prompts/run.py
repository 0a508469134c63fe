"""One item through one prompt: choose examples, render, call the model, parse, repair once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import ModelTimeout, WorkbenchError
from workbench.prompts.parsing import Parsed, parse_output
from workbench.prompts.rendering import render as render_messages
from workbench.prompts.rendering import select_examples
from workbench.prompts.templates import TemplateError
from workbench.prompts.versions import PromptVersion
from workbench.records import Completion

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project


@dataclass
class ItemResult:
    """What happened to one item. ``messages`` is the rendered prompt (first call);
    ``completion`` the last reply; ``completions`` every call made (first, then repairs), for
    cost and latency; ``repaired`` how many repair turns were sent."""

    messages: list[dict]
    completion: Completion | None
    parsed: Parsed
    repaired: int
    error: str | None
    completions: list[Completion] = field(default_factory=list)
    example_ids: list[Any] = field(default_factory=list)

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.completions)

    @property
    def latency_s(self) -> float:
        return sum(c.latency_s for c in self.completions)


def json_mode_supported(model: str) -> bool:
    """Whether the provider offers a JSON mode (``response_format``), per litellm's model map.
    Never for the bundled and fake models, which would ignore or reject it."""
    from workbench.llm.backends import LOCAL_PROVIDERS
    from workbench.llm.gateway import provider_of
    from workbench.llm.hosted import litellm

    if provider_of(model) in LOCAL_PROVIDERS:
        return False
    lib = litellm()
    try:
        if lib.supports_response_schema(model=model):
            return True
    except Exception:
        pass
    try:
        return "response_format" in (lib.get_supported_openai_params(model=model) or [])
    except Exception:
        return False


_OPEN = object()  # a schema part whose longest value has no bound


def _longest_value(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    """The longest JSON value ``schema`` allows, or ``_OPEN`` when it has no bound (free text,
    unbounded arrays, ...)."""
    if depth > 8 or not isinstance(schema, dict):
        return _OPEN
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        return _longest_value(target, defs, depth + 1) if target else _OPEN
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v)), default=_OPEN)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_longest_value(s, defs, depth + 1) for s in schema[key]]
            if not options or any(o is _OPEN for o in options):
                return _OPEN
            return max(options, key=lambda v: len(json.dumps(v)))
    kind = schema.get("type")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    if kind in ("integer", "number"):
        return -1.2345678901234567e-300  # as long as a number gets
    if kind == "string":
        if "maxLength" in schema:
            return "x" * int(schema["maxLength"])
        return _OPEN
    if kind == "array":
        item = _longest_value(schema.get("items", {}), defs, depth + 1)
        if "maxItems" not in schema or item is _OPEN:
            return _OPEN
        return [item] * int(schema["maxItems"])
    if kind == "object" or "properties" in schema:
        if schema.get("additionalProperties") not in (None, False):
            return _OPEN
        out = {}
        for name, part in schema.get("properties", {}).items():
            value = _longest_value(part, defs, depth + 1)
            if value is _OPEN:
                return _OPEN
            out[name] = value
        return out
    return _OPEN


def reply_budget(prompt: PromptVersion, model: str | None) -> int | None:
    """How many tokens the bundled model needs for a reply whose form the prompt fixes: the
    longest label plus room for a few words around it (a plain classification prompt), or the
    longest JSON the schema allows, indented and fenced (a schema of bounded fields). None when
    the reply's length is open (reasoning, free text) or the model is not the bundled one:
    hosted models stop on their own, and reasoning models count hidden tokens in max_tokens."""
    from workbench.llm.gateway import provider_of

    if not model or provider_of(model) != "local":
        return None
    from workbench.llm import local

    if prompt.output_schema is not None:
        schema = prompt.output_schema
        value = _longest_value(schema, schema.get("$defs", {}) or schema.get("definitions", {}))
        if value is _OPEN:
            return None
        return local.tokenizer().count(json.dumps(value, indent=2)) + 16  # fences, a word
    if prompt.labels and prompt.technique not in ("chain_of_thought", "react") \
            and not prompt.answer_pattern:
        return max(local.tokenizer().count(label) for label in prompt.labels) + 8
    return None


def reply_max_tokens(prompt: PromptVersion, model: str | None) -> int | None:
    """The ``max_tokens`` a call of ``prompt`` on ``model`` is sent with: the prompt's own,
    lowered to ``reply_budget`` when that is smaller (None when neither says)."""
    own = prompt.params.get("max_tokens")
    budget = reply_budget(prompt, model)
    if budget is None:
        return int(own) if own else None
    return min(int(own or budget), budget)


def repair_request(prompt: PromptVersion, error: str) -> str:
    if prompt.output_schema is not None:
        want = "one JSON object that matches the schema, and nothing else"
    elif prompt.labels and prompt.technique not in ("chain_of_thought", "react"):
        want = "exactly one of these labels and nothing else: " + ", ".join(prompt.labels)
    elif prompt.technique == "react":
        want = "your final answer on a line 'Final Answer: ...'"
    elif prompt.technique == "chain_of_thought" or prompt.answer_pattern:
        want = "your reasoning, then the answer on its own line as 'Answer: ...'"
    else:
        want = "the corrected answer"
    return f"Your previous reply could not be used: {error}. Reply again with {want}."


def complete_item(project: Project | None, prompt: PromptVersion, item: Mapping[str, Any], *,
                  model: str | None = None, train: pd.DataFrame | None = None,
                  repair_retries: int = 1, deadline: float | None = None,
                  on_text: Callable[[str], None] | None = None, trace_steps: bool = False,
                  **options: Any) -> ItemResult:
    """Answer one item with ``prompt``: pick few-shot examples from ``train``, render, call the
    model (``model`` or the prompt's, with the prompt's params; ``options`` go to
    ``workbench.llm.complete`` and win), parse, and when the reply does not parse send up to
    ``repair_retries`` repair turns with the previous reply and the reason. ``deadline``
    (``time.monotonic()``) bounds the whole item: each call gets only the time left, and no
    repair turn starts after it. With ``on_text``, the first call is streamed
    (``workbench.llm.stream``) and each piece of its reply passed to ``on_text`` as it comes.
    With ``trace_steps`` (the service's requests), rendering and each parse are traced as
    ``prompt.render`` and ``prompt.parse`` spans beside the model calls, so a request's trace
    shows every step; runs leave them out (a span per step per item buys them nothing).

    Model and template failures land in ``error`` (the run goes on); a few-shot pool that holds
    evaluation rows raises ``FewShotLeak``, because every item of that run would be tainted."""
    from workbench import llm

    if hasattr(item, "to_dict") and not isinstance(item, Mapping):
        item = item.to_dict()
    from workbench.llm.gateway import default_model

    model = model or prompt.model or default_model(project)
    examples = select_examples(prompt, item, train)
    example_ids = [e.get("id") for e in examples if e.get("id") is not None]
    try:
        with _step(project, "prompt.render", trace_steps) as span:
            messages = render_messages(prompt, item, examples=examples)
            if span is not None:
                span.attributes.update({"workbench.messages": messages,
                                        "workbench.example_ids": example_ids})
    except TemplateError as exc:
        return ItemResult([], None, Parsed(None, False, exc.one_line()), 0, exc.one_line(),
                          example_ids=example_ids)
    if prompt.technique == "react":
        return _react_item(project, prompt, messages, model, example_ids, options)
    params = {**prompt.params, **options}
    if "max_tokens" not in options:  # the caller's own max_tokens wins
        cap = reply_max_tokens(prompt, model)
        if cap is not None:
            params["max_tokens"] = cap
    if prompt.output_schema is not None and "response_format" not in params and model \
            and json_mode_supported(model):
        params["response_format"] = {"type": "json_object"}
    def parse(text: str) -> Parsed:
        with _step(project, "prompt.parse", trace_steps) as span:
            out = parse_output(prompt, text)
            if span is not None:
                span.attributes.update({
                    "workbench.parse_ok": out.ok, "workbench.parse_error": out.error,
                    "workbench.parsed": out.value if isinstance(
                        out.value, str | int | float | bool | type(None)) else json.dumps(
                        out.value, default=str)})
                if not out.ok:
                    span.status, span.error = "error", out.error
        return out

    completions: list[Completion] = []
    conversation = list(messages)
    repaired = 0
    parsed = Parsed(None, False, "the model was not called")

    def call() -> Completion:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ModelTimeout(f"{model} did not answer within the request's time.",
                                   "Allow more time for the request.")
            params["timeout"] = min(float(params.get("timeout") or left), left)
        if on_text is not None and not completions:
            streamed = llm.stream(conversation, model=model, project=project, **params)
            for piece in streamed:
                on_text(piece)
            return streamed.completion
        return llm.complete(conversation, model=model, project=project, **params)

    try:
        reply = call()
        completions.append(reply)
        parsed = parse(reply.text)
        while not parsed.ok and repaired < repair_retries:
            if deadline is not None and deadline <= time.monotonic():
                break  # no time for a repair turn: the unparsed reply stands
            conversation += [{"role": "assistant", "content": reply.text},
                             {"role": "user", "content": repair_request(prompt, parsed.error)}]
            repaired += 1
            reply = call()
            completions.append(reply)
            parsed = parse(reply.text)
    except WorkbenchError as exc:
        if not completions:
            parsed = Parsed(None, False, exc.one_line())
        return ItemResult(messages, completions[-1] if completions else None, parsed, repaired,
                          exc.one_line(), completions, example_ids)
    return ItemResult(messages, completions[-1], parsed, repaired, None, completions,
                      example_ids)


def _step(project: Project | None, name: str, enabled: bool):
    """A span around one step of ``complete_item`` when ``enabled``, else nothing."""
    if not enabled or project is None:
        from contextlib import nullcontext

        return nullcontext(None)
    from workbench.tracing import trace

    return trace(name, project)


def _react_item(project, prompt: PromptVersion, messages: list[dict], model: str | None,
                example_ids: list, options: dict[str, Any]) -> ItemResult:
    """A ReAct prompt runs the tool loop; the rendered system prompt comes first and the
    rendered user message is the question."""
    from workbench.prompts.react import react

    tools = options.pop("tools", None)
    max_steps = options.pop("max_steps", 4)
    params = {**prompt.params, **options}
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    trace = react(project, messages[-1]["content"], tools, model=model, max_steps=max_steps,
                  system=system, **params)
    if trace.answer is not None:
        parsed = parse_output(prompt, f"Final Answer: {trace.answer}")
    else:
        parsed = Parsed(None, False, trace.summary())
    return ItemResult(trace.messages, trace.completions[-1] if trace.completions else None,
                      parsed, 0, trace.error, list(trace.completions), example_ids)
