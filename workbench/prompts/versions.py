"""Prompts as named, immutable, versioned records: save, load by version or tag, list, diff."""

from __future__ import annotations

import difflib
import html
import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

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


# -- what a version is: its behaviour ----------------------------------------------------------

def _template_text(text: str) -> str:
    """A system prompt or template as Jinja reads it: any line ending is a newline, and one
    trailing newline is dropped (``keep_trailing_newline=False``), so both render the same."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text[:-1] if text.endswith("\n") else text


def _plain_number(value: Any) -> Any:
    """0.0 -> 0: a model API reads both the same (``float(slider)`` vs a typed ``0``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_number(v) for v in value]
    return value


def _few_shot_settings(few_shot: dict) -> dict:
    """Only the few-shot settings the chosen mode uses (``select_examples``): none uses nothing,
    fixed its examples, random k and seed, similar k."""
    mode = few_shot["mode"]
    used = {"none": (), "fixed": ("examples",), "random": ("k", "seed"),
            "similar": ("k",)}[mode]
    return {"mode": mode, **{key: few_shot[key] for key in used}}


def _behaviour_fields(prompt: PromptVersion) -> dict[str, Any]:
    """Every field but ``description``, in the form that decides what the model is sent and how
    the reply is read. Two versions with equal fields here behave the same."""
    data = prompt.model_dump(mode="json", exclude={"description"})
    data["system"] = _template_text(data["system"])
    data["template"] = _template_text(data["template"])
    data["params"] = _plain_number(data["params"])
    data["few_shot"] = _few_shot_settings(data["few_shot"])
    return data


