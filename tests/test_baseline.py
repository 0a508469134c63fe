"""The classical baseline: beats chance on a toy set, is compared with the card, is stored."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from workbench.baseline import (
    BadBaselineData,
    BaselineResult,
    NoBaseline,
    latest_baseline,
    out_of_fold_probabilities,
    run_baseline,
    train_baseline,
)
from workbench.card import load_card, save_card

VOCAB = {
    "billing": ["invoice", "refund", "charged", "payment", "bill", "overcharged"],
    "technical": ["error", "crash", "bug", "freezes", "broken", "install"],
    "shipping": ["parcel", "delivery", "tracking", "courier", "arrived", "shipment"],
    "account": ["password", "username", "profile", "locked", "email", "signup"],
}
FILLER = ["my", "the", "is", "please", "help", "hello", "i", "need", "thanks", "today"]


def toy(n_per_class: int, seed: int, noise: float = 0.0) -> pd.DataFrame:
    """Messages that name their topic twice among filler words; ``noise`` flips some labels."""
    rng = random.Random(seed)
    rows = []
    for label, words in VOCAB.items():
        for _ in range(n_per_class):
            text = rng.sample(FILLER, 4) + rng.sample(words, 2)
            rng.shuffle(text)
            shown = rng.choice(sorted(VOCAB)) if rng.random() < noise else label
            rows.append({"input": " ".join(text), "expected": shown, "true": label})
    return pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)


def test_classification_baseline_beats_chance_and_meets_the_sample_targets(sample_project):
    card = load_card(sample_project)
    result = train_baseline(toy(25, seed=1), toy(10, seed=2), "classification", card=card)

    chance = 1 / len(VOCAB)
    assert result.metrics["accuracy"] >= 0.9 > 2 * chance
    assert result.metrics["macro_f1"] >= 0.9
    assert result.metrics["majority_accuracy"] == pytest.approx(0.25)
    assert result.metrics["cost_per_request"] == 0.0
    assert 0 < result.metrics["p50_latency"] <= result.metrics["p95_latency"] < 1.0
    assert result.labels == sorted(VOCAB)
    assert [c.label for c in result.per_class] == sorted(VOCAB)
    assert all(c.support == 10 for c in result.per_class)
    assert sum(map(sum, result.confusion)) == 40
    assert [(c.metric, c.status) for c in result.checks] == [
        ("accuracy", "pass"), ("p95_latency", "pass"), ("cost_per_request", "pass")]
    assert "already meets every target" in result.verdict
    assert list(result.checks_frame().columns) == [
        "metric", "target", "unit", "value", "status", "text"]


def test_the_baseline_fails_the_card_when_labels_carry_no_signal(sample_project):
    # Labels shuffled at random: nothing to learn, so accuracy is near chance and the test
    # reports the failure (this is the check that the metrics above are not always high).
    train, test = toy(25, seed=3), toy(10, seed=4)
    rng = random.Random(0)
    train["expected"] = [rng.choice(sorted(VOCAB)) for _ in range(len(train))]
    result = train_baseline(train, test, "classification", card=load_card(sample_project))
    assert result.metrics["accuracy"] < 0.6
    assert dict((c.metric, c.status) for c in result.checks)["accuracy"] == "fail"
    assert "misses accuracy" in result.verdict


def test_retrieval_baseline_for_question_answering():
    faq = pd.DataFrame({
        "input": ["how do I reset my password", "where is my parcel", "can I get a refund",
                  "how do I delete my account"],
        "expected": ["Use the reset link on the login page.", "Track it in Orders.",
                     "Yes, within 30 days.", "Settings, then Delete account."]})
    asked = pd.DataFrame({
        "input": ["I forgot my password, how to reset it", "refund possible?"],
        "expected": ["Use the reset link on the login page.", "Yes, within 14 days."]})
    result = train_baseline(faq, asked, "question_answering")
    assert result.metrics["exact_match"] == 0.5
    assert 0.5 < result.metrics["token_f1"] < 1.0
    assert result.method.startswith("retrieval")


def test_extraction_and_unknown_task_types_say_why_there_is_no_baseline():
    df = toy(3, seed=0)
    with pytest.raises(NoBaseline, match="no general classical baseline for extraction"):
        train_baseline(df, df, "extraction")
    with pytest.raises(NoBaseline, match="Set use_case.task_type"):
        train_baseline(df, df, None)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda df: df.rename(columns={"input": "text"}), "train has no 'input' column"),
    (lambda df: df.assign(expected=None), "rows with an empty input or expected value"),
    (lambda df: df.assign(expected="billing"), "train has a single label ('billing')"),
    (lambda df: df.iloc[0:0], "train has no rows"),
])
def test_bad_data_is_explained(mutate, message):
    with pytest.raises(BadBaselineData, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_baseline(mutate(toy(5, seed=0)), toy(2, seed=1), "classification")


def test_out_of_fold_probabilities_find_flipped_labels():
    df = toy(30, seed=5, noise=0.1)
    df.index = [f"row{i}" for i in range(len(df))]  # the caller's index is kept
    probs = out_of_fold_probabilities(df, folds=5)

    assert list(probs.columns) == sorted(VOCAB) and list(probs.index) == list(df.index)
    assert probs.sum(axis=1).round(6).eq(1).all()
    # The most confident class is the true topic for nearly every row, flipped ones included:
    # that disagreement with the given label is what cleanlab looks for.
    assert (probs.idxmax(axis=1) == df["true"]).mean() > 0.9
    flipped = df["expected"] != df["true"]
    given = [probs.at[i, label] for i, label in df["expected"].items()]
    assert pd.Series(given, index=df.index)[flipped].mean() < 0.3


def test_out_of_fold_probabilities_with_rare_labels():
    df = toy(3, seed=6)
    assert out_of_fold_probabilities(df, folds=10).attrs["folds"] == 3
    single = pd.concat([df, pd.DataFrame([{"input": "odd one", "expected": "other"}])])
    with pytest.raises(BadBaselineData, match="1 labels have a single example"):
        out_of_fold_probabilities(single)


def test_run_baseline_reads_the_task_type_and_stores_a_record(sample_project, project):
    stored = run_baseline(sample_project, toy(20, seed=7), toy(5, seed=8))
    assert stored.kind == "baseline" and stored.version == 1
    assert isinstance(stored.value, BaselineResult)
    again = latest_baseline(sample_project)
    assert again is not None and again.value == stored.value
    assert latest_baseline(project) is None

    card = load_card(project)
    with pytest.raises(NoBaseline, match="no task type"):
        run_baseline(project, toy(5, seed=0), toy(2, seed=0))
    save_card(project, card.model_copy(update={
        "use_case": card.use_case.model_copy(update={"task_type": "chat"})}))
    chat = run_baseline(project, pd.DataFrame({"input": ["hi", "bye"], "expected": ["a", "b"]}),
                        pd.DataFrame({"input": ["hi there"], "expected": ["a"]}))
    assert chat.value.task_type == "chat" and chat.value.metrics["exact_match"] == 1.0
