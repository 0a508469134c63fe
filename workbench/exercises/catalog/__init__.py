"""Every exercise, in notebook order: two or three per guided notebook (phases 1-9).

Each phase's exercises live in their own module (``p04_prompts`` ...); a check only reads the
project and never says what the answer is, only what is still missing.
"""

from __future__ import annotations

from workbench.errors import WorkbenchError
from workbench.exercises.catalog import (
    p01_problem,
    p02_data,
    p03_models,
    p04_prompts,
    p05_finetuning,
    p06_evaluation,
    p07_deployment,
    p08_monitoring,
    p09_maintenance,
)
from workbench.exercises.model import Exercise

EXERCISES = (*p01_problem.EXERCISES, *p02_data.EXERCISES, *p03_models.EXERCISES,
             *p04_prompts.EXERCISES, *p05_finetuning.EXERCISES, *p06_evaluation.EXERCISES,
             *p07_deployment.EXERCISES, *p08_monitoring.EXERCISES, *p09_maintenance.EXERCISES)


class UnknownExercise(WorkbenchError):
    """No exercise has that id."""


def exercises(phase: int | None = None) -> list[Exercise]:
    """Every exercise in notebook order (01.1, 01.2, 02.1, ...), or one phase's."""
    return [e for e in EXERCISES if phase is None or e.phase == phase]


def exercise(exercise_id: str) -> Exercise:
    """The exercise with this id (``"04.2"``; ``"4.2"`` is read the same way)."""
    wanted = _normal_id(exercise_id)
    for found in exercises():
        if found.id == wanted:
            return found
    raise UnknownExercise(f"There is no exercise {exercise_id!r}.",
                          "The exercises are " + ", ".join(e.id for e in exercises()) + ".")


def _normal_id(exercise_id: str) -> str:
    text = str(exercise_id).strip()
    phase, dot, number = text.partition(".")
    if dot and phase.isdigit() and number.isdigit():
        return f"{int(phase):02d}.{int(number)}"
    return text