def behaviour_digest(prompt: PromptVersion) -> str:
    """A digest of what a prompt version does: template, system prompt, model, parameters,
    few-shot settings, output schema, technique, labels, answer pattern — not its description.

    Computed when versions are compared and never stored, so the stored ``content_hash`` of
    every existing version stays as it was (and stays valid)."""
    import hashlib

    text = json.dumps(_behaviour_fields(prompt), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -- storage ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SavedPrompt(Stored[PromptVersion]):
    """What ``save_prompt`` returns: the stored version (a ``Stored``, so ``.version`` and
    ``.value`` work as before) and whether it is new.

    ``unchanged`` is True when the prompt behaves exactly like an existing version and that
    version was returned instead of storing a copy; ``latest`` is the newest version number
    after the call; ``description_ignored`` says the given description differed from the
    existing version's (a description alone makes no new version). ``message`` says it in
    words, e.g. ``"unchanged — still version 3"``."""

    unchanged: bool = False
    latest: int = 0
    description_ignored: bool = False

    @property
    def created_new(self) -> bool:
        return not self.unchanged

    @property
    def message(self) -> str:
        if not self.unchanged:
            return f"saved as version {self.version}"
        text = (f"unchanged — still version {self.version}" if self.version == self.latest
                else f"unchanged — the same as version {self.version} "
                     f"(the newest is version {self.latest})")
        if self.description_ignored:
            text += "; only the description differs, and a description alone makes no version"
        return text

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    def _repr_markdown_(self) -> str:
        return f"`{self.name}`: {self.message}"


def save_prompt(project: Project, name: str, prompt: PromptVersion, *,
                reuse: Literal["any", "latest"] = "any") -> SavedPrompt:
    """Save ``prompt`` as the next version of ``name``, unless it behaves exactly like a version
    already saved: then that version is returned, nothing is stored, and ``.unchanged`` is True
    (``.message``: "unchanged — still version 3"). Saving twice, or running the same techniques
    again, makes no new versions.

    "Behaves exactly like" compares everything that decides the outputs (``behaviour_digest``):
    templates as Jinja reads them, ``temperature=0`` and ``0.0`` alike, only the few-shot
    settings the mode uses; the description is not compared.

    ``reuse="latest"`` compares with the newest version only: a prompt equal to an older version
    is stored again as the newest one — a deliberate revert, for code that follows "the latest
    version". The templates are compiled first, so a syntax error is reported now, not mid-run."""
    from workbench.prompts.templates import compile_template

    if not name or not name.strip():
        raise PromptError("A prompt needs a name.", "For example save_prompt(project, 'triage', "
                          "prompt).")
    if reuse not in ("any", "latest"):
        raise PromptError(f"reuse={reuse!r} is not an option.",
                          "Use reuse='any' (the default) or reuse='latest'.")
    compile_template(prompt.system, "system prompt")
    compile_template(prompt.template, "template")
    existing = project.records.versions(PromptVersion, name)
    if existing:
        latest = existing[-1].version
        digest = behaviour_digest(prompt)
        pool = existing if reuse == "any" else existing[-1:]
        for stored in reversed(pool):  # the newest equal version, when old copies exist
            if behaviour_digest(stored.value) == digest:
                return SavedPrompt(stored.kind, stored.name, stored.version, stored.created_at,
                                   stored.content_hash, stored.value, unchanged=True,
                                   latest=latest,
                                   description_ignored=(prompt.description.strip() not in
                                                        ("", stored.value.description.strip())))
    new = project.records.save(name, prompt)
    return SavedPrompt(new.kind, new.name, new.version, new.created_at, new.content_hash,
                       new.value, unchanged=False, latest=new.version)


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


@dataclass(frozen=True)
class TagChange:
    """What ``tag_prompt`` did: ``tag`` of prompt ``name`` now points at ``version``;
    ``previous`` is where it pointed before (None: it was new); ``moved`` is True when the call
    changed where it points. ``message`` says it in words."""

    name: str
    tag: str
    version: int
    previous: int | None
    moved: bool
    requested: int

    @property
    def message(self) -> str:
        if self.moved:
            return (f"'{self.tag}' moved from version {self.previous} to version {self.version}"
                    if self.previous is not None
                    else f"'{self.tag}' now on version {self.version}")
        if self.requested != self.version:
            return (f"'{self.tag}' stays on version {self.version} (not moved to version "
                    f"{self.requested}; move it with move=True)")
        return f"'{self.tag}' already on version {self.version}"

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    def _repr_markdown_(self) -> str:
        return f"`{self.name}`: {self.message}"


def tag_of(project: Project, name: str, tag: str) -> int | None:
    """The version ``tag`` points at, or None when ``name`` has no such tag."""
    for version, tags in project.records.tags(PromptVersion, name).items():
        if tag in tags:
            return version
    return None


def tag_prompt(project: Project, name: str, version: int, tag: str, *,
               move: bool = True) -> TagChange:
    """Point ``tag`` (e.g. ``production``, ``candidate``) at a version; the versions themselves
    never change. With ``move=False`` a tag that already exists is left where it is, so code run
    again and again (a notebook's Run All) places a tag once and never moves it; the default
    moves it, for a deliberate choice such as a "Tag it" button. Returns a ``TagChange``."""
    if not tag or tag.strip().isdigit():
        raise PromptError(f"{tag!r} cannot be a tag: a tag is a word such as 'production'.",
                          "Use a name with letters in it.")
    load_prompt(project, name, version)
    previous = tag_of(project, name, tag)
    if previous is not None and (previous == version or not move):
        return TagChange(name, tag, previous, previous, False, version)
    project.records.tag(PromptVersion, name, version, tag)
    return TagChange(name, tag, version, previous, True, version)


def move_tag(project: Project, name: str, tag: str, version: int) -> TagChange:
    """Move ``tag`` to ``version`` (or place it): the explicit form of
    ``tag_prompt(..., move=True)``."""
    return tag_prompt(project, name, version, tag, move=True)


def prompt_versions(project: Project, name: str) -> pd.DataFrame:
    """One row per version, oldest first: version, created, tags, description, model, technique,
    hash (the stored content hash) and ``same_as``: the earlier version this one behaves exactly
    like (a copy stored before saving reused equal versions, or a deliberate revert), else
    empty."""
    import pandas as pd

    stored = project.records.versions(PromptVersion, name)
    if not stored:
        load_prompt(project, name)  # raises the friendly error
    tags = project.records.tags(PromptVersion, name)
    first: dict[str, int] = {}  # behaviour digest -> the first version with it
    same_as = []
    for s in stored:
        digest = behaviour_digest(s.value)
        same_as.append(first.get(digest))
        first.setdefault(digest, s.version)
    return pd.DataFrame([{"version": s.version, "created": s.created,
                          "tags": tags.get(s.version, []), "description": s.value.description,
                          "model": s.value.model, "technique": s.value.technique,
                          "hash": s.content_hash[:12], "same_as": same}
                         for s, same in zip(stored, same_as)]).astype({"same_as": "Int64"})


# -- diffs -----------------------------------------------------------------------------------------

_FIELDS = ("description", "technique", "model", "params", "system", "template", "few_shot",
           "labels", "answer_pattern", "output_schema")


def prompt_text(prompt: PromptVersion) -> str:
    """A readable, line-oriented rendering of a prompt version (what diffs compare), in the form
    ``behaviour_digest`` compares: ``0.0`` shows as ``0``, few-shot settings the mode does not
    use are left out, so a diff shows a change exactly when the behaviour changed."""
    out: list[str] = []
    data = {**_behaviour_fields(prompt), "description": prompt.description}
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


# The diff is HTML that shows the same in marimo, in a live JupyterLab and in a saved notebook
# that JupyterLab opens untrusted (its sanitiser drops <style> and ids, keeps inline styles and
# <ins>/<del>): so every style is inline, with explicit text colours where a background is set
# (readable under dark themes too), and JupyterLab's table CSS (fixed layout, right-aligned
# cells, centred table) is overridden cell by cell. Inserted and deleted text are <ins>/<del>,
# underlined and struck through even where no style survives.
_MONO = "ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"
_SANS = "system-ui,-apple-system,Segoe UI,Roboto,sans-serif"
_CELL = "padding:1px 6px;vertical-align:top;border:0;line-height:1.45;"
_TEXT = _CELL + "text-align:left;white-space:pre-wrap;overflow-wrap:break-word;word-break:normal;"
_NUM = _CELL + "text-align:right;white-space:nowrap;color:#6e7781;"
_SIDE = {  # whole changed line, the changed words in it
    "del": ("background-color:#fff1f0;color:#1f2328;",
            "background-color:#ffc9c9;color:#82071e;text-decoration:line-through;"),
    "ins": ("background-color:#edfcf1;color:#1f2328;",
            "background-color:#aceebb;color:#0a3622;text-decoration:underline;"),
}
_MISSING = "background-color:#f3f4f6;"
_TOKENS = re.compile(r"\w+|\s+|[^\w\s]")


def _marked(text: str, spans: list[tuple[int, int]], kind: str) -> str:
    """``text`` escaped, with the character ``spans`` wrapped in <ins> or <del>."""
    out, at = [], 0
    for start, end in spans:
        out.append(html.escape(text[at:start]))
        out.append(f'<{kind} class="wb-diff-{kind}" style="{_SIDE[kind][1]}">'
                   f"{html.escape(text[start:end])}</{kind}>")
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out)


