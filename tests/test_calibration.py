"""Judge calibration: agreement with people, trust recorded, untrusted judges refused."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench.evaluate.calibration import (
    JudgeTrust,
    UntrustedJudge,
    agreement,
    calibrate,
    is_trusted,
    require_trusted,
)

# A known confusion (rows: people, columns: judge): 15 0/0, 10 0/1, 5 1/0, 20 1/1.
# p_o = 35/50 = 0.7; p_e = (25·20 + 25·30)/50² = 0.5; kappa = (0.7 - 0.5)/(1 - 0.5) = 0.4
HUMAN = ["fail"] * 25 + ["pass"] * 25
JUDGE = ["fail"] * 15 + ["pass"] * 10 + ["fail"] * 5 + ["pass"] * 20


def test_agreement_on_a_known_confusion():
    a = agreement(JUDGE, HUMAN)
    assert (a.n, a.percent, a.bar, a.trusted) == (50, 0.7, 0.6, False)
    assert a.kappa == pytest.approx(0.4)
    assert a.confusion.to_dict() == {"fail": {"fail": 15, "pass": 5},
                                     "pass": {"fail": 10, "pass": 20}}
    assert (a.confusion.index.name, a.confusion.columns.name) == ("human", "judge")
    assert len(a.disagreements) == 15
    assert a.disagreements.iloc[0].to_dict() == {"item_id": 15, "judge": "pass",
                                                 "human": "fail"}
    low, high = a.kappa_interval
    assert 0.1 < low < 0.4 < high < 0.7  # 50 items: kappa is known only roughly
    assert a.reason == (f"The judge agrees with people on 70% of 50 items, kappa 0.40 "
                        f"[95% {low:.2f} to {high:.2f}] (moderate), below the bar of 0.6: "
                        "not trusted.")
    assert agreement(JUDGE, HUMAN, bar=0.4).trusted


def test_the_bootstrap_kappa_is_scikit_learns_kappa():
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    from workbench.evaluate.calibration import _kappa

    rng = np.random.default_rng(1)
    for weights in (None, "linear", "quadratic"):
        a, b = rng.integers(0, 4, 80), rng.integers(0, 4, 80)
        b[:40] = a[:40]  # some agreement
        assert _kappa(a, b, 4, weights) == pytest.approx(
            cohen_kappa_score(a, b, labels=[0, 1, 2, 3], weights=weights))


def test_a_judge_that_cannot_answer_most_items_is_not_trusted():
    human = {f"i{k}": HUMAN[k] for k in range(50)}
    judge = {f"i{k}": (HUMAN[k] if k % 2 else None) for k in range(50)}  # half unreadable
    a = agreement(judge, human)
    assert a.kappa == 1.0 and a.coverage == 0.5 and not a.trusted
    assert "readable verdict on only 50%" in a.reason


def test_labels_keyed_by_item_id_are_matched_and_gaps_skipped():
    judge = pd.Series({"a": 5, "b": 4, "c": 1, "d": 2})
    human = {"b": 4.0, "a": 5, "c": None, "e": 3}
    a = agreement(judge, human)
    assert (a.n, a.percent) == (2, 1.0)
    assert not a.trusted and "at least 10" in a.reason  # too few items to trust anyone
    with pytest.raises(ValueError):
        agreement([1, 2], {"a": 1})


def test_a_constant_sample_gives_no_trust_and_weighted_kappa_for_scores():
    a = agreement(["pass"] * 12, ["pass"] * 12)
    assert a.percent == 1.0 and math.isnan(a.kappa) and not a.trusted
    assert "undefined" in a.reason
    near = agreement([1, 2, 3, 4, 5] * 3, [1, 2, 3, 5, 5] * 3, weights="quadratic")
    assert near.kappa > agreement([1, 2, 3, 4, 5] * 3, [1, 2, 3, 5, 5] * 3).kappa
    assert near.trusted


def test_calibration_is_recorded_and_gates_refuse_untrusted_judges(project):
    name = "helpful@fake/judge"
    with pytest.raises(UntrustedJudge, match="has not been calibrated"):
        require_trusted(project, name)
    assert not is_trusted(project, name)

    stored = calibrate(project, name, JUDGE, HUMAN, bar=0.6)
    assert stored.value.model_dump() == {
        "judge_name": name, "trusted": False, "bar": 0.6, "kappa": pytest.approx(0.4),
        "percent": 0.7, "n": 50, "disagreements": 15, "weights": None,
        "reason": agreement(JUDGE, HUMAN).reason, "coverage": 1.0,
        "kappa_low": agreement(JUDGE, HUMAN).kappa_interval[0],
        "kappa_high": agreement(JUDGE, HUMAN).kappa_interval[1], "labels": None,
        "labelled_by": "people"}
    assert not is_trusted(project, name)
    with pytest.raises(UntrustedJudge) as refused:
        require_trusted(project, name)
    assert "kappa 0.40" in str(refused.value) and "calibrate again" in refused.value.fix

    calibrate(project, name, JUDGE, HUMAN, bar=0.35)  # the latest calibration decides
    assert is_trusted(project, name)
    assert require_trusted(project, name).version == 2
    assert len(project.records.versions(JudgeTrust, name)) == 2


def test_only_peoples_labels_and_a_real_judge_can_be_trusted(project):
    """Labels shipped with an example, or the keyword rule standing in for a judge model offline,
    record the agreement but never trust: a beginner must not see a stand-in called trusted."""
    from workbench.evaluate.judge_sample import STAND_IN_JUDGE

    assert agreement(JUDGE, HUMAN, bar=0.35).trusted  # the agreement itself clears the bar
    example = calibrate(project, "helpful@fake/judge", JUDGE, HUMAN, bar=0.35,
                        labelled_by="example").value
    assert not example.trusted and example.labelled_by == "example"
    assert "came with the example" in example.reason
    stand_in = calibrate(project, f"helpful@{STAND_IN_JUDGE}", JUDGE, HUMAN, bar=0.35).value
    assert not stand_in.trusted and "standing in" in stand_in.reason
    assert not is_trusted(project, f"helpful@{STAND_IN_JUDGE}")
    assert calibrate(project, "helpful@fake/judge", JUDGE, HUMAN, bar=0.35).value.trusted


def test_calibration_uses_your_labels_once_there_are_enough():
    from workbench.evaluate.calibration import MIN_ITEMS
    from workbench.evaluate.judge_sample import load_sample, people_labels

    rows = load_sample()
    few = {r["id"]: "fail" for r in rows[:3]}
    labels, source, whose = people_labels(rows, few)
    assert source == "example" and len(labels) == len(rows) and "you gave 3" in whose
    enough = {r["id"]: "fail" for r in rows[:MIN_ITEMS]} | {rows[MIN_ITEMS]["id"]: "skip"}
    labels, source, whose = people_labels(rows, enough)
    assert source == "people" and labels == {r["id"]: False for r in rows[:MIN_ITEMS]}
    assert whose == f"your {MIN_ITEMS} labels"


def test_the_pairwise_walk_through_compares_two_answers_to_the_samples_first_question(
        project, fake_model):
    import json
    import re

    from workbench.errors import WorkbenchError
    from workbench.evaluate.judge_sample import load_sample, pairwise_sample

    asked = []

    def reply(messages):
        text = messages[-1]["content"]
        asked.append(text)
        first = re.search(r"ANSWER A:\n(.*?)\n\nANSWER B", text, re.DOTALL).group(1)
        return json.dumps({"winner": "A" if "$8" in first else "B", "reason": "the price"})

    rows = load_sample()
    same = [r for r in rows if r["question"] == rows[0]["question"]]
    duel = pairwise_sample(project, fake_model("pair-judge", reply), rows)
    assert (duel.winner, duel.order_ab, duel.order_ba) == ("A", "A", "A")
    assert len(asked) == 2 and all(rows[0]["question"] in text for text in asked)
    assert [re.search(r"ANSWER A:\n(.*?)\n\nANSWER B", t, re.DOTALL).group(1)
            for t in asked] == [same[0]["answer"], same[1]["answer"]]
    assert "1. correct\n2. helpful\n3. polite" in asked[0]
    with pytest.raises(WorkbenchError, match="needs two"):
        pairwise_sample(project, "fake/echo", [rows[0]])


# Ordered text labels: people (first) against the judge (second). Sorted alphabetically the
# order would be correct < incorrect < partially_correct, which makes "incorrect" the middle
# label and gives different weighted kappas.
ORDER = ["incorrect", "partially_correct", "correct"]
PAIRS = ([("correct", "correct")] * 6 + [("partially_correct", "partially_correct")] * 3
         + [("incorrect", "incorrect")] * 4 + [("correct", "partially_correct")] * 3
         + [("incorrect", "partially_correct")] * 2 + [("correct", "incorrect")] * 2)
PEOPLE = [p for p, _ in PAIRS]
JUDGED = [j for _, j in PAIRS]


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_kappa_on_text_labels_uses_the_given_order(weights):
    from sklearn.metrics import cohen_kappa_score

    from workbench.evaluate.judge import Rubric

    right = cohen_kappa_score(JUDGED, PEOPLE, labels=ORDER, weights=weights)
    alphabetical = cohen_kappa_score(JUDGED, PEOPLE, labels=sorted(ORDER), weights=weights)
    assert abs(right - alphabetical) > 0.04  # the old (sorted) value was wrong
    a = agreement(JUDGED, PEOPLE, weights=weights, labels=ORDER)
    assert a.kappa == pytest.approx(right) and a.labels == tuple(ORDER)
    assert list(a.confusion.index) == ORDER and list(a.confusion.columns) == ORDER
    rubric = Rubric(criteria=["Is correct"], labels=ORDER)
    assert agreement(JUDGED, PEOPLE, weights=weights, rubric=rubric).kappa == pytest.approx(right)
    # Unweighted kappa does not depend on the order.
    assert agreement(JUDGED, PEOPLE, labels=ORDER).kappa == pytest.approx(
        cohen_kappa_score(JUDGED, PEOPLE))


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_the_bootstrap_interval_uses_the_same_order(weights):
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    from workbench.evaluate.calibration import kappa_interval

    a = agreement(JUDGED, PEOPLE, weights=weights, labels=ORDER)
    assert a.kappa_interval == kappa_interval(JUDGED, PEOPLE, ORDER, weights=weights)
    assert a.kappa_interval != kappa_interval(JUDGED, PEOPLE, sorted(ORDER), weights=weights)
    low, high = a.kappa_interval
    assert low < a.kappa < high
    # The same resamples, scored by scikit-learn with the order, give the same percentiles.
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(PAIRS), size=(2000, len(PAIRS)))
    values = []
    for d in draws:
        j, p = [JUDGED[i] for i in d], [PEOPLE[i] for i in d]
        with np.errstate(all="ignore"):
            values.append(cohen_kappa_score(j, p, labels=ORDER, weights=weights))
    values = np.asarray(values)
    values = values[~np.isnan(values)]
    assert (low, high) == pytest.approx((np.percentile(values, 2.5), np.percentile(values, 97.5)))


def test_weighted_kappa_refuses_labels_without_an_order():
    from workbench.evaluate.calibration import UnorderedLabels

    with pytest.raises(UnorderedLabels, match="needs the labels' order") as refused:
        agreement(JUDGED, PEOPLE, weights="linear")
    assert "labels=['incorrect', 'partially_correct', 'correct']" in refused.value.fix
    with pytest.raises(UnorderedLabels, match="'partially_correct' are not in the order"):
        agreement(JUDGED, PEOPLE, weights="linear", labels=["incorrect", "correct"])
    with pytest.raises(ValueError, match="not both"):
        agreement(JUDGED, PEOPLE, weights="linear", labels=ORDER, rubric=object())
    assert agreement(JUDGED, PEOPLE).kappa == pytest.approx(0.489, abs=1e-3)  # plain kappa


def test_integer_scores_keep_their_distances_when_a_point_is_unused():
    from sklearn.metrics import cohen_kappa_score

    from workbench.evaluate.judge import Rubric

    # Nobody gave a 4: 3 against 5 is still two steps apart.
    judged = [1, 2, 3, 5, 5, 3, 2, 1, 5, 3, 1, 2]
    people = [1, 2, 5, 5, 3, 3, 1, 1, 5, 2, 1, 3]
    for weights in ("linear", "quadratic"):
        right = cohen_kappa_score(judged, people, labels=[1, 2, 3, 4, 5], weights=weights)
        assert right != pytest.approx(
            cohen_kappa_score(judged, people, labels=[1, 2, 3, 5], weights=weights))
        assert agreement(judged, people, weights=weights).kappa == pytest.approx(right)
        # The rubric's whole scale (1-5) is the same order.
        rubric = Rubric(criteria=["ok"], scale=(1, 5))
        assert agreement(judged, people, weights=weights, rubric=rubric).kappa == \
            pytest.approx(right)


def test_calibration_records_the_order_weighted_kappa_used(project):
    stored = calibrate(project, "grade@fake/judge", JUDGED, PEOPLE, weights="quadratic",
                       labels=ORDER, bar=0.5)
    assert stored.value.labels == ORDER and stored.value.weights == "quadratic"
    assert stored.value.kappa == pytest.approx(agreement(JUDGED, PEOPLE, weights="quadratic",
                                                         labels=ORDER).kappa)


def test_annotation_items_show_question_answer_and_reference():
    from workbench.evaluate.judge_sample import annotation_items, load_sample

    rows = load_sample()
    items = annotation_items(rows)
    assert [i["id"] for i in items] == [r["id"] for r in rows]
    first = rows[0]
    assert items[0] == {"id": first["id"], "input": f"Q: {first['question']}\n\nA: "
                        f"{first['answer']}\n\nReference: {first['reference']}"}

