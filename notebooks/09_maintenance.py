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
    from widgets.notebook import running_as_script

    from workbench import labelqueue, maintain
    from workbench.clusters import cluster_failures
    from workbench.data import load_split
    from workbench.data.versioning import diff, find_split
    from workbench.issue_drafts import issue_drafts
    from workbench.review import weekly_review
    from workbench.serve import latest_deployment
    from workbench.switch import switch_or_retrain
    from workbench.whatif import cost_what_if


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 9 · Maintenance

    **What:** close the loop. What failed in production is grouped into **failure patterns**
    (and issue drafts for your tracker); answers users marked wrong — with the correction they
    gave, or a label you give them here — become **test cases** in a **new dataset version**;
    the deployed prompt is **re-evaluated** against the **blessed baseline** and a **gate**
    decides whether it may ship. Then: would another model or the newest adapter do better
    (**switch or retrain?**), what would a month cost on each (**cost what-if**), and the
    **weekly review** and the **CI jobs** that keep doing all this.

    **Why:** a test set written before launch knows nothing of the failures users find. Each
    one that is fixed without a test comes back with the next prompt change.

    **Prerequisites:** a deployment and feedback on it (one click makes a demo deployment and
    plays users against it). **You leave behind:** a new dataset version, a maintenance run,
    a gate result, issue drafts and the weekly review in `reports/`.
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
def _(project):
    patterns = cluster_failures(project)
    draft_issues = mo.ui.run_button(label="Write issue drafts (Markdown, Linear and Jira CSV)")
    mo.vstack([mo.md(r"""
    ## 2 · Failure patterns

    One complaint is an anecdote; twelve that read alike are a pattern. The failures of the
    last 7 days — thumbs down and failed or unparsable requests — are grouped by **meaning**
    (the bundled sentence embeddings), each group named by its keywords and its most typical
    examples, and counted per day: a pattern that is **new** or **rising** comes first.
    """), mo.md(patterns.sentence),
        patterns.figure() if len(patterns.failures) else mo.md(""),
        nb.table(patterns.clusters.drop(columns=["trace_ids"])) if len(patterns.clusters)
        else mo.md(""), draft_issues])
    return draft_issues, patterns


@app.cell(hide_code=True)
def _(draft_issues, patterns, project):
    mo.stop(not (draft_issues.value or running_as_script()) or patterns.clusters.empty)
    drafts = issue_drafts(project, patterns)
    mo.callout(mo.md(drafts.sentence + " Import the CSV in Linear (Import → CSV) or Jira "
                     "(System → External system import → CSV), or paste a Markdown file "
                     "into a GitHub issue."), kind="info")
    return


@app.cell(hide_code=True)
def _(deployment, project):
    blessed = maintain.ensure_baseline(project, deployment.prompt, deployment.evidence_run)
    mo.md(f"""
    ## 3 · The baseline

    Every later run is compared with a **blessed** run. Here that is
    `{blessed}` — {"the evaluation the deployment was based on" if blessed ==
    deployment.evidence_run else "the run blessed earlier"}.
    """)
    return


