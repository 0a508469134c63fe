"""Every exercise, in notebook order: two or three per guided notebook (phases 1-9).

Each phase's exercises live in their own module (``p04_prompts`` ...); a check only reads the
project and never says what the answer is, only what is still missing.
"""

from __future__ import annotations

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

EXERCISES = (*p01_problem.EXERCISES, *p02_data.EXERCISES, *p03_models.EXERCISES,
             *p04_prompts.EXERCISES, *p05_finetuning.EXERCISES, *p06_evaluation.EXERCISES,
             *p07_deployment.EXERCISES, *p08_monitoring.EXERCISES, *p09_maintenance.EXERCISES)