def _whole(line: str) -> list[tuple[int, int]]:
    """The span of a wholly changed line, its indentation left unmarked."""
    text = line.lstrip()
    return [(len(line) - len(text), len(line))] if text else []


def _changed_words(old: str, new: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character spans of ``old`` deleted and of ``new`` inserted, compared word by word; the
    whole line when little is shared."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < 0.4:
        return _whole(old), _whole(new)
    offsets_a = [0]
    for token in a:
        offsets_a.append(offsets_a[-1] + len(token))
    offsets_b = [0]
    for token in b:
        offsets_b.append(offsets_b[-1] + len(token))
    dels, inss = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete") and i2 > i1:
            dels.append((offsets_a[i1], offsets_a[i2]))
        if tag in ("replace", "insert") and j2 > j1:
            inss.append((offsets_b[j1], offsets_b[j2]))
    return dels, inss


def _side(number: int | None, text: str | None, spans: list[tuple[int, int]] | None,
          kind: str) -> str:
    """The line-number and text cells of one side of a row (``spans`` None: unchanged)."""
    if number is None:
        return f'<td style="{_NUM}{_MISSING}"></td><td style="{_TEXT}{_MISSING}"></td>'
    if spans is None:
        return (f'<td style="{_NUM}">{number}</td>'
                f'<td style="{_TEXT}">{html.escape(text or "")}</td>')
    line = _SIDE[kind][0]
    return (f'<td style="{_NUM}{line}">{number}</td>'
            f'<td class="wb-diff-{kind}-line" style="{_TEXT}{line}">'
            f"{_marked(text or '', spans, kind)}</td>")


def diff_html(before: str, after: str, label_a: str, label_b: str, summary: str,
              context: int = 2) -> str:
    """A side-by-side diff of two texts as self-contained HTML: changed lines with ``context``
    lines around them, changed words marked with <del>/<ins>. Text is escaped, never markup."""
    old, new = before.splitlines(), after.splitlines()
    head = (f'<div class="wb-prompt-diff" style="font-family:{_SANS};font-size:13px;'
            f'line-height:1.45;overflow-x:auto;max-width:100%;margin:0;padding:0">'
            f'<p class="wb-title" style="font-weight:600;margin:0 0 2px;text-align:left">'
            f"{html.escape(label_a)} → {html.escape(label_b)}</p>"
            f'<p class="wb-fields" style="margin:0 0 6px;text-align:left;color:#6e7781">'
            f"{html.escape(summary)}</p>")
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    if matcher.ratio() == 1.0 and len(old) == len(new):
        return head + "</div>"
    rows: list[str] = []
    row_style = 'style="background-color:transparent"'
    for group in matcher.get_grouped_opcodes(context):
        if rows:
            rows.append(f'<tr {row_style}><td colspan="4" style="{_NUM}text-align:left;'
                        f'border-top:1px dashed #d0d7de;border-bottom:1px dashed #d0d7de">'
                        "⋯</td></tr>")
        for tag, i1, i2, j1, j2 in group:
            for k in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + k, j1 + k
                a = old[i] if i < i2 else None
                b = new[j] if j < j2 else None
                if tag == "equal":
                    cells = _side(i + 1, a, None, "del") + _side(j + 1, b, None, "ins")
                else:
                    if a is not None and b is not None:
                        dels, inss = _changed_words(a, b)
                    else:
                        dels, inss = _whole(a or ""), _whole(b or "")
                    cells = (_side(i + 1 if a is not None else None, a, dels, "del")
                             + _side(j + 1 if b is not None else None, b, inss, "ins"))
                rows.append(f"<tr {row_style}>{cells}</tr>")
    th = ('style="padding:2px 6px;text-align:left;font-weight:600;border:0;'
          'border-bottom:1px solid #d0d7de;background-color:transparent"')
    # Fixed layout with two 44px number columns: the text columns share the rest equally; the
    # table never gets narrower than 560px (the box scrolls sideways instead of squeezing).
    return (head + f'<table class="wb-diff" width="100%" cellspacing="0" cellpadding="0" '
            f'style="table-layout:fixed;border-collapse:collapse;min-width:560px;margin:0;'
            f'border:1px solid #d0d7de;font-family:{_MONO};font-size:12px">'
            '<colgroup><col width="44"><col><col width="44"><col></colgroup>'
            f'<thead><tr {row_style}><th colspan="2" {th}>{html.escape(label_a)}</th>'
            f'<th colspan="2" {th}>{html.escape(label_b)}</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


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
    old_fields, new_fields = _behaviour_fields(old.value), _behaviour_fields(new.value)
    changed = [f for f in _FIELDS if (old_fields.get(f, getattr(old.value, f))
                                      != new_fields.get(f, getattr(new.value, f)))]
    summary = ("changed: " + ", ".join(changed)) if changed else "no changes"
    # No table when nothing that decides the behaviour (or the description) changed.
    body = diff_html(before, after if changed else before, label_a, label_b, summary)
    return PromptDiff(name, old.version, new.version, unified, body, changed)

