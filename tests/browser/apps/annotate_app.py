import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo

    from widgets import Annotator

    items = [
        {"id": 1, "input": "I was charged twice this month."},
        {"id": 2, "input": "The app crashes when I open settings."},
        {"id": 3, "input": "Where is my parcel?"},
        {"id": 4, "input": "My invoice shows the wrong amount."},
        {"id": 5, "input": "The parcel arrived damaged."},
    ]
    w = mo.ui.anywidget(Annotator(items, ["billing", "technical", "shipping"]))
    w
    return mo, w


@app.cell
def _(mo, w):
    import json

    # Re-runs only when Python received a change from the browser.
    mo.md(f"Python saw: `{json.dumps(w.value['annotations'], sort_keys=True)}`")
    return


if __name__ == "__main__":
    app.run()
