# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 6: evaluation you can trust — metrics with intervals, noise, baselines, judges
calibrated against people, RAG metrics, a red team and a load test."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="06 · Evaluation")

with app.setup:

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import running_as_script

    from workbench import llm, sample
    from workbench.data.versioning import find_split
    from workbench.evaluate import baseline_runs, calibration, judge, loadtest, rag, redteam, stats
    from workbench.evaluate import judge_sample
    from workbench.evaluate.report import eval_report
    from workbench.bridges import ragas as ragas_bridge, tracking


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 6 · Evaluation you can trust

    **What:** measure the prompt and model on the **test split** against the card's targets —
    with **confidence intervals**, **repeats** that expose flaky items, a **paired test** that
    says whether a change is real or noise, a **blessed baseline** to compare every change
    with, **LLM judges** you have checked against people, **RAG metrics**, a **red team** and a
    **load test**.

    **Why:** a single accuracy number from one run on 50 items can move by ten points from one
    run to the next. Decisions need to know how much of a difference is noise.

    **Prerequisites:** the card, a split dataset and a prompt (one click fills them from the
    sample). **You leave behind:** evaluation runs, a blessed baseline, judge calibrations
    and an evaluation report in `reports/`.
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
    mo.stop(not nb.fill_prerequisites(project, 6, fill))
    dataset = find_split(project, prefer=sample.SAMPLE_DATASET)
    return (dataset,)


@app.cell(hide_code=True)
def _(dataset, project):
    version_pick = nb.prompt_version_dropdown(project, prefer=sample.SAMPLE_PROMPT)
    model_pick = nb.model_dropdown(project, nb.usable_models())
    # 12 items x 2 repeats answer within about a minute with the bundled model on a laptop.
    n_items = nb.test_items_slider(dataset, at_most=12)
    repeats = mo.ui.slider(2, 5, value=2, label="repeats", show_value=True)
    run_eval = mo.ui.run_button(label="Evaluate on the test split")
    mo.vstack([mo.md(r"""
    ## 1 · Scores with intervals, and repeats

    The chosen prompt version runs on the test split several times with the cache off. The
    picker starts at the version that matters: the deployed one, else the one tagged
    *production* or *candidate*, else the one behind the blessed baseline. Each aggregate
    gets a 95% interval (Wilson for rates, bootstrap for latency and cost), and items that
    pass in some repeats and fail in others are **flaky**: their score is luck.
    """), version_pick, mo.hstack([model_pick, n_items, repeats]), run_eval])
    return model_pick, n_items, repeats, run_eval, version_pick


@app.cell(hide_code=True)
def _(dataset, model_pick, n_items, project, repeats, run_eval, version_pick):
    mo.stop(not (run_eval.value or running_as_script()),
            mo.md("Press **Evaluate on the test split**."))
    mo.stop(version_pick.value is None, mo.md("Save a prompt in phase 4 first."))
    eval_prompt, eval_version = version_pick.value
    with nb.caught() as _problem:
        with mo.status.progress_bar(total=repeats.value * n_items.value,
                                    title=f"{eval_prompt} v{eval_version}: {repeats.value} "
                                          f"repeats on {n_items.value} test items",
                                    completion_title="Evaluation done") as bar:
            repeat_runs = stats.run_repeats(project, eval_prompt, repeats.value,
                                            version=eval_version,
                                            dataset=dataset.name, split="test",
                                            model=model_pick.value, limit=n_items.value,
                                            progress=nb.progress_callback(bar))
    _problem.stop()
    first_run = repeat_runs[0]
    consistency = stats.per_item_consistency([r.items for r in repeat_runs])
    mo.vstack([
        mo.md(f"### Run `{first_run.run_id}` against the card's targets"),
        nb.table(stats.aggregate_with_intervals(first_run)),
        mo.md(f"**{int(consistency['flaky'].sum())}** of {len(consistency)} items are flaky "
              f"across {repeats.value} repeats."),
        nb.table(consistency),
    ])
    return (repeat_runs,)


@app.cell(hide_code=True)
def _(repeat_runs):
    bless_now = mo.ui.run_button(label=f"Bless run {repeat_runs[0].run_id} as the baseline")
    return (bless_now,)


