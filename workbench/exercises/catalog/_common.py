"""Small readers the checks share: runs as plain rows, the card without raising, words."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.card import ProjectCard
    from workbench.project import Project


@dataclass(frozen=True)
class RunRow:
    """A finished run as the checks need it: what ran, on which items, and its figures."""

    run_id: str
    created_at: float
    name: str | None
    prompt: str
    prompt_version: int | None
    model: str
    dataset: str
    dataset_version: int | None
    split: str | None
    metrics: dict[str, Any]
    n: int

    def item_ids(self, project: Project) -> frozenset[str]:
        rows = project.store.db.execute("SELECT item_id FROM run_items WHERE run_id = ?",
                                        (self.run_id,)).fetchall()
        return frozenset(str(r[0]) for r in rows)

    def passed_items(self, project: Project) -> dict[str, bool]:
        """Item id -> whether the run got it right (the primary scorer's verdict)."""
        from workbench.evaluate.stats import item_passed, primary_scorer
        from workbench.runs import load_run

        items = load_run(project, self.run_id).items
        scorer = primary_scorer(items)
        if scorer is None or items.empty:
            return {}
        passed = item_passed(items, scorer)
        return {str(i): bool(p) for i, p in zip(items["item_id"], passed, strict=True)
                if p is not None and p == p}

    @property
    def accuracy(self) -> float | None:
        value = self.metrics.get("accuracy")
        return None if value is None else float(value)


def finished_runs(project: Project, *, split: str | None = None) -> list[RunRow]:
    """Every finished run (of one split), oldest first."""
    sql = "SELECT * FROM runs WHERE status = 'finished'"
    params: tuple = ()
    if split is not None:
        sql += " AND split = ?"
        params = (split,)
    out = []
    for r in project.store.query(sql + " ORDER BY created_at", params):
        totals = json.loads(r["totals"]) if r["totals"] else {}
        out.append(RunRow(r["run_id"], r["created_at"], r["name"], r["prompt"],
                          r["prompt_version"], r["model"], r["dataset"], r["dataset_version"],
                          r["split"], dict(totals.get("metrics") or {}), int(totals.get("n")
                                                                             or 0)))
    return out


def card_or_none(project: Project) -> tuple[ProjectCard | None, list[str]]:
    """The validated card, or None with its problems as sentences."""
    from workbench.card import parse_card

    return parse_card(project.card())


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def share(value: float | None) -> str:
    return "not measured" if value is None or value != value else f"{value:.2f}"
