"""Phase 1: the project card — use case, success metrics, constraints, decision log, chosen model.

The card lives in ``workbench.toml`` beside the ``[workbench]`` and ``[project]`` tables that
``workbench.project`` owns, in this layout (other phases may add tables of their own; this module
leaves them alone)::

    [use_case]      description, users, task_type, inputs, outputs
    [[metrics]]     name, target, direction (">=" or "<="), unit    — one table per metric
    [constraints]   monthly_budget_usd, expected_requests_per_day, latency_budget_s, privacy,
                    blocked_terms
    [[decisions]]   date, phase, decision, reason                    — the decision log
    [model]         chosen, reason

Every later phase reads it with one call, ``load_card(project)``. That call validates the file as
it is on disk, so a hand edit is checked exactly like a form edit, and every problem found is
reported at once as a sentence that names the field and says how to fix it.

A success metric is only useful if some phase can measure it, so metric names come from
``MEASURABLE_METRICS``; each entry says which units it accepts and which phases measure it.
Values that phases measure are always in the metric's *canonical* unit (fractions, seconds, US
dollars); a target written in another accepted unit (``%``, ``ms``) is converted when compared.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.errors import InvalidCard, WorkbenchError

if TYPE_CHECKING:
    from workbench.project import Project

TaskType = Literal["classification", "extraction", "generation", "question_answering", "chat"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)
Direction = Literal[">=", "<="]
SECTIONS = ("use_case", "metrics", "constraints", "decisions", "model")

# The privacy rules the form suggests, written the way the sample card writes them: each is one
# the workbench enforces (see workbench.privacy). Rules it cannot enforce, such as where a hosted
# provider keeps data, are not suggested; written by hand they stay on the card as reminders.
NO_EXTERNAL_PII = "no PII to external APIs"
PRIVACY_SUGGESTIONS = (
    NO_EXTERNAL_PII,
    "do not log raw inputs",
    "delete traces after 30 days",
)


# -- which metrics can be measured, by whom, in which units ----------------------------------------

# unit -> (dimension, factor to the canonical unit of that dimension)
UNITS: dict[str, tuple[str, float]] = {
    "fraction": ("fraction", 1.0),
    "%": ("fraction", 0.01),
    "s": ("time", 1.0),
    "ms": ("time", 0.001),
    "USD": ("money", 1.0),
    "req/s": ("rate", 1.0),
}
_CANONICAL = {"fraction": "fraction", "time": "s", "money": "USD", "rate": "req/s"}
ALL_TASKS = TASK_TYPES


@dataclass(frozen=True)
class MeasurableMetric:
    """A success metric some phase can measure. Measured values are in ``units[0]``."""

    name: str
    description: str
    units: tuple[str, ...]
    better: Literal["higher", "lower"]
    phases: tuple[int, ...]
    task_types: tuple[str, ...] = ALL_TASKS

    @property
    def direction(self) -> Direction:
        return ">=" if self.better == "higher" else "<="

    @property
    def canonical_unit(self) -> str:
        return self.units[0]

    @property
    def upper_bound(self) -> float | None:
        """Fractions cannot exceed 1 (in canonical units); the others are unbounded."""
        return 1.0 if UNITS[self.units[0]][0] == "fraction" else None


_FRACTION = ("fraction", "%")
_TIME = ("s", "ms")

MEASURABLE_METRICS: dict[str, MeasurableMetric] = {m.name: m for m in (
    MeasurableMetric("accuracy", "share of items whose output equals the expected label or answer",
                     _FRACTION, "higher", (1, 3, 4, 5, 6, 9),
                     ("classification", "extraction", "question_answering")),
    MeasurableMetric("macro_f1", "F1 averaged over classes, so rare classes count as much",
                     _FRACTION, "higher", (1, 3, 4, 5, 6, 9), ("classification",)),
    MeasurableMetric("precision", "macro-averaged precision over classes or extracted fields",
                     _FRACTION, "higher", (1, 3, 4, 6, 9), ("classification", "extraction")),
    MeasurableMetric("recall", "macro-averaged recall over classes or extracted fields",
                     _FRACTION, "higher", (1, 3, 4, 6, 9), ("classification", "extraction")),
    MeasurableMetric("exact_match", "share of outputs identical to the expected one after "
                     "normalising case and spaces", _FRACTION, "higher", (1, 3, 4, 5, 6, 9)),
    MeasurableMetric("token_f1", "word-overlap F1 between output and expected answer",
                     _FRACTION, "higher", (1, 3, 4, 6, 9),
                     ("extraction", "question_answering", "generation", "chat")),
    MeasurableMetric("semantic_similarity", "embedding cosine similarity to the expected output",
                     _FRACTION, "higher", (3, 4, 6, 9),
                     ("question_answering", "generation", "chat")),
    MeasurableMetric("parse_rate", "share of outputs the parser accepts (valid label or schema)",
                     _FRACTION, "higher", (3, 4, 5, 6, 8, 9)),
    MeasurableMetric("faithfulness", "share of answers supported by the given context (judge)",
                     _FRACTION, "higher", (6, 9), ("question_answering", "generation", "chat")),
    MeasurableMetric("answer_relevance", "share of answers that address the question (judge)",
                     _FRACTION, "higher", (6, 9), ("question_answering", "generation", "chat")),
    MeasurableMetric("judge_score", "mean rubric score of an LLM judge, scaled to 0-1",
                     _FRACTION, "higher", (6, 9)),
    MeasurableMetric("attack_success_rate", "share of red-team inputs that break the rules",
                     _FRACTION, "lower", (6, 9)),
    MeasurableMetric("error_rate", "share of requests that fail (timeouts, 5xx, parse errors)",
                     _FRACTION, "lower", (6, 7, 8, 9)),
    MeasurableMetric("positive_feedback_rate", "share of user feedback that is positive",
                     _FRACTION, "higher", (8, 9)),
    MeasurableMetric("p50_latency", "median seconds per request", _TIME, "lower",
                     (1, 3, 4, 6, 8, 9)),
    MeasurableMetric("p95_latency", "95th-percentile seconds per request", _TIME, "lower",
                     (1, 3, 4, 6, 8, 9)),
    MeasurableMetric("cost_per_request", "mean US dollars per request", ("USD",), "lower",
                     (1, 3, 4, 6, 8, 9)),
    MeasurableMetric("throughput", "requests per second the service sustains under load",
                     ("req/s",), "higher", (6, 7)),
)}

# Example targets, by unit, for the fix-it part of a message.
_EXAMPLE_TARGETS = {"fraction": "0.9", "%": "90", "s": "2.0", "ms": "500", "USD": "0.002",
                    "req/s": "10"}


# -- the card --------------------------------------------------------------------------------------

class _Section(BaseModel):
    # Frozen: a card read by one phase cannot be changed behind another's back; build a new one
    # with model_copy(update=...). Extra keys are refused so a typo in a hand edit is reported.
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class UseCase(_Section):
    description: str = ""
    users: str = ""
    task_type: TaskType | None = None
    inputs: str = ""
    outputs: str = ""


class SuccessMetric(_Section):
    name: str
    target: float
    direction: Direction
    unit: str

    @field_validator("target")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("target must be a finite number")
        return value

    @property
    def spec(self) -> MeasurableMetric | None:
        return MEASURABLE_METRICS.get(self.name)

    def target_in_canonical_unit(self) -> float:
        """The target converted to the unit phases measure in (e.g. 500 ms -> 0.5)."""
        return self.target * UNITS[self.unit][1] if self.unit in UNITS else self.target

    def __str__(self) -> str:
        return f"{self.name} {self.direction} {_fmt(self.target)} {self.unit}".rstrip()


class Constraints(_Section):
    monthly_budget_usd: float | None = Field(default=None, ge=0)
    expected_requests_per_day: int | None = Field(default=None, ge=0)
    latency_budget_s: float | None = Field(default=None, gt=0)
    # The most one evaluation or comparison run may cost before it asks for confirmation
    # (phases 3, 4 and 6); without it, a tenth of the monthly budget.
    run_cost_limit_usd: float | None = Field(default=None, ge=0)
    privacy: list[str] = Field(default_factory=list)
    # Words or phrases the served deployment refuses in requests and never sends in answers
    # (workbench.serve.safety): matched whole-word, whatever the case, spacing or look-alike
    # letters.
    blocked_terms: list[str] = Field(default_factory=list)

    @field_validator("privacy")
    @classmethod
    def _drop_blank_rules(cls, value: list[str]) -> list[str]:
        return [rule.strip() for rule in value if rule.strip()]

    @field_validator("blocked_terms")
    @classmethod
    def _usable_terms(cls, value: list[str]) -> list[str]:
        terms: dict[str, str] = {}
        for i, term in enumerate(value):
            term = term.strip()
            if not term:
                continue
            if not any(c.isalnum() for c in term):
                raise ValueError(f"term {i + 1} ({term!r}) has no letters or digits, so it "
                                 "would match nothing; remove it")
            if len(term) > 100:
                raise ValueError(f"term {i + 1} has {len(term)} characters; a blocked term "
                                 "is a word or a short phrase (at most 100)")
            terms.setdefault(term.casefold(), term)  # the same term twice is kept once
        return list(terms.values())


class Decision(_Section):
    date: dt.date
    phase: int = Field(ge=1, le=9)
    decision: str = Field(min_length=1)
    reason: str = ""

    @field_validator("date", mode="before")
    @classmethod
    def _day_of_datetime(cls, value: Any) -> Any:
        # A hand-written TOML datetime (2026-11-26T10:00:00Z) is read as the day it names.
        return value.date() if isinstance(value, dt.datetime) else value


class ModelChoice(_Section):
    # Later phases may keep more about the model here (an adapter, a fallback): keep their keys.
    model_config = ConfigDict(frozen=True, extra="allow", str_strip_whitespace=True)
    chosen: str | None = None
    reason: str = ""


class ProjectCard(_Section):
    use_case: UseCase = Field(default_factory=UseCase)
    metrics: list[SuccessMetric] = Field(default_factory=list)
    constraints: Constraints = Field(default_factory=Constraints)
    decisions: list[Decision] = Field(default_factory=list)
    model: ModelChoice = Field(default_factory=ModelChoice)

    @property
    def task_type(self) -> str | None:
        return self.use_case.task_type

    def metric(self, name: str) -> SuccessMetric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def problems(self) -> list[str]:
        """Everything wrong with this card, as sentences (empty when it is valid)."""
        return _semantic_problems(self)

    def missing(self) -> list[str]:
        """What is not wrong but still to fill before phase 1 is done."""
        return _missing(self)

    def to_toml_tables(self) -> dict[str, Any]:
        """The card's tables as TOML-ready values; empty sections and unset fields are left out
        so a saved card keeps the sample card's compact layout."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            value = getattr(self, section)
            if isinstance(value, list):
                rows = [_compact(item.model_dump(mode="python")) for item in value]
                if rows:
                    out[section] = rows
            else:
                table = _compact(value.model_dump(mode="python"))
                if table:
                    out[section] = table
        return out


