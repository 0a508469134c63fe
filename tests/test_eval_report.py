"""The evaluation report of a run: offline HTML with every section, and every table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.evaluate.baseline_runs import bless
from workbench.evaluate.calibration import calibrate
from workbench.evaluate.judge import Rubric, judge_name, judge_scorer
from workbench.evaluate.report import eval_report, eval_tables
from workbench.llm import fake

LABELS = ["billing", "shipping"]
TEXTS = [f"ticket {i}" for i in range(12)]
EXPECTED = [LABELS[i % 2] for i in range(12)]
RUBRIC = Rubric(criteria=["Gives the right label"], name="label-check")


@pytest.fixture
def tickets(project):
    from workbench.data.versions import save_version
    from workbench.prompts import PromptVersion, save_prompt

    save_version(project, "tickets", pd.DataFrame({
        "id": [f"v{i}" for i in range(12)], "input": TEXTS, "expected": EXPECTED,
        "split": ["validation"] * 12}), transform="import")

    def card(c):
        c.setdefault("use_case", {}).update(task_type="classification")
        c["metrics"] = [
            {"name": "accuracy", "target": 0.8, "direction": ">=", "unit": "fraction"},
            {"name": "p95_latency", "target": 2000, "direction": "<=", "unit": "ms"},
            {"name": "cost_per_request", "target": 0.001, "direction": "<=", "unit": "USD"}]

    project.update_card(card)
    save_prompt(project, "intent", PromptVersion(system="Label it.", labels=LABELS))
    return "tickets"


def _judge() -> str:
    def reply(messages):
        text = messages[-1]["content"]
        reference = text.split("REFERENCE ANSWER (correct; judge the ANSWER against it):\n")[1]
        answer = text.split("ANSWER:\n")[-1].split("\n")[0]
        # Scores 5 only when it was shown the ticket as the question and the answer is right.
        good = "QUESTION:\nticket" in text and reference.startswith(answer + "\n")
        return json.dumps({"score": 5 if good else 2, "reason": "checked"})

    return fake.register_fake("label-judge", reply)


def _run(project, name: str, wrong: set[int], scorers=None) -> str:
    from workbench.evaluate import default_scorers
    from workbench.runs import start_run

    answers = {t: (LABELS[1 - LABELS.index(e)] if i in wrong else e)
               for i, (t, e) in enumerate(zip(TEXTS, EXPECTED, strict=True))}
    model = fake.register_fake(name, lambda m: answers[m[-1]["content"]])
    chosen = default_scorers("classification") + list(scorers or [])
    return start_run(project, "intent", dataset="tickets", model=model, progress=False,
                     scorers=chosen).run_id


def test_tables_and_report_with_judge_and_baseline(project, tickets):
    judge_model = _judge()
    base = _run(project, "m-base", {1})
    bless(project, base)
    run_id = _run(project, "m-new", {1, 2, 3}, scorers=[judge_scorer(RUBRIC, judge_model)])
    name = judge_name(RUBRIC, judge_model)
    calibrate(project, name, [True, False] * 6, [True, False] * 6)

    tables = eval_tables(project, run_id)
    assert set(tables) == {"config", "targets", "intervals", "scores", "per_class",
                           "confusion", "failures", "judge", "baseline", "baseline_changes"}
    assert all(isinstance(t, pd.DataFrame) for t in tables.values())
    targets = tables["targets"].set_index("metric")
    assert targets.at["accuracy", "value"] == pytest.approx(9 / 12)
    assert targets.at["accuracy", "status"] == "fail"
    assert targets.at["accuracy", "low"] < 0.75 < targets.at["accuracy", "high"]
    assert targets.at["p95_latency", "status"] == "pass"
    failures = tables["failures"]
    assert set(failures["item_id"]) == {"v1", "v2", "v3"}
    assert "does not equal expected" in failures.at[0, "reasons"]
    judge = tables["judge"].iloc[0]
    assert (judge["judge"], bool(judge["trusted"])) == (name, True)
    scores = tables["scores"].set_index("scorer")
    # The judge saw each ticket as the QUESTION (else it scores 2) and the label as reference.
    assert scores.at["llm_judge", "pass_rate"] == pytest.approx(9 / 12)
    assert tables["baseline"].attrs["sentence"].startswith("2 items regressed, 0 improved")
    assert set(tables["baseline_changes"]["change"]) == {"regressed"}

    path = eval_report(project, run_id)
    assert path == project.reports_dir / f"eval_{run_id}.html"
    text = path.read_text(encoding="utf-8")
    assert "<script src=" not in text and "cdn" not in text.lower().split("</style>")[0]
    for heading in ("Run configuration", "Scores against the phase-1 targets",
                    "Every aggregate with its interval", "Scorers", "Per class",
                    "Confusion matrix", "Failure examples", "Judge trust level",
                    "Comparison with the blessed baseline", "Score distribution per scorer",
                    "Latency per item"):
        assert f"<h2>{heading}" in text, heading
    assert "2 items regressed" in text and "trusted" in text


def test_a_run_without_judge_or_baseline_still_reports(project, tickets):
    run_id = _run(project, "m-only", set())
    tables = eval_tables(project, run_id)
    assert tables["failures"].empty and tables["judge"].empty
    assert tables["baseline"].empty and tables["baseline"].attrs["sentence"] is None
    out = eval_report(project, run_id, path=project.path / "elsewhere" / "r.html")
    text = out.read_text(encoding="utf-8")
    assert "No item failed a scorer." in text and "No LLM judge scored this run." in text
    assert "No baseline is blessed" in text and "<script src=" not in text


def test_an_uncalibrated_judge_is_shown_as_untrusted(project, tickets):
    run_id = _run(project, "m-j", {0}, scorers=[judge_scorer(RUBRIC, _judge())])
    judge = eval_tables(project, run_id)["judge"].iloc[0]
    assert not judge["trusted"] and "Never calibrated" in judge["reason"]


def test_items_a_judge_could_not_read_are_left_out_not_counted_as_zero(project, tickets):
    from workbench.evaluate.judge import llm_judge
    from workbench.runs import start_run

    replies = iter(['{"score": 5, "reason": "right"}', "gibberish"] * 20)
    judge = fake.register_fake("moody", lambda messages: next(replies))
    labeller = fake.register_fake("labeller", {"ticket": "billing"})
    try:
        run = start_run(project, "intent", dataset=tickets, model=labeller, progress=False,
                        scorers=[llm_judge(RUBRIC.model_dump(), judge)], cache=False)
    finally:
        fake.unregister_fake("moody")
        fake.unregister_fake("labeller")
    values = run.items["score.llm_judge"]
    assert values.isna().sum() == 6 and (values.dropna() == 1.0).all()
    assert run.totals["scores"]["llm_judge"] == 1.0
    row = eval_tables(project, run.run_id)["scores"].set_index("scorer").loc["llm_judge"]
    assert (row["scored"], row["mean_value"], row["pass_rate"]) == (6, 1.0, 1.0)
