"""Phase 9: production feedback becomes test cases, a new dataset version, a re-evaluation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from workbench.data.splitting import load_split
from workbench.data.versioning import get_version, load
from workbench.evaluate.baseline_runs import bless
from workbench.maintain import (
    MaintenanceError,
    add_test_cases,
    cases_from_failures,
    cases_from_feedback,
    re_evaluate,
)
from workbench.runs import start_run
from workbench.serve import plan_deployment, start_server

KEY = "maintain-test-key-0123"
EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"
NEW = ["Can I pay with bitcoin?", "My parcel is stuck in customs", "I can't log in at all"]
RIGHT = {NEW[0]: "billing", NEW[1]: "shipping", NEW[2]: "account"}


@pytest.fixture
def fed_back(sample_project, fake_model):
    """A deployment of ``fake/learner`` (right on the test split, wrong on three new messages
    users then corrected, and failing on one more), with feedback sent over HTTP."""
    from workbench import sample

    project = sample_project
    sample.fill_prerequisites(project, 7)
    test = load_split(project, "support", "test")
    answers = {str(r["input"]): str(r["expected"]) for r in test.to_dict("records")}
    fixed = {"now": False}

    def learner(messages):
        text = messages[-1]["content"]
        for question, label in answers.items():
            if question in text:
                return label
        if "explode" in text:
            raise ValueError("simulated crash")
        for question, label in RIGHT.items():
            if question in text:
                return label if fixed["now"] else "other"
        return "other"

    fake_model("learner", learner)
    before = start_run(project, "triage", dataset="support", split="test",
                       model="fake/learner", progress=False)
    bless(project, before.run_id)
    plan_deployment(project, "triage", model="fake/learner", run_id=before.run_id, burst=50)
    server = start_server(project, api_keys=[KEY])
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i, text in enumerate(NEW):
            reply = client.post("/v1/predict", json={"input": text}, headers=headers).json()
            client.post("/v1/feedback", headers=headers, json={
                "request_id": reply["request_id"], "rating": "down",
                **({"correction": RIGHT[text]} if i < 2 else {}), "comment": "wrong"})
        known = test.iloc[0]
        reply = client.post("/v1/predict", json={"input": known["input"]},
                            headers=headers).json()
        client.post("/v1/feedback", headers=headers, json={
            "request_id": reply["request_id"], "rating": "down",
            "correction": "technical" if known["expected"] != "technical" else "billing"})
    server.stop()
    return project, fixed, known


def test_thumbs_down_with_a_correction_becomes_a_labelled_case(fed_back):
    project, _, known = fed_back
    cases = cases_from_feedback(project)
    assert len(cases) == 4
    labelled = cases.dropna(subset=["expected"])
    assert dict(zip(labelled["input"], labelled["expected"], strict=True)) == {
        NEW[0]: "billing", NEW[1]: "shipping",
        known["input"]: "technical" if known["expected"] != "technical" else "billing"}
    assert cases[cases["input"] == NEW[2]]["expected"].isna().all()
    assert cases["output"].notna().all() and (cases["comment"].isna() |
                                              (cases["comment"] == "wrong")).all()


def test_cases_become_a_new_version_of_the_test_split(fed_back):
    project, _, known = fed_back
    parent = get_version(project, "support")
    result = add_test_cases(project, "support", cases_from_feedback(project))
    assert len(result.added) == 2 and len(result.unlabelled) == 1
    [conflict] = result.conflicts  # a person must decide which label is wrong
    assert conflict["input"] == known["input"] and conflict["dataset_label"] == known["expected"]
    assert result.version.version == parent.version + 1
    assert result.version.value.parent == parent.version
    assert result.version.value.transform.name == "add_test_cases"
    new = load(project, "support")
    added = new[new["id"].isin(result.added)]
    assert set(added["split"]) == {"test"} and set(added["input"]) == {NEW[0], NEW[1]}
    assert len(new) == parent.value.rows + 2
    assert "2 test cases added" in result.sentence and "conflict" in result.sentence
    again = add_test_cases(project, "support", cases_from_feedback(project))
    assert again.version is None and len(again.duplicates) == 2  # nothing added twice
    with pytest.raises(MaintenanceError, match="no column"):
        add_test_cases(project, "support", pd.DataFrame({"input": ["x"]}))
    with pytest.raises(MaintenanceError, match="has no 'tset' split"):
        add_test_cases(project, "support", cases_from_feedback(project), split="tset")


def test_re_evaluation_scores_the_new_cases_against_the_baseline(fed_back):
    project, fixed, _ = fed_back
    add_test_cases(project, "support", cases_from_feedback(project))
    still_wrong = re_evaluate(project, "triage", "support", model="fake/learner")
    assert list(still_wrong.new_cases["passed"]) == [False, False]
    # The card's targets still hold (55 of 57), but what users reported still fails:
    assert still_wrong.gate.passed and not still_wrong.passed
    assert "fewer than 100% of the production cases pass" in still_wrong.sentence
    fixed["now"] = True  # the model (or prompt) was improved
    better = re_evaluate(project, "triage", "support", model="fake/learner")
    assert list(better.new_cases["passed"]) == [True, True]
    assert better.versus_baseline is not None
    assert "2 of 2 now pass" in better.sentence and better.passed
    assert better.sentence.endswith("Ready to ship.")


def test_failed_requests_are_cases_that_need_a_label(fed_back):
    project = fed_back[0]
    server = start_server(project, api_keys=[KEY])
    try:
        reply = httpx.post(f"{server.url}/v1/predict", json={"input": "please explode"},
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    finally:
        server.stop()
    assert reply.status_code >= 500
    cases = cases_from_failures(project)
    assert "please explode" in list(cases["input"]) and cases["expected"].isna().all()


def test_the_cli_adds_the_cases_and_gates(fed_back):
    project = fed_back[0]
    env = {**os.environ, "WORKBENCH_PROJECT": str(project.path)}
    # The fake lives in this process only: the CLI re-evaluates with fake/echo, which fails.
    out = subprocess.run([EXE, "maintain", "triage", "--dataset", "support", "--model",
                          "fake/echo", "--json"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 3, out.stderr
    body = json.loads(out.stdout)  # --json prints JSON only
    assert len(body["added"]) == 2 and len(body["conflicts"]) == 1 and body["passed"] is False
    assert body["cases_pass_rate"] == 0.0


def test_a_baseline_scoped_re_evaluation_runs_the_baseline_items_and_the_cases(fed_back):
    from workbench.evaluate.baseline_runs import blessed
    from workbench.runs import load_run, resume_run

    project, fixed, _ = fed_back
    add_test_cases(project, "support", cases_from_feedback(project))
    fixed["now"] = True
    quick = re_evaluate(project, "triage", "support", model="fake/learner", scope="baseline")
    baseline_items = set(load_run(project, blessed(project, "triage")).items["item_id"])
    ran = set(quick.run.items["item_id"])
    assert ran == baseline_items | set(quick.new_cases["case_id"]) and len(quick.new_cases) == 2
    assert quick.passed
    assert resume_run(project, quick.run.run_id, progress=False).totals["n"] == len(ran)
    with pytest.raises(MaintenanceError, match="not 'test' or 'baseline'"):
        re_evaluate(project, "triage", "support", model="fake/learner", scope="all")
