"""Phase 9 exercises: a production failure as a test the old prompt fails and the new passes,
and a gate that passes with the production cases in the test set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.exercises.catalog._common import finished_runs
from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project


def production_cases(project: Project) -> set[str]:
    """Ids of test cases that came from production (``maintain.add_test_cases``)."""
    from workbench.data.versions import datasets, load_rows
    from workbench.maintain import CASE_PREFIX

    out: set[str] = set()
    for name in datasets(project):
        out |= {str(r.get("id")) for r in load_rows(project, name)
                if str(r.get("id", "")).startswith(CASE_PREFIX)}
    return out


def check_regression_test(project: Project) -> Verdict:
    cases = production_cases(project)
    if not cases:
        return Verdict(False, "No test case has come from production yet: turn a thumbs down "
                              "or a failed request into one.")
    runs = [r for r in finished_runs(project) if r.prompt_version is not None]
    verdicts = {}
    for run in runs:
        if run.item_ids(project) & cases:
            verdicts[run.run_id] = run.passed_items(project)
    ran = [r for r in runs if r.run_id in verdicts]
    if not ran:
        return Verdict(False, f"{len(cases)} production case(s) are in the data, but no run has "
                              "scored them yet.")
    for old in ran:
        for new in ran:
            if new.prompt != old.prompt or (new.prompt_version or 0) <= (old.prompt_version or 0):
                continue
            fixed = [c for c in cases if verdicts[old.run_id].get(c) is False
                     and verdicts[new.run_id].get(c) is True]
            if fixed:
                return Verdict(True, f"'{new.prompt}' v{old.prompt_version} fails case "
                                     f"{fixed[0]}, v{new.prompt_version} passes it: the "
                                     "failure is now a test.")
    if not any(v is False for run in verdicts.values() for c, v in run.items() if c in cases):
        return Verdict(False, "Every run passes the production cases, so none of them catches "
                              "the failure. A test the old prompt passes proves nothing.")
    return Verdict(False, "A run fails a production case; now make a newer version of the same "
                          "prompt that passes it.")


def check_gate(project: Project) -> Verdict:
    from workbench.evaluate.gate import GateResult
    from workbench.runs import load_run

    cases = production_cases(project)
    if not cases:
        return Verdict(False, "Add the production cases to the test data first (exercise 09.1).")
    results = [project.records.get(GateResult, n) for n in project.records.names(GateResult)]
    if not results:
        return Verdict(False, "No gate has been checked yet.")
    with_cases = []
    for stored in results:
        run = load_run(project, stored.value.run_id)
        if set(run.items["item_id"].astype(str)) & cases:
            with_cases.append(stored)
    if not with_cases:
        return Verdict(False, "Gates were checked, but never on a run that includes the "
                              "production cases.")
    passed = [s for s in with_cases if s.value.passed]
    if not passed:
        reasons = with_cases[-1].value.reasons
        return Verdict(False, "The gate fails with the production cases in: "
                              + (reasons[0] if reasons else "see its reasons") + ".")
    return Verdict(True, f"Run {passed[-1].value.run_id} passes the gate with the production "
                         "cases in its test set.")


EXERCISES = (
    Exercise("09.1", 9, "A production failure becomes a test",
             "Turn a production failure (a thumbs down with a correction, or a failed request "
             "you label) into a test case, show that the current prompt fails it, and save a new "
             "version of the prompt that passes it.", check_regression_test, minutes=20,
             uses_model=True),
    Exercise("09.2", 9, "Through the gate",
             "Re-evaluate with the production cases in the test split and get a run through "
             "the CI gate (baseline, card targets).", check_gate, minutes=15, uses_model=True),
)
