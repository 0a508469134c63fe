"""Stored traces for people to read: a filtered, paged list of traces and one trace as a tree.

The trace viewer (``widgets.TraceViewer``, notebook 08) is drawn from these functions, and a
script can call them the same way. A trace is listed by its root span: a request to the service
(``serve.request``, with its content filter checks and model calls inside), or a model call
made outside one (a run's, a judge's, the playground's: ``llm.call``, exported over OTLP as
``chat MODEL``).

A project may hold a million spans, so nothing here reads them all: ``list_traces`` asks SQLite
for one page of root spans, newest first, walking the ``start_time`` index within the time
window and reading only the attributes a row shows (in SQL: a model call's messages are never
parsed in Python); the next page continues after the last row's position (keyset paging, as
cheap on page 1,000 as on page 1). Filters on attributes (model, prompt, arm, user) have no
index, so a page reads at most ``SCAN_LIMIT`` root spans: a filter that matches little answers
in bounded time with the part searched, and the next page searches on from there
(``benchmarks/bench_traces.py``: under half a second a page over a million spans where reading
every one took 0.9 s). ``trace_tree`` reads one trace's spans through the ``trace_id`` index.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.monitor_aggregates import ARM_ATTRIBUTE, ARMS, USER_HASH_ATTRIBUTE, user_hash

if TYPE_CHECKING:
    from workbench.project import Project

REQUEST, CALL, FILTER = "serve.request", "llm.call", "serve.filter"
KINDS = {REQUEST: "service requests", CALL: "model calls (runs, judges, playground)",
         "llm.moderation": "moderation calls"}
STATUSES = ("ok", "error")
WINDOWS = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None}
PAGE_SIZE = 25
MAX_PAGE_SIZE = 500
MAX_TREE_SPANS = 2000  # a trace is a request or one call: far fewer in practice
SCAN_LIMIT = 100_000  # root spans an attribute filter reads per page, at most
FIRST_STRETCH = 2_000  # ... after trying this many first
TRUNCATE_AT = 300  # characters of a value shown before "show more"

# A row of the list shows these attributes of its root span (read by SQLite, in one parse).
_ROW_FIELDS = ("gen_ai.request.model", "workbench.model", "workbench.primary_model",
               "workbench.prompt", "workbench.prompt_version", ARM_ATTRIBUTE,
               USER_HASH_ATTRIBUTE, "http.route", "http.response.status_code",
               "workbench.cost_usd", "workbench.run_id", "workbench.judge.name",
               "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
_ROW_SQL = "json_extract(attributes, " + ", ".join(f"'$.\"{f}\"'" for f in _ROW_FIELDS) + ")"


def _attr(name: str) -> str:
    return f"json_extract(attributes, '$.\"{name}\"')"


# Model: the model a call asked for, or the model that answered a request (else its primary).
_MODEL_SQL = (f"coalesce({_attr('gen_ai.request.model')}, {_attr('workbench.model')}, "
              f"{_attr('workbench.primary_model')})")


class TraceError(WorkbenchError):
    """A filter or a trace id the viewer cannot use."""


@dataclass(frozen=True)
class TraceFilter:
    """What ``list_traces`` keeps. Every field is optional; empty strings count as unset.

    ``kind``: the root span's name (``KINDS``); ``status``: "ok" or "error"; ``model``: the
    model called (for a request: the one that answered); ``prompt``: a prompt's name, with
    ``prompt_version`` a version of it; ``arm``: "live", "canary" or "shadow"; ``user``: an end
    user, as the id the client sent or its stored hash; ``since``/``until``: Unix seconds."""

    kind: str | None = None
    status: str | None = None
    model: str | None = None
    prompt: str | None = None
    prompt_version: int | str | None = None
    arm: str | None = None
    user: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self, project: Project) -> tuple[Where, Where]:
        """SQL conditions (ANDed) with their parameters: those on the span's columns (the time
        index and cheap checks), and those on its attributes (each reads its JSON)."""
        columns, attributes = Where(["parent_id IS NULL"]), Where()
        if self.kind:
            columns.add("name = ?", self.kind)
        if self.status:
            if self.status not in STATUSES:
                raise TraceError(f"{self.status!r} is not a status a span has.",
                                 "Filter on 'ok' or 'error'.")
            columns.add("status = ?", self.status)
        if self.since is not None:
            columns.add("start_time >= ?", float(self.since))
        if self.until is not None:
            columns.add("start_time < ?", float(self.until))
        if self.model:
            attributes.add(f"{_MODEL_SQL} = ?", self.model)
        if self.prompt:
            attributes.add(f"{_attr('workbench.prompt')} = ?", self.prompt)
        if self.prompt_version not in (None, ""):
            version = str(self.prompt_version).strip().removeprefix("v")
            if not version.isdigit():
                raise TraceError(f"{self.prompt_version!r} is not a prompt version.",
                                 "Give the version's number, such as 3.")
            attributes.add(f"CAST({_attr('workbench.prompt_version')} AS INTEGER) = ?",
                           int(version))
        if self.arm:
            attributes.add(f"{_attr(ARM_ATTRIBUTE)} = ?", self.arm)
        if self.user:
            # The id as the client sent it is stored only as its keyed hash; a hash copied
            # from a table matches too.
            raw = self.user.strip()
            attributes.add(f"{_attr(USER_HASH_ATTRIBUTE)} IN (?, ?)", raw,
                           user_hash(project, raw))
        return columns, attributes


@dataclass
class Where:
    """Conditions ANDed, and their parameters in order."""

    terms: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, term: str, *params: Any) -> None:
        self.terms.append(term)
        self.params += params

    def __add__(self, other: Where) -> Where:
        return Where(self.terms + other.terms, self.params + other.params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.terms) or "1"


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's start time and row id (the next page starts after)."""

    start_time: float
    rowid: int


