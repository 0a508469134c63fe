"""Prompts as named, immutable, versioned records: save, load by version or tag, list, diff."""

from __future__ import annotations

import difflib
import html
import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.errors import RecordNotFound, WorkbenchError
from workbench.records import Record, Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

Technique = Literal["zero_shot", "few_shot", "chain_of_thought", "react", "structured"]


class PromptError(WorkbenchError):
    """A prompt is not valid or cannot be found."""


class FewShot(BaseModel):
    """How examples are chosen: none, ``fixed`` (written in the prompt), ``random`` (k rows of the
    train split, seeded) or ``similar`` (the k train rows nearest the input, bundled embeddings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: Literal["none", "fixed", "random", "similar"] = "none"
    k: int = Field(3, ge=1, le=50)
    examples: list[dict] = []  # fixed: [{"input": ..., "expected": ...}]
    seed: int = 0

    @model_validator(mode="after")
    def _fixed_needs_examples(self) -> FewShot:
        if self.mode == "fixed" and not self.examples:
            raise ValueError("few-shot mode 'fixed' needs examples=[{'input': ..., "
                             "'expected': ...}, ...]")
        for i, example in enumerate(self.examples):
            if "input" not in example or "expected" not in example:
                raise ValueError(f"few-shot example {i} needs both 'input' and 'expected' keys")
        return self


class PromptVersion(Record):
    """One version of a prompt. Identity (name, version, tags) lives in the project, not here."""

    kind: ClassVar[str] = "prompt"
    system: str = ""
    template: str = "{{ input }}"
    model: str | None = None
    params: dict = {}
    few_shot: FewShot = FewShot()
    output_schema: dict | None = None  # a JSON schema, e.g. schema_from_model(MyAnswer)
    technique: Technique = "zero_shot"
    answer_pattern: str | None = None  # regex, group 1 is the answer (chain-of-thought)
    labels: list[str] | None = None  # classification: the allowed answers
    description: str = ""

    @field_validator("answer_pattern")
    @classmethod
    def _pattern_has_a_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"answer_pattern is not a valid regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("answer_pattern needs a group around the answer, "
                             r"e.g. r'Answer:\s*(.+)'")
        return value

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("labels must list at least one allowed answer (or be None)")
            if len(set(value)) != len(value):
                raise ValueError("labels must be distinct")
        return value


def schema_from_model(model_cls: type[BaseModel]) -> dict:
    """The JSON schema of a pydantic model, for ``PromptVersion.output_schema``. The class is
    remembered in this process, so replies are validated by pydantic itself (its own validators
    included); elsewhere the schema is checked with jsonschema."""
    schema = model_cls.model_json_schema()
    with _models_lock:
        _models[_schema_key(schema)] = model_cls
    return schema


_models: dict[str, type[BaseModel]] = {}
_models_lock = threading.Lock()


def _schema_key(schema: dict) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def model_for_schema(schema: dict) -> type[BaseModel] | None:
    return _models.get(_schema_key(schema))


# -- storage ---------------------------------------------------------------------------------------

def save_prompt(project: Project, name: str, prompt: PromptVersion) -> Stored[PromptVersion]:
    """Save ``prompt`` as the next version of ``name``; an unchanged prompt makes no new version.
    The templates are compiled first, so a syntax error is reported now, not mid-run."""
    from workbench.prompts.templates import compile_template

    if not name or not name.strip():
        raise PromptError("A prompt needs a name.", "For example save_prompt(project, 'triage', "
                          "prompt).")
    compile_template(prompt.system, "system prompt")
    compile_template(prompt.template, "template")
    return project.records.save(name, prompt)


def load_prompt(project: Project, name: str,
                version: int | str | None = None) -> Stored[PromptVersion]:
    """The latest version of ``name``, a version number, or a tag such as ``"production"``."""
    try:
        return project.records.get(PromptVersion, name, version)
    except RecordNotFound as exc:
        known = list_prompts(project)
        if name in known:
            raise exc from None
        raise RecordNotFound(f"There is no prompt named '{name}' in this project.",
                             f"Known prompts: {', '.join(known) or 'none yet'}; save one with "
                             "save_prompt(project, name, PromptVersion(...)).") from None


def list_prompts(project: Project) -> list[str]:
    return project.records.names(PromptVersion)


def tag_prompt(project: Project, name: str, version: int, tag: str) -> None:
    """Point ``tag`` (e.g. ``production``, ``candidate``) at a version; moving a tag is allowed,
    the versions themselves never change."""
    if not tag or tag.strip().isdigit():
        raise PromptError(f"{tag!r} cannot be a tag: a tag is a word such as 'production'.",
                          "Use a name with letters in it.")
    load_prompt(project, name, version)
    project.records.tag(PromptVersion, name, version, tag)


def prompt_versions(project: Project, name: str) -> pd.DataFrame:
    """One row per version, oldest first: version, created, tags, description, model, technique."""
    import pandas as pd

    stored = project.records.versions(PromptVersion, name)
    if not stored:
        load_prompt(project, name)  # raises the friendly error
    tags = project.records.tags(PromptVersion, name)
    return pd.DataFrame([{"version": s.version, "created": s.created,
                          "tags": tags.get(s.version, []), "description": s.value.description,
                          "model": s.value.model, "technique": s.value.technique,
                          "hash": s.content_hash[:12]} for s in stored])


# -- diffs -----------------------------------------------------------------------------------------

_FIELDS = ("description", "technique", "model", "params", "system", "template", "few_shot",
           "labels", "answer_pattern", "output_schema")


def prompt_text(prompt: PromptVersion) -> str:
    """A readable, line-oriented rendering of a prompt version (what diffs compare)."""
    out: list[str] = []
    data = prompt.model_dump(mode="json")
    for name in _FIELDS:
        value = data[name]
        out.append(f"## {name}")
        if isinstance(value, str):
            out.extend(value.splitlines() or [""])
        elif value is None:
            out.append("(none)")
        else:
            out.extend(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
                       .splitlines())
        out.append("")
    return "\n".join(out)


_DIFF_CSS = """
.wb-prompt-diff{font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
  overflow-x:auto}
