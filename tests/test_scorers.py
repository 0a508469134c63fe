"""Scorers: per-item scores with reasons for people, specs that rebuild them, sklearn metrics."""

from __future__ import annotations

import json
import sys
import subprocess

import pytest

from workbench.evaluate import (
    Score,
    UnknownScorer,
    classification_report,
    contains,
    default_scorers,
    exact_match,
    json_valid,
    normalized_match,
    parsed_ok,
    regex,
    scorer_from_spec,
    scorer_names,
)


def test_reasons_are_sentences_for_people():
    assert exact_match()("billing", "account") == Score(
        0.0, False, "Output 'billing' does not equal expected 'account'")
    assert exact_match()("billing", "billing") == Score(
        1.0, True, "Output 'billing' equals expected 'billing'")
    assert normalized_match()("  Billing. ", "billing") == Score(
        1.0, True, "Output '  Billing. ' matches expected 'billing'")
    assert contains("refund")("We will refund you", None).reason == \
        "Output 'We will refund you' contains 'refund'"
    assert regex(r"\d{4}")("no digits", None).reason == \
        "Output 'no digits' does not match /\\d{4}/"
    assert json_valid()('{"a": 1', None).reason.startswith(
        "Output '{\"a\": 1' is not valid JSON (Expecting")
    assert parsed_ok()("blah", None, parse_ok=False) == Score(
        0.0, False, "Output 'blah' could not be parsed")


def test_matchers_compare_the_parsed_value_first():
    scorer = normalized_match()
    assert scorer("The answer is: Billing", "billing", parsed="Billing", parse_ok=True).passed
    failed = scorer("I am not sure", "billing", parsed=None, parse_ok=False)
    assert failed == Score(0.0, False, "Output 'I am not sure' could not be parsed")
    assert scorer(None, "billing") == Score(0.0, False, "There is no output (the call failed)")
    assert exact_match(field="output")("Billing", "billing", parsed="billing").passed is False
    # structured values compare as data against an expected JSON string
    assert exact_match()('{"b": 2, "a": 1}', '{"a": 1, "b": 2}', parsed={"a": 1, "b": 2},
                         parse_ok=True).passed
    assert exact_match()("x", None).passed is None  # nothing to compare with: no verdict


def test_normalisation_options():
    assert not normalized_match(ignore_case=False)("Billing", "billing").passed
    assert not normalized_match(strip_punctuation=False)("billing.", "billing").passed
    assert normalized_match()("ｂｉｌｌｉｎｇ", "billing").passed  # Unicode compatibility forms


def test_specs_rebuild_the_same_scorer():
    original = normalized_match(ignore_case=False)
    spec = original.spec()
    assert spec == {"name": "normalized_match",
                    "args": {"ignore_case": False, "strip_punctuation": True, "field": "parsed"}}
    rebuilt = scorer_from_spec(json.loads(json.dumps(spec)))
    assert (rebuilt.name, rebuilt.args) == (original.name, original.args)
    assert rebuilt("Billing", "billing") == original("Billing", "billing")
    assert scorer_from_spec("json_valid").spec() == {"name": "json_valid", "args": {}}
    assert {"exact_match", "normalized_match", "contains", "regex", "json_valid",
            "parsed_ok"} <= set(scorer_names())
    with pytest.raises(UnknownScorer, match="Known scorers"):
        scorer_from_spec({"name": "no_such_scorer"})
    with pytest.raises(UnknownScorer, match="cannot take"):
        scorer_from_spec({"name": "regex", "args": {"patern": "x"}})


def test_default_scorers_by_task():
    assert [s.spec() for s in default_scorers("classification")] == [
        {"name": "normalized_match",
         "args": {"ignore_case": True, "strip_punctuation": True, "field": "parsed"}},
        {"name": "parsed_ok", "args": {}}]
    assert [s.name for s in default_scorers(None)] == ["normalized_match", "parsed_ok"]


def test_classification_report_matches_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    expected = ["billing", "billing", "account", "account", "shipping", "shipping", "billing"]
    predicted = ["Billing", "account", "account", None, "shipping", "refunds", "billing"]
    report = classification_report(expected, predicted)
    canonical = ["billing", "account", "account", "(unparsed)", "shipping", "refunds", "billing"]
    labels = ["account", "billing", "shipping"]
    assert report.accuracy == pytest.approx(accuracy_score(expected, canonical)) == 4 / 7
    assert report.macro_f1 == pytest.approx(
        f1_score(expected, canonical, labels=labels, average="macro", zero_division=0))
    assert report.labels == labels
    assert report.per_class.to_dict("records")[1] == {
        "label": "billing", "precision": 1.0, "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8), "support": 3}
    assert report.confusion.to_dict("index") == {
        "account": {"account": 1, "billing": 0, "shipping": 0, "(other)": 0, "(unparsed)": 1},
        "billing": {"account": 1, "billing": 2, "shipping": 0, "(other)": 0, "(unparsed)": 0},
        "shipping": {"account": 0, "billing": 0, "shipping": 1, "(other)": 1, "(unparsed)": 0},
    }
    assert report.as_metrics()["accuracy"] == report.accuracy


def test_importing_evaluate_loads_no_sklearn_or_pandas():
    code = ("import sys, workbench.evaluate; "
            "print(any(m in sys.modules for m in ('sklearn', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