@dataclass
class TracePage:
    """One page of traces, newest first; ``next`` continues after it (None: this is the last)."""

    rows: list[dict[str, Any]]
    next: Cursor | None
    seconds: float = 0.0  # how long the query took
    # When a filter on attributes read its SCAN_LIMIT root spans before filling the page: the
    # start time it searched back to (``next`` searches on from there); None otherwise.
    searched_to: float | None = None

    @property
    def has_more(self) -> bool:
        return self.next is not None


def list_traces(project: Project, filters: TraceFilter | None = None, *,
                limit: int = PAGE_SIZE, after: Cursor | None = None) -> TracePage:
    """One page of traces matching ``filters``, newest first (``after``: the ``next`` of the
    page before). Each row is a plain dict: ``trace_id``, ``name``, ``label``, ``start``
    (Unix seconds) and ``time`` (UTC text), ``duration_ms``, ``status``, ``error``, ``model``,
    ``prompt`` ("name v3"), ``arm``, ``user`` (the hash), ``route``, ``http_status``,
    ``cost_usd``, ``tokens``, ``run_id``, ``judge``, and ``spans``/``errors``: how many spans
    the trace holds and how many of them failed (a request answered by a fallback model after
    its first model failed is ok, with one error inside)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise TraceError(f"A page of {limit} traces is not possible.",
                         f"Ask for 1 to {MAX_PAGE_SIZE} traces a page.")
    filters = filters or TraceFilter()
    began = time.perf_counter()
    project.store.flush()
    columns, attributes = filters.where(project)
    if after is not None:
        columns.add("(start_time, rowid) < (?, ?)", after.start_time, after.rowid)
    db = project.store.db
    # Attribute filters have no index: read SCAN_LIMIT root spans at most, so a filter that
    # matches little still answers in bounded time; the next page searches on from there. A
    # short stretch first: a filter that matches often fills the page within it.
    stretches = (min(FIRST_STRETCH, SCAN_LIMIT), SCAN_LIMIT) if attributes.terms else (None,)
    for stretch in stretches:
        bound = None if stretch is None else db.execute(
            f"SELECT start_time, rowid FROM spans WHERE {columns.sql} "
            "ORDER BY start_time DESC, rowid DESC LIMIT 1 OFFSET ?",
            (*columns.params, stretch - 1)).fetchone()
        where = columns + attributes
        if bound is not None:
            where.add("(start_time, rowid) >= (?, ?)", *bound)
        found = db.execute(
            f"SELECT rowid, span_id, trace_id, name, start_time, end_time, status, error, "
            f"{_ROW_SQL} FROM spans WHERE {where.sql} ORDER BY start_time DESC, rowid DESC "
            "LIMIT ?", (*where.params, limit + 1)).fetchall()
        if len(found) > limit or bound is None:
            break
    more = len(found) > limit
    found = found[:limit]
    counts = _span_counts(db, [r[2] for r in found])
    rows = [_row(r, counts.get(r[2], (1, 0))) for r in found]
    if more:
        last = found[-1]
        return TracePage(rows, Cursor(last[4], last[0]), time.perf_counter() - began)
    if bound is not None:  # the search stopped early: older traces may match
        return TracePage(rows, Cursor(*bound), time.perf_counter() - began,
                         searched_to=bound[0])
    return TracePage(rows, None, time.perf_counter() - began)


def _span_counts(db: Any, trace_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Spans and failed spans per trace (through the ``trace_id`` index)."""
    if not trace_ids:
        return {}
    marks = ", ".join("?" * len(trace_ids))
    return {t: (n, e) for t, n, e in db.execute(
        f"SELECT trace_id, count(*), sum(status = 'error') FROM spans "
        f"WHERE trace_id IN ({marks}) GROUP BY trace_id", trace_ids)}


