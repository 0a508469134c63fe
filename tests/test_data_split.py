"""Splits: stratified, deterministic, near duplicates kept together, leakage checked, lineage."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.data import (
    SplitError,
    check_leakage,
    import_data,
    load,
    load_split,
    split,
    version_leaks,
    versions,
)
from workbench.data.splitting import assign_splits
from workbench.sample import datasets_dir

WORDS = ["apple", "brick", "cloud", "delta", "ember", "fjord", "grove", "harbor", "igloo",
         "jungle", "kettle", "lantern", "meadow", "nectar", "oasis", "pepper", "quartz", "river",
         "saddle", "tundra"]


def labelled(per_class: int = 20) -> pd.DataFrame:
    rows = []
    for label in ("billing", "shipping", "account"):
        for i in range(per_class):
            rows.append({"id": f"{label}-{i}", "input": f"{label} question about {WORDS[i]}",
                         "expected": label})
    return pd.DataFrame(rows)


def test_split_is_stratified_and_recorded(project):
    import_data(project, labelled(), name="t", input="input", expected="expected", id="id")
    stored = split(project, "t", near_duplicate_threshold=None)
    assert (stored.version, stored.value.parent) == (2, 1)
    assert stored.value.splits == {"test": 9, "train": 42, "validation": 9}
    assert stored.value.transform.name == "split"
    per_label = {"account": 3, "billing": 3, "shipping": 3}
    assert stored.value.transform.params == {
        "ratios": [0.7, 0.15, 0.15], "seed": 0, "stratified_by": "expected",
        "near_duplicate_threshold": None, "groups": 60, "rows_in_shared_groups": 0,
        "counts": {"train": 42, "validation": 9, "test": 9},
        "label_counts": {"train": {"account": 14, "billing": 14, "shipping": 14},
                         "validation": per_label, "test": per_label}}
    assert versions(project, "t")["transform"].tolist() == ["import", "split"]
    df = load(project, "t")
    assert check_leakage(df, near_duplicate_threshold=None).empty
    train, val, test = (load_split(project, "t", w) for w in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (42, 9, 9)
    assert set(train["id"]) | set(val["id"]) | set(test["id"]) == set(df["id"])
    assert (val["split"] == "validation").all()


def test_split_is_deterministic_by_seed():
    df = labelled()
    a, _ = assign_splits(df, seed=3, near_duplicate_threshold=None)
    b, _ = assign_splits(df.copy(), seed=3, near_duplicate_threshold=None)
    c, _ = assign_splits(df, seed=4, near_duplicate_threshold=None)
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()
    assert a["split"].value_counts().to_dict() == c["split"].value_counts().to_dict()


def test_exact_and_near_duplicates_stay_in_one_split():
    df = labelled(10)
    copies = pd.DataFrame({
        "id": ["copy-1", "copy-2", "para-a", "para-b"],
        "input": ["BILLING question about  apple", "billing question about apple",
                  "How do I reset my password?", "How can I reset my password?"],
        "expected": ["billing", "billing", "account", "account"]})
    df = pd.concat([df, copies], ignore_index=True)
    for seed in range(5):
        out, info = assign_splits(df, seed=seed, near_duplicate_threshold=0.95)
        where = dict(zip(out["id"], out["split"]))
        assert where["copy-1"] == where["copy-2"] == where["billing-0"]
        assert where["para-a"] == where["para-b"]
        assert info["rows_in_shared_groups"] == 5
        assert check_leakage(out, near_duplicate_threshold=0.95).empty


def test_a_leaky_split_is_caught():
    df = pd.DataFrame({"id": ["a", "b", "c", "d", "e"],
                       "input": ["Where is my parcel?", "where is my  parcel?",
                                 "How do I reset my password?", "How can I reset my password?",
                                 "The app crashes on upload."],
                       "expected": [None] * 5,
                       "split": ["train", "test", "train", "validation", "train"]})
    leaks = check_leakage(df, near_duplicate_threshold=0.95)
    assert leaks.drop(columns="similarity").to_dict("records") == [
        {"id_a": "a", "split_a": "train", "id_b": "b", "split_b": "test", "kind": "exact"},
        {"id_a": "c", "split_a": "train", "id_b": "d", "split_b": "validation", "kind": "near"}]
    assert leaks["similarity"].iloc[0] == 1.0 and leaks["similarity"].iloc[1] >= 0.95
    with pytest.raises(SplitError, match="no split column"):
        check_leakage(df.drop(columns="split"))


def test_version_leaks_checks_a_stored_version(project):
    from workbench.data import save_version

    leaky = pd.DataFrame({"id": ["a", "b", "c"],
                          "input": ["Where is my parcel?", "where is my  parcel?", "Hello"],
                          "expected": ["x", "x", "y"], "split": ["train", "test", "train"]})
    stored = save_version(project, "leaky", leaky, transform="import")
    fixed = save_version(project, "leaky", leaky.assign(split="train"), transform="edit",
                         parent=stored.version)
    assert version_leaks(project, "leaky", stored.version, near_duplicate_threshold=None)[
        ["id_a", "id_b", "kind"]].to_dict("records") == [
            {"id_a": "a", "id_b": "b", "kind": "exact"}]
    assert version_leaks(project, "leaky", near_duplicate_threshold=None).empty  # the latest
    assert fixed.version == stored.version + 1


def test_the_bundled_sample_splits_without_leaks(project):
    import_data(project, datasets_dir() / "support_messages.csv", name="support",
                expected="intent", id="ticket_id", metadata=["channel"])
    stored = split(project, "support")  # defaults: 70/15/15, seed 0, near duplicates at 0.92
    params = stored.value.transform.params
    assert params["stratified_by"] == "expected" and params["rows_in_shared_groups"] > 0
    counts = stored.value.splits
    assert sum(counts.values()) == 414
    assert abs(counts["train"] / 414 - 0.7) < 0.05
    assert check_leakage(load(project, "support")).empty
    assert version_leaks(project, "support", stored.version).empty
    again = split(project, "support", version=1)  # same data, same seed: same rows, no new version
    assert again.version == stored.version


def test_small_classes_and_free_text_are_noted():
    df = labelled(10)
    df.loc[len(df)] = {"id": "rare-1", "input": "a rare question", "expected": "legal"}
    df.loc[len(df)] = {"id": "rare-2", "input": "another rare one", "expected": "legal"}
    _, info = assign_splits(df, near_duplicate_threshold=None)
    assert info["notes"] == ["too few examples to stratify for label(s) legal (2): each needs at "
                             "least 7 to reach every split, so some splits lack them"]
    free = df.assign(expected=[f"a long free-text answer number {i}" for i in range(len(df))])
    out, info = assign_splits(free, near_duplicate_threshold=None)
    assert info["stratified_by"] is None
    assert info["notes"] == ["not stratified: expected holds no labels (empty or free text)"]
    assert out["split"].value_counts().to_dict() == {"train": 22, "validation": 5, "test": 5}


def test_bad_arguments_and_unsplit_versions(project):
    import_data(project, labelled(3), name="t", input="input", expected="expected", id="id")
    with pytest.raises(SplitError, match="add up to 1"):
        split(project, "t", ratios=(0.5, 0.2, 0.2))
    with pytest.raises(SplitError, match="has not been split"):
        load_split(project, "t", "train")
    with pytest.raises(SplitError, match="no split 'holdout'"):
        load_split(project, "t", "holdout")
    stored = split(project, "t", ratios=(0.8, 0.2, 0.0), near_duplicate_threshold=None)
    assert stored.value.splits == {"train": 6, "validation": 3}
    assert load_split(project, "t", "test").empty