def _compact(table: dict[str, Any]) -> dict[str, Any]:
    # TOML has no null, and an empty string or list only adds noise to a hand-edited file.
    return {k: v for k, v in table.items() if v is not None and v != "" and v != []}


# -- reading the TOML, with every problem in words -------------------------------------------------

class CardProblems(InvalidCard):
    """The card has problems; ``problems`` lists each one as a sentence."""

    def __init__(self, problems: list[str], where: str = "workbench.toml",
                 fix: str = "Fix them in the card form (phase 1) or in the file, then load it "
                            "again."):
        self.problems = list(problems)
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        bullets = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"{where} has {count}:\n{bullets}\n", fix)


def parse_card(raw: Mapping[str, Any]) -> tuple[ProjectCard | None, list[str]]:
    """Validate the card tables of a TOML document (or a form's dict).

    Returns the card and an empty list when it is valid, else ``None`` and every problem found.
    Each section and each metric is checked on its own, so one bad entry hides no other.
    """
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    problems += _misspelled_tables(raw)

    for section, model in (("use_case", UseCase), ("constraints", Constraints),
                           ("model", ModelChoice)):
        value = raw.get(section, {})
        if not isinstance(value, Mapping):
            problems.append(f"{section} must be a [{section}] table, not {_kind(value)}.")
            continue
        try:
            parsed[section] = model.model_validate(dict(value))
        except ValidationError as exc:
            problems += [_sentence(section, None, err, value) for err in exc.errors()]

    for section, model in (("metrics", SuccessMetric), ("decisions", Decision)):
        rows = raw.get(section, [])
        if not isinstance(rows, list):
            problems.append(f"{section} must be a list of [[{section}]] tables, one per entry, "
                            f"not {_kind(rows)}: write [[{section}]] (double brackets) above each.")
            continue
        items = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                problems.append(f"{section}[{i}] must be a [[{section}]] table, not {_kind(row)}.")
                continue
            try:
                items.append(model.model_validate(dict(row)))
            except ValidationError as exc:
                problems += [_sentence(section, i, err, row) for err in exc.errors()]
                items.append(None)
        parsed[section] = items

    metrics = parsed.get("metrics", [])
    # The rules that compare fields run on what parsed, so a bad unit and an unknown name on two
    # different metrics are both reported.
    card = ProjectCard.model_construct(
        use_case=parsed.get("use_case") or UseCase(),
        metrics=[m for m in metrics if m is not None],
        constraints=parsed.get("constraints") or Constraints(),
        decisions=[d for d in parsed.get("decisions", []) if d is not None],
        model=parsed.get("model") or ModelChoice(),
    )
    problems += _semantic_problems(card, indices=[i for i, m in enumerate(metrics) if m])
    if problems:
        # Whole-card problems first, then metric by metric, as a reader scans the file.
        return None, sorted(_unique(problems), key=_metric_index)
    return ProjectCard.model_validate(card.model_dump()), []


