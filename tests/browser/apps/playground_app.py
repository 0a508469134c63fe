import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo

    from widgets import Playground
    from workbench.llm.fake import register_fake

    # The fake models live in this process; the test saved prompt "triage" v1 (on fake/pg-billing)
    # and a split dataset "tiny" in the WORKBENCH_PROJECT it points at.
    labels = ["billing", "technical", "account"]
    register_fake("pg-billing", ["billing"])
    register_fake("pg-reader",
                  lambda m: next((lb for lb in labels if lb in m[-1]["content"]), "unsure"))
    pg = mo.ui.anywidget(Playground(None, "triage", dataset="tiny", n_items=3))
    pg
    return mo, pg


@app.cell
def _(mo, pg):
    mo.md(f"Saved version: {pg.value['saved_version']}")
    return


if __name__ == "__main__":
    app.run()
