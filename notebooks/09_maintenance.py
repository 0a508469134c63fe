# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 9: maintenance — what failed in production becomes a test case, a new dataset
version, a re-evaluation against the blessed baseline, and a gate CI can run."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="09 · Maintenance")

with app.setup:

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import callout, running_as_script

    import workbench as wb
    from workbench import maintain
    from workbench.data import load_split
    from workbench.data.versions import diff, find_split
    from workbench.serve import latest_deployment


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 9 · Maintenance

    **What:** close the loop. Answers users marked wrong — with the correction they gave —
    become **test cases**; they go into the test split as a **new dataset version**; the
    prompt is **re-evaluated** against the **blessed baseline**; and a **gate** decides whether
    it may ship: the card's targets, no significant regression, and the production cases
    passing.

    **Why:** a test set written before launch knows nothing of the failures users find. Each
    one that is fixed without a test comes back with the next prompt change.

    **Prerequisites:** a deployment and feedback on it (one click makes a demo deployment and
    plays users against it). **You leave behind:** a new dataset version, a maintenance run,
    and a gate result.
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
    mo.stop(not nb.fill_prerequisites(project, 9, fill))
    deployment = latest_deployment(project).value
    dataset = deployment.few_shot_dataset or find_split(project).name
    return dataset, deployment


@app.cell(hide_code=True)
def _(project):
    from_feedback = maintain.cases_from_feedback(project)
    from_failures = maintain.cases_from_failures(project)
    mo.vstack([mo.md(r"""
    ## 1 · What users reported

    Thumbs down **with a correction** is a test case with a known answer. Thumbs down without
    one, and requests the service failed on or could not parse, need a label first — from you
    (the annotator of phase 2) before they can join the test set.
    """), mo.md(f"**{from_feedback['expected'].notna().sum()}** labelled cases from feedback, "
                f"**{from_feedback['expected'].isna().sum()}** needing a label; "
                f"**{len(from_failures)}** failed or unparsable requests."),
        nb.table(from_feedback), nb.table(from_failures)])
    return (from_feedback,)


@app.cell(hide_code=True)
def _(deployment, project):
    blessed = maintain.ensure_baseline(project, deployment.prompt, deployment.evidence_run)
    mo.md(f"""
    ## 2 · The baseline

    Every later run is compared with a **blessed** run. Here that is
    `{blessed}` — {"the evaluation the deployment was based on" if blessed ==
    deployment.evidence_run else "the run blessed earlier"}.
    """)
    return


@app.cell(hide_code=True)
def _():
    add = mo.ui.run_button(label="Add the labelled cases to the test split")
    mo.vstack([mo.md(r"""
    ## 3 · A new dataset version

    The labelled cases are added to the **test** split (never train: a case you train on can
    no longer tell you whether the failure is fixed). A case already in the dataset is skipped;
    one whose input the dataset labels differently is a **conflict** — the dataset or the user
    is wrong, and a person decides which.
    """), add])
    return (add,)


@app.cell(hide_code=True)
def _(add, dataset, from_feedback, project):
    mo.stop(not (add.value or running_as_script()), mo.md("Press **Add the labelled cases**."))
    added = maintain.add_test_cases(project, dataset, from_feedback)
    changes = (diff(project, dataset, added.version.value.parent,
                                  added.version.version)
               if added.version is not None else None)
    mo.vstack([mo.callout(mo.md(added.sentence), kind="info"),
               nb.table(changes) if changes is not None else mo.md(""),
               mo.md("**Conflicts to review:**") if added.conflicts else mo.md(""),
               nb.table(added.conflicts) if added.conflicts else mo.md("")])
    return (added,)


@app.cell(hide_code=True)
def _(added):
    evaluate = mo.ui.run_button(label="Re-evaluate and check the gate")
    whole_split = mo.ui.checkbox(label="the whole test split (slower), not only the "
                                       "baseline's items and the new cases")
    mo.vstack([mo.md(r"""
    ## 4 · Re-evaluate, compare, gate

    The deployed prompt and model run on the new test split with the cache **off** (a hosted
    model can change behind the same name — that drift is what you are looking for). The run
    is compared with the baseline item by item, the production cases are scored on their own,
    and the gate decides. The first time, the production cases fail: that is the point — now
    change the prompt (phase 4) or the model (phase 3, 5) until they pass.

    By default only the baseline's items and the new cases run again, which answers within
    about a minute; tick the box to run the whole test split, so the card's targets are
    measured on every item.
    """), whole_split, evaluate])
    return evaluate, whole_split


@app.cell(hide_code=True)
def _(added, dataset, deployment, evaluate, project, whole_split):
    mo.stop(not (evaluate.value or running_as_script()),
            mo.md("Press **Re-evaluate and check the gate**."))
    # Headless (the tour, CI) only the baseline's items and the cases run again.
    scope = "test" if whole_split.value and not running_as_script() else "baseline"
    try:
        with mo.status.progress_bar(
                total=len(load_split(project, dataset, "test")),
                title="Re-evaluating on the " + ("test split" if scope == "test" else
                                                 "baseline's items and the new cases"),
                completion_title="Re-evaluation done") as bar:
            # What is deployed runs again: its prompt version and model (as the CLI does).
            done = maintain.re_evaluate(project, deployment.prompt, dataset,
                                        version=deployment.prompt_version,
                                        model=deployment.model, scope=scope,
                                        progress=nb.progress_callback(bar, follow_total=True))
        problem = None
    except wb.WorkbenchError as exc:
        done, problem = None, exc
    mo.stop(done is None, callout(problem) if problem else None)
    mo.vstack([
        mo.callout(mo.md(done.sentence), kind="success" if done.passed else "warn"),
        mo.md("**The production cases:**"), nb.table(done.new_cases),
        mo.md("**Against the baseline, item by item:**"),
        nb.table(done.versus_baseline.items)
        if done.versus_baseline is not None else mo.md("Nothing blessed."),
    ])
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## 5 · The same loop in CI

    ```bash
    workbench maintain triage --dataset support     # cases in, re-evaluate, gate: exit 3 = do not ship
    workbench eval triage --dataset support --gate  # any change: run, score, report, gate
    workbench monitor --window 1h --fail-on-alert   # from cron, on the server
    ```

    A pull request that changes a prompt runs `workbench eval ... --gate`; a nightly job
    runs `workbench maintain ...` over the day's feedback. Both refuse untrusted judges.
    """)
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Common mistake: fixing without a test": mo.md(
            "A prompt tweak that fixes today's complaint often breaks last month's fix. Each "
            "failure goes into the test split first, then gets fixed."),
        "Common mistake: training on the test cases": mo.md(
            "Production cases go into **test**. Put them into the fine-tuning data as well and "
            "the evaluation can no longer tell whether the model learned or memorised."),
        "Tip: conflicts are gold": mo.md(
            "When a user's correction disagrees with the dataset's label, one of them is "
            "wrong — and either answer improves the data."),
    })
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 9)
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
