"""Phase 5 exercises: an adapter measured before and after, and a decision that says so."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.exercises.catalog._common import RunRow, card_or_none, finished_runs, share
from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project


def _adapters(project: Project) -> list[str]:
    from workbench.finetune.adapters import is_adapter_dir

    if not project.adapters_dir.is_dir():
        return []
    return [p.name for p in sorted(project.adapters_dir.iterdir())
            if not p.name.startswith(".") and is_adapter_dir(p)]


def before_after_pairs(project: Project) -> list[tuple[str, RunRow, RunRow]]:
    """(adapter, base run, adapter run) on the same held-out items."""
    runs = [r for r in finished_runs(project) if r.split != "train"]
    out = []
    for name in _adapters(project):
        tuned = [r for r in runs if r.model.endswith(":" + name)]
        for after in tuned:
            base = after.model.rsplit(":", 1)[0]
            ids = after.item_ids(project)
            for before in runs:
                if (before.model == base and before.prompt == after.prompt
                        and before.item_ids(project) == ids):
                    out.append((name, before, after))
    return out


def check_before_after(project: Project) -> Verdict:
    names = _adapters(project)
    if not names:
        return Verdict(False, "No finished adapter in adapters/ yet: train one first.")
    pairs = before_after_pairs(project)
    if not pairs:
        return Verdict(False, f"Adapter {names[0]} exists, but no run of it and of its base "
                              "model shares the same held-out items with the same prompt.")
    name, before, after = pairs[-1]
    return Verdict(True, f"{name}: accuracy {share(before.accuracy)} before, "
                         f"{share(after.accuracy)} after, on the same "
                         f"{len(after.item_ids(project))} items.")


def check_decision(project: Project) -> Verdict:
    card, problems = card_or_none(project)
    if card is None:
        return Verdict(False, f"The card does not validate yet: {problems[0]}")
    pairs = before_after_pairs(project)
    if not pairs:
        return Verdict(False, "Measure an adapter before and after first (exercise 05.1).")
    names = {name for name, _, _ in pairs}
    decided = [d for d in card.decisions if d.phase == 5
               and any(n in d.decision or n in d.reason for n in names)]
    if not decided:
        return Verdict(False, "The before/after comparison is there, but no phase-5 entry in "
                              "the decision log names the adapter and says whether it ships.")
    return Verdict(True, f"Logged: {decided[-1].decision!r}.")


EXERCISES = (
    Exercise("05.1", 5, "Before and after, on the same items",
             "Train a LoRA adapter on the train split, then run the base model and the adapter "
             "with the same prompt on the same held-out items.",
             check_before_after, minutes=15, uses_model=True),
    Exercise("05.2", 5, "Ship it or not: a decision in the log",
             "Record in the decision log (phase 5) whether the adapter is worth serving, naming "
             "it and citing the before/after figures.", check_decision, minutes=5,
             uses_model=True),
)
