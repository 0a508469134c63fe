import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo

    from widgets import ProjectOverview

    # No path: the widget opens WORKBENCH_PROJECT, which the test points at a sample project.
    w = mo.ui.anywidget(ProjectOverview())
    w
    return mo, w


@app.cell
def _(mo, w):
    mo.md(f"Selected phase: {w.value['selected']}")
    return


if __name__ == "__main__":
    app.run()
