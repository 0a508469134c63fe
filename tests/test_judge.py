"""LLM-as-judge: rubric scores read strictly, pairwise in both orders, self-judging warned."""

from __future__ import annotations

import json
import re
import warnings

import pandas as pd
import pytest

from workbench.errors import UnknownModel
from workbench.evaluate import scorer_from_spec
from workbench.evaluate.judge import (
    JudgeError,
    Rubric,
    judge,
    judge_name,
    judge_scorer,
    pairwise,
    self_judging_warning,
)
from workbench.evaluate.judge_runs import (
    JudgeRunRecord,
    judge_labels,
    judge_run,
    judge_scores,
    pairwise_runs,
)

RUBRIC = Rubric(criteria=["Answers the question correctly", "Is concise"], scale=(1, 5),
                pass_threshold=4, name="correct")


def _answer(messages) -> str:
    return re.search(r"ANSWER:\n(.*?)\n\nReply", messages[-1]["content"], re.DOTALL).group(1)


def scoring_judge(fake_model, name: str = "judge") -> str:
    """A judge that gives 5 to answers mentioning Paris, 2 to others, as the format asks."""
    def reply(messages):
        good = "Paris" in _answer(messages)
        return json.dumps({"score": 5 if good else 2,
                           "reason": "Names the capital." if good else "Wrong city."})

    return fake_model(name, reply)


def test_a_rubric_judgement_is_scored_with_a_reason(project, fake_model):
    seen = []
    model = fake_model("seeing-judge", lambda m: seen.append(m) or
                       '```json\n{"score": 4, "reason": "Right, a bit long."}\n```')
    result = judge(project, RUBRIC, question="Capital of France?", answer="It is Paris.",
                   reference="Paris", judge_model=model)
    assert (result.score, result.passed, result.reason, result.parsed_ok) == \
        (4, True, "Right, a bit long.", True)
    prompt = seen[0][-1]["content"]
    assert "1. Answers the question correctly\n2. Is concise" in prompt
    assert "REFERENCE ANSWER" in prompt and "It is Paris." in prompt
    assert '{"score": <integer 1-5>' in prompt
    low = judge(project, RUBRIC, question="Capital of France?", answer="Lyon",
                judge_model=scoring_judge(fake_model))
    assert (low.score, low.passed, low.parsed_ok) == (2, False, True)
    with pytest.raises(JudgeError, match="reference"):
        judge(project, RUBRIC.model_copy(update={"reference_required": True}),
              question="q", answer="a", judge_model=model)
    assert Rubric(criteria=["x"]).threshold == 4  # default: the top 60% of the scale
    with pytest.raises(ValueError):
        Rubric(criteria=["x"], scale=(1, 5), pass_threshold=6)


def test_a_garbage_reply_is_unparsed_not_a_zero(project, fake_model):
    garbage = fake_model("garbage-judge", ["I really liked this answer!"])
    result = judge(project, RUBRIC, question="q", answer="a", judge_model=garbage)
    assert (result.score, result.passed, result.parsed_ok) == (None, None, False)
    assert result.raw == "I really liked this answer!"
    assert result.reason.startswith("The judge's reply had no score, so this answer is not scored")
    off_scale = fake_model("nine-judge", ['{"score": 9, "reason": "great"}'])
    assert not judge(project, RUBRIC, question="q", answer="a",
                     judge_model=off_scale).parsed_ok
    failed = judge(project, RUBRIC, question="q", answer="a", judge_model="fake/echo:fail=500")
    assert (failed.parsed_ok, failed.raw) == (False, None) and "call failed" in failed.reason
    for reply in ('{"score": NaN, "reason": "x"}', '{"score": Infinity, "reason": "x"}',
                  '{"score": 1e999, "reason": "x"}'):
        odd = fake_model("odd-judge", [reply])
        assert not judge(project, RUBRIC, question="q", answer="a",
                         judge_model=odd).parsed_ok  # unscored, not a crash
    lenient = fake_model("chatty-judge", ["Sure! {'score': 5, 'reason': 'ok'} Bye."])
    assert judge(project, RUBRIC, question="q", answer="a", judge_model=lenient).score == 5


def test_the_judge_is_a_scorer_rebuilt_from_its_spec(fake_model):
    model = scoring_judge(fake_model, "scorer-judge")
    scorer = judge_scorer(RUBRIC, model)
    assert scorer.spec() == {"name": "llm_judge", "args": {
        "rubric": RUBRIC.model_dump(mode="json"), "judge_model": model}}
    rebuilt = scorer_from_spec(json.loads(json.dumps(scorer.spec())))
    good, bad = rebuilt("Paris", "Paris"), rebuilt("Lyon", "Paris")
    assert (good.value, good.passed) == (1.0, True)
    assert good.reason == f"{model} scored 5/5: Names the capital."
    assert (bad.value, bad.passed) == (0.25, False)
    garbage = judge_scorer(RUBRIC, fake_model("g2", ["no idea"]))("Paris", "Paris")
    assert garbage.passed is None and "not scored" in garbage.reason  # not counted as a failure