def _metric_index(problem: str) -> int:
    match = re.match(r"metrics\[(\d+)\]", problem)
    return int(match.group(1)) if match else -1


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _misspelled_tables(raw: Mapping[str, Any]) -> list[str]:
    known = {"workbench", "project", *SECTIONS}
    out = []
    for key in raw:
        if key in known:
            continue
        # [model] is left out: other phases may well add a [models] table of their own.
        close = difflib.get_close_matches(key, [s for s in SECTIONS if s != "model"], n=1,
                                          cutoff=0.75)
        if close:
            brackets = "[[{}]]" if close[0] in ("metrics", "decisions") else "[{}]"
            out.append(f"[{key}] is not a card table; did you mean {brackets.format(close[0])}?")
    return out


_TASK_ALIASES = {"qa": "question_answering", "q&a": "question_answering",
                 "classify": "classification", "ner": "extraction",
                 "summarization": "generation", "summarisation": "generation",
                 "conversation": "chat", "chatbot": "chat"}
_EXAMPLES = {"target": "0.9", "direction": '">="', "unit": '"fraction"', "name": '"accuracy"',
             "date": "2026-01-31", "phase": "1", "decision": '"what was decided"',
             "monthly_budget_usd": "200", "expected_requests_per_day": "3000",
             "latency_budget_s": "2.0"}