.wb-prompt-diff .wb-title{font:600 13px system-ui,sans-serif;margin:0 0 6px}
.wb-prompt-diff .wb-fields{font:12px system-ui,sans-serif;margin:0 0 8px;color:#444}
.wb-prompt-diff table.diff{border-collapse:collapse;width:100%}
.wb-prompt-diff td,.wb-prompt-diff th{padding:1px 6px;vertical-align:top;white-space:pre-wrap;
  word-break:break-word}
.wb-prompt-diff th{background:#f3f3f3;font-weight:600;text-align:left}
.wb-prompt-diff td.diff_header{color:#888;text-align:right;user-select:none}
.wb-prompt-diff td.diff_next{display:none}
.wb-prompt-diff .diff_add{background:#dcfce7}
.wb-prompt-diff .diff_chg{background:#fef3c7}
.wb-prompt-diff .diff_sub{background:#fee2e2}
"""


@dataclass(frozen=True)
class PromptDiff:
    """The difference between two versions: ``unified`` text, a side-by-side ``html`` table (shown
    by notebooks), and the ``changed_fields``."""

    name: str
    a: int
    b: int
    unified: str
    html: str
    changed_fields: list[str]

    def __str__(self) -> str:
        return self.unified or f"{self.name} v{self.a} and v{self.b} are the same."

    def _repr_html_(self) -> str:
        return self.html


def diff_prompts(project: Project, name: str, a: int | str, b: int | str) -> PromptDiff:
    """Compare two versions (numbers or tags) of a prompt."""
    old, new = load_prompt(project, name, a), load_prompt(project, name, b)
    before, after = prompt_text(old.value), prompt_text(new.value)
    label_a, label_b = f"{name} v{old.version}", f"{name} v{new.version}"
    unified = "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(),
                                             fromfile=label_a, tofile=label_b, lineterm=""))
    changed = [f for f in _FIELDS if getattr(old.value, f) != getattr(new.value, f)]
    table = difflib.HtmlDiff(tabsize=4).make_table(before.splitlines(), after.splitlines(),
                                                   label_a, label_b, context=True, numlines=2)
    # difflib keeps spacing with &nbsp; and nowrap; the CSS's pre-wrap keeps it and still wraps.
    table = table.replace("&nbsp;", " ").replace(' nowrap="nowrap"', "")
    summary = ("changed: " + ", ".join(changed)) if changed else "no changes"
    body = (f'<div class="wb-prompt-diff"><style>{_DIFF_CSS}</style>'
            f'<p class="wb-title">{html.escape(label_a)} → {html.escape(label_b)}</p>'
            f'<p class="wb-fields">{html.escape(summary)}</p>'
            f'{table if changed else ""}</div>')
    return PromptDiff(name, old.version, new.version, unified, body, changed)

