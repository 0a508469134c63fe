"""Judge calibration: does the judge agree with people? Only then may its scores gate anything.

    >>> a = agreement(judge_labels, human_labels)     # lists, or dicts / Series by item id
    >>> a.percent, a.kappa, a.trusted
    (0.85, 0.69, True)
    >>> calibrate(project, "helpful@openai/gpt-4o-mini", judge_labels, human_labels, bar=0.6)
    >>> require_trusted(project, "helpful@openai/gpt-4o-mini")   # what CI gates call

Percent agreement flatters a judge when one label dominates (a judge that always says "pass" agrees
90% with people who pass 90% of items), so trust is decided on **Cohen's kappa**
(scikit-learn's ``cohen_kappa_score``): agreement beyond what chance would give. A common reading
(Landis & Koch): below 0.4 poor to fair, 0.4-0.6 moderate, 0.6-0.8 substantial, above 0.8
almost perfect. The default bar is 0.6. For ordinal scores (1-5) ``weights="quadratic"`` counts a
4 against a 5 as a near miss.

Weighted kappa needs the labels' **order**: the weights are distances between positions in it.
Text labels have no order of their own (sorted alphabetically, ``correct < incorrect <
partially_correct`` would put "partially correct" at the far end), so with ``weights`` give the
order, worst first: ``labels=["incorrect", "partially_correct", "correct"]``, or the judge's
``rubric=`` (its ``labels``, or its integer scale). Integer scores without an order use their
whole range (a 3 against a 5 is two steps even when nobody gave a 4); any other labels are
refused rather than sorted.

    >>> agreement(judge_labels, human_labels, weights="linear",
    ...           labels=["incorrect", "partially_correct", "correct"])

Each calibration is stored as a ``JudgeTrust`` record (kind ``"judge_trust"``, named after the
judge); the latest one decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from workbench.errors import RecordNotFound, WorkbenchError
from workbench.records import Record, Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

DEFAULT_BAR = 0.6
MIN_ITEMS = 10  # fewer labelled items than this cannot make a judge trusted
MIN_COVERAGE = 0.8  # a judge must give a readable verdict on this share of the labelled items
# The sample's offline stand-in judge (``judge_sample``): calibrated for show, never trusted.
STAND_IN_JUDGE = "fake/keyword-judge"

Labels = Sequence[Any] | Mapping[Any, Any]  # or a pandas Series keyed by item id


class UntrustedJudge(WorkbenchError):
    """A judge that was not calibrated, or agreed with people less than the bar asks."""


class UnorderedLabels(WorkbenchError, ValueError):
    """Weighted kappa was asked for labels whose order is not known (or labels outside it)."""


@dataclass(frozen=True)
class Agreement:
    """How well a judge agrees with people on the same items."""

    n: int
    percent: float  # share of items with the same label
    kappa: float  # Cohen's kappa (NaN when it is undefined: one label only)
    bar: float
    trusted: bool
    confusion: pd.DataFrame = field(repr=False)  # rows: human, columns: judge
    disagreements: pd.DataFrame = field(repr=False)  # item_id, judge, human
    weights: str | None = None
    coverage: float = 1.0  # items the judge gave a readable verdict on ÷ items people labelled
    kappa_interval: tuple[float, float] = (math.nan, math.nan)  # bootstrap, 95%
    labels: tuple[Any, ...] = ()  # the order kappa's weights and the confusion matrix use

    @property
    def reason(self) -> str:
        """Why the judge is or is not trusted, in a sentence."""
        kappa = "undefined" if self.kappa != self.kappa else f"{self.kappa:.2f}"
        if self.n < MIN_ITEMS:
            return (f"Only {self.n} items were labelled by both; at least {MIN_ITEMS} are needed "
                    "to trust a judge.")
        if self.kappa != self.kappa:
            return ("Cohen's kappa is undefined (every label is the same), so agreement beyond "
                    "chance cannot be shown; label a sample with both outcomes.")
        low, high = self.kappa_interval
        spread = f" [95% {low:.2f} to {high:.2f}]" if low == low else ""
        if self.coverage < MIN_COVERAGE:
            return (f"The judge gave a readable verdict on only {self.coverage:.0%} of the items "
                    f"people labelled (at least {MIN_COVERAGE:.0%} are needed): a judge that "
                    "stays silent on the hard items hides its failures. Not trusted.")
        side = "at or above" if self.kappa >= self.bar else "below"
        verdict = "trusted" if self.trusted else "not trusted"
        return (f"The judge agrees with people on {self.percent:.0%} of {self.n} items, "
                f"kappa {kappa}{spread} ({_strength(self.kappa)}), {side} the bar of "
                f"{self.bar:g}: {verdict}.")

    def _repr_markdown_(self) -> str:
        return f"**Judge calibration:** {self.reason}"


def _strength(kappa: float) -> str:
    for limit, word in ((0.0, "worse than chance"), (0.2, "slight"), (0.4, "fair"),
                        (0.6, "moderate"), (0.8, "substantial")):
        if kappa < limit:
            return word
    return "almost perfect"


def _aligned(judge_labels: Labels, human_labels: Labels) -> tuple[list[Any], list[Any],
                                                                  list[Any]]:
    """(item ids, judge labels, human labels) over the items both labelled. Mappings and Series
    are matched by key; sequences by position. Missing labels (None, NaN) are left out."""
    def as_mapping(labels: Any) -> Mapping[Any, Any] | None:
        if isinstance(labels, Mapping):
            return labels
        if hasattr(labels, "to_dict") and hasattr(labels, "index"):
            return labels.to_dict()
        return None

    j, h = as_mapping(judge_labels), as_mapping(human_labels)
    if (j is None) != (h is None):
        raise ValueError("Give both label sets as sequences (same order) or both keyed by item "
                         "id (dicts or Series).")
    if j is None:
        judge_list, human_list = list(judge_labels), list(human_labels)
        if len(judge_list) != len(human_list):
            raise ValueError(f"The judge labelled {len(judge_list)} items and people "
                             f"{len(human_list)}; give labels for the same items.")
        ids: list[Any] = list(range(len(judge_list)))
        j, h = dict(zip(ids, judge_list, strict=True)), dict(zip(ids, human_list, strict=True))
    keys = [k for k in j if k in h and not _missing(j[k]) and not _missing(h[k])]
    return keys, [_label(j[k]) for k in keys], [_label(h[k]) for k in keys]


def _people_labelled(judge_labels: Labels, human_labels: Labels) -> int:
    """How many items people labelled (that the judge was asked about)."""
    if isinstance(human_labels, Mapping) or hasattr(human_labels, "to_dict"):
        items = dict(human_labels) if isinstance(human_labels, Mapping) \
            else human_labels.to_dict()
        asked = judge_labels if isinstance(judge_labels, Mapping) else (
            judge_labels.to_dict() if hasattr(judge_labels, "to_dict") else {})
        return sum(1 for k, v in items.items() if not _missing(v) and k in asked)
    return sum(1 for v in human_labels if not _missing(v))


def _kappa(a: Any, b: Any, k: int, weights: str | None) -> float:
    """Cohen's kappa from label indices (scikit-learn's definition), fast enough to bootstrap."""
    import numpy as np

    observed = np.zeros((k, k))
    np.add.at(observed, (a, b), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    i, j = np.indices((k, k))
    w = (i != j).astype(float) if weights is None else (
        np.abs(i - j) if weights == "linear" else (i - j) ** 2).astype(float)
    denominator = float((w * expected).sum())
    return math.nan if denominator == 0 else 1 - float((w * observed).sum()) / denominator


def kappa_interval(judged: Sequence[Any], human: Sequence[Any], labels: Sequence[Any], *,
                   weights: str | None = None, confidence: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of Cohen's kappa over the items (resampled in pairs).

    ``labels`` lists every label in its order, worst first: weighted kappa's weights are the
    distances between positions in it (``label_order`` works it out as ``agreement`` does)."""
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(x) for x in (*judged, *human) if x not in index})
    if unknown:
        raise UnorderedLabels(f"The labels {', '.join(unknown)} are not in labels={list(labels)}.",
                              "List every label that occurs, in order (worst first).")
    a = np.asarray([index[x] for x in judged])
    b = np.asarray([index[x] for x in human])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(resamples, len(a)))
    values = np.asarray([_kappa(a[d], b[d], len(labels), weights) for d in draws])
    values = values[~np.isnan(values)]
    if len(values) < resamples / 2:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label(value: Any) -> Any:
    """numpy scalars as plain Python values; whole floats as ints (a 4.0 score is a 4)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # _label made 4.0 a 4


def label_order(observed: Sequence[Any], *, weights: str | None = None,
                labels: Sequence[Any] | None = None, rubric: Any = None) -> list[Any]:
    """The labels in the order kappa uses, worst first: ``labels`` as given, else the rubric's
    (its ``labels``, or every point of its integer scale). Without either, integer scores use
    their whole range (min to max); unweighted kappa does not depend on the order, so other
    labels are then listed sorted; weighted kappa on them is refused (``UnorderedLabels``):
    sorting text would make the weights measure alphabetical distance."""
    if labels is not None and rubric is not None:
        raise ValueError("Give the labels' order as labels=[...] or as rubric=..., not both.")
    present = list(dict.fromkeys(observed))
    if rubric is not None:
        labels, source = rubric.ordered_labels, f"the rubric '{rubric.name}'"
    else:
        source = "labels=[...]"
    if labels is not None:
        order = [_label(x) for x in labels]
        if len(set(order)) != len(order):
            raise UnorderedLabels(f"The label order {order} lists a label twice.",
                                  "List each label once, worst first.")
        unknown = [x for x in present if x not in order]
        if unknown:
            raise UnorderedLabels(
                f"The labels {', '.join(map(repr, unknown))} are not in the order given by "
                f"{source} ({', '.join(map(repr, order))}).",
                "Give labels=[...] listing every label that occurs, worst first, or map the "
                "labels to the rubric's (judge_labels(stored, 'label') gives a judge's).")
        return order
    if weights is not None and present and all(isinstance(x, bool) for x in present):
        return [False, True]
    if present and all(_is_integer(x) for x in present):  # scores on an integer scale
        if weights is None:
            return sorted(present)
        return list(range(min(present), max(present) + 1))
    if weights is not None and present:
        shown = ", ".join(map(repr, sorted(present, key=str)))
        raise UnorderedLabels(
            f"Weighted kappa ({weights}) needs the labels' order, and {shown} have none: "
            "sorting them would weigh alphabetical distance, not how far apart the labels are.",
            "Pass the order, worst first, e.g. labels=['incorrect', 'partially_correct', "
            "'correct'], or the judge's rubric=Rubric(..., labels=[...]); or leave weights "
            "out for plain kappa.")
    return sorted(present, key=lambda v: (str(type(v)), v))


def agreement(judge_labels: Labels, human_labels: Labels, *, bar: float = DEFAULT_BAR,
              weights: Literal["linear", "quadratic"] | None = None,
              labels: Sequence[Any] | None = None, rubric: Any = None) -> Agreement:
    """Agreement between a judge and people on the same items: percent agreement, Cohen's
    kappa, the confusion matrix (rows: people, columns: judge) and the items they disagree on.
    The judge is trusted when kappa ≥ ``bar`` over at least 10 items and it gave a readable
    verdict (not None/NaN) on at least 80% of the items people labelled; kappa comes with a
    bootstrap interval.

    ``labels`` (worst first) or ``rubric`` (a ``judge.Rubric``: its labels or scale) give the
    labels' order, which weighted kappa (``weights="linear"``/``"quadratic"``) needs; the
    confusion matrix follows it too. See ``label_order`` for what happens without one."""
    import warnings

    import pandas as pd
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    ids, judged, human = _aligned(judge_labels, human_labels)
    n = len(ids)
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', not {weights!r}")
    labels = label_order([*judged, *human], weights=weights, labels=labels, rubric=rubric)
    if n == 0:
        empty = pd.DataFrame(columns=["item_id", "judge", "human"])
        return Agreement(0, math.nan, math.nan, bar, False, pd.DataFrame(), empty, weights, 0.0,
                         labels=tuple(labels))
    percent = sum(a == b for a, b in zip(judged, human, strict=True)) / n
    with warnings.catch_warnings():  # one label only: sklearn warns; the reason says it
        warnings.simplefilter("ignore")
        kappa = float(cohen_kappa_score(judged, human, labels=labels, weights=weights))
        matrix = confusion_matrix(human, judged, labels=labels)
    confusion = pd.DataFrame(matrix, index=pd.Index(labels, name="human"),
                             columns=pd.Index(labels, name="judge"))
    disagreements = pd.DataFrame(
        [{"item_id": i, "judge": a, "human": b}
         for i, a, b in zip(ids, judged, human, strict=True) if a != b],
        columns=["item_id", "judge", "human"])
    asked = _people_labelled(judge_labels, human_labels)
    coverage = n / asked if asked else 0.0
    interval = kappa_interval(judged, human, labels, weights=weights) if n >= MIN_ITEMS \
        else (math.nan, math.nan)
    trusted = (n >= MIN_ITEMS and kappa == kappa and kappa >= bar
               and coverage >= MIN_COVERAGE)
    return Agreement(n, percent, kappa, bar, trusted, confusion, disagreements, weights,
                     coverage, interval, tuple(labels))


class JudgeTrust(Record):
    """The outcome of calibrating one judge against human labels."""

    kind: ClassVar[str] = "judge_trust"
    judge_name: str
    trusted: bool
    bar: float
    kappa: float | None
    percent: float | None
    n: int
    disagreements: int
    weights: str | None = None
    reason: str = ""
    coverage: float | None = None
    kappa_low: float | None = None
    kappa_high: float | None = None
    labels: list[Any] | None = None  # the order weighted kappa used (None: unweighted)
    labelled_by: str = "people"  # "people", or "example" for labels shipped with a sample


def calibrate(project: Project, judge_name: str, judge_labels: Labels, human_labels: Labels, *,
              bar: float = DEFAULT_BAR,
              weights: Literal["linear", "quadratic"] | None = None,
              labels: Sequence[Any] | None = None, rubric: Any = None,
              labelled_by: Literal["people", "example"] = "people") -> Stored[JudgeTrust]:
    """Compare a judge with people and record whether it is trusted (``JudgeTrust``).

    ``judge_name`` is how gates refer to the judge (``judge.judge_name(rubric, model)``);
    ``labels``/``rubric`` give the order weighted kappa needs (see ``agreement``).

    Only labels the project's people gave can make a judge trusted: with
    ``labelled_by="example"`` (labels shipped with a sample, e.g. to show the workflow) the
    agreement is recorded but the judge stays untrusted, and so does the bundled keyword rule
    that stands in for a judge model offline."""
    result = agreement(judge_labels, human_labels, bar=bar, weights=weights, labels=labels,
                       rubric=rubric)

    def finite(x: float) -> float | None:
        return None if x != x else float(x)

    trusted, reason = result.trusted, result.reason
    if judge_name.endswith("@" + STAND_IN_JUDGE):
        trusted, reason = False, (f"{reason} Not trusted all the same: {STAND_IN_JUDGE} is a "
                                  "keyword rule standing in for a judge model, so its agreement "
                                  "says nothing about an LLM judge.")
    elif labelled_by != "people":
        trusted, reason = False, (f"{reason} Not trusted all the same: the labels came with the "
                                  "example, not from people on this project; label items "
                                  "yourself to calibrate.")
    record = JudgeTrust(judge_name=judge_name, trusted=trusted, bar=bar,
                        kappa=finite(result.kappa), percent=finite(result.percent), n=result.n,
                        disagreements=len(result.disagreements), weights=weights,
                        reason=reason, coverage=result.coverage, labelled_by=labelled_by,
                        kappa_low=finite(result.kappa_interval[0]),
                        kappa_high=finite(result.kappa_interval[1]),
                        labels=list(result.labels) if weights is not None else None)
    return project.records.save(judge_name, record)


def trust_of(project: Project, judge_name: str) -> Stored[JudgeTrust] | None:
    """The latest calibration of a judge, or None when it was never calibrated."""
    try:
        return project.records.get(JudgeTrust, judge_name)
    except RecordNotFound:
        return None


def is_trusted(project: Project, judge_name: str) -> bool:
    stored = trust_of(project, judge_name)
    return bool(stored and stored.value.trusted)


def require_trusted(project: Project, judge_name: str) -> Stored[JudgeTrust]:
    """Raise ``UntrustedJudge`` unless the judge's latest calibration trusts it."""
    stored = trust_of(project, judge_name)
    if stored is None:
        known = project.records.names(JudgeTrust)
        raise UntrustedJudge(
            f"The judge '{judge_name}' has not been calibrated against human labels, so its "
            "scores cannot gate anything.",
            "Label a sample of its items and run calibrate(project, judge_name, judge_labels, "
            f"human_labels) (phase 6). Calibrated judges: {known or 'none yet'}.")
    if not stored.value.trusted:
        raise UntrustedJudge(
            f"The judge '{judge_name}' is not trusted: {stored.value.reason}",
            "Improve the rubric (clearer criteria, a reference answer) or pick a stronger "
            "judge model, then calibrate again on freshly labelled items.")
    return stored
