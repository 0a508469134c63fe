"""Cleaning steps, their report, and the one version a clean makes (lineage and diff)."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.data import (
    CleaningError,
    apply_steps,
    clean,
    diff,
    drop_empty,
    drop_exact_duplicates,
    drop_near_duplicates,
    filter_length,
    import_data,
    load,
    normalize_unicode,
    normalize_whitespace,
    step_from_dict,
    versions,
)


def dirty() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f", "g"],
        "input": ["  Hello\tthere\u00a0 friend  ", "ＦＵＬＬ width ﬁle\u200b", "", "ok",
                  "Hello there friend", "My order hasn't arrived yet.",
                  "My order has not arrived yet."],
        "expected": ["greet ", "other", "other", "other", "greet", "shipping", "shipping"],
    })


def test_each_step_on_its_own():
    df = dirty()
    text = normalize_whitespace().apply(df)["input"].tolist()
    assert text[0] == "Hello there friend"
    assert normalize_whitespace().apply(df)["expected"].tolist()[0] == "greet"
    lines = pd.DataFrame({"id": ["x"], "input": ["a \r\n  b\n\n\n\nc  "], "expected": [None]})
    assert normalize_whitespace().apply(lines)["input"].tolist() == ["a\nb\n\nc"]
    assert normalize_whitespace(keep_newlines=False).apply(lines)["input"].tolist() == ["a b c"]
    assert normalize_unicode().apply(df)["input"].tolist()[1] == "FULL width file"
    assert drop_empty().apply(df)["id"].tolist() == ["a", "b", "d", "e", "f", "g"]
    assert filter_length(3, 20).apply(df)["id"].tolist() == ["b", "e"]
    assert filter_length(max_chars=2).apply(df)["id"].tolist() == ["c", "d"]
    with pytest.raises(CleaningError, match="no column 'answer'"):
        filter_length(5, column="answer").apply(df)
    twice = pd.concat([df, df.assign(id=df["id"] + "2")], ignore_index=True)
    assert drop_exact_duplicates().apply(twice)["id"].tolist() == list("abcdefg")
    # spacing does not change the embedding much: e repeats a; g paraphrases f
    assert drop_near_duplicates(0.95).apply(twice)["id"].tolist() == list("abcdf")


def test_apply_steps_reports_every_step():
    steps = [normalize_unicode(), normalize_whitespace(), drop_empty(),
             drop_exact_duplicates(), drop_near_duplicates(0.95), filter_length(min_chars=3)]
    cleaned, report = apply_steps(dirty(), steps)
    pd.testing.assert_frame_equal(cleaned, pd.DataFrame({
        "id": ["a", "b", "f"],
        "input": ["Hello there friend", "FULL width file", "My order hasn't arrived yet."],
        "expected": ["greet", "other", "shipping"]}), check_dtype=False)
    assert report.to_dict("records") == [
        {"step": "normalize_unicode", "params": {"form": "NFKC", "columns": ["input", "expected"],
                                                 "strip_invisible": True},
         "rows_in": 7, "rows_out": 7, "changed": 2, "dropped": 0},
        {"step": "normalize_whitespace", "params": {"columns": ["input", "expected"],
                                                    "keep_newlines": True},
         "rows_in": 7, "rows_out": 7, "changed": 1, "dropped": 0},
        {"step": "drop_empty", "params": {"columns": ["input"]},
         "rows_in": 7, "rows_out": 6, "changed": 0, "dropped": 1},
        {"step": "drop_exact_duplicates", "params": {"on": ["input"]},
         "rows_in": 6, "rows_out": 5, "changed": 0, "dropped": 1},
        {"step": "drop_near_duplicates", "params": {"threshold": 0.95},
         "rows_in": 5, "rows_out": 4, "changed": 0, "dropped": 1},
        {"step": "filter_length", "params": {"min_chars": 3, "max_chars": None,
                                             "column": "input"},
         "rows_in": 4, "rows_out": 3, "changed": 0, "dropped": 1},
    ]


def test_steps_rebuild_from_their_record():
    steps = [normalize_whitespace(keep_newlines=False), filter_length(2, 50),
             drop_near_duplicates(0.9)]
    rebuilt = [step_from_dict(s.as_dict()) for s in steps]
    assert rebuilt == steps
    assert step_from_dict("drop_empty") == drop_empty()
    assert str(filter_length(2, 50)) == "filter_length(min_chars=2, max_chars=50, column='input')"
    with pytest.raises(CleaningError, match="Known steps"):
        step_from_dict("drop_everything")
    with pytest.raises(CleaningError, match="bad parameters"):
        step_from_dict({"step": "filter_length", "longest": 3})
    with pytest.raises(CleaningError, match="needs min_chars, max_chars or both"):
        filter_length()
    with pytest.raises(CleaningError, match="larger than max_chars"):
        filter_length(10, 5)


def test_clean_saves_one_version_with_lineage_and_diff(project):
    import_data(project, dirty(), name="tickets", input="input", expected="expected", id="id")
    stored = clean(project, "tickets", [normalize_whitespace(), drop_empty(),
                                        {"step": "drop_exact_duplicates"}])
    assert (stored.version, stored.value.parent, stored.value.rows) == (2, 1, 5)
    assert stored.value.transform.name == "clean"
    assert stored.value.transform.params == {
        "steps": [
            {"step": "normalize_whitespace", "params": {"columns": ["input", "expected"],
                                                        "keep_newlines": True},
             "changed": 1, "dropped": 0},
            {"step": "drop_empty", "params": {"columns": ["input"]}, "changed": 0, "dropped": 1},
            {"step": "drop_exact_duplicates", "params": {"on": ["input"]}, "changed": 0,
             "dropped": 1}],
        "rows_before": 7, "rows_after": 5}
    lineage = versions(project, "tickets")
    assert lineage[["version", "rows", "transform"]].to_dict("records") == [
        {"version": 1, "rows": 7, "transform": "import"},
        {"version": 2, "rows": 5, "transform": "clean"}]
    changes = diff(project, "tickets", 1, 2)
    changes = changes.astype(object).where(changes.notna(), None)
    assert changes.to_dict("records") == [
        {"change": "removed", "id": "c", "column": None, "before": "", "after": None},
        {"change": "removed", "id": "e", "column": None, "before": "Hello there friend",
         "after": None},
        {"change": "changed", "id": "a", "column": "expected", "before": "greet ",
         "after": "greet"},
        {"change": "changed", "id": "a", "column": "input",
         "before": "  Hello\tthere\u00a0 friend  ", "after": "Hello there friend"}]
    assert load(project, "tickets", 1)["input"].tolist()[0] == "  Hello\tthere\u00a0 friend  "

    again = clean(project, "tickets", [drop_empty()])  # nothing to do: no new version
    assert again.version == 2


def test_a_clean_that_would_drop_everything_is_refused(project):
    import_data(project, dirty(), name="t", input="input", id="id")
    with pytest.raises(CleaningError) as err:
        clean(project, "t", [filter_length(min_chars=500)])
    assert err.value.message == ("These steps would drop all 7 rows of t v1 (filter_length "
                                 "dropped 7).")
    assert versions(project, "t")["version"].tolist() == [1]
    with pytest.raises(CleaningError, match="No cleaning steps"):
        clean(project, "t", [])
