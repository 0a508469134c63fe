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


def sample_card() -> dict[str, Any]:
    card = tomllib.loads((datasets_dir() / "sample_project" / "workbench.toml").read_text())
    card["workbench"]["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return card

