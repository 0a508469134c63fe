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
    assert a.reason == ("The judge agrees with people on 70% of 50 items, kappa 0.40 (moderate), "
                        "below the bar of 0.6: not trusted.")
    assert agreement(JUDGE, HUMAN, bar=0.4).trusted


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
        "reason": agreement(JUDGE, HUMAN).reason}
    assert not is_trusted(project, name)
    with pytest.raises(UntrustedJudge) as refused:
        require_trusted(project, name)
    assert "kappa 0.40" in str(refused.value) and "calibrate again" in refused.value.fix

    calibrate(project, name, JUDGE, HUMAN, bar=0.35)  # the latest calibration decides
    assert is_trusted(project, name)
    assert require_trusted(project, name).version == 2
    assert len(project.records.versions(JudgeTrust, name)) == 2
