"""Scorers: small typed factories that return a callable, registered with their arguments.

    >>> s = normalized_match(ignore_case=True)
    >>> s("Billing.", "billing")
    Score(value=1.0, passed=True, reason="Output 'Billing.' matches expected 'billing'")
    >>> s.spec()
    {'name': 'normalized_match', 'args': {'ignore_case': True, 'strip_punctuation': True, ...}}

A scorer is called as ``scorer(output, expected, parsed=..., parse_ok=...)`` and returns a
``Score`` whose reason is a sentence for people. ``scorer.spec()`` is plain JSON, and
``scorer_from_spec(spec)`` rebuilds the same scorer, so a run can be re-scored from its log.

Aggregate metrics for classification come from scikit-learn (``classification_report``); nothing
here re-implements what it provides. scikit-learn and pandas are imported when first needed.
"""

from __future__ import annotations

import inspect
import json
import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

Field = Literal["parsed", "output"]
UNPARSED = "(unparsed)"
OTHER = "(other)"
_SHOW = 60  # characters of an output quoted in a reason


class UnknownScorer(WorkbenchError):
    pass


@dataclass(frozen=True)
class Score:
    """One item's score: ``value`` in [0, 1], ``passed`` (None when a score has no pass/fail)."""

    value: float
    passed: bool | None
    reason: str


class Scorer:
    """A scoring function with the name and arguments of the factory that made it."""

    def __init__(self, name: str, args: dict[str, Any], fn: Callable[..., Score]):
        self.name = name
        self.args = args
        self._fn = fn

    def __call__(self, output: str | None, expected: Any = None, *, parsed: Any = None,
                 parse_ok: bool | None = None) -> Score:
        return self._fn(output, expected, parsed, parse_ok)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({args})"


_REGISTRY: dict[str, Callable[..., Scorer]] = {}


def register_scorer(factory: Callable[..., Callable[..., Score]]) -> Callable[..., Scorer]:
    """Turn a factory returning ``fn(output, expected, parsed, parse_ok) -> Score`` into one that
    returns a ``Scorer`` carrying its name and (defaulted) arguments, and register it by name."""
    signature = inspect.signature(factory)

    def make(*args: Any, **kwargs: Any) -> Scorer:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return Scorer(factory.__name__, dict(bound.arguments), factory(*args, **kwargs))

    make.__name__ = factory.__name__
    make.__doc__ = factory.__doc__
    make.__signature__ = signature  # type: ignore[attr-defined]
    _REGISTRY[factory.__name__] = make
    return make


