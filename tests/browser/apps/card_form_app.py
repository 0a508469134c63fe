import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo

    from widgets import CardForm

    # No path: the form opens WORKBENCH_PROJECT, which the test points at a fresh sample project.
    form = mo.ui.anywidget(CardForm())
    form
    return form, mo


@app.cell
def _(form, mo):
    mo.md(f"Saved count: {form.value['saved_count']}")
    return


if __name__ == "__main__":
    app.run()