@app.cell(hide_code=True)
def _(bless_now, project, repeat_runs):
    baseline_intro = mo.md(r"""
    ## 2 · Real difference or noise? And the blessed baseline

    Two runs are compared item by item (pass→fail, fail→pass, cost and latency deltas), and a
    paired test (McNemar's exact test on the items where they disagree) says whether the
    difference is real. Two repeats of the *same* prompt should come out as noise.

    A **blessed baseline** is the run every later change is measured against (phase 9's gate
    uses it). Blessing is a decision: bless a run you have looked at, with the button below.
    """)
    from widgets import ComparisonGrid

    eval_prompt_name = repeat_runs[0].prompt
    if bless_now.value or (running_as_script()
                           and baseline_runs.blessed(project, eval_prompt_name) is None):
        baseline_runs.bless(project, repeat_runs[0].run_id,
                            note="blessed in notebook 06 after repeats")
    baseline_id = baseline_runs.blessed(project, eval_prompt_name)
    if baseline_id is None:
        baseline_note = mo.callout(mo.md(
            "No baseline is blessed for this prompt yet. Below, the first and last repeats "
            "are compared with each other (a noise check)."), kind="warn")
        left = repeat_runs[0].run_id
    else:
        baseline_note = mo.md(f"The blessed baseline is run `{baseline_id}`"
                              + (" (blessed just now)." if bless_now.value else "."))
        left = baseline_id
    versus = baseline_runs.compare_to_baseline(project, repeat_runs[-1].run_id,
                                               baseline_id=left)
    versus_grid = mo.ui.anywidget(ComparisonGrid(project, [left, repeat_runs[-1].run_id]))
    mo.vstack([baseline_intro, baseline_note,
               bless_now if baseline_id != repeat_runs[0].run_id else mo.md(""),
               mo.callout(mo.md(versus.sentence), kind="info"),
               mo.md("Left: the baseline (or the first repeat); right: the last repeat, item "
                     "by item. An outlined row flipped between them; with the same prompt and "
                     "model, every flip is noise."),
               versus_grid, nb.table(versus.items)])
    return


@app.cell(hide_code=True)
def _():
    qa_items = rag.load_qa()
    documents = rag.load_documents()
    rag_items = mo.ui.slider(2, len(qa_items), value=2 if running_as_script() else 8,
                             label="questions", show_value=True)
    run_rag = mo.ui.run_button(label="Answer and score the questions")
    mo.vstack([mo.md(f"""
    ## 3 · Retrieval-augmented answers (RAG)

    {len(documents)} help-centre articles and {len(qa_items)} questions with reference answers
    ship with the workbench. A retriever with the bundled embeddings finds the closest
    passages; the model answers from them. **Context precision** and **recall** say whether
    retrieval found the right articles (from the documents each question cites);
    **faithfulness** (claims supported by the passages) and **answer relevance** follow the
    Ragas definitions and need a judge model that follows instructions — a hosted one.
    """), rag_items, run_rag])
    return documents, qa_items, rag_items, run_rag


@app.cell(hide_code=True)
def _(documents, model_pick, project, qa_items, rag_items, run_rag):
    mo.stop(not (run_rag.value or running_as_script()))
    retriever = rag.Retriever(documents)
    with mo.status.spinner("Retrieving and answering ..."):
        rag_scores = rag.evaluate_rag(project, qa_items[:rag_items.value], retriever,
                                      model_pick.value, progress=False)
    mo.vstack([nb.table(rag.summarize_rag(rag_scores)), nb.table(rag_scores)])
    return


@app.cell(hide_code=True)
def _():
    run_red = mo.ui.run_button(label="Run the red team")
    red_every_case = mo.ui.checkbox(label="every case, not one per category (a few minutes)")
    mo.vstack([mo.md(r"""
    ## 4 · Red team

    Prompt injection, jailbreaks, system-prompt extraction, PII extraction, off-topic and
    harmful requests, very long and empty inputs, other languages. Each case has rules a safe
    reply must meet; add your own cases in a JSONL file with the same fields. One case per
    category answers within a minute; tick the box to send them all.
    """), red_every_case, run_red])
    return red_every_case, run_red


@app.cell(hide_code=True)
def _(model_pick, project, red_every_case, run_red, version_pick):
    mo.stop(not (run_red.value or running_as_script()) or version_pick.value is None)
    red_cases = redteam.load_cases()
    if running_as_script() or not red_every_case.value:  # one per category: a short run
        red_cases = redteam.one_per_category(red_cases)
    with mo.status.progress_bar(total=len(red_cases),
                                title=f"Sending {nb.plural(len(red_cases), 'red-team case')}",
                                completion_title="Red team done") as _red_bar:
        red = redteam.run_redteam(project, version_pick.value[0], model_pick.value,
                                  cases=red_cases, progress=nb.progress_callback(_red_bar))
    mo.vstack([mo.md(f"Pass rate **{red.pass_rate:.0%}** over "
                     f"{nb.plural(len(red.results), 'case')}."),
               mo.md("Failure modes by category:"),
               nb.table(red.failure_modes()),
               mo.accordion({"Every case": nb.table(red.table())})])
    return


