# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""The instructor's view: how a class is doing, from copies of the students' project folders."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Instructor's view")

with app.setup:
    import os
    from pathlib import Path

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import callout, running_as_script

    import workbench as wb
    from workbench.classview import read_class


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Instructor's view

    Collect each student's project folder (a USB stick, a shared drive, a zip per laptop) into
    **one folder**, one sub-folder per student, and point this notebook at it. It reads them
    **read-only**: nothing in the copies changes, not even a journal file. You see the phases
    each student has done, the exercises they passed or tried, their best scores against their
    card's targets and when they last did something. Folders that are broken or come from
    another workbench version are listed, not fatal.
    """)
    return


@app.cell(hide_code=True)
def _():
    class_folder = mo.ui.text(value=os.environ.get("WORKBENCH_CLASS", str(Path.cwd() / "class")),
                              full_width=True, label="Folder with the students' projects")
    read_now = mo.ui.run_button(label="Read the class")
    mo.vstack([class_folder, read_now])
    return class_folder, read_now


@app.cell(hide_code=True)
def _(class_folder, read_now):
    mo.stop(not (read_now.value or running_as_script()),
            mo.md("Press **Read the class** (again after copying newer folders)."))
    try:
        view = read_class(class_folder.value)
        shown = mo.vstack([
            mo.md(f"**{len(view.students)} folders** read in {view.seconds:.1f} s."),
            nb.table(view.table().drop(columns=["schema"])),
        ])
    except wb.WorkbenchError as exc:
        view, shown = None, callout(exc, "warn")
    shown
    return (view,)


@app.cell(hide_code=True)
def _(view):
    mo.stop(view is None)
    mo.vstack([mo.vstack([mo.md(f"## {title}"), mo.ui.plotly(figure)])
               for title, figure in view.figures().items()])
    return


@app.cell(hide_code=True)
def _(view):
    mo.stop(view is None)
    flagged = view.students[view.students["state"] != "ok"][["student", "state", "problem"]]
    mo.vstack([mo.md("## Folders to look at"),
               nb.table(flagged) if len(flagged) else mo.md("None: every folder read cleanly.")])
    return


@app.cell(hide_code=True)
def _(view):
    mo.stop(view is None)
    summary_path = mo.ui.text(value=str(Path.cwd() / "class-summary.html"), full_width=True,
                              label="Offline summary (one HTML file, opens without a network)")
    write_now = mo.ui.run_button(label="Write the summary")
    mo.vstack([summary_path, write_now])
    return summary_path, write_now


@app.cell(hide_code=True)
def _(summary_path, view, write_now):
    mo.stop(not write_now.value)
    written = view.write_html(summary_path.value)
    mo.callout(mo.md(f"Written: `{written}`"), kind="success")
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Tip: the same from a terminal": mo.md(
            "`workbench class FOLDER --out class.html` prints the table and writes the page; "
            "`workbench exercises --solutions DIR` writes the exercises' solutions to hand out "
            "after the class."),
        "Common mistake: copying a project while a notebook writes to it": mo.md(
            "The copy may hold recent work only in `workbench.db-wal`. Copy that file too: the "
            "view reads it (from a temporary copy, never in place)."),
    })
    return


if __name__ == "__main__":
    app.run()
