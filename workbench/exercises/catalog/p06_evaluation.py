"""Phase 6 exercises: a judge people can trust, and a baseline blessed on the right split."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project

KAPPA = 0.6
MIN_LABELS = 10
MIN_BASELINE_ITEMS = 20


def check_judge(project: Project) -> Verdict:
    from workbench.evaluate.calibration import JudgeTrust

    stored = [project.records.get(JudgeTrust, name) for name in project.records.names(JudgeTrust)]
    if not stored:
        return Verdict(False, "No judge has been calibrated against people's labels yet.")
    people = [s for s in stored if s.value.labelled_by == "people"]
    if not people:
        return Verdict(False, "The only calibrations used the labels shipped with the example; "
                              "label items yourself, then calibrate.")
    enough = [s for s in people if s.value.n >= MIN_LABELS]
    if not enough:
        return Verdict(False, f"Label at least {MIN_LABELS} items yourself: fewer say too "
                              "little about agreement.")
    good = [s for s in enough if s.value.kappa is not None and s.value.kappa >= KAPPA
            and s.value.trusted]
    if not good:
        best = max(enough, key=lambda s: s.value.kappa if s.value.kappa is not None else -1)
        kappa = "not measurable" if best.value.kappa is None else f"{best.value.kappa:.2f}"
        return Verdict(False, f"The best calibrated judge ({best.name}) agrees with you at "
                              f"kappa {kappa}; {KAPPA} is needed. Read the disagreements: is "
                              "the rubric clear about them, and are your labels consistent?")
    best = max(good, key=lambda s: s.value.kappa)
    return Verdict(True, f"{best.name} agrees with your {best.value.n} labels at kappa "
                         f"{best.value.kappa:.2f}: trusted.")


def check_blessed(project: Project) -> Verdict:
    from workbench.evaluate.baseline_runs import blessed
    from workbench.runs import load_run

    run_id = blessed(project)
    if run_id is None:
        return Verdict(False, "No run is blessed as the baseline yet.")
    run = load_run(project, run_id)
    n = int((run.totals or {}).get("n") or 0)
    if run.split != "test":
        return Verdict(False, f"The blessed run measured the {run.split} split. Which split "
                              "was not used to tune the prompt?")
    if n < MIN_BASELINE_ITEMS:
        return Verdict(False, f"The blessed run has {n} items; a baseline later runs are "
                              f"compared with needs at least {MIN_BASELINE_ITEMS}.")
    return Verdict(True, f"Baseline {run_id}: {n} test items of '{run.prompt}' on {run.model}.")


EXERCISES = (
    Exercise("06.1", 6, "A judge that agrees with you",
             f"Label at least {MIN_LABELS} outputs yourself, then calibrate an LLM judge against "
             f"your labels until it agrees with you at Cohen's kappa ≥ {KAPPA}: change the "
             "rubric, the judge model, or your own inconsistent labels.",
             check_judge, minutes=25, uses_model=True),
    Exercise("06.2", 6, "Bless a baseline worth comparing with",
             f"Bless a finished run of at least {MIN_BASELINE_ITEMS} items as the baseline that "
             "later versions must not fall below, measured on the right split.",
             check_blessed, minutes=10, uses_model=True),
)
