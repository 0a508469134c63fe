"""The bundled judge-calibration sample, the rubric it was labelled with, and a stand-in judge.

``datasets/judge_calibration.jsonl`` holds support replies a person labelled pass/fail. Calibrate
a judge on it (or, better, on a sample of your own traffic) before the judge gates anything.

The stand-in judge (``fake/keyword-judge``) is a keyword rule, not a model: it lets the whole
calibration path run offline and in tests, and its numbers say nothing about any LLM judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.evaluate.calibration import STAND_IN_JUDGE

_RUDE = re.compile(r"yourself|calm down|that's on you|goodbye|just glue|should have|"
                   r"it was delivered|^no\.$", re.IGNORECASE)


def sample_path() -> Path:
    from workbench.bundled import datasets_dir

    return datasets_dir() / "judge_calibration.jsonl"


def load_sample(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The labelled replies: id, question, answer, reference, human_verdict, kind, reason."""
    text = Path(path or sample_path()).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def support_rubric():
    from workbench.evaluate.judge import Rubric

    return Rubric(criteria=["The answer is correct according to the reference answer",
                            "It invents no policy, price, number or feature",
                            "It is polite and helpful to the customer"],
                  reference_required=True, name="support-answer")


def _keyword_verdict(text: str) -> bool:
    """Fail rude replies, numbers the reference lacks, and replies sharing under a third of the
    reference's content words."""
    reference = text.split("REFERENCE ANSWER (correct; judge the ANSWER against it):\n")[1]
    reference = reference.split("\n\nANSWER:\n")[0]
    answer = text.split("\n\nANSWER:\n")[-1].split("\n\nReply with JSON only")[0]
    if _RUDE.search(answer.strip()):
        return False
    if set(re.findall(r"\d+", answer)) - set(re.findall(r"\d+", reference)):
        return False

    def words(s: str) -> set[str]:
        return {w for w in re.findall(r"[a-z]+", s.lower()) if len(w) > 3}

    ref_words = words(reference)
    return len(words(answer) & ref_words) / max(1, len(ref_words)) >= 1 / 3


def stand_in_judge() -> str:
    """Register the keyword-rule judge as ``fake/keyword-judge`` and return its id."""
    from workbench.llm import fake

    def reply(messages: list[dict[str, Any]]) -> str:
        ok = _keyword_verdict(messages[-1]["content"])
        return json.dumps({"score": 5 if ok else 1,
                           "reason": "keyword rule: " + ("pass" if ok else "fail")})

    return fake.register_fake(STAND_IN_JUDGE.removeprefix("fake/"), reply)


def judge_sample(project, judge_model: str, rows: list[dict[str, Any]] | None = None
                 ) -> dict[str, bool | None]:
    """The judge's pass/fail verdict for each sample item (None where its reply was unreadable)."""
    from workbench.evaluate.judge import judge

    rubric = support_rubric()
    verdicts: dict[str, bool | None] = {}
    for row in rows or load_sample():
        score = judge(project, rubric, question=row["question"], answer=row["answer"],
                      reference=row["reference"], judge_model=judge_model)
        verdicts[row["id"]] = bool(score.passed) if score.parsed_ok else None
    return verdicts


def pairwise_sample(project, judge_model: str, rows: list[dict[str, Any]] | None = None, *,
                    criteria: Sequence[str] = ("correct", "helpful", "polite")):
    """The judge compares two answers to one question of the sample (the first question's
    first two answers, A and B), in both orders (``judge.pairwise``), so a walk-through can
    show a pairwise verdict without choosing a pair by hand."""
    from workbench.evaluate.judge import pairwise

    rows = rows or load_sample()
    question = rows[0]["question"]
    answers = [r["answer"] for r in rows if r["question"] == question]
    if len(answers) < 2:
        raise WorkbenchError(f"The calibration sample has one answer to {question!r}; a pairwise "
                             "comparison needs two.",
                             "Give at least two rows with the first row's question.")
    return pairwise(project, question=question, answer_a=answers[0], answer_b=answers[1],
                    judge_model=judge_model, criteria=list(criteria))


def annotation_items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sample's replies as items for a person to label pass/fail (``widgets.Annotator``):
    the question, the answer and the reference together, as the judge sees them."""
    return [{"id": r["id"], "input": f"Q: {r['question']}\n\nA: {r['answer']}\n\n"
                                     f"Reference: {r['reference']}"} for r in rows]


def people_labels(rows: list[dict[str, Any]], annotations: dict[str, Any]
                  ) -> tuple[dict[str, bool], str, str]:
    """The pass/fail labels to calibrate a judge on, where they come from (``"people"`` or
    ``"example"``, for ``calibration.calibrate(labelled_by=...)``) and a phrase saying so.

    ``annotations`` are what the person labelled (item id -> "pass"/"fail"). With at least
    ``calibration.MIN_ITEMS`` of them they are used alone; with fewer, the sample's shipped
    labels show the workflow and the judge cannot become trusted."""
    from workbench.evaluate.calibration import MIN_ITEMS

    yours = {item_id: label == "pass" for item_id, label in annotations.items()
             if label in ("pass", "fail")}
    if len(yours) >= MIN_ITEMS:
        return yours, "people", f"your {len(yours)} labels"
    shipped = {r["id"]: r["human_verdict"] == "pass" for r in rows}
    return shipped, "example", (f"the sample's shipped labels (you gave {len(yours)}; "
                                f"{MIN_ITEMS} are needed to calibrate on yours)")
