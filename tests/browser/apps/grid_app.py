import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo
    import pandas as pd

    from widgets import ComparisonGrid
    from workbench.prompt_grid import grid_from_frames

    def run(outputs, expected=("billing", "technical", "account")):
        return pd.DataFrame([
            {"item_id": f"T{i}", "input": f"message {i}", "expected": e, "output": o,
             "parsed": o, "parse_ok": True, "error": None,
             "scores": {"normalized_match": {"value": float(o == e), "passed": o == e}}}
            for i, (o, e) in enumerate(zip(outputs, expected))])

    # T1 is fixed in v2 and T2 broken: two flipped rows of three.
    data = grid_from_frames({"v1": run(["billing", "billing", "account"]),
                             "v2": run(["billing", "technical", "billing"])})
    grid = mo.ui.anywidget(ComparisonGrid(grid=data))
    grid
    return grid, mo


@app.cell
def _(grid, mo):
    mo.md(f"Only flipped: {grid.value['only_flipped']}, rows: {len(grid.value['rows'])}")
    return


if __name__ == "__main__":
    app.run()