def _pairwise_judge(fake_model, name: str, pick) -> str:
    def reply(messages):
        text = messages[-1]["content"]
        first = re.search(r"ANSWER A:\n(.*?)\n\nANSWER B", text, re.DOTALL).group(1)
        second = re.search(r"ANSWER B:\n(.*?)\n\nReply", text, re.DOTALL).group(1)
        return json.dumps({"winner": pick(first, second), "reason": "because"})

    return fake_model(name, reply)


def test_pairwise_runs_both_orders_and_catches_position_bias(project, fake_model):
    fair = _pairwise_judge(fake_model, "fair", lambda a, b: "A" if "Paris" in a else "B")
    result = pairwise(project, question="Capital of France?", answer_a="Lyon",
                      answer_b="Paris", judge_model=fair)
    assert (result.winner, result.order_ab, result.order_ba) == ("B", "B", "B")
    assert result.reason == "Both orders agree (B): because"

    biased = _pairwise_judge(fake_model, "first-wins", lambda a, b: "A")
    result = pairwise(project, question="Capital of France?", answer_a="Lyon",
                      answer_b="Paris", judge_model=biased)
    assert (result.winner, result.order_ab, result.order_ba) == ("inconsistent", "A", "B")
    assert "position bias" in result.reason

    tie = _pairwise_judge(fake_model, "tie", lambda a, b: "tie")
    assert pairwise(project, question="q", answer_a="x", answer_b="y",
                    judge_model=tie).winner == "tie"
    garbage = fake_model("pair-garbage", ["dunno"])
    unread = pairwise(project, question="q", answer_a="x", answer_b="y", judge_model=garbage)
    assert unread.winner == "unscored" and not unread.parsed_ok
    assert "could not be read" in unread.reason


def test_self_judging_is_warned():
    assert "judging its own outputs" in self_judging_warning("openai/gpt-4o", "openai/gpt-4o")
    assert "both OpenAI models" in self_judging_warning("openai/gpt-4o", "openai/gpt-4o-mini")
    assert "both Anthropic models" in self_judging_warning(
        "openrouter/anthropic/claude-3-5-haiku", "anthropic/claude-haiku-4-5")
    assert "its own outputs" in self_judging_warning("local/smollm2-135m",
                                                     "local/smollm2-135m:sentiment")
    assert self_judging_warning("anthropic/claude-haiku-4-5", "openai/gpt-4o-mini") is None
    assert self_judging_warning("fake/judge", "fake/candidate") is None


def _capital_run(project, model: str) -> str:
    from workbench.data.versioning import save_version
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import start_run

    rows = pd.DataFrame({"id": ["f", "i", "s"], "input": ["France?", "Italy?", "Spain?"],
                         "expected": ["Paris", "Rome", "Madrid"], "split": ["validation"] * 3})
    save_version(project, "capitals", rows, transform="import")
    save_prompt(project, "capital", PromptVersion(system="Name the capital."))
    return start_run(project, "capital", dataset="capitals", model=model,
                     progress=False).run_id


def test_judge_run_stores_a_score_per_item(project, fake_model):
    candidate = fake_model("candidate", {"France": "Paris", "Italy": "Paris",
                                         "Spain": "Madrid"})
    run_id = _capital_run(project, candidate)

    def reply(messages):
        text = messages[-1]["content"]
        ref = re.search(r"REFERENCE ANSWER.*?:\n(.*?)\n", text).group(1)
        if ref == "Madrid":
            return "no comment"
        return json.dumps({"score": 5 if ref == _answer(messages) else 1, "reason": "vs ref"})

    judge_model = fake_model("run-judge", reply)
    stored = judge_run(project, run_id, RUBRIC, judge_model, progress=False)
    assert stored.name == f"{run_id}/{judge_name(RUBRIC, judge_model)}"
    assert stored.value.warning is None and stored.value.candidate_model == candidate
    table = judge_scores(stored)
    assert table[["item_id", "score", "passed", "parsed_ok"]].to_dict("records") == [
        {"item_id": "f", "score": 5, "passed": True, "parsed_ok": True},
        {"item_id": "i", "score": 1, "passed": False, "parsed_ok": True},
        {"item_id": "s", "score": None, "passed": None, "parsed_ok": False}]
    assert project.records.get(JudgeRunRecord, stored.name).version == 1
    assert judge_labels(stored) == {"f": True, "i": False}  # the unscored item is left out
    assert judge_labels(stored, "score") == {"f": 5, "i": 1}

    down = judge_scores(judge_run(project, run_id, RUBRIC, "fake/echo:fail=500",
                                  progress=False))
    assert not down["parsed_ok"].any()
    assert down["reason"].str.startswith("The judge call failed:").all()
    with pytest.raises(UnknownModel):  # a wrong judge id is an error, not "unscored"
        judge(project, RUBRIC, question="q", answer="a", judge_model="fake/missing")

    with pytest.warns(UserWarning, match="judging its own outputs"):
        own = judge_run(project, run_id, RUBRIC, candidate, progress=False)
    assert "own outputs" in own.value.warning


