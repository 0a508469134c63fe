"""The build-vs-buy matrix: ranking, user overrides, card adjustments, clear errors, a plot."""

from __future__ import annotations

import pytest

from workbench.buildvsbuy import (
    CRITERIA,
    DEFAULT_SCORES,
    DEFAULT_WEIGHTS,
    InvalidMatrix,
    plot,
    score_options,
)
from workbench.card import Constraints, ProjectCard, load_card


def test_default_ranking_is_the_weighted_sum():
    df = score_options()
    expected = {o: round(sum(DEFAULT_WEIGHTS[c] * s[c] for c in CRITERIA), 3)
                for o, s in DEFAULT_SCORES.items()}
    assert dict(zip(df["option"], df["total"], strict=True)) == expected
    assert list(df["total"]) == sorted(expected.values(), reverse=True)
    assert list(df["rank"]) == [1, 2, 3]
    assert list(df.columns) == ["rank", "option", "label", *CRITERIA, "total"]
    assert sum(df.attrs["weights"].values()) == pytest.approx(1)


def test_user_weights_change_the_winner():
    assert score_options(weights={"quality": 10})["option"].iloc[0] == "hosted_api"
    assert score_options(weights={"privacy": 10, "quality": 0})["option"].iloc[0] in (
        "self_hosted", "no_llm")
    # Weights need not sum to one; they are normalised.
    a = score_options(weights={c: 1 for c in CRITERIA})
    b = score_options(weights={c: 7 for c in CRITERIA})
    assert list(a["total"]) == list(b["total"])


def test_user_scores_and_a_new_option():
    df = score_options(scores={
        "hosted_api": {"quality": 1},
        "fine_tuned_small": {c: 5 for c in CRITERIA}})
    assert df["option"].iloc[0] == "fine_tuned_small" and df["total"].iloc[0] == 5
    assert df.set_index("option").loc["hosted_api", "quality"] == 1


def test_card_adjusts_the_defaults(sample_project):
    card = load_card(sample_project)
    df = score_options(card=card)
    notes = " ".join(df.attrs["notes"])
    assert "privacy weighs double" in notes and "hosted ≈ $180" in notes
    assert df.attrs["weights"]["privacy"] > DEFAULT_WEIGHTS["privacy"]
    by_option = df.set_index("option")
    assert by_option.loc["hosted_api", "privacy"] == 1
    # $180 of a $200 budget scores 3; a $600 GPU scores 1; $20 of CPU scores 5.
    assert list(by_option.loc[["hosted_api", "self_hosted", "no_llm"], "cost"]) == [3, 1, 5]

    cheap_traffic = card.model_copy(update={"constraints": Constraints(
        monthly_budget_usd=5000, expected_requests_per_day=100, latency_budget_s=0.5)})
    df = score_options(card=cheap_traffic)
    assert df.set_index("option").loc["hosted_api", "cost"] == 5
    assert "latency weighs double" in " ".join(df.attrs["notes"])
    assert score_options(card=ProjectCard()).equals(score_options())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weights": {"qualty": 1}}, "unknown criterion 'qualty'. Did you mean 'quality'?"),
    ({"weights": {"cost": -1}}, "weights cannot be negative"),
    ({"weights": {c: 0 for c in CRITERIA}}, "Every weight is 0"),
    ({"weights": {"cost": "high"}}, "is 'high', which is not a number"),
    ({"scores": {"hosted_api": {"quality": 7}}}, "the quality score of 'hosted_api' is 7"),
    ({"scores": {"my_option": {"quality": 3}}}, "The new option 'my_option' has no score for"),
    ({"scores": [1, 2]}, "Scores must be a dict"),
])
def test_bad_input_is_explained(kwargs, message):
    with pytest.raises(InvalidMatrix) as info:
        score_options(**kwargs)
    assert message in str(info.value)
    assert info.value.fix


def test_plot_stacks_weighted_contributions():
    df = score_options()
    fig = plot(df)
    assert [t.name for t in fig.data] == [c.replace("_", " ") for c in CRITERIA]
    best = df["label"].iloc[0]
    stacked = sum(list(t.y).index(best) == len(df) - 1 for t in fig.data)
    assert stacked == len(CRITERIA)  # best option drawn on top of every trace
    total = sum(t.x[list(t.y).index(best)] for t in fig.data)
    assert total == pytest.approx(df["total"].iloc[0], abs=1e-3)
    with pytest.raises(InvalidMatrix):
        plot(df[["option"]])