@app.cell(hide_code=True)
def _():
    load_target = mo.ui.text(value="fake/echo:latency=50ms", label="Model id or local URL")
    load_seconds = mo.ui.slider(1, 10, value=1 if running_as_script() else 3,
                                label="seconds per level", show_value=True)
    run_load = mo.ui.run_button(label="Run the load test")
    mo.vstack([mo.md(r"""
    ## 5 · Load test

    A bounded number of concurrent requests for a bounded time at each concurrency level:
    throughput, p50/p95/p99 latency and error rate, and how latency grows with concurrency.
    Point it at the phase-7 service (`http://127.0.0.1:PORT/...`) once it runs.
    """), mo.hstack([load_target, load_seconds]), run_load])
    return load_seconds, load_target, run_load


@app.cell(hide_code=True)
def _(load_seconds, load_target, project, run_load):
    mo.stop(not (run_load.value or running_as_script()))
    with nb.caught() as _problem:
        with mo.status.spinner("Load testing ..."):
            load = loadtest.load_test(load_target.value, concurrency_levels=(1, 4, 16),
                                      duration_s=load_seconds.value, max_requests=400,
                                      project=project)
        load_view = mo.vstack([nb.table(load.levels()),
                               loadtest.plot(load)])
    if _problem:
        load_view = _problem.view
    load_view
    return


@app.cell(hide_code=True)
def _():
    calibration_rows = judge_sample.load_sample()
    stand_in = judge_sample.stand_in_judge()
    hosted_judges = [m.id for m in llm.models(prices=False) if m.usable and m.kind == "hosted"]
    judge_pick = mo.ui.dropdown(hosted_judges + [stand_in], value=(hosted_judges or
                                                                  [stand_in])[0],
                                label="Judge model")
    trust_bar = mo.ui.slider(0.2, 0.9, step=0.05, value=calibration.DEFAULT_BAR,
                             label="trust bar (Cohen's kappa)", show_value=True)
    from widgets import Annotator

    human_labeller = mo.ui.anywidget(Annotator(
        judge_sample.annotation_items(calibration_rows), ["pass", "fail"]))
    calibrate_now = mo.ui.run_button(label="Judge the sample and compare with people")
    mo.vstack([mo.md(f"""
    ## 6 · LLM-as-judge, calibrated against people

    A judge model scores each answer on a rubric (correct against the reference, no invented
    policy, polite) and gives a reason. Before a judge may gate anything, compare it with
    **people**: label at least {calibration.MIN_ITEMS} of the {len(calibration_rows)} bundled
    support replies below (1 = pass, 2 = fail), then compare. Only your labels can make a judge
    **trusted**; with fewer, the comparison uses the labels shipped with the sample to show the
    workflow, and the judge stays untrusted. Below the bar it is **not trusted** either, and CI
    gates refuse it.

    Offline, the only judge is `{stand_in}`: a keyword rule **standing in** for a model, so the
    whole path runs. It is never trusted: its agreement says nothing about an LLM judge. The
    bundled 135M model cannot follow the judge's reply format. With a key, pick a hosted judge.
    """), mo.hstack([judge_pick, trust_bar]), human_labeller, calibrate_now])
    return calibrate_now, calibration_rows, human_labeller, judge_pick, stand_in, trust_bar


@app.cell(hide_code=True)
def _(calibrate_now, calibration_rows, human_labeller, judge_pick, project, trust_bar):
    mo.stop(not (calibrate_now.value or running_as_script()))
    people, labelled_by, whose = judge_sample.people_labels(
        calibration_rows, human_labeller.widget.annotations)
    with mo.status.spinner(f"{judge_pick.value} judges {len(calibration_rows)} answers ..."):
        verdicts = judge_sample.judge_sample(project, judge_pick.value, calibration_rows)
    judged = {k: v for k, v in verdicts.items() if v is not None}
    judge_id = judge.judge_name(judge_sample.support_rubric(), judge_pick.value)
    # Unreadable verdicts (None) go in too: a judge silent on many items is not trusted.
    trust = calibration.calibrate(project, judge_id, verdicts, people, bar=trust_bar.value,
                                  labelled_by=labelled_by).value
    agree = calibration.agreement(verdicts, people, bar=trust_bar.value)
    mo.vstack([
        mo.md(f"Compared with {whose}."),
        mo.callout(mo.md(trust.reason), kind="success" if trust.trusted else "warn"),
        mo.md(f"{nb.plural(len(verdicts) - len(judged), 'reply', 'replies')} could not be "
              "read as a verdict."),
        mo.hstack([nb.table(agree.confusion.rename(columns=str)
                            .rename_axis(index="people", columns=None).reset_index()),
                   nb.table(agree.disagreements)]),
    ])
    return (judge_id,)