def _row(r: tuple, counts: tuple[int, int]) -> dict[str, Any]:
    rowid, span_id, trace_id, name, start, end, status, error, packed = r
    values = dict(zip(_ROW_FIELDS, json.loads(packed), strict=True)) if packed else {}
    model = (values["gen_ai.request.model"] or values["workbench.model"]
             or values["workbench.primary_model"])
    prompt = values["workbench.prompt"]
    version = values["workbench.prompt_version"]
    tokens = [values["gen_ai.usage.input_tokens"], values["gen_ai.usage.output_tokens"]]
    attributes = {"http.route": values["http.route"], "gen_ai.request.model": model}
    return {
        "trace_id": trace_id, "span_id": span_id, "name": name,
        "label": span_label(name, attributes),
        "start": start, "time": time_text(start),
        "duration_ms": round(max(end - start, 0.0) * 1000, 2),
        "status": status, "error": clip(error or "", 200),
        "model": model, "prompt": prompt_text(prompt, version), "arm": values[ARM_ATTRIBUTE],
        "user": values[USER_HASH_ATTRIBUTE], "route": values["http.route"],
        "http_status": values["http.response.status_code"],
        "cost_usd": values["workbench.cost_usd"],
        "tokens": sum(t for t in tokens if isinstance(t, int)) if any(tokens) else None,
        "run_id": values["workbench.run_id"], "judge": values["workbench.judge.name"],
        "spans": counts[0], "errors": int(counts[1] or 0),
    }


def prompt_text(prompt: Any, version: Any) -> str | None:
    if prompt and version is not None:
        return f"{prompt} v{version}"
    if version is not None:
        return f"v{version}"
    return str(prompt) if prompt else None


def time_text(seconds: float) -> str:
    """UTC, to the millisecond: the time a span started, as a table shows it."""
    whole = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds * 1000) % 1000:03d}"


def span_label(name: str, attributes: dict[str, Any]) -> str:
    """What a person calls the span: ``chat fake/echo`` for a model call (its OpenTelemetry
    GenAI name), ``POST /v1/predict`` for a request, ``content filter (input)``, ``render the
    prompt``, ``parse the reply``."""
    if name == CALL:
        model = attributes.get("gen_ai.request.model")
        return f"chat {model}" if model else "chat"
    if name == REQUEST:
        route = attributes.get("http.route")
        return f"POST {route}" if route else "request"
    if name == FILTER:
        stage = attributes.get("workbench.filter.stage")
        return f"content filter ({stage})" if stage else "content filter"
    if name == "llm.moderation":
        return "moderation"
    if name == "prompt.render":
        return "render the prompt"
    if name == "prompt.parse":
        return "parse the reply" if attributes.get("workbench.parse_ok", True) else \
            "parse the reply (failed)"
    return name


