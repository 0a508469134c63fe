"""LLM-as-judge: a model scores answers against a rubric, or picks the better of two answers.

    >>> rubric = Rubric(criteria=["Answers the question", "Is polite"], scale=(1, 5),
    ...                 pass_threshold=4)
    >>> judge(project, rubric, question="Where is my parcel?", answer="...",
    ...       judge_model="openai/gpt-4o-mini")
    JudgeScore(score=4, passed=True, reason='...', raw='{"score": 4, ...}', parsed_ok=True)

How it stays honest:

- The judge must reply with JSON, ``{"score": <int>, "reason": "<one sentence>"}``. The reply
  is read leniently (a ```json fence, prose around the object, a single-quoted dict), but a
  reply with no readable score in the scale is reported as **unparsed**, never as a 0: the
  candidate did not fail, the judge did.
- ``pairwise`` asks twice, with the answers in both orders. Judges prefer the first answer more
  often than chance (position bias); a verdict that flips with the order is reported as
  ``"inconsistent"`` instead of being counted for either side; when a reply cannot be read
  the pair is ``"unscored"``.
- ``self_judging_warning`` says when the judge is the model being judged, or from the same
  family: models rate their own style higher (self-preference bias).
- Before a judge's scores gate anything, calibrate it against people
  (``workbench.evaluate.calibration``).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workbench.errors import ModelCallFailed, WorkbenchError
from workbench.evaluate.scorers import Score, Scorer, register_scorer

if TYPE_CHECKING:

    from workbench.project import Project

_REASON_MAX = 500


class JudgeError(WorkbenchError):
    """A judge could not be asked (a missing reference, a bad rubric)."""


class Rubric(BaseModel):
    """What the judge scores: ``criteria`` (each a sentence), an integer ``scale`` (low, high),
    the score from which an answer passes (default: the top 60% of the scale), whether a
    reference answer is required, and extra ``instructions``.

    ``labels`` names the scale's points, **worst first** (``["incorrect",
    "partially_correct", "correct"]`` is the scale 1-3, given when ``scale`` is left out): the
    judge is told what each point means, and calibration takes the labels' order from here
    (weighted kappa needs it; ``ordered_labels``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    criteria: list[str] = Field(min_length=1)
    scale: tuple[int, int] = (1, 5)
    pass_threshold: int | None = None
    reference_required: bool = False
    instructions: str = ""
    name: str = "rubric"
    labels: tuple[str, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _scale_from_labels(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("labels") and data.get("scale") is None:
            data = {**data, "scale": (1, len(data["labels"]))}
        return data

    @model_validator(mode="after")
    def _check(self) -> Rubric:
        low, high = self.scale
        if low >= high:
            raise ValueError(f"scale must be (low, high) with low < high, not {self.scale}")
        if self.pass_threshold is not None and not low <= self.pass_threshold <= high:
            raise ValueError(f"pass_threshold {self.pass_threshold} is outside the scale "
                             f"{self.scale}")
        if self.labels is not None:
            if len(self.labels) != high - low + 1:
                raise ValueError(f"labels name the scale's points, worst first: the scale "
                                 f"{self.scale} has {high - low + 1} points, and "
                                 f"{len(self.labels)} labels were given")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"labels must differ from each other: {list(self.labels)}")
        return self

    @property
    def ordered_labels(self) -> list[Any]:
        """The rubric's labels worst first: ``labels``, else every point of the scale."""
        low, high = self.scale
        return list(self.labels) if self.labels is not None else list(range(low, high + 1))

    def label_of(self, score: int | None) -> Any:
        """The label of a score (the score itself when the rubric names no labels)."""
        if score is None or self.labels is None:
            return score
        return self.labels[score - self.scale[0]]

    @property
    def threshold(self) -> int:
        low, high = self.scale
        if self.pass_threshold is not None:
            return self.pass_threshold
        return low + -(-(high - low) * 6 // 10)  # ceil(60% of the way up): 4 on 1-5

    def normalise(self, score: int) -> float:
        """The score as a value in [0, 1]."""
        low, high = self.scale
        return (score - low) / (high - low)


@dataclass(frozen=True)
class JudgeScore:
    """One judgement. ``score`` is None and ``parsed_ok`` False when the judge's reply had no
    readable score; ``raw`` is the reply as the judge wrote it."""

    score: int | None
    passed: bool | None
    reason: str
    raw: str | None
    parsed_ok: bool
    judge_model: str = ""

    @property
    def value(self) -> float | None:
        return None if self.score is None else float(self.score)


# -- the prompts ---------------------------------------------------------------------------------

_SYSTEM = ("You are a strict, fair evaluator. You judge only what is asked, ignore the length "
           "and the confidence of an answer, and reply with JSON only.")


def rubric_messages(rubric: Rubric, *, question: str | None, answer: str,
                    reference: str | None = None) -> list[dict[str, str]]:
    """The messages a judge receives for one answer (shown in notebooks so people see them).
    With no question (a scorer sees only outputs) the QUESTION block is left out."""
    low, high = rubric.scale
    criteria = "\n".join(f"{i}. {c}" for i, c in enumerate(rubric.criteria, 1))
    target = "the ANSWER to the QUESTION" if question is not None else "the ANSWER"
    parts = [f"Score {target} on a scale from {low} (worst) to {high} (best) "
             f"against these criteria:\n{criteria}"]
    if rubric.labels is not None:
        parts.append("The scale's points: " + ", ".join(
            f"{low + i} = {label}" for i, label in enumerate(rubric.labels)) + ".")
    if rubric.instructions:
        parts.append(rubric.instructions)
    if question is not None:
        parts.append(f"QUESTION:\n{question}")
    if reference is not None:
        parts.append(f"REFERENCE ANSWER (correct; judge the ANSWER against it):\n{reference}")
    parts.append(f"ANSWER:\n{answer}")
    parts.append(f'Reply with JSON only: {{"score": <integer {low}-{high}>, "reason": "<one '
                 f'sentence>"}}')
    return [{"role": "system", "content": _SYSTEM},
            {"role": "user", "content": "\n\n".join(parts)}]


def pairwise_messages(*, question: str, first: str, second: str, criteria: Sequence[str],
                      reference: str | None = None) -> list[dict[str, str]]:
    listed = "\n".join(f"{i}. {c}" for i, c in enumerate(criteria, 1))
    parts = [f"Which answer to the QUESTION is better against these criteria?\n{listed}",
             f"QUESTION:\n{question}"]
    if reference is not None:
        parts.append(f"REFERENCE ANSWER:\n{reference}")
    parts += [f"ANSWER A:\n{first}", f"ANSWER B:\n{second}",
              'Reply with JSON only: {"winner": "A" | "B" | "tie", "reason": "<one sentence>"}']
    return [{"role": "system", "content": _SYSTEM},
            {"role": "user", "content": "\n\n".join(parts)}]


# -- reading replies -----------------------------------------------------------------------------

def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: fenced, bare, or inside prose; Python dict syntax is
    accepted too (small models write single quotes)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [fenced.group(1)] if fenced else []
    candidates += re.findall(r"\{.*?\}", text, re.DOTALL) + re.findall(r"\{.*\}", text, re.DOTALL)
    for candidate in candidates:
        candidate = candidate.strip()
        for load in (json.loads, ast.literal_eval):
            try:
                value = load(candidate)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict):
                return value
    return None


def _short(text: str | None, n: int = 80) -> str:
    text = (text or "").strip().replace("\n", " ")
    return repr(text if len(text) <= n else text[:n - 1] + "…")


def parse_judgement(raw: str | None, rubric: Rubric, judge_model: str = "") -> JudgeScore:
    """Read a judge's reply. No score, or a score outside the scale, is an explicit failure."""
    low, high = rubric.scale
    if raw is None:
        return JudgeScore(None, None, "The judge did not answer (the call failed).", None, False,
                          judge_model)
    data = _json_object(raw) or {}
    score: Any = data.get("score")
    reason = data.get("reason") or data.get("explanation") or ""
    if isinstance(score, str) and rubric.labels is not None \
            and score.strip() in rubric.labels:  # a judge that answered with the label
        score = rubric.scale[0] + rubric.labels.index(score.strip())
    if score is None:  # last resort: "score": 4 in text that is not quite JSON
        found = re.search(r"""["']?score["']?\s*[:=]\s*(-?\d+(?:\.\d+)?)""", raw, re.IGNORECASE)
        score = found.group(1) if found else None
    try:
        number = float(score) if score is not None and not isinstance(score, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number) or number != int(number) \
            or not low <= number <= high:
        what = "no score" if number is None else \
            f"the score {score!r}, not a whole number in {low}-{high}"
        return JudgeScore(None, None, f"The judge's reply had {what}, so this answer is not "
                                      f"scored: {_short(raw)}", raw, False, judge_model)
    value = int(number)
    reason = str(reason).strip()[:_REASON_MAX] or "(the judge gave no reason)"
    return JudgeScore(value, value >= rubric.threshold, reason, raw, True, judge_model)


def parse_winner(raw: str | None) -> tuple[Literal["A", "B", "tie"] | None, str]:
    """A pairwise reply's verdict ("A", "B", "tie"; None when unreadable) and its reason."""
    if raw is None:
        return None, "the call failed"
    data = _json_object(raw) or {}
    winner = str(data.get("winner", "")).strip().strip(".").lower()
    if not winner:
        found = re.search(r"""["']?winner["']?\s*[:=]\s*["']?(A|B|tie)\b""", raw, re.IGNORECASE)
        winner = found.group(1).lower() if found else ""
    reason = str(data.get("reason") or "").strip()[:_REASON_MAX]
    mapped = {"a": "A", "answer a": "A", "b": "B", "answer b": "B", "tie": "tie",
              "draw": "tie", "equal": "tie"}.get(winner)
    return mapped, reason if mapped else f"unreadable reply {_short(raw)}"  # type: ignore


# -- one judgement -------------------------------------------------------------------------------

def _check_reference(rubric: Rubric, reference: str | None) -> None:
    if rubric.reference_required and reference is None:
        raise JudgeError("This rubric needs a reference answer, and none was given.",
                         "Pass reference=..., or use a rubric with reference_required=False.")


def _call(project: Project | None, messages: list[dict[str, str]], judge_model: str,
          options: dict[str, Any]) -> str | None:
    from workbench.llm.gateway import complete

    options.setdefault("temperature", 0)
    try:
        return complete(messages, judge_model, project=project, **options).text
    except ModelCallFailed:  # the judge was asked and did not answer: this item is unscored
        return None  # (an unknown model or hosted calls switched off still raise)


def judge(project: Project | None, rubric: Rubric, *, question: str | None, answer: str,
          reference: str | None = None, judge_model: str, **options: Any) -> JudgeScore:
    """Ask ``judge_model`` to score ``answer`` against ``rubric`` (temperature 0 unless set).

    A failed call or an unreadable reply gives ``parsed_ok=False`` and ``score=None``."""
    _check_reference(rubric, reference)
    messages = rubric_messages(rubric, question=question, answer=answer, reference=reference)
    with judge_tags(judge_name(rubric, judge_model)):
        raw = _call(project, messages, judge_model, options)
    return parse_judgement(raw, rubric, judge_model)


def judge_tags(name: str, run_id: str | None = None):
    """A judge's model calls carry its name (and the run it judges) in their spans."""
    from workbench.tracing import tagged

    tags = {"workbench.judge.name": name}
    if run_id is not None:
        tags["workbench.judge.run_id"] = run_id
    return tagged(**tags)


@register_scorer
def llm_judge(rubric: dict[str, Any], judge_model: str) -> Any:
    """An LLM judge as a scorer: the item's expected value is the reference answer and, when
    the run passes the item, its input is the QUESTION the judge sees."""
    parsed_rubric = Rubric.model_validate(rubric)

    def score(output, expected, parsed, parse_ok, item=None) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        reference = None if expected is None or expected != expected else str(expected)
        if parsed_rubric.reference_required and reference is None:
            return Score(None, None, "The rubric needs a reference and the item has none")
        question = (item or {}).get("input")
        result = judge(None, parsed_rubric, answer=output, reference=reference,
                       question=None if question is None else str(question),
                       judge_model=judge_model)
        if not result.parsed_ok:
            return Score(None, None, result.reason)
        return Score(parsed_rubric.normalise(result.score), result.passed,
                     f"{judge_model} scored {result.score}/{parsed_rubric.scale[1]}: "
                     f"{result.reason}")

    return score


def judge_scorer(rubric: Rubric, judge_model: str) -> Scorer:
    """``judge`` as a scorer for ``start_run(scorers=[...])``; its spec holds the rubric and the
    judge model, so ``scorer_from_spec`` rebuilds it. A reply the judge botched gives
    ``passed=None`` (not scored), so it never counts as a failure of the candidate."""
    return llm_judge(rubric.model_dump(mode="json"), judge_model)


# -- pairwise ------------------------------------------------------------------------------------

Winner = Literal["A", "B", "tie", "inconsistent", "unscored"]


@dataclass(frozen=True)
class PairwiseResult:
    """``winner`` after asking in both orders. ``order_ab`` is the verdict with A shown first,
    ``order_ba`` the verdict with B shown first, both mapped back to the original A and B
    (None when that reply could not be read)."""

    winner: Winner
    order_ab: Literal["A", "B", "tie"] | None
    order_ba: Literal["A", "B", "tie"] | None
    reason: str
    raw: tuple[str | None, str | None] = (None, None)

    @property
    def parsed_ok(self) -> bool:
        return self.order_ab is not None and self.order_ba is not None


def combine_orders(ab: tuple[Any, str], ba: tuple[Any, str],
                   raw: tuple[str | None, str | None]) -> PairwiseResult:
    """One verdict from the two orders: the same winner both ways, a tie, "inconsistent"
    when it flips with the order, "unscored" when a reply cannot be read."""
    first, why_first = ab
    second_shown, why_second = ba
    # In the second order the answers were swapped: "A" there means the original B.
    second = {"A": "B", "B": "A", "tie": "tie"}.get(second_shown) if second_shown else None
    if first is None or second is None:
        which = "both orders" if first is None and second is None else \
            ("A-first order" if first is None else "B-first order")
        return PairwiseResult("unscored", first, second,
                              f"The judge's reply in the {which} could not be read "
                              f"({why_first if first is None else why_second}).", raw)
    if first == second:
        word = "tie" if first == "tie" else first
        return PairwiseResult(word, first, second,  # type: ignore[arg-type]
                              f"Both orders agree ({'a tie' if word == 'tie' else word}): "
                              f"{why_first}", raw)
    if first == "A" and second == "B" or first == "B" and second == "A":
        note = ("the judge preferred whichever answer came first (position bias)"
                if first == "A" else "the judge preferred whichever answer came second")
    else:
        note = f"the verdict changed with the order ({first} then {second})"
    return PairwiseResult("inconsistent", first, second,
                          f"The verdict depends on the order: {note}.", raw)


def pairwise(project: Project | None, *, question: str, answer_a: str, answer_b: str,
             judge_model: str, criteria: Sequence[str] = ("Which answer is more correct and "
                                                          "more helpful",),
             reference: str | None = None, **options: Any) -> PairwiseResult:
    """Which answer is better? Asked twice, A first then B first, to cancel position bias."""
    ab = pairwise_messages(question=question, first=answer_a, second=answer_b,
                           criteria=criteria, reference=reference)
    ba = pairwise_messages(question=question, first=answer_b, second=answer_a,
                           criteria=criteria, reference=reference)
    with judge_tags(f"pairwise:{judge_model}"):
        raw_ab = _call(project, ab, judge_model, dict(options))
        raw_ba = _call(project, ba, judge_model, dict(options))
    return combine_orders(parse_winner(raw_ab), parse_winner(raw_ba), (raw_ab, raw_ba))


# -- self-judging --------------------------------------------------------------------------------

_FAMILIES = {  # a word in the model id → the family that trained it
    "gpt": "OpenAI", "o1": "OpenAI", "o3": "OpenAI", "o4": "OpenAI", "chatgpt": "OpenAI",
    "claude": "Anthropic", "gemini": "Google", "gemma": "Google", "llama": "Meta",
    "mistral": "Mistral", "mixtral": "Mistral", "ministral": "Mistral", "qwen": "Qwen",
    "deepseek": "DeepSeek", "smollm": "SmolLM", "phi": "Microsoft", "command": "Cohere",
    "grok": "xAI",
}
_PROVIDER_FAMILY = {"openai": "OpenAI", "azure": "OpenAI", "anthropic": "Anthropic",
                    "gemini": "Google", "vertex_ai": "Google", "mistral": "Mistral",
                    "deepseek": "DeepSeek", "cohere": "Cohere", "xai": "xAI", "local": "SmolLM"}


def model_family(model: str) -> str | None:
    """The family a model id belongs to (``openrouter/anthropic/claude-x`` → Anthropic), or
    None when it cannot be told (fake models)."""
    lowered = model.lower()
    provider = lowered.partition("/")[0]
    if provider == "fake":
        return None
    base = lowered.rsplit("/", 1)[-1]
    for word in re.split(r"[^a-z0-9]+", base):
        for key, family in _FAMILIES.items():
            if word.startswith(key):
                return family
    for part in lowered.split("/")[:-1]:
        if part in _PROVIDER_FAMILY:
            return _PROVIDER_FAMILY[part]
    return None


def self_judging_warning(judge_model: str, candidate_model: str) -> str | None:
    """A warning sentence when a model would judge its own outputs (or its family's); else
    None."""
    def base(model: str) -> str:  # an adapter on the bundled model is still that model
        return model.split(":", 1)[0] if model.startswith("local/") else model

    if base(judge_model) == base(candidate_model):
        return (f"{judge_model} is judging its own outputs: models tend to rate their own "
                "answers higher (self-preference bias). Use a judge from another family, or "
                "calibrate this one against human labels first.")
    family = model_family(judge_model)
    if family is not None and family == model_family(candidate_model):
        return (f"{judge_model} and {candidate_model} are both {family} models: a judge tends "
                "to favour its own family's style. Prefer a judge from another family, or "
                "calibrate it against human labels first.")
    return None


# -- judging a whole run -------------------------------------------------------------------------

def judge_name(rubric: Rubric, judge_model: str) -> str:
    """How a judge (a rubric on a model) is named in records and calibration."""
    return f"{rubric.name}@{judge_model}"
