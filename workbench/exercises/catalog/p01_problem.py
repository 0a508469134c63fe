"""Phase 1 exercises: success that can be measured, and whether an LLM is needed at all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.exercises.catalog._common import card_or_none
from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project

OPERATIONAL = ("p50_latency", "p95_latency", "cost_per_request")


def _is_quality(name: str) -> bool:
    from workbench.card import MEASURABLE_METRICS, UNITS

    spec = MEASURABLE_METRICS.get(name)
    return (spec is not None and spec.better == "higher"
            and UNITS[spec.canonical_unit][0] == "fraction")


def check_measurable(project: Project) -> Verdict:
    card, problems = card_or_none(project)
    if card is None or problems:
        return Verdict(False, f"The card does not validate yet: {problems[0]}")
    if not card.use_case.description or not card.task_type:
        return Verdict(False, "Describe the use case and pick its task type first: which "
                              "metrics make sense depends on the task.")
    quality = [m for m in card.metrics if _is_quality(m.name)]
    operational = [m for m in card.metrics if m.name in OPERATIONAL]
    if not quality:
        return Verdict(False, "No target says how good the answers must be. Which share of "
                              "answers must be right for the use case to be worth it?")
    if not operational:
        return Verdict(False, f"A target for quality is set ({quality[0].name}), but nothing "
                              "says how fast or how cheap an answer must be; users and budgets "
                              "care about both.")
    trivial = [m for m in quality if m.target_in_canonical_unit() <= 0.0
               or m.target_in_canonical_unit() >= 1.0]
    if trivial:
        return Verdict(False, f"The target for {trivial[0].name} can never fail or never pass; "
                              "pick a bar a real system could miss.")
    return Verdict(True, f"Measurable: {quality[0]} and {operational[0]}; phases 3, 4, 6 and 8 "
                         "will report against them.")


def check_llm_needed(project: Project) -> Verdict:
    from workbench.baseline import latest_baseline

    card, problems = card_or_none(project)
    if card is None:
        return Verdict(False, f"The card does not validate yet: {problems[0]}")
    stored = latest_baseline(project)
    if stored is None:
        return Verdict(False, "No baseline has run yet. Without a cheap non-LLM baseline, "
                              "there is nothing to compare an LLM with.")
    after = stored.created.date()
    decisions = [d for d in card.decisions if d.phase == 1 and d.date >= after]
    if not decisions:
        return Verdict(False, "The baseline ran, but the decision log has no phase-1 entry "
                              "written since then saying what its figures mean for the project.")
    if not any(len(d.reason.split()) >= 6 for d in decisions):
        return Verdict(False, "The decision is logged, but its reason is too short to convince "
                              "someone who was not there; cite what the baseline measured.")
    return Verdict(True, f"Baseline measured and the decision logged: {decisions[-1].decision!r}.")


EXERCISES = (
    Exercise("01.1", 1, "A success metric that can be measured",
             "Write the card so that success can be measured: the use case and its task type, a "
             "**quality** target (a share of answers that must be right) and an **operational** "
             "target (latency or cost per request), each with a bar a real system could miss.",
             check_measurable, minutes=10),
    Exercise("01.2", 1, "Is an LLM needed?",
             "Run the non-LLM baseline on the data, then write a phase-1 entry in the decision "
             "log: go on with an LLM or not, and why, citing what the baseline measured.",
             check_llm_needed, minutes=10),
)