def scorer_from_spec(spec: dict[str, Any] | str) -> Scorer:
    """Rebuild a scorer from ``{"name": ..., "args": {...}}`` (or just its name)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    name = spec.get("name")
    if name not in _REGISTRY:
        raise UnknownScorer(f"There is no scorer named {name!r}.",
                            f"Known scorers: {', '.join(sorted(_REGISTRY))}.")
    try:
        return _REGISTRY[name](**(spec.get("args") or {}))
    except TypeError as exc:
        raise UnknownScorer(f"Scorer {name!r} cannot take the arguments {spec.get('args')} "
                            f"({exc}).", f"See help(workbench.evaluate.{name}).") from None


def scorer_names() -> list[str]:
    return sorted(_REGISTRY)


# -- helpers -------------------------------------------------------------------------------------

def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > _SHOW:
        text = text[:_SHOW - 1] + "…"
    return repr(text)


def normalize_text(text: Any, *, ignore_case: bool = True, strip_punctuation: bool = True,
                   collapse_whitespace: bool = True) -> str:
    """The comparable form of a label or answer: Unicode NFKC, and optionally case-folded,
    without punctuation, with runs of whitespace collapsed."""
    text = unicodedata.normalize("NFKC", "" if text is None else str(text))
    if ignore_case:
        text = text.casefold()
    if strip_punctuation:
        text = "".join(" " if unicodedata.category(c).startswith("P") or c in string.punctuation
                       else c for c in text)
    if collapse_whitespace:
        text = " ".join(text.split())
    return text.strip()


def _candidate(field: Field, output: str | None, parsed: Any,
               parse_ok: bool | None) -> tuple[Any, Score | None]:
    """The value a matcher compares, or a failing score when there is nothing to compare."""
    if output is None:
        return None, Score(0.0, False, "There is no output (the call failed)")
    if field == "parsed" and parse_ok is False:
        return None, Score(0.0, False, f"Output {_show(output)} could not be parsed")
    if field == "parsed" and parsed is not None:
        return parsed, None
    return output, None


def _as_comparable(value: Any, expected: Any) -> tuple[Any, Any]:
    """Structured values compare as data: an expected JSON string is decoded first."""
    if isinstance(value, (dict, list)) and isinstance(expected, str):
        try:
            expected = json.loads(expected)
        except ValueError:
            pass
    return value, expected


def _no_expected(expected: Any) -> bool:
    return expected is None or (isinstance(expected, float) and expected != expected)


# -- the scorers ---------------------------------------------------------------------------------

@register_scorer
def exact_match(field: Field = "parsed") -> Callable[..., Score]:
    """1 when the value (the parsed one by default, else the raw output) equals ``expected``."""

    def score(output, expected, parsed, parse_ok) -> Score:
        if _no_expected(expected):
            return Score(0.0, None, "The item has no expected value to compare with")
        value, failed = _candidate(field, output, parsed, parse_ok)
        if failed:
            return failed
        value, expected = _as_comparable(value, expected)
        if value == expected:
            return Score(1.0, True, f"Output {_show(value)} equals expected {_show(expected)}")
        return Score(0.0, False,
                     f"Output {_show(value)} does not equal expected {_show(expected)}")

    return score


@register_scorer
def normalized_match(ignore_case: bool = True, strip_punctuation: bool = True,
                     field: Field = "parsed") -> Callable[..., Score]:
    """Exact match after normalising Unicode, spacing and optionally case and punctuation."""

    def norm(v: Any) -> str:
        if isinstance(v, (dict, list)):
            v = json.dumps(v, sort_keys=True)
        return normalize_text(v, ignore_case=ignore_case, strip_punctuation=strip_punctuation)

    def score(output, expected, parsed, parse_ok) -> Score:
        if _no_expected(expected):
            return Score(0.0, None, "The item has no expected value to compare with")
        value, failed = _candidate(field, output, parsed, parse_ok)
        if failed:
            return failed
        value, expected = _as_comparable(value, expected)
        if value == expected or norm(value) == norm(expected):
            return Score(1.0, True, f"Output {_show(value)} matches expected {_show(expected)}")
        return Score(0.0, False, f"Output {_show(value)} does not equal expected "
                                 f"{_show(expected)}")

    return score


@register_scorer
def contains(text: str | None = None, ignore_case: bool = True) -> Callable[..., Score]:
    """1 when the raw output contains ``text`` (or, with no text, the item's expected value)."""

    def score(output, expected, parsed, parse_ok) -> Score:
        needle = text if text is not None else expected
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if _no_expected(needle):
            return Score(0.0, None, "There is no text to look for")
        hay, pin = (output.casefold(), str(needle).casefold()) if ignore_case else \
            (output, str(needle))
        if pin in hay:
            return Score(1.0, True, f"Output {_show(output)} contains {_show(str(needle))}")
        return Score(0.0, False,
                     f"Output {_show(output)} does not contain {_show(str(needle))}")

    return score


@register_scorer
def regex(pattern: str, ignore_case: bool = False) -> Callable[..., Score]:
    """1 when the pattern is found anywhere in the raw output (``re.search``)."""
    compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if compiled.search(output):
            return Score(1.0, True, f"Output {_show(output)} matches /{pattern}/")
        return Score(0.0, False, f"Output {_show(output)} does not match /{pattern}/")

    return score


@register_scorer
def json_valid() -> Callable[..., Score]:
    """1 when the raw output is valid JSON (a fenced ```json block is accepted)."""

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        text = output.strip()
        fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
        if fenced:
            text = fenced.group(1)
        try:
            json.loads(text)
        except ValueError as exc:
            return Score(0.0, False, f"Output {_show(output)} is not valid JSON ({exc.msg} at "
                                     f"character {exc.pos})")
        return Score(1.0, True, "Output is valid JSON")

    return score


@register_scorer
def parsed_ok() -> Callable[..., Score]:
    """1 when the prompt's parser accepted the output (a valid label, or the schema)."""

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if parse_ok is False:
            return Score(0.0, False, f"Output {_show(output)} could not be parsed")
        shown = parsed if parsed is not None else output
        return Score(1.0, True, f"Output parsed as {_show(shown)}")

    return score


def default_scorers(task_type: str | None) -> list[Scorer]:
    """The scorers a run uses when none are given. Classification compares the parsed label with
    the expected one after normalising case and punctuation; every task also records whether
    the output parsed."""
    if task_type == "classification":
        return [normalized_match(ignore_case=True, strip_punctuation=True), parsed_ok()]
    if task_type == "extraction":
        return [exact_match(), parsed_ok()]
    return [normalized_match(), parsed_ok()]


# -- aggregate metrics ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassificationMetrics:
    """Classification metrics from scikit-learn, over ``labels`` (the expected labels and any
    the prompt declares). A prediction outside them counts as wrong for its expected class and
    shows in the confusion matrix as ``(other)``; a failed parse as ``(unparsed)``."""

    n: int
    accuracy: float
    macro_f1: float
    precision: float  # macro
    recall: float  # macro
    labels: list[str]
    per_class: pd.DataFrame  # label, precision, recall, f1, support
    confusion: pd.DataFrame  # rows: expected, columns: predicted

    def as_metrics(self) -> dict[str, float]:
        """The card's metric names and their values."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "precision": self.precision, "recall": self.recall}

    def _repr_html_(self) -> str:
        return (f"<p>accuracy {self.accuracy:.3f}, macro F1 {self.macro_f1:.3f} over {self.n} "
                f"items</p>" + self.per_class._repr_html_() + self.confusion._repr_html_())


def canonical_label(value: Any, labels: Sequence[str]) -> str:
    """``value`` as one of ``labels`` when it matches one after normalisation, else as text
    (``(unparsed)`` for None)."""
    if value is None or (isinstance(value, float) and value != value):
        return UNPARSED
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text in labels:
        return text
    key = normalize_text(text)
    for label in labels:
        if normalize_text(label) == key:
            return label
    return text


def classification_report(expected: Sequence[Any], predicted: Sequence[Any], *,
                          labels: Sequence[str] | None = None) -> ClassificationMetrics:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix.

    Predictions are matched to labels after normalising case and punctuation (``Billing.`` is
    ``billing``); ``None`` stands for an output that did not parse."""
    import pandas as pd
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(expected) != len(predicted):
        raise ValueError(f"expected has {len(expected)} items but predicted {len(predicted)}")
    y_true = [str(e) for e in expected]
    known = sorted(set(y_true) | set(labels or ()))
    y_pred = [canonical_label(p, known) for p in predicted]
    if not y_true:
        empty = pd.DataFrame(columns=["label", "precision", "recall", "f1", "support"])
        nan = float("nan")
        return ClassificationMetrics(0, nan, nan, nan, nan, known, empty, pd.DataFrame())
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=known, zero_division=0)
    macro_p, macro_r, macro_f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=known, average="macro", zero_division=0)
    extras = sorted({y for y in y_pred if y not in known} - {UNPARSED})
    # One "(other)" column for predictions outside the label set keeps the matrix square-ish
    # and readable when a model invents labels.
    shown_pred = [y if y in known or y == UNPARSED else OTHER for y in y_pred]
    columns = known + ([OTHER] if extras else []) + ([UNPARSED] if UNPARSED in y_pred else [])
    matrix = confusion_matrix(y_true, shown_pred, labels=columns)
    confusion = pd.DataFrame(matrix, index=pd.Index(columns, name="expected"),
                             columns=pd.Index(columns, name="predicted")).loc[known]
    per_class = pd.DataFrame({"label": known, "precision": p.astype(float),
                              "recall": r.astype(float), "f1": f.astype(float),
                              "support": s.astype(int)})
    return ClassificationMetrics(
        n=len(y_true), accuracy=float(accuracy_score(y_true, y_pred)), macro_f1=float(macro_f),
        precision=float(macro_p), recall=float(macro_r), labels=known, per_class=per_class,
        confusion=confusion)
