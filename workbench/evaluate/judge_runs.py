"""A judge over stored runs: every item of a run scored by a judge (kept as a ``judge_run``
record beside the run), and two runs compared pairwise item by item.

The judge itself (rubrics, prompts, reading replies, position and self-preference bias) is
``workbench.evaluate.judge``; this module joins it to ``workbench.runs``, which the judge as a
scorer must not import (runs use judges as scorers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from workbench.evaluate.judge import (
    Rubric,
    combine_orders,
    judge_name,
    judge_tags,
    pairwise_messages,
    parse_judgement,
    parse_winner,
    rubric_messages,
    self_judging_warning,
)
from workbench.records import Record, Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project


class JudgedItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    item_id: str
    score: int | None
    passed: bool | None
    reason: str
    parsed_ok: bool
    raw: str | None = None


class JudgeRunRecord(Record):
    """A judge's scores for every item of a run (kind ``"judge_run"``, named
    ``"<run_id>/<judge name>"``)."""

    kind: ClassVar[str] = "judge_run"
    run_id: str
    judge_name: str
    judge_model: str
    rubric: Rubric
    candidate_model: str
    warning: str | None = None
    items: list[JudgedItem]


def judge_run(project: Project, run_id: str, rubric: Rubric, judge_model: str, *,
              concurrency: int | None = None, progress: Any = True,
              **options: Any) -> Stored[JudgeRunRecord]:
    """Judge every answered item of a run (its input is the question, its expected value the
    reference) with ``complete_many``, and store the scores as a ``JudgeRunRecord``.

    ``judge_scores(stored)`` turns the record into a DataFrame."""
    import warnings

    from workbench.llm.gateway import complete_many
    from workbench.runs import load_run

    run = load_run(project, run_id)
    items = run.items
    warning = self_judging_warning(judge_model, run.model)
    if warning:
        warnings.warn(warning, stacklevel=2)
    todo, prompts = [], []
    for row in items.itertuples(index=False):
        if row.output is None:
            continue
        reference = None if row.expected is None or row.expected != row.expected \
            else str(row.expected)
        if rubric.reference_required and reference is None:
            continue
        todo.append(str(row.item_id))
        prompts.append(rubric_messages(rubric, question=str(row.input), answer=row.output,
                                       reference=reference))
    options.setdefault("temperature", 0)
    with judge_tags(judge_name(rubric, judge_model), run_id):
        replies = complete_many(prompts, judge_model, concurrency=concurrency,
                                progress=progress, on_error="return", project=project,
                                **options) if prompts else []
    judged = []
    for item_id, reply in zip(todo, replies, strict=True):
        raw = None if isinstance(reply, Exception) else reply.text
        s = parse_judgement(raw, rubric, judge_model)
        reason = f"The judge call failed: {reply}" if isinstance(reply, Exception) else s.reason
        judged.append(JudgedItem(item_id=item_id, score=s.score, passed=s.passed,
                                 reason=reason, parsed_ok=s.parsed_ok, raw=raw))
    name = judge_name(rubric, judge_model)
    record = JudgeRunRecord(run_id=run_id, judge_name=name, judge_model=judge_model,
                            rubric=rubric, candidate_model=run.model, warning=warning,
                            items=judged)
    return project.records.save(f"{run_id}/{name}", record)


def judge_scores(stored: Stored[JudgeRunRecord] | JudgeRunRecord) -> pd.DataFrame:
    """One row per judged item: item_id, score, passed, reason, parsed_ok."""
    import pandas as pd

    record = getattr(stored, "value", stored)
    frame = pd.DataFrame([i.model_dump(exclude={"raw"}) for i in record.items],
                         columns=["item_id", "score", "passed", "reason", "parsed_ok"])
    # Unscored items keep None (not NaN): a missing judgement is not a number.
    frame["score"] = pd.Series([i.score for i in record.items], dtype=object)
    return frame


def judge_labels(stored: Stored[JudgeRunRecord] | JudgeRunRecord,
                 field: Literal["passed", "score", "label"] = "passed") -> dict[str, Any]:
    """The judge's label per item id (pass/fail, the score, or the rubric's label for the
    score), for ``calibration.calibrate`` beside people's labels of the same items; pass
    ``rubric=record.rubric`` there so weighted kappa uses the rubric's order. Items the judge
    did not score are left out."""
    record = getattr(stored, "value", stored)
    if field == "label":
        return {i.item_id: record.rubric.label_of(i.score) for i in record.items if i.parsed_ok}
    return {i.item_id: getattr(i, field) for i in record.items if i.parsed_ok}


def load_judge_run(project: Project, run_id: str, name: str) -> Stored[JudgeRunRecord]:
    return project.records.get(JudgeRunRecord, f"{run_id}/{name}")


def pairwise_runs(project: Project, run_a: str, run_b: str, judge_model: str, *,
                  criteria: Sequence[str] = ("Which answer is more correct and more helpful",),
                  concurrency: int | None = None, progress: Any = True,
                  **options: Any) -> pd.DataFrame:
    """Pairwise judgement of two runs over the items both answered, both orders per item:
    item_id, winner, order_ab, order_ba, reason. ``.attrs["summary"]`` counts wins, ties,
    inconsistent verdicts and unscored pairs."""
    import pandas as pd

    from workbench.llm.gateway import complete_many
    from workbench.runs import load_run

    a = load_run(project, run_a).items.set_index("item_id")
    b = load_run(project, run_b).items.set_index("item_id")
    shared = [i for i in a.index if i in b.index and a.at[i, "output"] is not None
              and b.at[i, "output"] is not None]
    prompts = []
    for i in shared:
        question = str(a.at[i, "input"])
        prompts.append(pairwise_messages(question=question, first=a.at[i, "output"],
                                         second=b.at[i, "output"], criteria=criteria))
        prompts.append(pairwise_messages(question=question, first=b.at[i, "output"],
                                         second=a.at[i, "output"], criteria=criteria))
    options.setdefault("temperature", 0)
    with judge_tags(f"pairwise:{judge_model}"):
        replies = complete_many(prompts, judge_model, concurrency=concurrency,
                                progress=progress, on_error="return", project=project,
                                **options) if prompts else []
    texts = [None if isinstance(r, Exception) else r.text for r in replies]
    rows = []
    for n, item_id in enumerate(shared):
        raw = (texts[2 * n], texts[2 * n + 1])
        result = combine_orders(parse_winner(raw[0]), parse_winner(raw[1]), raw)
        rows.append({"item_id": item_id, "winner": result.winner, "order_ab": result.order_ab,
                     "order_ba": result.order_ba, "reason": result.reason})
    frame = pd.DataFrame(rows, columns=["item_id", "winner", "order_ab", "order_ba", "reason"])
    counts = frame["winner"].value_counts()
    frame.attrs["summary"] = {k: int(counts.get(k, 0))
                              for k in ("A", "B", "tie", "inconsistent", "unscored")}
    return frame
