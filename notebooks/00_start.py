# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Start here: open (or create) a project, see the nine phases, ask the bundled model."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="00 · Start here")

with app.setup:
    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import running_as_script

    from workbench import llm
    from workbench.tracing import spans_frame



@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Start here: the LLMOps Workbench

    This workbench walks you through the whole life of an LLM feature, one notebook per phase:

    | # | phase | you leave behind |
    |---|---|---|
    | 1 | problem definition | a project card with success metrics |
    | 2 | data preparation | versioned, cleaned, split datasets |
    | 3 | model selection | a chosen model, with the reasons |
    | 4 | prompt engineering | versioned prompts |
    | 5 | fine-tuning | LoRA adapters |
    | 6 | evaluation | evaluation runs you can trust |
    | 7 | deployment | a served API |
    | 8 | monitoring | traces, dashboards, alerts |
    | 9 | maintenance | new test cases and CI gates |

    Everything lives in a **project folder**, so each notebook picks up where the last one
    finished. The suggested path for a first pass is **1, 2, 4 → 3, 6 → 7 → 8, 9 → 5**.

    **Prerequisites:** none. This notebook opens a project (or makes the sample one), shows what
    it holds, and makes your first traced model call with the bundled model — no key, no network.
    """)
    return


@app.cell(hide_code=True)
def _():
    folder, create = nb.project_chooser()
    return create, folder


@app.cell(hide_code=True)
def _(create, folder):
    project, opened = nb.open_project(folder, create)
    opened
    return (project,)


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## What the project holds

    Each card is one phase. **Done** means the project already holds that phase's results;
    the highlighted card is where to go next. Click a card for details; *Refresh* re-reads the
    project after you ran another notebook.
    """)
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    from widgets import ProjectOverview

    overview = mo.ui.anywidget(ProjectOverview(project))
    overview
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Your first model call

    Every model — the bundled **SmolLM2-135M**, a fake model for tests, or a hosted one such as
    `openai/gpt-4o-mini` when you have a key — is called the same way: `llm.complete(...)`.
    Each call returns the text plus token counts, latency and cost, and is recorded as a
    **trace** in the project. Asking the same thing twice is answered from the project's cache,
    for free.
    """)
    return


@app.cell(hide_code=True)
def _():
    usable = nb.usable_models()
    question = mo.ui.text_area(value="What is the capital of France?", label="Question",
                               full_width=True)
    model = mo.ui.dropdown(usable, value=llm.BUNDLED_MODEL, label="Model")
    ask = mo.ui.run_button(label="Ask")
    mo.hstack([question, mo.vstack([model, ask])], widths=[3, 1])
    return ask, model, question


@app.cell(hide_code=True)
def _(ask, model, project, question):
    mo.stop(project is None or not (ask.value or running_as_script()),
            mo.md("Press **Ask** to call the model."))
    with mo.status.spinner(f"Asking {model.value} ..."):
        with nb.caught() as _problem:
            reply = llm.complete(question.value, model=model.value, project=project)
    if _problem:
        answer = _problem.view
    else:
        answer = mo.vstack([
            mo.md(f"> {reply.text}"),
            mo.md(f"`{reply.model}` · {reply.usage.prompt_tokens} prompt + "
                  f"{reply.usage.completion_tokens} completion tokens · "
                  f"{reply.latency_s:.2f} s · ${reply.cost_usd:.4f}"
                  f"{' · from the cache' if reply.cached else ''}"),
        ])
    answer
    return


@app.cell(hide_code=True)
def _(ask, project):
    ask  # re-run after each question
    mo.stop(project is None)
    calls = spans_frame(project, name="llm.call", limit=20)
    mo.vstack([mo.md("### The project's latest traced calls"),
               nb.table(calls.drop(columns=["span_id"])) if not calls.empty
               else mo.md("_No model calls yet: press **Ask**._")])
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Tip: where did my call go?": mo.md(
            "Calls are recorded in the project that is open (here, or the one named by the "
            "`WORKBENCH_PROJECT` environment variable). From a terminal: "
            "`workbench ask \"...\" --project PATH`, then `workbench status PATH`."),
        "Common mistake: trusting one answer": mo.md(
            "A 135M-parameter model answers simple questions well and hard ones badly. One good "
            "answer proves nothing; phase 6 shows how to measure quality on many items, with "
            "intervals, before you believe a change helped."),
        "Tip: the cache": mo.md(
            "The same model, messages and parameters give the cached answer. Pass "
            "`cache=False` to call the model again, e.g. when sampling with a temperature."),
    })
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    nb.what_next(project)
    return


if __name__ == "__main__":
    app.run()
