import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import workbench as wb
    from widgets import notebook as nb

    # The exercise cells every guided notebook ends with, on WORKBENCH_PROJECT (phase 1).
    project = wb.open_project()
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 1)
    exercise_view
    return exercise_check, exercise_pick, nb, project


@app.cell
def _(exercise_check, exercise_pick, nb, project):
    nb.exercise_result(project, exercise_pick, exercise_check)
    return


if __name__ == "__main__":
    app.run()
