"""What an exercise is: a task for people and a check that reads the project."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.project import Project


@dataclass(frozen=True)
class Verdict:
    """A check's answer. ``hint`` says, when it failed, what is still missing (never the
    answer); when it passed, what the project showed."""

    passed: bool
    hint: str


@dataclass(frozen=True)
class Exercise:
    """One exercise of a guided notebook.

    ``task`` is Markdown for people (what to do, and why, without the answer); ``check`` reads
    the project and returns a ``Verdict``; ``minutes`` is what a beginner needs on a laptop
    with the bundled model; ``uses_model`` says whether doing it calls the bundled model."""

    id: str
    phase: int
    title: str
    task: str
    check: Callable[[Project], Verdict] = field(repr=False, compare=False)
    minutes: int = 10
    uses_model: bool = False

    @property
    def notebook(self) -> str:
        from workbench.phases import PHASES

        return next(p.notebook for p in PHASES if p.number == self.phase)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "phase": self.phase, "title": self.title, "task": self.task,
                "minutes": self.minutes, "uses_model": self.uses_model,
                "notebook": self.notebook}
