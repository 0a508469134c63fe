"""Phase 3 exercises: a fair comparison of models, and a choice that fits the card."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.exercises.catalog._common import RunRow, card_or_none, finished_runs
from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project

MIN_ITEMS = 5


def fair_pairs(project: Project) -> list[tuple[RunRow, RunRow]]:
    """Pairs of finished runs of different models on the same items (at least ``MIN_ITEMS``)."""
    runs = [r for r in finished_runs(project) if r.n >= MIN_ITEMS]
    items = {r.run_id: r.item_ids(project) for r in runs}
    return [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]
            if a.model != b.model and items[a.run_id] == items[b.run_id]]


def check_compare(project: Project) -> Verdict:
    card, problems = card_or_none(project)
    if card is None:
        return Verdict(False, f"The card does not validate yet: {problems[0]}")
    runs = finished_runs(project)
    if len({r.model for r in runs}) < 2:
        return Verdict(False, "Run at least two different models first: one run is a "
                              "measurement, not a comparison.")
    pairs = fair_pairs(project)
    if not pairs:
        return Verdict(False, "Two models ran, but never on exactly the same items (at least "
                              f"{MIN_ITEMS}); a comparison on different items compares the items.")
    chosen = card.model.chosen
    compared = {m for pair in pairs for m in (pair[0].model, pair[1].model)}
    if chosen not in compared:
        return Verdict(False, "The comparison is fair; now choose one of the models you "
                              "compared and record the choice in the card.")
    if len(card.model.reason.split()) < 4:
        return Verdict(False, f"{chosen} is chosen, but the reason is too short to help the "
                              "next person; say what the comparison showed.")
    return Verdict(True, f"{chosen} chosen after comparing {len(compared)} models on the same "
                         "items.")


def check_fits_card(project: Project) -> Verdict:
    from workbench.card import compare_to_targets

    card, problems = card_or_none(project)
    if card is None:
        return Verdict(False, f"The card does not validate yet: {problems[0]}")
    chosen = card.model.chosen
    if not chosen:
        return Verdict(False, "No model is chosen in the card yet.")
    operational = [m for m in card.metrics if m.name in ("p50_latency", "p95_latency",
                                                        "cost_per_request")]
    if not operational:
        return Verdict(False, "The card sets no latency or cost target to check the choice "
                              "against (exercise 01.1).")
    runs = [r for r in finished_runs(project) if r.model == chosen and r.n >= MIN_ITEMS]
    if not runs:
        return Verdict(False, f"{chosen} has no finished run of at least {MIN_ITEMS} items: "
                              "its latency and cost are not measured.")
    rows = compare_to_targets(card, runs[-1].metrics)
    failing = [r["metric"] for r in rows
               if r["metric"] in {m.name for m in operational} and r["status"] != "pass"]
    if failing:
        return Verdict(False, f"The latest run of {chosen} misses the card on "
                              f"{', '.join(failing)}. A smaller model, shorter prompts or "
                              "fewer output tokens change that; so does another choice.")
    return Verdict(True, f"{chosen} meets the card's "
                         f"{', '.join(m.name for m in operational)} targets.")


EXERCISES = (
    Exercise("03.1", 3, "A fair comparison",
             "Run at least two models on exactly the same items (five or more), then choose "
             "one in the card with a reason that cites what the runs showed.",
             check_compare, minutes=15, uses_model=True),
    Exercise("03.2", 3, "A choice the card can live with",
             "Make sure the model you chose meets the card's latency and cost targets in its "
             "latest run. When it does not, change the setup or the choice, not the card.",
             check_fits_card, minutes=10, uses_model=True),
)