# -- the dropdowns' choices ----------------------------------------------------------------------

def filter_choices(project: Project) -> dict[str, list[str]]:
    """The values each filter can take, read from small tables (never from the spans): models
    from the monitoring aggregates, prompts and their versions from the prompt records."""
    from workbench.prompts.versions import PromptVersion

    db = project.store.db
    models = [r[0] for r in db.execute(
        "SELECT DISTINCT value FROM monitor_buckets WHERE dim = 'model' AND value != '' "
        "ORDER BY value")]
    prompts = [f"{name} v{version}" for name, version in db.execute(
        "SELECT name, version FROM records WHERE kind = ? ORDER BY name, version",
        (PromptVersion.kind,))]
    return {"kind": list(KINDS), "status": list(STATUSES), "model": models, "prompt": prompts,
            "arm": list(ARMS), "window": list(WINDOWS)}


def split_prompt(choice: str | None) -> tuple[str | None, int | None]:
    """``"triage v3"`` -> ("triage", 3); ``"triage"`` -> ("triage", None)."""
    if not choice:
        return None, None
    name, _, version = choice.strip().rpartition(" v")
    if name and version.isdigit():
        return name, int(version)
    return choice.strip(), None


# -- one trace as a tree -------------------------------------------------------------------------

# Which attributes are a span's inputs and which its outputs; the rest are shown as details.
INPUTS = ("workbench.request", "gen_ai.system_instructions", "gen_ai.input.messages",
          "workbench.filter.stage", "http.route")
OUTPUTS = ("workbench.output", "gen_ai.output.messages", "workbench.parse_ok",
           "workbench.parsed", "http.response.status_code", "workbench.filter.action",
           "workbench.filter.score", "workbench.filter.checks", "workbench.cost_usd",
           "workbench.cache_hit")
_INPUT_PREFIXES = ("gen_ai.request.",)
_OUTPUT_PREFIXES = ("gen_ai.usage.", "gen_ai.response.")


@dataclass
class TraceNode:
    """One span in a trace, placed: ``depth`` in the tree, ``offset_ms`` after the trace began."""

    span_id: str
    parent_id: str | None
    name: str
    label: str
    depth: int
    start: float
    offset_ms: float
    duration_ms: float
    status: str
    error: str | None
    attributes: dict[str, Any]
    children: list[TraceNode] = field(default_factory=list)


@dataclass
class TraceTree:
    """A trace's spans in tree order (parents before children, siblings by start time)."""

    trace_id: str
    nodes: list[TraceNode]
    start: float
    duration_ms: float
    truncated: bool = False  # more than MAX_TREE_SPANS spans: the first ones are shown

    @property
    def roots(self) -> list[TraceNode]:
        return [n for n in self.nodes if n.depth == 0]


