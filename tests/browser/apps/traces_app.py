import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo

    from widgets import TraceViewer

    # No path: the widget opens WORKBENCH_PROJECT, which the test points at a served project.
    w = mo.ui.anywidget(TraceViewer(page_size=20))
    w
    return mo, w


@app.cell
def _(mo, w):
    mo.md(f"Selected trace: {w.value['selected'] or 'none'}")
    return


if __name__ == "__main__":
    app.run()
