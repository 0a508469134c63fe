"""Phase 4 exercises: one change measured, and a prompt that reaches the card's target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.exercises.catalog._common import card_or_none, finished_runs, share
from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project


def check_one_change(project: Project) -> Verdict:
    from workbench.prompts import diff_prompts

    runs = [r for r in finished_runs(project) if r.prompt_version is not None]
    if not runs:
        return Verdict(False, "No prompt has a finished run yet.")
    items = {r.run_id: r.item_ids(project) for r in runs}
    near = False
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if (a.prompt != b.prompt or a.prompt_version == b.prompt_version
                    or a.model != b.model or items[a.run_id] != items[b.run_id]):
                continue
            near = True
            diff = diff_prompts(project, a.prompt, a.prompt_version, b.prompt_version)
            changed = [f for f in diff.changed_fields if f != "description"]
            if len(changed) == 1:
                return Verdict(True, f"'{a.prompt}' v{a.prompt_version} → v{b.prompt_version} "
                                     f"changes only {changed[0]}: accuracy "
                                     f"{share(a.accuracy)} → {share(b.accuracy)} on the same "
                                     "items.")
    if near:
        return Verdict(False, "Two versions ran on the same items with the same model, but "
                              "they differ in more than one thing, so the score cannot say "
                              "which change mattered.")
    return Verdict(False, "Run two versions of one prompt with the same model on exactly the "
                          "same items; so far no two runs match that way.")


def check_target(project: Project) -> Verdict:
    from workbench.card import compare_to_targets
    from workbench.data.versions import get_version

    card, problems = card_or_none(project)
    if card is None:
        return Verdict(False, f"The card does not validate yet: {problems[0]}")
    quality = [m for m in card.metrics if m.direction == ">=" and m.name not in ("throughput",)]
    if not quality:
        return Verdict(False, "The card sets no quality target to reach (exercise 01.1).")
    runs = finished_runs(project, split="validation")
    whole = []
    for run in runs:
        version = get_version(project, run.dataset, run.dataset_version).value
        if version.splits and run.n >= version.splits.get("validation", 0) > 0:
            whole.append(run)
    if not whole:
        return Verdict(False, "No run covers the whole validation split yet; a handful of items "
                              "says little about a target.")
    best, best_missing = None, None
    for run in whole:
        rows = [r for r in compare_to_targets(card, run.metrics)
                if r["metric"] in {m.name for m in quality}]
        missing = [r for r in rows if r["status"] != "pass"]
        if not missing:
            return Verdict(True, f"'{run.prompt}' v{run.prompt_version} on {run.model} reaches "
                                 "the card's quality targets on the whole validation split: "
                                 + "; ".join(r["text"] for r in rows) + ".")
        if best_missing is None or len(missing) < len(best_missing):
            best, best_missing = run, missing
    return Verdict(False, f"The best whole-split run ('{best.prompt}' "
                          f"v{best.prompt_version} on {best.model}) misses: "
                          + "; ".join(r["text"] for r in best_missing) + ". Techniques, "
                          "examples and the model all move this; the card's bar stays.")


EXERCISES = (
    Exercise("04.1", 4, "One change, measured",
             "Save a new version of a prompt that changes exactly one thing (the system prompt, "
             "the examples, the parameters ...) and run both versions with the same model on "
             "the same items. Read the comparison grid: which items flipped?",
             check_one_change, minutes=15, uses_model=True),
    Exercise("04.2", 4, "Reach the target on the validation split",
             "Find a prompt (technique, examples, model) whose run on the **whole** validation "
             "split reaches the card's quality targets. The bundled 135M model is small: expect "
             "to need several tries, a better model or an adapter from phase 5.",
             check_target, minutes=30, uses_model=True),
)