def trace_tree(project: Project, trace_id: str) -> TraceTree:
    """Read one trace and place its spans: each under its parent, siblings by start time. A
    span whose parent is not stored (swept by the retention rule, or in another process's
    trace) is shown as a root."""
    project.store.flush()
    found = project.store.db.execute(
        "SELECT span_id, parent_id, name, start_time, end_time, status, error, attributes "
        "FROM spans WHERE trace_id = ? ORDER BY start_time, rowid LIMIT ?",
        (trace_id, MAX_TREE_SPANS + 1)).fetchall()
    if not found:
        raise TraceError(f"There is no trace {trace_id!r} in this project.",
                         "Pick a trace from the list (its spans may have been swept by the "
                         "card's trace retention rule).")
    truncated = len(found) > MAX_TREE_SPANS
    found = found[:MAX_TREE_SPANS]
    start = min(r[3] for r in found)
    end = max(max(r[4], r[3]) for r in found)
    nodes = {}
    for span_id, parent_id, name, s, e, status, error, attributes in found:
        a = json.loads(attributes)
        nodes[span_id] = TraceNode(span_id, parent_id, name, span_label(name, a), 0, s,
                                   round((s - start) * 1000, 3), round(max(e - s, 0) * 1000, 3),
                                   status, error, a)
    roots = []
    for node in nodes.values():  # already in start order
        parent = nodes.get(node.parent_id) if node.parent_id else None
        (parent.children if parent is not None else roots).append(node)
    ordered: list[TraceNode] = []
    stack = [(n, 0) for n in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        node.depth = depth
        ordered.append(node)
        stack += [(c, depth + 1) for c in reversed(node.children)]
    return TraceTree(trace_id, ordered, start, round((end - start) * 1000, 3), truncated)


def value_text(key: str, value: Any) -> str:
    """An attribute as text a person reads: chat messages as "role: content" blocks, other
    structures as indented JSON."""
    if key.endswith("messages") and isinstance(value, list):
        blocks = []
        for message in value:
            if not isinstance(message, dict):
                blocks.append(json.dumps(message, ensure_ascii=False, default=str))
                continue
            content = message.get("content")
            if content is None and isinstance(message.get("parts"), list):  # OTel's form
                content = [p.get("content") for p in message["parts"] if isinstance(p, dict)]
            if isinstance(content, list):
                content = "\n".join(str(p.get("text", p) if isinstance(p, dict) else p)
                                    for p in content)
            blocks.append(f"{message.get('role', '?')}: {content}")
        return "\n\n".join(blocks)
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return json.dumps(value, default=str) if isinstance(value, bool) or value is None \
        else str(value)


def clip(text: str, limit: int = TRUNCATE_AT) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def truncate(text: str, limit: int = TRUNCATE_AT) -> tuple[str, int]:
    """The first ``limit`` characters of ``text`` (cut at a line end or a space near it when
    there is one) and how many characters were left out (0: nothing)."""
    if len(text) <= limit:
        return text, 0
    cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
    if cut < limit * 0.8:  # no break near the limit: cut mid-word rather than lose much
        cut = limit
    return text[:cut], len(text) - cut


def section_of(key: str) -> str:
    """"input", "output" or "detail": where the viewer shows an attribute."""
    if key in INPUTS or key.startswith(_INPUT_PREFIXES):
        return "input"
    if key in OUTPUTS or key.startswith(_OUTPUT_PREFIXES):
        return "output"
    return "detail"


def node_fields(node: TraceNode, *, expanded: set[str] = frozenset(),
                limit: int = TRUNCATE_AT) -> list[dict[str, Any]]:
    """A span's attributes as the viewer lists them: inputs, then outputs, then details, each
    ``{"id", "key", "section", "text", "hidden"}``; ``hidden`` counts the characters left out
    (0 when the value is whole: short, or its ``id`` is in ``expanded``)."""
    order = {"input": 0, "output": 1, "detail": 2}
    keys = sorted(node.attributes, key=lambda k: (order[section_of(k)], _position(k)))
    out = []
    for key in keys:
        ident = f"{node.span_id}:{key}"
        text = value_text(key, node.attributes[key])
        shown, hidden = (text, 0) if ident in expanded else truncate(text, limit)
        out.append({"id": ident, "key": key, "section": section_of(key), "text": shown,
                    "hidden": hidden})
    return out


def _position(key: str) -> tuple[int, str]:
    listed = INPUTS + OUTPUTS
    return (listed.index(key) if key in listed else len(listed), key)


def summary_of(node: TraceNode) -> str:
    """A few words on the span's bar: model, tokens, cost, cache, filter verdict."""
    a = node.attributes
    parts = []
    model = a.get("workbench.model") if node.name == REQUEST else None
    if model:
        parts.append(str(model))
    code = a.get("http.response.status_code")
    if code is not None:
        parts.append(f"HTTP {code}")
    tokens_in, tokens_out = a.get("gen_ai.usage.input_tokens"), a.get("gen_ai.usage.output_tokens")
    if tokens_in is not None or tokens_out is not None:
        parts.append(f"{tokens_in or 0}→{tokens_out or 0} tokens")
    if a.get("workbench.cache_hit"):
        parts.append("cache hit")
    if a.get("workbench.filter.action"):
        parts.append(str(a["workbench.filter.action"]))
    if a.get("workbench.parse_ok") is False:
        parts.append("not parsed")
    cost = a.get("workbench.cost_usd")
    if isinstance(cost, int | float) and cost:
        parts.append(f"${cost:.6f}")
    return " · ".join(parts)
