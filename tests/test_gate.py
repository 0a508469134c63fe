"""The evaluation gate refuses untrusted judges, missed targets and significant regressions."""

import pytest

from workbench.evaluate.calibration import calibrate
from workbench.evaluate.gate import GateResult, check_gate
from workbench.prompts import PromptVersion, save_prompt
from workbench.runs import start_run

LABELS = ["account", "billing"]


@pytest.fixture
def triage_project(sample_project, fake_model):
    import pandas as pd

    from workbench.data import save_version

    rows = [{"id": f"r{i}", "input": f"refund please {i}" if i % 2 else f"password reset {i}",
             "expected": "billing" if i % 2 else "account", "split": "test"} for i in range(20)]
    save_version(sample_project, "tiny", pd.DataFrame(rows), transform="import")
    save_prompt(sample_project, "triage", PromptVersion(template="{{ input }}", labels=LABELS))
    fake_model("gate-good", {"refund": "billing", "password": "account"})
    fake_model("gate-bad", ["billing"])
    return sample_project


def run(project, model):
    return start_run(project, "triage", dataset="tiny", split="test", model=model,
                     progress=False, cache=False).run_id


def test_a_good_run_passes_and_the_result_is_recorded(triage_project):
    gate = check_gate(triage_project, run(triage_project, "fake/gate-good"))
    assert gate.passed, gate.reasons
    assert triage_project.records.count("gate_result") == 1
    assert gate.stored.value == GateResult(run_id=gate.stored.name, passed=True,
                                           reasons=gate.reasons, checks=gate.checks)


def test_a_missed_target_fails_with_the_reason(triage_project):
    gate = check_gate(triage_project, run(triage_project, "fake/gate-bad"))
    assert not gate.passed
    assert any(r.startswith("accuracy misses its target") for r in gate.reasons)


def test_an_untrusted_or_uncalibrated_judge_fails_the_gate(triage_project):
    run_id = run(triage_project, "fake/gate-good")
    gate = check_gate(triage_project, run_id, judges=("support@fake/judge",))
    assert not gate.passed and "not trusted" in gate.reasons[0]
    people = {f"i{i}": i % 2 == 0 for i in range(20)}
    judged = {k: not v for k, v in people.items()}  # always disagrees: kappa -1
    calibrate(triage_project, "support@fake/judge", judged, people)
    assert not check_gate(triage_project, run_id, judges=("support@fake/judge",)).passed
    calibrate(triage_project, "support@fake/judge", people, people)
    assert check_gate(triage_project, run_id, judges=("support@fake/judge",)).passed


def test_a_significant_regression_against_the_blessed_baseline_fails(triage_project):
    from workbench.evaluate.baseline_runs import bless

    triage_project.update_card(lambda c: c["metrics"][0].update(target=0.1))
    bless(triage_project, run(triage_project, "fake/gate-good"))
    gate = check_gate(triage_project, run(triage_project, "fake/gate-bad"))
    assert not gate.passed
    assert any("Significantly worse than the blessed baseline" in r for r in gate.reasons)


def test_the_judges_a_run_was_scored_by_must_be_trusted_and_judge_score_is_measured(
        triage_project, fake_model):
    from workbench.evaluate.judge import llm_judge
    from workbench.evaluate.scorers import exact_match

    fake_model("harsh", lambda messages: '{"score": 1, "reason": "no"}')
    triage_project.update_card(lambda c: c["metrics"].append(
        {"name": "judge_score", "target": 0.8, "direction": ">=", "unit": "fraction"}))
    rubric = {"criteria": ["Names the right team."], "name": "team"}
    run_id = start_run(triage_project, "triage", dataset="tiny", split="test",
                       model="fake/gate-good", progress=False, cache=False,
                       scorers=[exact_match(), llm_judge(rubric, "fake/harsh")]).run_id
    gate = check_gate(triage_project, run_id)  # no judges named: the run's own count
    assert not gate.passed
    assert any("Judge team@fake/harsh is not trusted" in r for r in gate.reasons)
    assert any(r.startswith("judge_score misses its target") for r in gate.reasons)


def test_an_unfinished_run_cannot_pass(triage_project):
    run_id = run(triage_project, "fake/gate-good")
    assert check_gate(triage_project, run_id, record=False).passed
    with triage_project.store.write() as db:
        db.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", (run_id,))
    gate = check_gate(triage_project, run_id, record=False)
    assert not gate.passed and "is interrupted, not finished" in gate.reasons[0]


def test_not_measured_targets_are_named_when_the_gate_passes(triage_project):
    triage_project.update_card(lambda c: c["metrics"].append(
        {"name": "judge_score", "target": 0.8, "direction": ">=", "unit": "fraction"}))
    gate = check_gate(triage_project, run(triage_project, "fake/gate-good"), record=False)
    assert gate.passed and "not measured by this run: judge_score" in gate.reasons[0]


def test_the_blessed_run_is_said_to_be_the_baseline_not_compared_with_itself(triage_project):
    from workbench.evaluate.baseline_runs import bless

    base = run(triage_project, "fake/gate-good")
    before = {c["check"]: c for c in check_gate(triage_project, base, record=False).checks}
    assert before["baseline"]["text"] == "no baseline is blessed"
    bless(triage_project, base)
    after = {c["check"]: c for c in check_gate(triage_project, base, record=False).checks}
    assert after["baseline"] == {"check": "baseline", "status": "pass",
                                 "text": "this run is the blessed baseline for prompt 'triage'"}
