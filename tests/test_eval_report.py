"""The evaluation report of a run: offline HTML with every section, and every table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.evaluate.baseline_runs import bless
from workbench.evaluate.calibration import calibrate
from workbench.evaluate.judge import Rubric, judge_name, judge_scorer
from workbench.evaluate.report import eval_report, eval_tables

LABELS = ["billing", "shipping"]
TEXTS = [f"ticket {i}" for i in range(12)]
EXPECTED = [LABELS[i % 2] for i in range(12)]
RUBRIC = Rubric(criteria=["Gives the right label"], name="label-check")


@pytest.fixture
def tickets(project):
    from workbench.data.versioning import save_version
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


def _judge(fake_model) -> str:
    """``fake/label-judge``: scores 5 when shown the ticket as question and the right answer."""
    def reply(messages):
        text = messages[-1]["content"]
        reference = text.split("REFERENCE ANSWER (correct; judge the ANSWER against it):\n")[1]
        answer = text.split("ANSWER:\n")[-1].split("\n")[0]
        # Scores 5 only when it was shown the ticket as the question and the answer is right.
        good = "QUESTION:\nticket" in text and reference.startswith(answer + "\n")
        return json.dumps({"score": 5 if good else 2, "reason": "checked"})

    return fake_model("label-judge", reply)


def _run(project, fake_model, name: str, wrong: set[int], scorers=None) -> str:
    from workbench.evaluate import default_scorers
    from workbench.runs import start_run

    answers = {t: (LABELS[1 - LABELS.index(e)] if i in wrong else e)
               for i, (t, e) in enumerate(zip(TEXTS, EXPECTED, strict=True))}
    model = fake_model(name, lambda m: answers[m[-1]["content"]])
    chosen = default_scorers("classification") + list(scorers or [])
    return start_run(project, "intent", dataset="tickets", model=model, progress=False,
                     scorers=chosen).run_id


def test_tables_and_report_with_judge_and_baseline(project, tickets, fake_model):
    judge_model = _judge(fake_model)
    base = _run(project, fake_model, "m-base", {1})
    bless(project, base)
    run_id = _run(project, fake_model, "m-new", {1, 2, 3},
                  scorers=[judge_scorer(RUBRIC, judge_model)])
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


def test_a_run_without_judge_or_baseline_still_reports(project, tickets, fake_model):
    run_id = _run(project, fake_model, "m-only", set())
    tables = eval_tables(project, run_id)
    assert tables["failures"].empty and tables["judge"].empty
    assert tables["baseline"].empty and tables["baseline"].attrs["sentence"] is None
    out = eval_report(project, run_id, path=project.path / "elsewhere" / "r.html")
    text = out.read_text(encoding="utf-8")
    assert "No item failed a scorer." in text and "No LLM judge scored this run." in text
    assert "No baseline is blessed" in text and "<script src=" not in text


def test_an_uncalibrated_judge_is_shown_as_untrusted(project, tickets, fake_model):
    run_id = _run(project, fake_model, "m-j", {0},
                  scorers=[judge_scorer(RUBRIC, _judge(fake_model))])
    judge = eval_tables(project, run_id)["judge"].iloc[0]
    assert not judge["trusted"] and "Never calibrated" in judge["reason"]


def test_items_a_judge_could_not_read_are_left_out_not_counted_as_zero(project, tickets,
                                                                        fake_model):
    from workbench.evaluate.judge import llm_judge
    from workbench.runs import start_run

    replies = iter(['{"score": 5, "reason": "right"}', "gibberish"] * 20)
    judge = fake_model("moody", lambda messages: next(replies))
    labeller = fake_model("labeller", {"ticket": "billing"})
    run = start_run(project, "intent", dataset=tickets, model=labeller, progress=False,
                    scorers=[llm_judge(RUBRIC.model_dump(), judge)], cache=False)
    values = run.items["score.llm_judge"]
    assert values.isna().sum() == 6 and (values.dropna() == 1.0).all()
    assert run.totals["scores"]["llm_judge"] == 1.0
    row = eval_tables(project, run.run_id)["scores"].set_index("scorer").loc["llm_judge"]
    assert (row["scored"], row["mean_value"], row["pass_rate"]) == (6, 1.0, 1.0)


# -- the report reads like a report: the beginner's findings -------------------------------------

def _visible(text: str) -> str:
    """The report without its scripts and style (plotly's JSON has every float in full)."""
    import re

    text = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    return re.sub(r"<style>.*?</style>", "", text, flags=re.S)


def _section(text: str, heading: str) -> str:
    start = text.index(f"<h2>{heading}")
    return text[start:text.index("</section>", start)]


def _assert_for_people(text: str) -> None:
    import re

    shown = _visible(text)
    for number in re.findall(r"\d+\.(\d+)", shown):
        assert len(number.lstrip("0")) <= 4, f"a raw float: ...{number}"
    assert "{'" not in shown and "': " not in shown  # no Python dict repr
    assert not re.search(r"\bnan\b", shown, flags=re.I)
    assert not re.search(r">\s*None\s*<", shown)
    assert "Index0" not in shown and "Unnamed: 0" not in shown
    assert not re.search(r"\b1 (alerts|items|runs|labels)\b", shown)


def test_the_report_of_the_blessed_run_says_it_is_the_baseline(project, tickets, fake_model):
    base = _run(project, fake_model, "m-blessed", {1, 4})
    bless(project, base)
    text = eval_report(project, base).read_text(encoding="utf-8")
    body = _section(text, "Comparison with the blessed baseline")
    assert "No baseline is blessed" not in body
    assert "This run is the blessed baseline" in body
    _assert_for_people(text)

    later = _run(project, fake_model, "m-later", {2, 3})
    text = eval_report(project, later).read_text(encoding="utf-8")
    body = _section(text, "Comparison with the blessed baseline")
    assert base in body and "2 items regressed" in body
    _assert_for_people(text)


def test_the_confusion_matrix_has_one_column_per_label(project, tickets, fake_model):
    import re

    run_id = _run(project, fake_model, "m-confused", {0, 5})
    table = eval_tables(project, run_id)["confusion"]
    assert list(table.columns) == ["expected", *LABELS]
    text = eval_report(project, run_id).read_text(encoding="utf-8")
    matrix = _section(text, "Confusion matrix")
    header = matrix[matrix.index("<thead>"):matrix.index("</thead>")]
    assert re.findall(r"<th>(.*?)</th>", header) == ["expected", *LABELS]
    body = matrix[matrix.index("<tbody>"):]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    assert len(rows) == len(LABELS)
    assert all(len(re.findall(r"<t[dh]>", row)) == len(LABELS) + 1 for row in rows)
    assert "<th></th>" not in matrix  # no stray index column


def test_a_run_without_labels_has_no_labels_row_and_no_python_reprs(project, tickets, fake_model):
    from workbench.evaluate.scorers import json_schema
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import start_run

    project.update_card(lambda c: c["use_case"].update(task_type="generation"))
    save_prompt(project, "free", PromptVersion(system="Answer."))
    model = fake_model("m-free", lambda m: '{"team": "billing"}')
    run = start_run(project, "free", dataset="tickets", model=model, progress=False,
                    scorers=[json_schema({"type": "object", "required": ["team"]})],
                    temperature=0.3, response_format={"mode": "json"})
    config = eval_tables(project, run.run_id)["config"].set_index("setting")["value"]
    assert "labels" not in config.index and "name" not in config.index
    assert config["options"] == "temperature = 0.3; response_format = {mode=json}"
    assert "{'" not in config["scorers"]
    text = eval_report(project, run.run_id).read_text(encoding="utf-8")
    assert "<td>labels</td>" not in text
    _assert_for_people(text)


def test_numbers_are_formatted_for_people():
    import numpy as np

    from workbench.evaluate.report import format_number, format_value

    assert format_number(0.052369456789) == "0.0524"
    assert format_number(0.000551923) == "0.000552"
    assert format_number(1 / 3) == "0.333"
    assert format_number(1.0) == "1" and format_number(np.int64(1076)) == "1,076"
    assert format_number(12345.678) == "12,346"
    assert format_number(float("nan")) == format_number(None) == "—"
    assert format_number(np.bool_(True)) == "yes"
    assert format_value({"mode": "json", "n": 2}) == "mode: json, n: 2"
    assert format_value(["a", 0.12345]) == "a, 0.123"
    assert format_value(pd.Timestamp("2026-12-04 21:30:54.716090202+00:00")) == \
        "2026-12-04 21:30:54 UTC"  # to the second, never pandas' nanoseconds
    assert format_value(pd.NaT) == format_value(pd.NA) == "—"


@pytest.mark.parametrize("values", [[0.0] * 12, [1.0] * 12, [0.5, 0.51, 0.52], [0.0, 1.0]])
def test_the_score_histogram_spans_the_0_to_1_scale(values):
    from workbench.evaluate.report import _figures

    items = pd.DataFrame({"scores": [{"match": {"value": v, "passed": v > 0.5}}
                                     for v in values],
                          "latency_s": [0.1] * len(values)})
    figure = _figures(items)[0]
    assert tuple(figure.layout.xaxis.range) == (0, 1)
    assert max(figure.data[0].x) < 1  # a score of 1 is drawn in the last bin, not past it


def test_scores_off_the_0_to_1_scale_get_their_own_axis():
    from workbench.evaluate.report import score_axis

    start, end, size = score_axis([2.0, 7.5, 10.0])
    assert start < 2.0 and end > 10.0 and size > 0
    start, end, size = score_axis([3.0, 3.0])
    assert start < 3.0 < end
