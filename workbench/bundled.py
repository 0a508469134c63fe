"""Where the bundled data lives and the sample project's fixed facts: a leaf module any part of
the kernel may import (``workbench.sample`` builds the sample project from these; it sits above
the kernel, not under it)."""

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
SAMPLE_PROMPT = "triage"  # the classification prompt saved for notebooks after phase 4
PHASE1_TABLES = ("use_case", "metrics", "constraints")  # the card tables phase 1 fills
