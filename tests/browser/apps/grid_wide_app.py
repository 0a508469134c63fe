import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import tempfile
    from pathlib import Path

    import marimo as mo

    import widgets

    # The layout tests' data, shared with the JupyterLab side (exec'd there in a kernel).
    _apps = Path(widgets.__file__).resolve().parents[1] / "tests" / "browser" / "apps"
    data = {}
    for _name in ("grid_wide.py", "diff_prompts.py"):
        exec((_apps / _name).read_text(), data)
    grid = mo.ui.anywidget(data["wide_grid"])
    grid
    return data, mo, tempfile


@app.cell
def _(data, mo, tempfile):
    mo.Html(data["prompt_diff"](tempfile.mkdtemp() + "/diff-project").html)
    return


if __name__ == "__main__":
    app.run()
