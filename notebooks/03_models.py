# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 3: compare candidate models on the same split with the same prompt, and choose one."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="03 · Model selection")

with app.setup:

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import running_as_script

    from workbench import compare, llm, sample
    from workbench.data.versioning import find_split
    from workbench.prompts import list_prompts


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 3 · Model selection

    **What:** run the *same prompt* on the *same validation split* with several models and
    compare what matters: **quality** (the card's metric), **latency** (p50 and p95), **cost**
    per request and per 1,000 requests, and how often the reply could be **parsed** — beside
    the classical baseline from phase 1 and the card's targets.

    **Why:** the biggest model is rarely the right one. The right one meets the targets at the
    lowest cost and latency; a weighted decision matrix and a Pareto plot make the trade-off
    visible, and the choice goes into the card with its reason.

    **Prerequisites:** the card (phase 1), a split dataset (phase 2), a prompt (phase 4).
    Missing ones are filled from the sample project with one click.
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
def _(project):
    mo.stop(project is None)
    fill = nb.fill_button()  # shown by fill_prerequisites while something is missing
    return (fill,)


@app.cell(hide_code=True)
def _(fill, project):
    mo.stop(project is None)
    mo.stop(not nb.fill_prerequisites(project, 3, fill))
    dataset = find_split(project, prefer=sample.SAMPLE_DATASET)
    prompt_names = list_prompts(project)
    return dataset, prompt_names


@app.cell(hide_code=True)
def _(dataset, prompt_names):
    usable = nb.usable_models()
    candidates = mo.ui.multiselect(usable, value=[llm.BUNDLED_MODEL], label="Candidate models")
    prompt_pick = mo.ui.dropdown(prompt_names, value=sample.SAMPLE_PROMPT
                                 if sample.SAMPLE_PROMPT in prompt_names else prompt_names[0],
                                 label="Prompt")
    n_items = mo.ui.slider(5, dataset.value.splits.get("validation", 5), step=5,
                           value=min(10,
                                     dataset.value.splits.get("validation", 5)),
                           label="validation items", show_value=True)
    run_all = mo.ui.run_button(label="Run the comparison")
    mo.vstack([
        mo.md(f"""
        ## Candidates

        Dataset **{dataset.name}** v{dataset.version} (validation split). Hosted models appear
        when their key is set (`workbench models` says which); `fake/echo` shows what a
        model that understands nothing scores. A run above the card's cost limit asks for
        confirmation first.
        """),
        mo.hstack([candidates, prompt_pick, n_items]), run_all,
    ])
    return candidates, n_items, prompt_pick, run_all


@app.cell(hide_code=True)
def _(candidates, dataset, n_items, project, prompt_pick, run_all):
    mo.stop(not (run_all.value or running_as_script()),
            mo.md("Press **Run the comparison**: each model answers every item once."))
    models = list(candidates.value) or [llm.BUNDLED_MODEL]
    if running_as_script() and "fake/echo" not in models:
        models.append("fake/echo")
    with nb.caught() as _problem:
        with mo.status.progress_bar(
                total=len(models) * n_items.value,
                title=f"Running {nb.plural(len(models), 'model')} on "
                      f"{nb.plural(n_items.value, 'item')}",
                subtitle="each model answers every item once",
                completion_title="Comparison done") as bar:
            comparison = compare.compare_models(project, prompt_pick.value, models,
                                                dataset=dataset.name, limit=n_items.value,
                                                progress=nb.progress_callback(bar))
    _problem.stop()
    table = comparison.table()
    mo.vstack([
        mo.md("## Results against the targets"),
        nb.table(table),
        mo.md("\n".join(f"- **{m}** could not run: {e}"
                        for m, e in comparison.failures.items())) if comparison.failures
        else mo.md(""),
    ])
    return comparison, table


@app.cell(hide_code=True)
def _(comparison):
    weights = mo.ui.dictionary({
        "quality": mo.ui.slider(0, 1, step=0.05, value=0.5, label="quality", show_value=True),
        "latency": mo.ui.slider(0, 1, step=0.05, value=0.25, label="latency", show_value=True),
        "cost": mo.ui.slider(0, 1, step=0.05, value=0.25, label="cost", show_value=True),
        "parse_rate": mo.ui.slider(0, 1, step=0.05, value=0.0, label="parse rate",
                                   show_value=True),
    })
    mo.vstack([mo.md(r"""
    ## Decision matrix and Pareto front

    Each criterion is scaled from 0 (worst candidate) to 1 (best); the weights say what
    matters to you. A model is on the **Pareto front** when no other is better on quality,
    cost and latency at once — choose among those.
    """), weights.vstack()])
    return (weights,)


@app.cell(hide_code=True)
def _(comparison, weights):
    with nb.caught() as _problem:
        ranked = comparison.matrix(weights.value)
        matrix_view = nb.table(ranked)
    if _problem:
        ranked, matrix_view = None, _problem.view
    mo.vstack([matrix_view,
               mo.md("Pareto front: " + ", ".join(f"**{m}**" for m in comparison.pareto_front())),
               comparison.plot()])
    return (ranked,)


@app.cell(hide_code=True)
def _(comparison, ranked, table):
    best, why = compare.recommend(table, ranked)
    chosen = mo.ui.dropdown([str(m) for m in comparison.table(baseline=False)["model"]],
                            value=best, label="Model to choose")
    reason = mo.ui.text(label="Why", full_width=True, value=why if best else "")
    choose_it = mo.ui.run_button(label="Record the choice in the project card")
    mo.vstack([mo.md("## Choose"), chosen, reason, choose_it])
    return choose_it, chosen, reason


@app.cell(hide_code=True)
def _(choose_it, chosen, project, reason):
    mo.stop(not (choose_it.value or running_as_script()) or not chosen.value)
    with nb.caught() as _problem:
        compare.choose(project, chosen.value, reason.value)
        choice_view = mo.callout(mo.md(f"**{chosen.value}** is the project's model now: later "
                                       "phases and the served API use it by default."),
                                 kind="success")
    if _problem:
        choice_view = _problem.view
    choice_view
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Tip: compare on validation, report on test": mo.md(
            "Choosing on the test split and then reporting the test score overstates quality. "
            "Choose here, on validation; phase 6 reports on test once."),
        "Common mistake: twenty items and a winner": mo.md(
            "On 20 items, one model beating another by a point or two is noise. Phase 6 adds "
            "repeats, intervals and a paired test; until then, prefer clear gaps."),
        "Hosted models through OpenRouter": mo.md(
            "With `OPENROUTER_API_KEY` set, ids such as `openrouter/meta-llama/llama-3.1-8b-"
            "instruct` reach dozens of models through one key; litellm's price map gives their "
            "cost. The card's privacy rule redacts personal data before any hosted call."),
    })
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 3)
    exercise_view
    return exercise_check, exercise_pick


@app.cell(hide_code=True)
def _(exercise_check, exercise_pick, project):
    nb.exercise_result(project, exercise_pick, exercise_check)
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    nb.what_next(project)
    return


if __name__ == "__main__":
    app.run()
