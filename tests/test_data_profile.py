"""Profiling: sizes, lengths, empties, label balance, exact and near duplicates, figures, and
confident-learning label issues."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.data import (
    DatasetError,
    exact_duplicates,
    label_issues,
    near_duplicates,
    profile,
    review_items,
)
from workbench.data.profiling import DataProfile, similar_pairs

TEXTS = ["My order has not arrived yet.", "How do I reset my password?",
         "How can I reset my password?", "My order hasn't arrived yet.",
         "What are your opening hours?", "How do I reset my password?", "   ",
         "The app crashes when I upload a photo."]


def support_frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(TEXTS))], "input": TEXTS,
                         "expected": ["shipping", "account", "account", "shipping", "account",
                                      "shipping", None, "account"]})


def test_near_duplicates_of_texts_and_frames():
    pairs = near_duplicates(TEXTS, threshold=0.95)
    assert pairs[["id_a", "id_b"]].to_dict("records") == [{"id_a": 1, "id_b": 2},
                                                          {"id_a": 0, "id_b": 3}]
    assert (pairs["similarity"] >= 0.95).all() and pairs["similarity"].is_monotonic_decreasing
    framed = near_duplicates(support_frame(), threshold=0.95)
    assert framed[["id_a", "id_b"]].values.tolist() == [["r1", "r2"], ["r0", "r3"]]
    assert near_duplicates(["only one"]).empty
    with pytest.raises(DatasetError, match="threshold"):
        near_duplicates(TEXTS, threshold=1.5)


def test_blocked_similarity_matches_the_full_matrix(monkeypatch):
    # the package exports a function named profile, so `import ... as` would give the function
    module = importlib.import_module("workbench.data.profiling")

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(257, 16)).astype(np.float32)
    vectors[100] = vectors[3] + 0.01  # plant a few near-identical rows across blocks
    vectors[250] = vectors[7] + 0.01
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    full = vectors @ vectors.T
    want = {(i, j) for i in range(257) for j in range(i + 1, 257) if full[i, j] >= 0.6}
    monkeypatch.setattr(module, "_BLOCK_ELEMENTS", 257 * 10)  # ten rows per block
    i, j, sims = similar_pairs(vectors, 0.6)
    assert set(zip(i.tolist(), j.tolist())) == want and len(i) == len(want)
    assert np.allclose(sims, full[i, j], atol=1e-5)
    assert {(3, 100), (7, 250)} <= want


def test_exact_duplicates_groups_largest_first():
    df = pd.DataFrame({"id": list("abcdefg"), "input": ["x", "y", "x", "z", "y", "x", None],
                       "expected": ["1", "2", "1", "3", "9", "1", None]})
    pd.testing.assert_frame_equal(exact_duplicates(df), pd.DataFrame({
        "group": [0, 0, 0, 1, 1], "id": ["a", "c", "f", "b", "e"],
        "input": ["x", "x", "x", "y", "y"], "expected": ["1", "1", "1", "2", "9"]}),
        check_dtype=False)
    assert exact_duplicates(df.iloc[:2]).empty


def test_profile_of_a_small_labelled_set():
    result = profile(support_frame(), threshold=0.95)
    assert isinstance(result, DataProfile)
    lengths = [len(t) for t in TEXTS]
    assert (result.rows, result.columns, result.empty_inputs, result.missing_expected) == (
        8, ["id", "input", "expected"], 1, 1)
    assert result.input_chars["min"] == 3 and result.input_chars["max"] == max(lengths)
    assert result.input_chars["median"] == float(np.median(lengths))
    assert result.labels == {"account": 4, "shipping": 3}
    assert (result.exact_duplicate_rows, result.conflicting_labels) == (1, 1)
    assert result.near_duplicates[["id_a", "id_b"]].values.tolist() == [["r1", "r2"],
                                                                         ["r0", "r3"]]
    summary = result.summary["value"].to_dict()
    assert summary["rows"] == 8 and summary["empty inputs"] == 1
    assert summary["inputs with conflicting labels"] == 1
    assert summary["near-duplicate pairs (cosine >= 0.95)"] == 2
    assert summary["label balance"] == "account 4 (57%), shipping 3 (43%)"

    figures = result.figures()
    assert sorted(figures) == ["labels", "lengths", "lengths_by_label", "quality"]
    assert all(isinstance(f, go.Figure) for f in figures.values())
    assert list(figures["quality"].data[0].y) == [1, 1, 1, 2]
    assert list(figures["labels"].data[0].x) == ["account", "shipping"]


def test_profile_skips_near_duplicates_on_large_data_and_says_so(monkeypatch):
    # the package exports a function named profile, so `import ... as` would give the function
    module = importlib.import_module("workbench.data.profiling")

    monkeypatch.setattr(module, "NEAR_DUPLICATE_PROFILE_LIMIT", 3)
    result = profile(support_frame())
    assert result.near_duplicates is None
    assert result.notes == ["near duplicates not computed for 7 distinct inputs (embedding "
                            "takes ~3 ms a row); call near_duplicates(df) to find them, or "
                            "profile(df, near_duplicates=True)"]
    assert result.summary.loc["near-duplicate pairs", "value"] == "not computed"


def test_profile_of_free_text_answers_has_no_labels_and_a_split_figure():
    df = pd.DataFrame({"id": ["1", "2", "3"], "input": ["q1", "q2", "q3"],
                       "expected": ["a long reference answer one", "another long answer two",
                                    "a third long reference answer"],
                       "split": ["train", "train", "test"]})
    result = profile(df, near_duplicates=False)
    assert (result.labels, result.splits) == (None, {"train": 2, "test": 1})
    assert sorted(result.figures()) == ["lengths", "quality", "splits"]


def toy_labelled(planted: bool = True) -> pd.DataFrame:
    refunds = ["refund my payment please", "I want my money back", "charge refund request",
               "please refund the double charge", "money back for the payment",
               "refund the invoice payment", "I was charged twice refund", "refund my card charge",
               "return my money payment", "payment refund needed", "the charge needs a refund",
               "refund refund money", "give my money back now", "refund for the charge today",
               "card payment refund please"]
    logins = ["I cannot log in to my account", "password reset link broken", "login fails",
              "my password does not work", "account locked after login", "reset my password",
              "cannot sign in to the account", "login page error password",
              "forgot password for login", "account login problem", "two factor login fails",
              "password login account help", "locked account cannot login",
              "my login password expired", "account password reset please"]
    rows = [(t, "billing") for t in refunds] + [(t, "account") for t in logins]
    df = pd.DataFrame(rows, columns=["input", "expected"])
    df.insert(0, "id", [f"t{i}" for i in range(len(df))])
    if planted:
        df.loc[df["input"] == "refund the invoice payment", "expected"] = "account"
    return df


def test_label_issues_finds_a_planted_mislabel():
    df = toy_labelled()
    # rows without text or label cannot be judged and are left out, not refused
    df.loc[len(df)] = {"id": "blank", "input": "  ", "expected": "billing"}
    df.loc[len(df)] = {"id": "unlabelled", "input": "refund please", "expected": None}
    issues = label_issues(df)
    assert len(issues) >= 1
    first = issues.iloc[0]
    assert (first["id"], first["input"], first["given_label"], first["suggested_label"]) == (
        "t5", "refund the invoice payment", "account", "billing")
    assert first["confidence"] > 0.5 and first["label_quality"] < 0.5
    assert list(issues.columns) == ["id", "input", "given_label", "suggested_label",
                                    "confidence", "label_quality"]


def test_label_issues_never_forks(monkeypatch):
    """Forked workers inside a notebook server can hang for good: no process pools here."""
    import multiprocessing.pool
    import os

    def refuse(*args, **kwargs):
        raise AssertionError("label_issues started a process")

    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(multiprocessing.pool.Pool, "__init__", refuse)
    issues = label_issues(toy_labelled())
    assert issues.iloc[0]["id"] == "t5"


def test_label_issues_with_given_probabilities():
    df = pd.DataFrame({"id": list("abcdef"), "input": list("uvwxyz"),
                       "expected": ["x", "x", "x", "y", "y", "y"]})
    probabilities = pd.DataFrame({"x": [0.9, 0.95, 0.05, 0.1, 0.05, 0.1],
                                  "y": [0.1, 0.05, 0.95, 0.9, 0.95, 0.9]})
    issues = label_issues(df, probabilities)
    pd.testing.assert_frame_equal(issues, pd.DataFrame({
        "id": ["c"], "input": ["w"], "given_label": ["x"], "suggested_label": ["y"],
        "confidence": [0.95], "label_quality": [0.05]}), check_dtype=False)
    same = label_issues(df, probabilities.to_numpy())
    pd.testing.assert_frame_equal(issues, same)


def test_label_issues_explains_what_it_cannot_do():
    free = pd.DataFrame({"id": ["1", "2", "3"], "input": ["a", "b", "c"],
                         "expected": ["a long free text answer"] * 2 + [None]})
    free.loc[1, "expected"] = "another quite different long answer that is free text"
    with pytest.raises(DatasetError, match="does not hold labels"):
        label_issues(free)
    rare = toy_labelled(planted=False)
    rare.loc[0, "expected"] = "billling"
    with pytest.raises(DatasetError, match=r"\['billling'\] occur only once"):
        label_issues(rare)


def test_review_items_follow_the_ids_and_skip_rows_no_longer_there():
    df = pd.DataFrame({"id": ["a", "b", "c"], "input": ["one", "two", "three"],
                       "expected": ["x", "y", "z"]})
    assert review_items(df, ["c", "gone", "a"]) == [
        {"id": "c", "input": "three", "label": "z"},
        {"id": "a", "input": "one", "label": "x"}]
    assert review_items(df, []) == []
