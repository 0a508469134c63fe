""""Is an LLM the right tool?": a cheap classical baseline, measured against the success metrics.

Before paying for an LLM, train what a data scientist would try first and see how close it gets:

- **classification**: TF-IDF (words and word pairs) + logistic regression;
- **question answering, generation, chat**: retrieval — answer with the expected output of the
  most similar training input (TF-IDF cosine). This is how FAQ bots work and is the honest
  floor for "answers we have already written";
- **extraction** has no general classical baseline (rules per field are the honest one, and
  they depend on the fields), so it raises ``NoBaseline`` rather than report a meaningless number.

Data frames have an ``input`` text column and an ``expected`` column (a label or an answer). The
result is stored as a ``BaselineResult`` record (kind ``"baseline"``) that later phases show
beside their LLM results: ``latest_baseline(project)``.

scikit-learn and pandas are imported inside the functions, so ``import workbench`` stays light.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from workbench.errors import RecordNotFound, WorkbenchError
from workbench.records import Record, Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.card import ProjectCard
    from workbench.project import Project

RECORD_NAME = "baseline"
LATENCY_SAMPLE = 200  # items timed one by one (as a service would call it) for the latency figures
RANDOM_STATE = 0


class NoBaseline(WorkbenchError):
    pass


class BadBaselineData(WorkbenchError):
    pass


class ClassScores(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class MetricCheck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str
    target: str
    unit: str
    value: float | None
    status: Literal["pass", "fail", "not measured"]
    text: str


class BaselineResult(Record):
    """A classical baseline's scores on the test split, and how they compare with the card."""

    kind: ClassVar[str] = "baseline"
    task_type: str
    method: str
    n_train: int
    n_test: int
    metrics: dict[str, float]  # canonical units: fractions, seconds, US dollars
    labels: list[str] = []
    per_class: list[ClassScores] = []
    confusion: list[list[int]] = []  # rows: expected label, columns: predicted (order: labels)
    checks: list[MetricCheck] = []
    notes: list[str] = []

    @property
    def verdict(self) -> str:
        """One sentence for the notebook: does the baseline already meet the card's targets?"""
        measured = [c for c in self.checks if c.status != "not measured"]
        if not measured:
            return ("The card sets no target this baseline can measure; compare its scores "
                    "with the LLM's by eye.")
        failed = [c.metric for c in measured if c.status == "fail"]
        if not failed:
            return ("The classical baseline already meets every target it can measure: an LLM "
                    "must beat it clearly to be worth its cost and latency.")
        return (f"The classical baseline misses {', '.join(failed)}: an LLM may be needed — "
                "phases 3 and 4 show whether it closes the gap.")

    def checks_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([c.model_dump() for c in self.checks],
                            columns=list(MetricCheck.model_fields))

    def per_class_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([c.model_dump() for c in self.per_class],
                            columns=list(ClassScores.model_fields))


# -- data checks -----------------------------------------------------------------------------------

def _check_frame(df: Any, name: str) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise BadBaselineData(f"{name} must be a pandas DataFrame, not {type(df).__name__}.",
                              "Pass the split as a DataFrame with 'input' and 'expected' columns.")
    missing = [c for c in ("input", "expected") if c not in df.columns]
    if missing:
        raise BadBaselineData(f"{name} has no {' or '.join(repr(c) for c in missing)} column "
                              f"(its columns: {', '.join(map(str, df.columns)) or 'none'}).",
                              "Rename the text column to 'input' and the label or answer column "
                              "to 'expected' (phase 2 does this when it splits).")
    if df.empty:
        raise BadBaselineData(f"{name} has no rows.", "Pass a non-empty split.")
    blank = df["input"].isna() | (df["input"].astype(str).str.strip() == "")
    blank |= df["expected"].isna() | (df["expected"].astype(str).str.strip() == "")
    if blank.any():
        count = int(blank.sum())
        rows = f"{count} row" + ("s" if count != 1 else "")
        raise BadBaselineData(f"{name} has {rows} with an empty input or expected value.",
                              "Drop or fill them first (phase 2's cleaning step does this).")
    return pd.DataFrame({"input": df["input"].astype(str), "expected": df["expected"].astype(str)},
                        index=df.index)


def _classifier():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # Word pairs catch short phrases ("not working"); sublinear tf stops long texts dominating;
    # balanced class weights keep a rare class from being ignored.
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode"),
        LogisticRegression(max_iter=2000, class_weight="balanced", random_state=RANDOM_STATE),
    )