def _where(section: str, index: int | None, row: Mapping[str, Any]) -> str:
    if index is None:
        return f"[{section}]"
    name = row.get("name") if isinstance(row, Mapping) else None
    return f"{section}[{index}]" + (f" '{name}'" if isinstance(name, str) and name else "")


def _sentence(section: str, index: int | None, err: Mapping[str, Any],
              row: Mapping[str, Any]) -> str:
    """A pydantic error as a sentence that names the field and says how to fix it."""
    where = _where(section, index, row)
    loc = [str(p) for p in err["loc"]]
    field = loc[0] if loc else section
    kind = err["type"]
    given = err.get("input")
    if kind == "missing":
        return f"{where} has no {field}: add {field} = {_example(field, row)}."
    if kind == "extra_forbidden":
        model = {"use_case": UseCase, "metrics": SuccessMetric, "constraints": Constraints,
                 "decisions": Decision}[section]
        keys = list(model.model_fields)
        close = difflib.get_close_matches(field, keys, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{where} has an unknown key '{field}': {hint}the keys are {', '.join(keys)}."
    if kind == "literal_error":
        choices = TASK_TYPES if field == "task_type" else get_args(Direction)
        hint = ""
        if field == "task_type":
            guess = re.sub(r"[\s-]+", "_", str(given).strip().lower())
            guess = _TASK_ALIASES.get(guess, guess)
            close = difflib.get_close_matches(guess, choices, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
        elif isinstance(row, Mapping) and (spec := MEASURABLE_METRICS.get(row.get("name"))):
            hint = f" ({row['name']} is better when {spec.better}: '{spec.direction}')"
        return (f"{where} {field} is {given!r}, which is not allowed; use one of "
                f"{', '.join(repr(c) for c in choices)}{hint}.")
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        what = "a whole number" if kind.startswith("int") else "a number"
        how = ("no quotes, no unit; the unit has its own key" if section == "metrics"
               else "a plain number, no quotes")
        return (f"{where} {field} is {given!r}, which is not {what}: write {field} = "
                f"{_example(field, row)} ({how}).")
    if kind == "string_too_short":
        return f"{where} {field} is empty: write {field} = {_example(field, row)}."
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        limit = err.get("ctx", {})
        bound = next(iter(limit.values()), "")
        bound = _fmt(bound) if isinstance(bound, int | float) else bound
        words = {"greater_than_equal": f"{bound} or more", "greater_than": f"more than {bound}",
                 "less_than_equal": f"{bound} or less", "less_than": f"less than {bound}"}[kind]
        return f"{where} {field} is {given!r}; it must be {words}."
    if kind in ("string_type", "list_type", "date_type", "date_parsing",
                "date_from_datetime_parsing"):
        expected = {"string_type": "text in quotes", "list_type": 'a list such as ["..."]'}.get(
            kind, "a date such as 2026-01-31")
        return f"{where} {field} is {given!r}; write {expected}."
    if field == "privacy" and len(loc) > 1:
        return f"{where} privacy[{loc[1]}] is {given!r}; each privacy rule is text in quotes."
    message = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{where} {field}: {message}."


def _example(field: str, row: Mapping[str, Any]) -> str:
    spec = MEASURABLE_METRICS.get(row.get("name")) if isinstance(row, Mapping) else None
    if spec is not None:
        if field == "unit":
            return f'"{spec.canonical_unit}"'
        if field == "direction":
            return f'"{spec.direction}"'
        if field == "target":
            return _EXAMPLE_TARGETS[spec.canonical_unit]
    return _EXAMPLES.get(field, "...")


# -- rules across fields ---------------------------------------------------------------------------

def _semantic_problems(card: ProjectCard, indices: list[int] | None = None) -> list[str]:
    problems: list[str] = []
    indices = indices if indices is not None else list(range(len(card.metrics)))
    task = card.use_case.task_type
    seen: dict[str, int] = {}
    for i, metric in zip(indices, card.metrics, strict=True):
        where = f"metrics[{i}] '{metric.name}'" if metric.name else f"metrics[{i}]"
        if not metric.name:
            problems.append(f"{where} has no name: use one of {_metric_names()}.")
            continue
        if metric.name in seen:
            problems.append(f"{where} repeats metrics[{seen[metric.name]}]: keep one target "
                            "per metric and delete the other.")
        seen.setdefault(metric.name, i)
        spec = MEASURABLE_METRICS.get(metric.name)
        if spec is None:
            close = difflib.get_close_matches(metric.name.lower().replace(" ", "_"),
                                              MEASURABLE_METRICS, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? Otherwise " if close else ""
            problems.append(f"{where} cannot be measured by any phase; {hint}use one of "
                            f"{_metric_names()}.")
            continue
        if not metric.unit:
            problems.append(f'{where} has no unit: add unit = "{spec.canonical_unit}".')
        elif metric.unit not in spec.units:
            problems.append(f"{where} has unit '{metric.unit}', but {metric.name} is measured in "
                            f"{' or '.join(repr(u) for u in spec.units)}: set unit = "
                            f'"{spec.canonical_unit}".')
        if metric.direction != spec.direction:
            problems.append(f"{where} is better when {spec.better}, so its target needs "
                            f'direction = "{spec.direction}", not "{metric.direction}".')
        if metric.target < 0:
            problems.append(f"{where} target is {_fmt(metric.target)}; it cannot be negative.")
        elif metric.unit in spec.units and spec.upper_bound is not None:
            canonical = metric.target_in_canonical_unit()
            if canonical > spec.upper_bound:
                fix = (f"write {_fmt(metric.target / 100)} (a fraction) or set unit = \"%\""
                       if metric.unit == "fraction" and metric.target <= 100
                       else "a share cannot exceed 100%")
                problems.append(f"{where} target {_fmt(metric.target)} {metric.unit} is above "
                                f"the maximum: {fix}.")
        if task is not None and task not in spec.task_types:
            fitting = [n for n, s in MEASURABLE_METRICS.items() if task in s.task_types]
            problems.append(f"{where} does not apply to {task} tasks (it needs "
                            f"{' or '.join(spec.task_types)}); for {task} use one of "
                            f"{', '.join(fitting)}.")
    problems += _constraint_problems(card, seen, indices)
    if card.model.chosen is not None and not card.model.chosen:
        problems.append("[model] chosen is empty: write a model id such as "
                        '"local/smollm2-135m", or remove the key.')
    return problems


def _constraint_problems(card: ProjectCard, seen: dict[str, int],
                         indices: list[int]) -> list[str]:
    """Targets that contradict the constraints (a promise the budget cannot keep)."""
    out = []
    c = card.constraints
    by_index = dict(zip(indices, card.metrics, strict=True))
    for name in ("p50_latency", "p95_latency"):
        metric = by_index.get(seen.get(name, -1))
        if metric and c.latency_budget_s is not None and metric.unit in _TIME:
            target_s = metric.target_in_canonical_unit()
            if target_s > c.latency_budget_s:
                out.append(f"metrics[{seen[name]}] '{name}' target {_fmt(metric.target)} "
                           f"{metric.unit} is above the latency budget of "
                           f"{_fmt(c.latency_budget_s)} s in [constraints]: lower the target "
                           "or raise latency_budget_s.")
    metric = by_index.get(seen.get("cost_per_request", -1))
    if (metric and metric.unit == "USD" and c.monthly_budget_usd is not None
            and c.expected_requests_per_day):
        monthly = metric.target * c.expected_requests_per_day * 30
        if monthly > c.monthly_budget_usd:
            out.append(f"metrics[{seen['cost_per_request']}] 'cost_per_request' target "
                       f"${_fmt(metric.target)} × {c.expected_requests_per_day:,} requests a day "
                       f"× 30 days is ${monthly:,.2f} a month, above the monthly budget of "
                       f"${_fmt(c.monthly_budget_usd)}: lower the target, the expected traffic "
                       "or raise monthly_budget_usd.")
    return out


def _missing(card: ProjectCard) -> list[str]:
    out = []
    uc = card.use_case
    for field, prompt in (("description", "what the system does and why"),
                          ("users", "who uses the output"),
                          ("inputs", "what one input looks like"),
                          ("outputs", "what one output looks like")):
        if not getattr(uc, field):
            out.append(f"use_case.{field} is empty: describe {prompt}.")
    if uc.task_type is None:
        out.append(f"use_case.task_type is not set: choose one of {', '.join(TASK_TYPES)}.")
    names = {m.name for m in card.metrics}
    if not card.metrics:
        out.append("There are no success metrics: add at least a quality metric (such as "
                   "accuracy), p95_latency and cost_per_request.")
    else:
        quality = {n for n, s in MEASURABLE_METRICS.items()
                   if UNITS[s.canonical_unit][0] == "fraction"}
        if not names & quality:
            out.append("No quality metric yet: add one such as accuracy or judge_score.")
        if not names & {"p50_latency", "p95_latency"}:
            out.append("No latency target yet: add p95_latency (seconds).")
        if "cost_per_request" not in names:
            out.append("No cost target yet: add cost_per_request (USD).")
    if card.constraints.monthly_budget_usd is None:
        out.append("constraints.monthly_budget_usd is not set.")
    if card.constraints.expected_requests_per_day is None:
        out.append("constraints.expected_requests_per_day is not set.")
    return out


def _metric_names() -> str:
    return ", ".join(MEASURABLE_METRICS)


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"


# -- kernel calls ----------------------------------------------------------------------------------

def load_card(project: Project) -> ProjectCard:
    """The project's card, validated as it is on disk (hand edits included).

    Raises ``InvalidCard`` (a ``CardProblems`` with a ``problems`` list) naming every problem."""
    card, problems = parse_card(project.card())
    if card is None:
        raise CardProblems(problems, str(project.card_path))
    return card


def save_card(project: Project, card: ProjectCard,
              sections: Iterable[str] | None = None) -> ProjectCard:
    """Validate and write the card; the ``[workbench]``, ``[project]`` and other tables stay.

    ``sections`` limits the write to some of ``SECTIONS`` (the form passes the ones it edits, so
    a model chosen or a decision logged meanwhile by another notebook is not overwritten). The
    merged result is validated under the card lock before anything is written; on a problem the
    file is left as it was and ``InvalidCard`` lists every problem. Returns the card as saved.
    """
    chosen = tuple(SECTIONS if sections is None else sections)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise ValueError(f"Unknown card sections {unknown}; the sections are {SECTIONS}.")
    problems = card.problems()
    if problems:
        raise CardProblems(problems, str(project.card_path))
    tables = card.to_toml_tables()
    saved: list[ProjectCard] = []

    def change(raw: dict[str, Any]) -> None:
        for section in chosen:
            if section in tables:
                raw[section] = tables[section]
            else:
                raw.pop(section, None)
        merged, merged_problems = parse_card(raw)
        if merged is None:
            raise CardProblems(merged_problems, str(project.card_path))
        saved.append(merged)

    project.update_card(change)
    return saved[0]


def where_measured(card: ProjectCard) -> list[dict[str, str]]:
    """One row per success metric of ``card``: its ``metric`` name, its ``target`` as written
    ("<= 2 s") and the phases that measure it ("3, 4, 6, 8"; "—" for a metric no phase
    measures), so a reader sees which notebook reports each number."""
    return [{"metric": m.name, "target": f"{m.direction} {m.target:g} {m.unit}",
             "measured in phases": ", ".join(map(str, MEASURABLE_METRICS[m.name].phases))
             if m.name in MEASURABLE_METRICS else "—"}
            for m in card.metrics]


def add_decision(project: Project, phase: int, decision: str, reason: str = "",
                 *, date: dt.date | None = None) -> Decision:
    """Append an entry to the card's decision log (``[[decisions]]``) and return it.

    Only the log is checked here, so a problem elsewhere in the card does not stop a phase from
    recording what it decided; ``load_card`` still reports it."""
    entry = _validated(Decision, "decisions", {
        "date": date or dt.datetime.now(dt.timezone.utc).date(),
        "phase": phase, "decision": decision, "reason": reason})

    def change(raw: dict[str, Any]) -> None:
        log = raw.get("decisions", [])
        if not isinstance(log, list):
            raise CardProblems(["decisions must be a list of [[decisions]] tables; fix the "
                                "file by hand before logging more decisions."])
        raw["decisions"] = [*log, _compact(entry.model_dump(mode="python"))]

    project.update_card(change)
    return entry


def choose_model(project: Project, model_id: str, reason: str, *, phase: int = 3) -> ProjectCard:
    """Set ``[model] chosen`` (the default model of every later call) and log the decision."""
    model_id = (model_id or "").strip()
    if not model_id or any(ch.isspace() for ch in model_id):
        raise InvalidCard(f"{model_id!r} is not a model id.",
                          'Pass an id such as "local/smollm2-135m" or "openai/gpt-4o-mini".')
    entry = _validated(Decision, "decisions", {
        "date": dt.datetime.now(dt.timezone.utc).date(), "phase": phase,
        "decision": f"Use {model_id} as the project's model.", "reason": reason})

    def change(raw: dict[str, Any]) -> None:
        table = raw.get("model", {})
        if not isinstance(table, dict):
            raise CardProblems(["model must be a [model] table; fix the file by hand first."])
        raw["model"] = {**table, "chosen": model_id, "reason": reason}
        raw["decisions"] = [*raw.get("decisions", []), _compact(entry.model_dump(mode="python"))]

    card = project.update_card(change)
    parsed, _ = parse_card(card)
    return parsed if parsed is not None else ProjectCard()


def _validated(model: type[BaseModel], section: str, values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise CardProblems([_sentence(section, None, err, values) for err in exc.errors()],
                           "The new entry", "Correct the values passed in and call again.") from None


# -- reading the card in later phases --------------------------------------------------------------

def privacy_forbids_external_pii(card: ProjectCard) -> bool:
    """Whether a privacy rule forbids sending personal data to an external (hosted) model
    (read by ``workbench.privacy``, the one place rules are read). ``NO_EXTERNAL_PII`` is the
    canonical wording."""
    from workbench.privacy import policy

    return policy(card.constraints.privacy).external_pii_forbidden


class MetricNotInCard(WorkbenchError):
    pass


def metric_status(card: ProjectCard, name: str,
                  value: float) -> tuple[Literal["pass", "fail"], str]:
    """Compare a measured value with the card's target for ``name``.

    ``value`` is in the metric's canonical unit (a fraction, seconds, US dollars), whatever unit
    the target was written in. Returns ``("pass" | "fail", sentence)``; a NaN value fails."""
    metric = card.metric(name)
    if metric is None:
        targets = ", ".join(m.name for m in card.metrics) or "none"
        raise MetricNotInCard(f"The card sets no target for '{name}' (its targets: {targets}).",
                              f"Add a [[metrics]] entry for {name} in phase 1, or check "
                              "card.metric(name) before asking for a status.")
    unit = {"fraction": "", "": "", "%": "%"}.get(metric.unit, f" {metric.unit}")
    target = f"{metric.direction} {_fmt(metric.target)}{unit}"
    if value is None or math.isnan(float(value)):
        return "fail", f"{name} could not be measured (target {target}): fail"
    value = float(value)
    shown = value / UNITS[metric.unit][1] if metric.unit in UNITS else value
    goal = metric.target_in_canonical_unit()
    ok = value >= goal if metric.direction == ">=" else value <= goal
    status: Literal["pass", "fail"] = "pass" if ok else "fail"
    return status, f"{name} {_fmt_measured(shown)}{unit} (target {target}): {status}"


def _fmt_measured(value: float) -> str:
    """Three significant digits, never e-notation (``0.00906``, not ``9.06e-03``)."""
    from workbench.formatting import format_number

    return format_number(value)


def compare_to_targets(card: ProjectCard, measured: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per card metric: target, measured value, and status (``"not measured"`` when
    ``measured`` lacks it). Ready for ``pandas.DataFrame(rows)`` in a notebook or a report."""
    rows = []
    for metric in card.metrics:
        row = {"metric": metric.name, "target": f"{metric.direction} {_fmt(metric.target)}",
               "unit": metric.unit, "value": None, "status": "not measured", "text": ""}
        if metric.name in measured and measured[metric.name] is not None:
            status, text = metric_status(card, metric.name, measured[metric.name])
            row.update(value=measured[metric.name], status=status, text=text)
        else:
            row["text"] = f"{metric.name} is not measured here"
        rows.append(row)
    return rows