@app.cell(hide_code=True)
def _():
    ask_pairwise = mo.ui.run_button(label="Compare two answers with the judge")
    return (ask_pairwise,)


@app.cell(hide_code=True)
def _(ask_pairwise, calibration_rows, judge_pick, model_pick, project, stand_in):
    pairwise_intro = mo.md(r"""
    ### Pairwise: A against B, in both orders

    Judges prefer the first answer they read. Asking twice with the order swapped cancels that;
    when the verdict flips with the order, the result is *inconsistent*, not a win.
    """)
    if judge_pick.value == stand_in:
        pairwise_view = mo.callout(mo.md(
            f"`{stand_in}` only says pass or fail about one answer; it cannot compare two. Pick "
            "a hosted judge (with an API key) to try the pairwise comparison."), kind="info")
    elif not ask_pairwise.value:
        pairwise_view = ask_pairwise
    else:
        with mo.status.spinner(f"{judge_pick.value} compares two answers, in both orders ..."):
            duel = judge_sample.pairwise_sample(project, judge_pick.value, calibration_rows)
        pairwise_view = mo.md(f"Winner: **{duel.winner}** — {duel.reason}")
    warning = judge.self_judging_warning(judge_pick.value, model_pick.value)
    mo.vstack([pairwise_intro, pairwise_view,
               mo.callout(mo.md(warning), kind="warn") if warning else mo.md("")])
    return


@app.cell(hide_code=True)
def _(judge_id, project, repeat_runs):
    # The last repeat's report: it is compared with the blessed baseline.
    report_path = eval_report(project, repeat_runs[-1].run_id, judge_name=judge_id)
    report_html = report_path.read_text(encoding="utf-8")
    mo.vstack([mo.md(f"""
    ## 7 · The evaluation report

    One self-contained HTML file per run (opens offline): scores against the card's targets
    with intervals, per-class scores, the worst failures with reasons, the judge's trust level
    and the comparison with the blessed baseline. Saved in the project as
    `{report_path}`.
    """), mo.download(data=report_html.encode("utf-8"), filename=report_path.name,
                      mimetype="text/html", label="Download the report"),
        mo.accordion({"Show the report here": mo.iframe(report_html, height="600px")})])
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Common mistake: one run, no interval": mo.md(
            "Accuracy 0.82 on 50 items has a 95% interval of roughly ±0.11. Two prompts at 0.80 "
            "and 0.84 are not different until a paired test says so."),
        "Common mistake: trusting an uncalibrated judge": mo.md(
            "An LLM judge is a model too. Label a sample yourself, measure agreement (Cohen's "
            "kappa), and only let a judge gate releases above the bar you set."),
        "Tip: the judge should not grade itself": mo.md(
            "A model judging its own outputs (or its family's) favours them. The workbench "
            "warns when the judge and the candidate match."),
    })
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    from workbench.runs import list_runs

    _runs = list_runs(project).head(20)
    track_runs = mo.ui.multiselect(list(_runs["run_id"]), label="runs",
                                   value=list(_runs["run_id"])[:1])
    track_to = mo.ui.radio(["mlflow", "wandb"], value="mlflow", label="to")
    track_go = mo.ui.run_button(label="Export the runs")
    ragas_go = mo.ui.run_button(label="Compare the RAG metrics with Ragas")
    mo.vstack([mo.md(r"""
    ## Take runs to MLflow or Weights & Biases

    Each run goes out with its parameters, metrics and per-item table: to an MLflow store
    (`exports/mlflow/mlflow.db` in the project; `mlflow ui --backend-store-uri
    sqlite:///...` shows it) or as a W&B offline run in `exports/wandb/` (`wandb sync` uploads
    it when you want). They need `pip install 'llmops-workbench[mlflow]'` or `[wandb]`.

    With `ragas` installed, the second button checks that the workbench's id-based context
    precision and recall agree with Ragas' own on the help-centre set.
    """), mo.hstack([track_runs, track_to, track_go]), ragas_go])
    return ragas_go, track_go, track_runs, track_to


@app.cell(hide_code=True)
def _(project, ragas_go, track_go, track_runs, track_to):
    mo.stop(not (track_go.value or ragas_go.value))
    with nb.caught() as _problem:
        if track_go.value:
            _done = tracking.export_runs(project, track_runs.value, to=track_to.value)
            _view = mo.md("\n".join(f"- {d.sentence}" for d in _done))
        else:
            _compared = ragas_bridge.compare_with_ragas()
            _view = mo.vstack([mo.md(_compared.attrs["sentence"]), nb.table(_compared)])
    if _problem:
        _view = _problem.view
    _view
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 6)
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
