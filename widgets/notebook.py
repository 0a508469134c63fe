"""The few cells every guided marimo notebook shares, written once.

Opening the project (``WORKBENCH_PROJECT``, or one click to make the sample project), filling
missing earlier phases from the sample, errors as callouts, and the "what next" footer. The
logic lives in the kernel (``workbench.sample``, ``workbench.phases``); these only draw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import marimo as mo

import workbench as wb
from workbench import sample
from workbench.phases import next_step, phase_status


def running_as_script() -> bool:
    """Run as a script (the tour, CI), the steps behind buttons run without a click."""
    return mo.app_meta().mode == "script"


def callout(exc: Exception, kind: str = "danger") -> Any:
    """An error as a callout: what went wrong and how to fix it."""
    text = exc._repr_markdown_() if hasattr(exc, "_repr_markdown_") else str(exc)
    return mo.callout(mo.md(text), kind=kind)


class caught:  # noqa: N801 - used as a statement: ``with nb.caught() as _problem:``
    """Run kernel calls; a ``WorkbenchError`` raised in the block ends it and is kept, so the
    cell shows a callout saying what went wrong and how to fix it instead of a traceback::

        with nb.caught() as _problem:
            comparison = compare.compare_models(...)
        _problem.stop()            # shows the callout and stops the cell if it failed

    or, for a cell that shows something either way, ``_problem.view if _problem else view``.
    Other exceptions pass through: they are bugs, and their traceback is what to report."""

    def __init__(self, kind: str = "danger"):
        self.kind = kind
        self.error: wb.WorkbenchError | None = None

    def __enter__(self) -> caught:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, wb.WorkbenchError):
            self.error = exc
            return True
        return False

    def __bool__(self) -> bool:
        """True when the block failed."""
        return self.error is not None

    @property
    def view(self) -> Any:
        """The error's callout, or None when the block ran through."""
        return None if self.error is None else callout(self.error, self.kind)

    def stop(self) -> None:
        """Stop the cell here, showing the error's callout, when the block failed."""
        mo.stop(self.error is not None, self.view)


def project_chooser() -> tuple[Any, Any]:
    """The folder field and the button that make the sample project when none is open."""
    folder = mo.ui.text(value=str(Path.cwd() / "my-workbench-project"), full_width=True,
                        label="Folder for a new sample project")
    create = mo.ui.run_button(label="Create the sample project there")
    return folder, create


def open_project(folder: Any, create: Any) -> tuple[wb.Project | None, Any]:
    """The open project (or None) and what to show: the project, or how to get one."""
    try:
        project = (wb.init_project(folder.value, sample=True) if create.value
                   else wb.open_project())
    except wb.WorkbenchError as exc:
        return None, mo.vstack([callout(exc, "warn"),
                                mo.md("No project yet? Make the sample one with one click; it "
                                      "holds a ready project card, so you can start at any "
                                      "phase."), folder, create])
    return project, mo.callout(mo.md(f"Project **{project.name}** is open: `{project.path}`"),
                               kind="success")


def fill_button() -> Any:
    """The button that fills missing earlier phases from the sample. ``fill_prerequisites``
    shows it, with what is missing, in the next cell, so the warning goes once filled."""
    return mo.ui.run_button(label="Fill what is missing from the sample project")


def fill_prerequisites(project: wb.Project, phase: int, fill: Any) -> bool:
    """Fill from the sample when asked (or headless); True when the phase can run. The cell
    shows what is missing with the button until then, and what was filled afterwards."""
    missing = sample.missing_prerequisites(project, phase)
    if missing and (fill.value or running_as_script()):
        with mo.status.spinner("Filling from the sample project ..."):
            filled = sample.fill_prerequisites(project, phase)
        missing = sample.missing_prerequisites(project, phase)
        if not missing:
            mo.output.replace(mo.callout(mo.md(
                "Filled from the sample project: " + "; ".join(filled) + "."), kind="success"))
    if missing:
        needs = {"card": "the project card (phase 1)", "data": "a split dataset (phase 2)",
                 "prompt": "a saved prompt (phase 4)", "deployment": "a deployment (phase 7)",
                 "feedback": "feedback from traffic (phase 8)"}
        mo.output.replace(mo.vstack([mo.callout(mo.md(
            "This phase needs " + ", ".join(needs.get(m, m) for m in missing)
            + " from earlier phases."), kind="warn"), fill]))
    return not missing


def what_next(project: wb.Project) -> Any:
    """The footer: the next phase on the learning path whose notebook exists."""
    phases = phase_status(project)
    step = next_step(phases)
    if step is None:
        later = [p for p in phases if p["state"] != "done" and not p["available"]]
        if later:
            return mo.md("## What next\n\nEvery phase with a notebook holds results; "
                         + ", ".join(f"phase {p['number']} ({p['title']})" for p in later)
                         + " comes later.")
        return mo.md("## What next\n\nEvery phase holds results.")
    return mo.md(f"## What next\n\nOpen **{step['notebook']}** — phase {step['number']}, "
                 f"*{step['title']}*: {step['purpose']}")


def usable_models() -> list[str]:
    """Model ids that can be called here (the bundled and fake ones, hosted ones with a key)."""
    from workbench import llm

    return [m.id for m in llm.models(prices=False) if m.usable]


