# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 1: define the problem, the success metrics and the constraints — before any prompt."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="01 · Problem definition")

with app.setup:

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import running_as_script

    from workbench import buildvsbuy, sample
    from workbench.baseline import run_baseline
    from workbench.card import add_decision, load_card, where_measured
    from workbench.data import load_split
    from workbench.data.versioning import find_split
    from workbench.sketch import architecture_sketch
    from workbench.bridges.card import export_card


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 1 · Problem definition and success metrics

    **What:** write down what the feature is for, who uses it, what goes in and out, and — most
    important — the **success metrics with thresholds** that decide whether it is good enough:
    quality (e.g. accuracy ≥ 0.90), speed (p95 latency ≤ 2 s) and cost (≤ $0.002 a request).

    **Why:** every later phase reports against these numbers. Model selection (3) and prompt
    engineering (4) compare candidates with them, evaluation (6) gates on them, deployment (7)
    refuses a configuration that misses them, monitoring (8) alerts on them.

    **Prerequisites:** none. **You leave behind:** the project card (`workbench.toml`), an
    architecture sketch, a build-vs-buy decision and a classical baseline to beat.
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
    use_sample = mo.ui.run_button(label="Fill the card from the sample project")
    has_card = bool(project.card().get("use_case"))
    mo.vstack([
        mo.md("The card already holds a use case: edit it below." if has_card else
              "The card is empty. Fill it in below, or start from the sample help-desk card "
              "with one click and change what differs for you."),
        use_sample,
    ])
    return (use_sample,)


@app.cell(hide_code=True)
def _(project, use_sample):
    mo.stop(project is None)
    if use_sample.value:
        sample.fill_sample_card(project)
    from widgets import CardForm

    form = mo.ui.anywidget(CardForm(project))
    mo.vstack([
        mo.md(r"""
        ## The project card

        Fill the use case, pick the task type, and set **each metric with a target, a
        direction and a unit**. Save checks everything: a threshold without a unit, a metric
        no later phase can measure, a budget below zero. Hand edits of `workbench.toml` are
        checked the same way.
        """),
        form,
    ])
    return (form,)


@app.cell(hide_code=True)
def _(form, project):
    mo.stop(project is None)
    form.value["saved_count"]  # re-read the card after every save
    card = None
    with nb.caught() as _problem:
        card = load_card(project)
    if _problem:
        shown = _problem.view
    else:
        shown = mo.vstack([mo.md("### Success metrics and where they are measured"),
                           nb.table(where_measured(card))])
    shown
    return (card,)


@app.cell(hide_code=True)
def _(card):
    mo.stop(card is None)
    mo.vstack([
        mo.md(r"""
        ## The architecture, sketched from the card

        The request path the card implies. The PII filter appears when the card's privacy rule
        forbids personal data going to external APIs; the model box shows the chosen model
        once phase 3 has picked one.
        """),
        mo.Html(architecture_sketch(card)),
    ])
    return


@app.cell(hide_code=True)
def _(card):
    mo.stop(card is None)
    default_scores, default_weights, weight_notes = buildvsbuy.defaults_for(card)
    weight_sliders = mo.ui.dictionary({
        criterion: mo.ui.slider(0, 5, step=0.5, value=weight, label=criterion,
                                show_value=True)
        for criterion, weight in default_weights.items()})
    mo.vstack([
        mo.md(r"""
        ## Build or buy?

        Three ways to ship the feature, scored 1–5 on each criterion. Move the weights to
        match what matters to you; the ranking follows.
        """),
        weight_sliders.vstack(),
        mo.md("\n".join(f"- {n}" for n in weight_notes)) if weight_notes else mo.md(""),
    ])
    return (weight_sliders,)


@app.cell(hide_code=True)
def _(card, weight_sliders):
    mo.stop(card is None)
    ranked = buildvsbuy.score_options(weights=weight_sliders.value, card=card)
    mo.vstack([nb.table(ranked),
               buildvsbuy.plot(ranked)])
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    make_data = mo.ui.run_button(label="Prepare the sample data (phase 2 in one click)")
    mo.vstack([
        mo.md(r"""
        ## Is an LLM the right tool?

        Before paying for an LLM, train the cheapest model that could work: for classification,
        TF-IDF features and a logistic regression, trained in a second on the train split and
        scored on the test split. If it already meets the card's targets, an LLM has to be
        clearly better to earn its cost and latency. Later phases show LLM results beside it.
        """),
        make_data,
    ])
    return (make_data,)