def test_pairwise_over_two_runs(project, fake_model):
    from workbench.runs import start_run

    weak = fake_model("weak", ["Lyon"])
    strong = fake_model("strong", {"France": "Paris", "Italy": "Rome", "Spain": "Madrid"})
    run_a = _capital_run(project, weak)
    run_b = start_run(project, "capital", dataset="capitals", model=strong,
                      progress=False).run_id
    picker = _pairwise_judge(fake_model, "picker", lambda a, b: "B" if a == "Lyon" else "A")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = pairwise_runs(project, run_a, run_b, picker, progress=False)
    assert table["winner"].tolist() == ["B", "B", "B"]
    assert table.attrs["summary"] == {"A": 0, "B": 3, "tie": 0, "inconsistent": 0,
                                      "unscored": 0}


@pytest.mark.model
def test_the_bundled_model_as_judge_gives_a_score_or_says_it_could_not(project):
    from workbench.llm.local import MODEL_ID

    result = judge(project, RUBRIC, question="What is the capital of France?",
                   answer="Paris", reference="Paris", judge_model=MODEL_ID, max_tokens=60)
    assert result.raw  # the model answered
    if result.parsed_ok:  # a 135M model may or may not follow the format: never a silent 0
        assert 1 <= result.score <= 5 and result.passed == (result.score >= 4)
    else:
        assert result.score is None and "not scored" in result.reason


def test_a_run_scored_by_its_own_model_warns(project):
    import pandas as pd

    from workbench.data.versioning import save_version
    from workbench.evaluate.judge import llm_judge
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import start_run

    save_version(project, "few", pd.DataFrame({"id": ["a", "b"], "input": ["x", "y"],
                                               "expected": ["x", "y"],
                                               "split": ["validation"] * 2}),
                 transform="import")
    save_prompt(project, "echo", PromptVersion(template="{{ input }}"))
    with pytest.warns(UserWarning, match="judging its own outputs"):
        start_run(project, "echo", dataset="few", model="fake/echo", progress=False,
                  scorers=[llm_judge({"criteria": ["Repeats the input."]}, "fake/echo")])


def test_a_rubric_with_ordered_labels_tells_the_judge_and_gives_labels(project, fake_model):
    from workbench.evaluate.calibration import agreement

    order = ["incorrect", "partially_correct", "correct"]
    graded = Rubric(criteria=["Is correct"], labels=order, name="graded")
    assert graded.scale == (1, 3) and graded.ordered_labels == order
    assert RUBRIC.ordered_labels == [1, 2, 3, 4, 5] and RUBRIC.label_of(4) == 4
    with pytest.raises(ValueError, match="3 labels"):
        Rubric(criteria=["x"], scale=(1, 5), labels=order)
    seen = []
    model = fake_model("label-judge-2", lambda m: seen.append(m) or
                       '{"score": "partially_correct", "reason": "half"}')
    result = judge(project, graded, question="q", answer="a", judge_model=model)
    assert (result.score, graded.label_of(result.score)) == (2, "partially_correct")
    assert "1 = incorrect, 2 = partially_correct, 3 = correct" in seen[0][-1]["content"]
    record = JudgeRunRecord(run_id="r", judge_name="graded@x", judge_model="x", rubric=graded,
                            candidate_model="y", items=[
                                {"item_id": "a", "score": 3, "passed": True, "reason": "",
                                 "parsed_ok": True},
                                {"item_id": "b", "score": 1, "passed": False, "reason": "",
                                 "parsed_ok": True}])
    labels = judge_labels(record, "label")
    assert labels == {"a": "correct", "b": "incorrect"}
    a = agreement(labels, {"a": "correct", "b": "partially_correct"}, weights="linear",
                  rubric=record.rubric)
    assert a.labels == tuple(order)