@app.cell(hide_code=True)
def _():
    add = mo.ui.run_button(label="Add the labelled cases to the test split")
    mo.vstack([mo.md(r"""
    ## 4 · A new dataset version

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
def _(added, dataset, project):
    added  # the corrected cases first
    from widgets import Annotator

    queue = labelqueue.queue_failures(project, dataset)
    queue_annotator = (mo.ui.anywidget(Annotator.from_dataset(
        project, queue.name, labels=queue.labels, only_unlabeled=True))
        if len(queue.pending) and queue.labels else None)
    add_labelled = mo.ui.run_button(label="Save the labels and add them as test cases")
    mo.vstack([mo.md(r"""
    ## 5 · Label the failures

    A thumbs down without a correction, a request the service failed on, an answer it could
    not parse: each needs its expected answer before it can be a test case. They wait in the
    dataset `""" + queue.name + r"""` — press a number key for a label, **S** to skip, **U**
    to undo — and come back as test cases. For a team, send the same queue to Label Studio:
    `queue.push(client)`, then `queue.pull(client)` and `queue.add_to_tests()`.
    """), mo.md(queue.sentence),
        queue_annotator if queue_annotator is not None else mo.md("_Nothing waits for a "
                                                                   "label._"),
        add_labelled])
    return add_labelled, queue, queue_annotator


@app.cell(hide_code=True)
def _(add_labelled, queue, queue_annotator):
    labelled_cases = None
    if queue_annotator is not None and add_labelled.value:
        with nb.caught() as _problem:
            if queue_annotator.widget.annotations:
                queue_annotator.widget.save()
            labelled_cases = queue.add_to_tests()
            labelled_view = mo.callout(mo.md(labelled_cases.sentence), kind="info")
        if _problem:
            labelled_view = _problem.view
    else:
        labelled_view = mo.md("")
    labelled_view
    return (labelled_cases,)


@app.cell(hide_code=True)
def _(added, labelled_cases):
    labelled_cases  # its cases are in the test split too
    evaluate = mo.ui.run_button(label="Re-evaluate and check the gate")
    whole_split = mo.ui.checkbox(label="the whole test split (slower), not only the "
                                       "baseline's items and the new cases")
    mo.vstack([mo.md(r"""
    ## 6 · Re-evaluate, compare, gate

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
    with nb.caught() as _problem:
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
    _problem.stop()
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
    choose = mo.ui.run_button(label="Run the candidates beside the deployed configuration")
    mo.vstack([mo.md(r"""
    ## 7 · Switch or retrain?

    The production cases fail on what is deployed. Would a model you compared in phase 3, or
    the newest adapter of phase 5, do better? Each runs the deployed prompt version on the same
    items — the baseline's and the production cases — beside the deployed configuration, and
    is compared with it item by item (McNemar's test on pass/fail, Wilcoxon on latency and
    cost) and on the card's targets. A candidate **beats** it only when it loses no target the
    deployed one meets and gains a target or passes significantly more items.
    """), choose])
    return (choose,)


@app.cell(hide_code=True)
def _(added, choose, labelled_cases, project):
    added, labelled_cases  # the production cases are in the test split
    mo.stop(not (choose.value or running_as_script()),
            mo.md("Press **Run the candidates**."))
    with nb.caught() as _problem:
        with mo.status.spinner(title="Running the candidates on the production cases"):
            verdict = switch_or_retrain(project, scope="baseline")
    _problem.stop()
    mo.vstack([mo.callout(mo.md(verdict.sentence),
                          kind="success" if verdict.advice == "keep" else "warn"),
               nb.table(verdict.table.drop(columns=["run_id"]))])
    return


@app.cell(hide_code=True)
def _(project):
    spend = cost_what_if(project)
    mo.vstack([mo.md(r"""
    ## 8 · Cost what-if

    What would a month cost? From the service's real requests of the last 7 days — their
    tokens, the cache's measured hit rate and the request rate — each model choice is priced
    with the gateway's prices, and so is **routing**: short inputs to the cheapest choice, the
    rest to the deployed model. (`cost_what_if(project, confident_sample=20)` also measures a
    cascade: the cheap model first, the deployed one when its answer does not parse.)
    """), mo.md(spend.sentence),
        spend.figure() if len(spend.frame) else mo.md(""),
        nb.table(spend.frame) if len(spend.frame) else mo.md("")])
    return


@app.cell(hide_code=True)
def _():
    write_review = mo.ui.run_button(label="Write the weekly review")
    mo.vstack([mo.md(r"""
    ## 9 · The weekly review

    One offline HTML report for the team's weekly look: traffic, cost, quality against the
    card, alerts, failure patterns, new test cases and gate results
    (`workbench review --since 7d` writes the same).
    """), write_review])
    return (write_review,)


@app.cell(hide_code=True)
def _(added, labelled_cases, project, write_review):
    added, labelled_cases  # the week's new cases are part of it
    mo.stop(not (write_review.value or running_as_script()),
            mo.md("Press **Write the weekly review**."))
    review = weekly_review(project)
    mo.callout(mo.md(f"Written to `{review.path}` (it opens offline):\n\n"
                     + "\n".join(f"- {line}" for line in review.headline)), kind="info")
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## 10 · The same loop in CI

    `workbench ci init` writes two GitHub Actions workflows into your repository's
    `.github/workflows/`: **the gate on every pull request** that changes the project's card,
    prompts (they live in `workbench.db`) or data — it evaluates the deployed prompt and runs
    `workbench gate`, and the check fails when the gate does — and **a scheduled job** that
    checks the alerts, writes the failure patterns as issue drafts, adds the production cases
    and re-evaluates (`workbench maintain`), and keeps the weekly review as an artifact.

    ```bash
    workbench ci init my-project                       # .github/workflows/workbench-*.yml
    workbench ci init my-project --runner self-hosted  # the scheduled job beside the service
    workbench maintain triage --dataset support        # cases, re-evaluate, gate (exit 3: no)
    workbench failures --since 7d --issues drafts/     # patterns, and issue drafts to import
    workbench review --since 7d                        # the weekly review
    ```

    The scheduled job reads the production traces, so it must run where they are: on a
    self-hosted runner beside the service, or after copying the service's `workbench.db`.
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
