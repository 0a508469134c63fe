"""One item through one prompt: choose examples, render, call the model, parse, repair once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.prompts.parsing import Parsed, parse_output
from workbench.prompts.rendering import select_examples
from workbench.prompts.rendering import render as render_messages
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
    from workbench.llm.gateway import LOCAL_PROVIDERS, litellm, provider_of

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
                  repair_retries: int = 1, **options: Any) -> ItemResult:
    """Answer one item with ``prompt``: pick few-shot examples from ``train``, render, call the
    model (``model`` or the prompt's, with the prompt's params; ``options`` go to
    ``workbench.llm.complete`` and win), parse, and when the reply does not parse send up to
    ``repair_retries`` repair turns with the previous reply and the reason.

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
        messages = render_messages(prompt, item, examples=examples)
    except TemplateError as exc:
        return ItemResult([], None, Parsed(None, False, exc.one_line()), 0, exc.one_line(),
                          example_ids=example_ids)
    if prompt.technique == "react":
        return _react_item(project, prompt, messages, model, example_ids, options)
    params = {**prompt.params, **options}
    if prompt.output_schema is not None and "response_format" not in params and model \
            and json_mode_supported(model):
        params["response_format"] = {"type": "json_object"}
    completions: list[Completion] = []
    conversation = list(messages)
    repaired = 0
    parsed = Parsed(None, False, "the model was not called")
    try:
        reply = llm.complete(conversation, model=model, project=project, **params)
        completions.append(reply)
        parsed = parse_output(prompt, reply.text)
        while not parsed.ok and repaired < repair_retries:
            conversation += [{"role": "assistant", "content": reply.text},
                             {"role": "user", "content": repair_request(prompt, parsed.error)}]
            repaired += 1
            reply = llm.complete(conversation, model=model, project=project, **params)
            completions.append(reply)
            parsed = parse_output(prompt, reply.text)
    except WorkbenchError as exc:
        if not completions:
            parsed = Parsed(None, False, exc.one_line())
        return ItemResult(messages, completions[-1] if completions else None, parsed, repaired,
                          exc.one_line(), completions, example_ids)
    return ItemResult(messages, completions[-1], parsed, repaired, None, completions,
                      example_ids)


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