@app.cell(hide_code=True)
def _(card, make_data, project):
    mo.stop(card is None)
    split_version = find_split(project, prefer=sample.SAMPLE_DATASET)
    if split_version is None and (make_data.value or running_as_script()):
        with mo.status.spinner("Importing, cleaning, redacting and splitting the sample ..."):
            sample.prepare_sample_data(project)
        split_version = find_split(project, prefer=sample.SAMPLE_DATASET)
    mo.stop(split_version is None,
            mo.md("No labelled split yet: run phase 2 (`02_data.py`), or prepare the sample "
                  "data with the button above."))
    dataset_name = split_version.name
    with nb.caught("warn") as _problem:
        baseline = run_baseline(project, load_split(project, dataset_name, "train"),
                                load_split(project, dataset_name, "test")).value
    if _problem:
        baseline_view = _problem.view
    else:
        baseline_view = mo.vstack([
            mo.md(f"**{baseline.method}** on `{dataset_name}` v{split_version.version}: "
                  f"trained on {baseline.n_train}, tested on {baseline.n_test} items."),
            mo.callout(mo.md(baseline.verdict), kind="info"),
            nb.table(baseline.checks_frame()),
            mo.accordion({"Per-class scores": nb.table(baseline.per_class_frame())}),
        ])
    baseline_view
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    decision_text = mo.ui.text(label="Decision", full_width=True,
                               placeholder="e.g. Start with a hosted small model")
    decision_reason = mo.ui.text(label="Why", full_width=True,
                                 placeholder="e.g. the baseline misses accuracy by 8 points")
    log_it = mo.ui.run_button(label="Add to the decision log")
    mo.vstack([mo.md("## Decision log\n\nWrite down what you decided and why; "
                     "later phases add their own entries."),
               decision_text, decision_reason, log_it])
    return decision_reason, decision_text, log_it


@app.cell(hide_code=True)
def _(decision_reason, decision_text, log_it, project):
    mo.stop(project is None)
    if log_it.value and decision_text.value.strip():
        add_decision(project, 1, decision_text.value.strip(), decision_reason.value.strip())
    decisions = project.card().get("decisions", [])
    nb.table(decisions) if decisions else mo.md("_No decisions yet._")
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Tip: one metric per concern": mo.md(
            "Quality, latency and cost pull against each other. Give each its own metric and "
            "threshold, so a trade-off is a visible choice, not an accident."),
        "Common mistake: a goal no one can measure": mo.md(
            "\"Answers should be helpful\" cannot gate a release. Say how it is measured "
            "(accuracy on the test split, a judge score calibrated against people) and the "
            "number that is good enough."),
        "Common mistake: skipping the baseline": mo.md(
            "Many text classification tasks are solved well by a linear model on TF-IDF "
            "features. If it meets the targets, the LLM must beat it on something that "
            "matters."),
    })
    return


@app.cell(hide_code=True)
def _(card):
    mo.stop(card is None)
    export_brief = mo.ui.run_button(label="Export the brief, sketch and matrix")
    mo.vstack([mo.md(r"""
    ## Take it where your team works

    One click writes `exports/card/` in the project: `brief.md` (paste it into Notion or
    Confluence), `architecture.drawio` (opens in Draw.io / diagrams.net, for the team to add
    their own systems), `architecture.svg`, and the build-vs-buy matrix above as
    `build_vs_buy.xlsx` (weights and notes on a second sheet) and `.csv` for Google Sheets.
    The card stays the source of truth: export again after a change.
    """), export_brief])
    return (export_brief,)


@app.cell(hide_code=True)
def _(card, export_brief, project, weight_sliders):
    mo.stop(card is None or not (export_brief.value or running_as_script()))
    _files = export_card(project, build_vs_buy=buildvsbuy.score_options(
        weights=weight_sliders.value, card=card))
    nb.table([{"file": _path.name, "for": _for, "folder": str(_path.parent)}
              for _for, _path in zip(["SVG pages", "Draw.io", "Sheets (CSV)", "Sheets / Excel",
                                      "Notion / Confluence"], _files.values(), strict=False)])
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 1)
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