def _per_item_latency(predict_one, inputs: list[str]) -> tuple[float, float]:
    """p50 and p95 seconds for one item at a time, as a service would be called."""
    import numpy as np

    sample = inputs[:LATENCY_SAMPLE]
    predict_one(sample[0])  # the first call pays one-off set-up a running service would not
    times = []
    for text in sample:
        start = time.perf_counter()
        predict_one(text)
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


# -- training --------------------------------------------------------------------------------------

def train_baseline(train: pd.DataFrame, test: pd.DataFrame, task_type: str | None,
                   *, card: ProjectCard | None = None) -> BaselineResult:
    """Train the classical baseline for ``task_type`` on ``train`` and score it on ``test``.

    With ``card``, the result's ``checks`` compare each of the card's metrics with the baseline
    (``"not measured"`` where the baseline cannot measure it, e.g. faithfulness)."""
    train, test = _check_frame(train, "train"), _check_frame(test, "test")
    if task_type == "classification":
        result = _classification(train, test)
    elif task_type in ("question_answering", "generation", "chat"):
        result = _retrieval(train, test, task_type)
    elif task_type == "extraction":
        raise NoBaseline("There is no general classical baseline for extraction: the honest one "
                         "is a rule (a regular expression) per field, and that depends on your "
                         "fields.",
                         "Write those rules and score them with phase 6's metrics, or compare "
                         "models in phase 3 directly.")
    else:
        from workbench.card import TASK_TYPES

        raise NoBaseline(f"The task type is {task_type!r}, so no baseline can be chosen.",
                         f"Set use_case.task_type in phase 1 to one of {', '.join(TASK_TYPES)}.")
    if card is not None:
        result = result.model_copy(update={"checks": _checks(card, result.metrics)})
    return result


def _classification(train: pd.DataFrame, test: pd.DataFrame) -> BaselineResult:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    classes = sorted(train["expected"].unique())
    if len(classes) < 2:
        raise BadBaselineData(f"train has a single label ({classes[0]!r}); a classifier needs "
                              "at least two.", "Add examples of the other labels to the split.")
    notes = []
    unseen = sorted(set(test["expected"]) - set(classes))
    if unseen:
        notes.append(f"test has labels the training split lacks ({', '.join(unseen)}); the "
                     "baseline can never predict them, so they count as errors.")
    model = _classifier()
    start = time.perf_counter()
    model.fit(train["input"].tolist(), train["expected"].tolist())
    train_s = time.perf_counter() - start
    predicted = model.predict(test["input"].tolist())
    expected = test["expected"].tolist()
    labels = sorted(set(classes) | set(expected))
    precision, recall, f1, support = precision_recall_fscore_support(
        expected, predicted, labels=labels, zero_division=0)
    macro_p, macro_r, macro_f1, _ = precision_recall_fscore_support(
        expected, predicted, labels=labels, average="macro", zero_division=0)
    p50, p95 = _per_item_latency(lambda text: model.predict([text]), test["input"].tolist())
    accuracy = float(accuracy_score(expected, predicted))
    majority = Counter(train["expected"]).most_common(1)[0][0]
    chance = sum(1 for e in expected if e == majority) / len(expected)
    notes.append(f"Always answering the most common training label ('{majority}') would score "
                 f"{chance:.1%} accuracy; the baseline scores {accuracy:.1%}.")
    return BaselineResult(
        task_type="classification",
        method="TF-IDF (word 1-2 grams) + logistic regression (scikit-learn)",
        n_train=len(train), n_test=len(test),
        metrics={"accuracy": accuracy, "exact_match": accuracy, "macro_f1": float(macro_f1),
                 "precision": float(macro_p), "recall": float(macro_r),
                 "parse_rate": 1.0, "p50_latency": p50, "p95_latency": p95,
                 "cost_per_request": 0.0, "majority_accuracy": chance,
                 "train_seconds": train_s},
        labels=labels,
        per_class=[ClassScores(label=label, precision=float(p), recall=float(r), f1=float(f),
                               support=int(s))
                   for label, p, r, f, s in zip(labels, precision, recall, f1, support,
                                                strict=True)],
        confusion=confusion_matrix(expected, predicted, labels=labels).tolist(),
        notes=notes,
    )


_WORD = re.compile(r"\w+", re.UNICODE)


