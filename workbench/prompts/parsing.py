"""Turning a model's reply into an answer: JSON validated against the output schema, the answer
extracted from chain-of-thought reasoning, free text normalised to one of the allowed labels.

Every reply gets a ``Parsed`` with ``ok`` and, when it failed, an ``error`` sentence that a person
(or the model, in a repair turn) can act on.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from workbench.prompts.versions import PromptVersion, model_for_schema

DEFAULT_ANSWER_PATTERN = r"(?im)^[\s*#>_-]*(?:final\s+)?answer\s*(?:is)?\s*[:：=-]\s*(.+?)\s*$"
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


@dataclass
class Parsed:
    """``value`` is the answer (a label, text, or JSON data) when ``ok``; None otherwise, with
    ``error`` saying why."""

    value: Any
    ok: bool
    error: str | None = None


# -- JSON ------------------------------------------------------------------------------------------

def extract_json(text: str) -> Any:
    """The first JSON value in ``text`` (inside a code fence, or the first ``{`` / ``[`` that
    starts valid JSON). Raises ``ValueError`` with a readable reason."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        chunk = chunk.strip()
        try:
            return json.loads(chunk)
        except json.JSONDecodeError:
            pass
        for i, ch in enumerate(chunk):
            if ch in "{[":
                try:
                    return decoder.raw_decode(chunk, i)[0]
                except json.JSONDecodeError:
                    continue
    if not text.strip():
        raise ValueError("the reply was empty")
    raise ValueError("the reply holds no valid JSON object")


def _pydantic_errors(exc) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "(the object)"
        parts.append(f"{where}: {e['msg']}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def validate_json(schema: dict, data: Any) -> Parsed:
    """Validate with the pydantic class the schema came from when this process knows it (its
    validators run too), else with jsonschema. The value is plain JSON data either way."""
    model_cls = model_for_schema(schema)
    if model_cls is not None:
        from pydantic import ValidationError

        try:
            return Parsed(model_cls.model_validate(data).model_dump(mode="json"), True, None)
        except ValidationError as exc:
            return Parsed(None, False, f"the JSON does not match the schema: "
                                       f"{_pydantic_errors(exc)}")
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if errors:
        parts = [f"{'.'.join(map(str, e.path)) or '(the object)'}: {e.message}"
                 for e in errors[:5]]
        return Parsed(None, False, "the JSON does not match the schema: " + "; ".join(parts))
    return Parsed(data, True, None)


# -- labels ----------------------------------------------------------------------------------------

def _label_key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().replace("_", " ").replace("-", " ")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


_PREFIX = re.compile(r"^\s*[\w ]{1,30}?\s*[:：=]\s*")


def normalize_label(text: str, labels: list[str]) -> Parsed:
    """Map a free-text reply onto one allowed label: ignores case, spacing, quotes, markdown and
    a leading "Intent:" / "Label:" / "Answer:"; failing that, a reply that mentions exactly one
    label counts as that label. A reply naming several labels, or none, does not parse."""
    keys = {_label_key(label): label for label in labels}
    stripped = text.strip()
    first_line = next((line for line in stripped.splitlines() if line.strip()), "")
    for candidate in (stripped, first_line):
        for form in (candidate, _PREFIX.sub("", candidate, count=1)):
            hit = keys.get(_label_key(form))
            if hit is not None:
                return Parsed(hit, True, None)
    reply_key = f" {_label_key(stripped)} "
    mentioned = [label for key, label in keys.items() if key and f" {key} " in reply_key]
    if len(mentioned) == 1:
        return Parsed(mentioned[0], True, None)
    shown = stripped if len(stripped) <= 80 else stripped[:77] + "..."
    allowed = ", ".join(labels)
    if mentioned:
        return Parsed(None, False, f"the reply {shown!r} names several labels "
                                   f"({', '.join(mentioned)}); answer with exactly one of: "
                                   f"{allowed}")
    return Parsed(None, False, f"the reply {shown!r} is not one of the labels: {allowed}")


# -- chain of thought ------------------------------------------------------------------------------

def extract_answer(text: str, pattern: str | None = None) -> Parsed:
    """The answer after the reasoning: group 1 of the last match of ``pattern`` (by default a
    line such as "Answer: billing" or "Final answer: 42")."""
    matches = list(re.finditer(pattern or DEFAULT_ANSWER_PATTERN, text))
    if not matches:
        hint = "a line 'Answer: ...'" if pattern is None else f"a match for {pattern!r}"
        return Parsed(None, False, f"the reasoning has no final answer ({hint} was expected)")
    answer = (matches[-1].group(1) or "").strip().strip("*_`\"' ").rstrip(".")
    return Parsed(answer, True, None)


# -- everything ------------------------------------------------------------------------------

def parse_output(prompt: PromptVersion, text: str) -> Parsed:
    """Parse a reply the way ``prompt`` asks: JSON checked against its output schema; the answer
    extracted from chain-of-thought or ReAct text; then mapped onto its labels, if it has any."""
    text = text or ""
    if prompt.output_schema is not None:
        try:
            data = extract_json(text)
        except ValueError as exc:
            return Parsed(None, False, str(exc))
        return validate_json(prompt.output_schema, data)
    answer = text
    if prompt.technique == "react":
        found = extract_answer(text, prompt.answer_pattern or
                               r"(?im)^[\s*]*final\s+answer\s*[:：]\s*(.+?)\s*$")
        if not found.ok:
            return Parsed(None, False, "the reply has no 'Final Answer: ...' line")
        answer = found.value
    elif prompt.technique == "chain_of_thought" or prompt.answer_pattern:
        found = extract_answer(text, prompt.answer_pattern)
        if not found.ok:
            return found
        answer = found.value
    if prompt.labels:
        return normalize_label(answer, prompt.labels)
    return Parsed(answer.strip(), True, None)
