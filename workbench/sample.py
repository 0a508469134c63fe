"""The bundled sample project, so a workshop can start at any phase."""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def datasets_dir() -> Path:
    """The bundled sample data: the checkout's datasets/ folder, or the copy inside a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "datasets", here / "_datasets"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("The bundled datasets folder is missing; reinstall the workbench.")


def sample_card_text() -> str:
    return (datasets_dir() / "sample_project" / "workbench.toml").read_text(encoding="utf-8")


def sample_card() -> dict[str, Any]:
    card = tomllib.loads(sample_card_text())
    card["workbench"]["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return card



SAMPLE_DATASET = "support"
# Tickets about the same problem read alike; 0.97 catches re-sent messages without throwing away
# distinct customers who asked the same thing (0.92 would drop a third of this sample).
SAMPLE_NEAR_DUPLICATE_THRESHOLD = 0.97
PHASE1_TABLES = ("use_case", "metrics", "constraints")


def fill_sample_card(project) -> None:
    """Put the sample card's use case, metrics and constraints into ``project``'s card (one click
    in any notebook when phase 1 was skipped). The project's name and model choice stay."""
    sample = sample_card()

    def change(card: dict[str, Any]) -> None:
        for table in PHASE1_TABLES:
            card[table] = sample[table]

    project.update_card(change)


def import_sample_data(project, name: str = SAMPLE_DATASET):
    """Import the bundled support messages as dataset ``name`` (phase 2's first step)."""
    from workbench.data import import_data

    return import_data(project, datasets_dir() / "support_messages.csv", name=name,
                       input="text", expected="intent", id="ticket_id", metadata=["channel"])


def prepare_sample_data(project, name: str = SAMPLE_DATASET):
    """Phase 2 in one call on the bundled data: import, clean, redact PII, split 70/15/15.

    For a workshop that starts after phase 2, and for the tour. Each step is its own dataset
    version, exactly as the phase 2 notebook makes them."""
    from workbench.data import clean, split
    from workbench.data.clean import (
        drop_empty,
        drop_exact_duplicates,
        drop_near_duplicates,
        normalize_unicode,
        normalize_whitespace,
    )
    from workbench.pii import redact_dataset

    import_sample_data(project, name)
    clean(project, name, [normalize_unicode(), normalize_whitespace(), drop_empty(),
                          drop_exact_duplicates(),
                          drop_near_duplicates(SAMPLE_NEAR_DUPLICATE_THRESHOLD)])
    redact_dataset(project, name)
    return split(project, name, near_duplicate_threshold=SAMPLE_NEAR_DUPLICATE_THRESHOLD)


SAMPLE_PROMPT = "triage"


def save_sample_prompt(project, name: str = SAMPLE_PROMPT):
    """Save the sample classification prompt (a role in the system prompt, the labels of the
    split dataset) as prompt ``name``, for notebooks that start after phase 4."""
    from workbench.data.versions import find_split
    from workbench.prompts import save_prompt, starter_prompts

    split = find_split(project, prefer=SAMPLE_DATASET)
    labels = (split.value.labels if split else None) or \
        ["account", "billing", "other", "shipping", "technical"]
    return save_prompt(project, name, starter_prompts(labels)["role_system"])


def missing_prerequisites(project, phase: int) -> list[str]:
    """What a notebook of ``phase`` needs from earlier phases and the project lacks:
    "card" (phase 1), "data" (a split dataset, phase 2), "prompt" (phase 4)."""
    from workbench.data.versions import find_split

    missing = []
    if phase > 1 and not project.card().get("use_case"):
        missing.append("card")
    if phase > 2 and find_split(project, prefer=SAMPLE_DATASET) is None:
        missing.append("data")
    if phase in (3, 5, 6, 7, 8, 9) and not project.records.count("prompt"):
        missing.append("prompt")
    return missing


def fill_prerequisites(project, phase: int) -> list[str]:
    """Fill what ``missing_prerequisites`` reports from the sample project; returns what it did."""
    done = []
    for need in missing_prerequisites(project, phase):
        if need == "card":
            fill_sample_card(project)
            done.append("the sample project card")
        elif need == "data":
            prepare_sample_data(project)
            done.append("the sample data, cleaned, redacted and split")
        elif need == "prompt":
            save_sample_prompt(project)
            done.append(f"the sample prompt '{SAMPLE_PROMPT}'")
    return done