def model_dropdown(project: wb.Project, usable: list[str], label: str = "Model") -> Any:
    """A model picker set to the project's chosen model when usable, else the bundled one."""
    from workbench import llm
    from workbench.llm.gateway import default_model

    chosen = default_model(project)
    return mo.ui.dropdown(usable, value=chosen if chosen in usable else llm.BUNDLED_MODEL,
                          label=label)


def test_items_slider(dataset: Any, *, script: int = 6, at_most: int = 20) -> Any:
    """How many test-split items to run: few when headless, up to ``at_most`` interactively."""
    available = dataset.value.splits.get("test", 4)
    return mo.ui.slider(4, available, step=2,
                        value=min(script, available) if running_as_script()
                        else min(at_most, available),
                        label="test items", show_value=True)


def prompt_version_dropdown(project: wb.Project, prefer: str | None = None,
                            label: str = "Prompt version") -> Any:
    """One picker over every version of every prompt in the project, each shown with its tags
    and technique, set to ``workbench.prompts.defaults.default_version`` of the project's
    ``default_prompt`` (the deployed one, else ``prefer`` when the project has it, else the
    newest). Its value is ``(prompt name, version)``."""
    from workbench.prompts.defaults import default_prompt, default_version
    from workbench.prompts.versions import list_prompts, prompt_versions

    names = list_prompts(project)
    if not names:
        return mo.ui.dropdown({"no prompt saved yet": None}, label=label)
    options, default = {}, None
    main = default_prompt(project, prefer) or names[0]
    main_version, why = default_version(project, main)
    for name in names:
        for row in prompt_versions(project, name).itertuples():
            notes = [", ".join(row.tags)] if row.tags else []
            if row.technique:
                notes.append(str(row.technique))
            if name == main and row.version == main_version and why not in notes[:1]:
                notes.insert(0, why)
            text = f"{name} v{row.version}" + (f" ({'; '.join(notes)})" if notes else "")
            options[text] = (name, int(row.version))
            if name == main and row.version == main_version:
                default = text
    return mo.ui.dropdown(options, value=default, label=label)


def progress_callback(bar: Any, *, follow_total: bool = False):
    """A ``progress=`` callback for runs (``callback(done, total)``) that moves a marimo
    ``mo.status.progress_bar`` by the items each call reports, so people see items done, the
    rate and the time left; several runs in a row (repeats) share one bar. ``follow_total``:
    one run whose size is known only once it starts sets the bar's total to its own."""
    last = {"done": 0}

    def update(done: int, total: int) -> None:
        if follow_total and total and getattr(bar, "total", None) != total:
            bar.total = total
        step = done - last["done"] if done >= last["done"] else done  # a new run starts at 0
        last["done"] = done
        if step > 0:
            bar.update(increment=step)

    return update


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,234 rows``; ``many`` for irregular plurals."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def table(rows: Any, **kwargs: Any) -> Any:
    """``mo.ui.table`` of a frame (or a list of dicts) formatted for people: numbers to three
    significant digits, missing values as "—", dicts and lists as text, no index column
    (``workbench.evaluate.report.for_people``); a named index (``metric``, ``type``) stays as
    a column, pandas' row numbers go. Read-only unless ``selection`` is passed."""
    import pandas as pd

    from workbench.evaluate.report import for_people

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if any(n is not None for n in frame.index.names):  # a named index is data: keep it
        frame = frame.reset_index()
    kwargs.setdefault("selection", None)
    return mo.ui.table(for_people(frame), **kwargs)


def waiting_for(what: str) -> Any:
    """What a section shows until the step it needs has run (instead of its buttons)."""
    return mo.callout(mo.md(f"Waiting for {what}."), kind="neutral")


def exercises_panel(project: wb.Project, phase: int) -> tuple[Any, Any, Any]:
    """The phase's exercises (task and state of each), a picker and a Check button; the next
    cell shows the verdict with ``exercise_result``."""
    from workbench import exercises as ex

    found = ex.exercises(phase)
    states = {row["id"]: row for row in ex.status(project, phase)}
    marks = {"passed": "✅ passed", "tried": "… tried", "not tried": "not tried yet"}
    tasks = "\n\n".join(f"**{e.id} · {e.title}** ({marks[states[e.id]['state']]}, about "
                        f"{e.minutes} min) — {e.task}" for e in found)
    options = {f"{e.id} · {e.title}": e.id for e in found}
    picker = mo.ui.dropdown(options, value=next(iter(options)), label="Exercise")
    button = mo.ui.run_button(label="Check")
    view = mo.vstack([mo.md("## Exercises\n\nEach check reads your project and says what is "
                            "still missing, never the answer; every try is kept in the "
                            "project.\n\n" + tasks), mo.hstack([picker, button], justify="start")])
    return view, picker, button


def exercise_result(project: wb.Project, picker: Any, button: Any) -> Any:
    """Check the picked exercise when the button was pressed (headless: checked without
    recording, so a tour leaves no attempts behind)."""
    from workbench import exercises as ex

    if not (button.value or running_as_script()):
        return mo.md("Pick an exercise and press **Check**.")
    result = ex.check(project, picker.value, record=not running_as_script())
    return mo.callout(mo.md(result._repr_markdown_()),
                      kind="success" if result.passed else "warn")