def _normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _token_f1(predicted: str, expected: str) -> float:
    p, e = _normalise(predicted).split(), _normalise(expected).split()
    if not p or not e:
        return float(p == e)
    common = sum((Counter(p) & Counter(e)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(e)
    return 2 * precision * recall / (precision + recall)


def _retrieval(train: pd.DataFrame, test: pd.DataFrame, task_type: str) -> BaselineResult:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")
    matrix = vectorizer.fit_transform(train["input"].tolist())
    index = NearestNeighbors(n_neighbors=1, metric="cosine").fit(matrix)
    answers = train["expected"].tolist()
    train_s = time.perf_counter() - start

    def answer(texts: list[str]) -> list[str]:
        _, nearest = index.kneighbors(vectorizer.transform(texts))
        return [answers[i] for i in nearest[:, 0]]

    predicted = answer(test["input"].tolist())
    expected = test["expected"].tolist()
    exact = sum(_normalise(p) == _normalise(e) for p, e in zip(predicted, expected,
                                                                strict=True)) / len(expected)
    f1 = sum(_token_f1(p, e) for p, e in zip(predicted, expected, strict=True)) / len(expected)
    p50, p95 = _per_item_latency(lambda text: answer([text]), test["input"].tolist())
    return BaselineResult(
        task_type=task_type,
        method="retrieval: the answer of the most similar training input (TF-IDF cosine)",
        n_train=len(train), n_test=len(test),
        metrics={"exact_match": exact, "token_f1": f1, "p50_latency": p50, "p95_latency": p95,
                 "cost_per_request": 0.0, "train_seconds": train_s},
        notes=["Retrieval can only repeat answers already written; a high score means many "
               "questions repeat, and an LLM adds little for those."],
    )


def _checks(card: ProjectCard, measured: dict[str, float]) -> list[MetricCheck]:
    from workbench.card import compare_to_targets

    return [MetricCheck(metric=row["metric"], target=row["target"], unit=row["unit"],
                        value=row["value"], status=row["status"], text=row["text"])
            for row in compare_to_targets(card, measured)]


# -- cross-validated probabilities (phase 2 feeds them to cleanlab) --------------------------------

def out_of_fold_probabilities(df: pd.DataFrame, folds: int = 5) -> pd.DataFrame:
    """Predicted class probabilities for every row, each from a model that never saw that row.

    Uses the baseline's pipeline with stratified ``folds``-fold cross-validation (fewer folds if
    the rarest label has fewer examples). Returns a DataFrame indexed like ``df`` with one column
    per label, in sorted label order — the shape cleanlab's ``find_label_issues`` wants::

        probs = out_of_fold_probabilities(df)
        labels = df["expected"].map({c: i for i, c in enumerate(probs.columns)})
        issues = cleanlab.filter.find_label_issues(labels.to_numpy(), probs.to_numpy())
    """
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    df = _check_frame(df, "df")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise BadBaselineData(f"folds is {folds!r}; cross-validation needs a whole number of at "
                              "least 2.", "Pass folds=5.")
    counts = df["expected"].value_counts()
    if len(counts) < 2:
        raise BadBaselineData("df has a single label; probabilities need at least two.",
                              "Add examples of the other labels.")
    rare = counts[counts < 2]
    if len(rare):
        raise BadBaselineData(
            f"{len(rare)} labels have a single example ({', '.join(map(repr, rare.index[:5]))}); "
            "a held-out fold cannot learn a label it has never seen.",
            "Label more examples of those, or merge them into another label.")
    folds = min(folds, int(counts.min()))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=RANDOM_STATE)
    labels = sorted(counts.index)
    probs = cross_val_predict(_classifier(), df["input"].tolist(), df["expected"].tolist(),
                              cv=splitter, method="predict_proba")
    # cross_val_predict orders columns by the sorted class labels, which is ``labels``.
    out = pd.DataFrame(probs, index=df.index, columns=labels)
    out.attrs["folds"] = folds
    return out


# -- kernel calls ----------------------------------------------------------------------------------

def run_baseline(project: Project, train_df: pd.DataFrame, test_df: pd.DataFrame,
                 *, name: str = RECORD_NAME) -> Stored[BaselineResult]:
    """Train the baseline for the card's task type, compare it with the card, and store it."""
    from workbench.card import load_card

    card = load_card(project)
    if card.task_type is None:
        raise NoBaseline("The project card has no task type, so no baseline can be chosen.",
                         "Set use_case.task_type in phase 1 (the card form or workbench.toml).")
    result = train_baseline(train_df, test_df, card.task_type, card=card)
    return project.records.save(name, result)


def latest_baseline(project: Project, name: str = RECORD_NAME) -> Stored[BaselineResult] | None:
    """The last stored baseline, or ``None`` before phase 1 has run one."""
    try:
        return project.records.get(BaselineResult, name)
    except RecordNotFound:
        return None
