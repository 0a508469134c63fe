"""``workbench exercises --solutions DIR``: the solutions as files to hand out after a class.

One Markdown file per exercise (the task, then the solution's code and why it works) and the
runnable ``solutions.py`` beside them. Each file is written atomically; files already in the
folder with other names are left alone.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from workbench.fsutil import atomic_write_text


def solution_markdown(exercise_id: str) -> str:
    from workbench.exercises.catalog import exercise
    from workbench.exercises.solutions import SOLUTIONS

    found = exercise(exercise_id)
    solve = SOLUTIONS[found.id]
    return "\n".join([
        f"# {found.id} · {found.title}", "",
        f"Notebook: `{found.notebook}` (phase {found.phase}), about {found.minutes} minutes.", "",
        "## The task", "", found.task, "",
        "## A solution", "", inspect.getdoc(solve) or "", "",
        "```python", inspect.getsource(solve).rstrip(), "```", "",
        f"Run it on a project: `from workbench.exercises.solutions import {solve.__name__}`, "
        f"then `{solve.__name__}(project)`; check with "
        f"`workbench.exercises.check(project, \"{found.id}\")`.", ""])


def write_solutions(folder: str | os.PathLike) -> list[Path]:
    """Write ``NN.M.md`` for each exercise, ``README.md`` listing them, and ``solutions.py``."""
    from workbench.exercises import solutions as module
    from workbench.exercises.catalog import exercises

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    lines = ["# Solutions to the guided notebooks' exercises", "",
             "Each file holds the task and one way to solve it; `solutions.py` runs them.", ""]
    for found in exercises():
        path = out / f"{found.id}.md"
        atomic_write_text(path, solution_markdown(found.id))
        written.append(path)
        lines.append(f"- [{found.id} · {found.title}]({path.name}) — `{found.notebook}`")
    readme = out / "README.md"
    atomic_write_text(readme, "\n".join(lines) + "\n")
    code = out / "solutions.py"
    atomic_write_text(code, inspect.getsource(module))
    return [readme, *written, code]
