# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 8: monitoring — traces of every request, latency/cost/error dashboards, user
feedback, and alerts checked against the card's targets."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="08 · Monitoring")

with app.setup:

    import secrets

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import running_as_script

    from workbench import (
        monitor,
        monitor_alerts,
        monitor_cost,
        monitor_figures,
        monitor_judge,
        sample,
    )
    from workbench.evaluate.judge import Rubric
    from workbench.monitor_drift import check_drift
    from workbench.serve import latest_deployment, start_server


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 8 · Monitoring

    **What:** watch the deployed service — every request is a **trace** (the request, the
    model calls inside it, tokens, cost, cache, fallback, the end user and the deployment
    arm); the **dashboard** shows requests per second, active users, errors, latency and cost
    over time against the card's targets; **spend** per day and per key against the monthly
    budget; users' **feedback** is tied to the exact answer; a sampled **online judge** and
    **drift** of the inputs watch quality; **alerts** fire on targets, budget burn, anomalies
    and drift, and reach you through a log file and a webhook.

    **Why:** the evaluation of phase 6 was a sample of yesterday's inputs. Traffic drifts,
    providers slow down, prices change, and users find failures no test set had. Monitoring
    is how you hear about it before they stop telling you.

    **Prerequisites:** a deployment (phase 7; one click makes a demo deployment of the sample
    prompt). **You leave behind:** traces and their per-minute aggregates, feedback, judge
    verdicts, drift checks and fired alerts in `workbench.db`; `logs/alerts.jsonl`.
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
    mo.stop(not nb.fill_prerequisites(project, 8, fill))
    deployment = latest_deployment(project)
    return (deployment,)


@app.cell(hide_code=True)
def _(deployment):
    users = mo.ui.slider(6, 100, value=12 if running_as_script() else 20,
                         label="requests from simulated users", show_value=True)
    simulate = mo.ui.run_button(label="Start the service and send the traffic")
    mo.vstack([mo.md(f"""
    ## 1 · Traffic

    Deployment v{deployment.version} serves prompt `{deployment.value.prompt}`
    v{deployment.value.prompt_version} on `{deployment.value.model}`. Real users are not here
    yet, so the workbench plays them: messages from the test split (some asked twice — the
    cache answers), a request without a key, one with the wrong fields, and feedback on half
    the answers — thumbs up when the answer is right, down with the correct team otherwise.
    Everything goes over HTTP to the running service, exactly as a client would send it.
    """), users, simulate])
    return simulate, users


@app.cell(hide_code=True)
def _(project, simulate, users):
    mo.stop(not (simulate.value or running_as_script()),
            mo.md("Press **Start the service and send the traffic**."))
    session_key = "wb-" + secrets.token_urlsafe(16)
    service = start_server(project, api_keys=[session_key])
    with mo.status.spinner(f"{users.value} requests ..."):
        sent = sample.simulate_users(project, service.url, session_key, requests=users.value)
    service.stop()
    mo.md(f"Sent {sample.describe_traffic(sent)}.")
    return (sent,)


@app.cell(hide_code=True)
def _(project, sent):
    figure = monitor.dashboard(project)
    traffic_figure = monitor_figures.traffic_figure(project, window_s=86400)
    per_arm = monitor.breakdown(project, "arm")
    mo.vstack([mo.md(r"""
    ## 2 · The dashboard

    Per time bucket: requests, errors (the service failed) and refusals (no key, bad input,
    over the rate limit — counted apart: they never reached a model); p50/p95/p99 latency and
    cost per request with the card's targets as dashed red lines; the share of positive
    feedback. The table is the last hour, in the card's metric names.

    The numbers come from per-minute and per-hour **aggregates** kept as each span is written,
    so the same dashboard answers in well under a second over a million requests. **Active
    users** are counted from the id a client may send with each request (an `X-Workbench-User`
    header, or the `user` field of OpenAI's API); it is stored only as a keyed hash, never as sent.
    """), mo.md(f"**{monitor.traffic(project).label}**"),
        nb.table(monitor.summary_frame(project)), figure, traffic_figure,
        mo.md("**Per deployment arm** (live, canary, shadow) over the last 24 hours — the same "
              "table exists per `model`, `prompt_version` and `client` (API key):"),
        nb.table(per_arm)])
    return


@app.cell(hide_code=True)
def _(project, sent):
    budget = monitor_cost.budget_status(project)
    mo.vstack([mo.md(r"""
    ## 3 · Cost against the budget

    The card's monthly budget counts every model call (evaluations and the online judge
    spend from it too). The **budget-burn** alert projects the month's end from the last
    seven days' rate and fires while there is still time to act, not when the bill arrives.
    Below: spend per day, the service's spend per API key, and the running total against the
    budget.
    """), mo.callout(mo.md(budget.sentence),
                     kind="danger" if budget.status == "over" else "info"),
        monitor_figures.cost_figure(project), nb.table(monitor_cost.spend_by_key(project))])
    return


@app.cell(hide_code=True)
def _(project, sent):
    said = monitor.feedback_frame(project).sort_values("rating")
    mo.vstack([mo.md(r"""
    ## 4 · Feedback

    Each thumbs up or down is stored with the request it is about, so you can read the exact
    question and answer — and the correction the user gave. Thumbs down with a correction
    are the best test cases you will ever get: phase 9 turns them into a new dataset version
    and re-evaluates.
    """), nb.table(said[["rating", "input", "output", "correction", "comment"]])])
    return


@app.cell(hide_code=True)
def _(project, sent):
    usable = nb.usable_models()
    judge_pick = nb.model_dropdown(project, usable, label="Judge model")
    judge_share = mo.ui.slider(0.1, 1.0, step=0.1, value=0.5, show_value=True,
                               label="share of answered requests to judge")
    run_judge = mo.ui.run_button(label="Judge a sample of live answers")
    mo.vstack([mo.md(r"""
    ## 5 · Quality in production: the online judge

    Phase 6 measured quality on a test set; live traffic has no expected answers. An **online
    judge** scores a sample of live answers with a rubric that needs no reference. The sample
    is drawn by a hash of each request, so running it again never re-draws, and its calls
    are traced and spend from the budget like any model call.

    Phase 6's rule holds: a judge's word is not quality until it agrees with people.
    Verdicts of an **uncalibrated** (or untrusted) judge are stored and shown, labelled so,
    and never counted as quality or used by an alert. To trust it, label some judged
    requests yourself and call `monitor_judge.calibrate_live_judge(project, judge, labels)`.
    In production, set `judge_model`, `judge_criteria` and `judge_sample_rate` in the card's
    `[monitoring]` table and run `workbench monitor --judge` from cron.
    """), judge_pick, judge_share, run_judge])
    return judge_pick, judge_share, run_judge


@app.cell(hide_code=True)
def _(judge_pick, judge_share, project, run_judge):
    mo.stop(not (run_judge.value or running_as_script()),
            mo.md("Press **Judge a sample of live answers**."))
    team_rubric = Rubric(criteria=["The answer names the team that should handle the "
                                   "customer's message (billing, technical, account, "
                                   "shipping or other)"], name="team-check")
    with nb.caught() as _problem:
        with mo.status.spinner("The judge reads a sample of answers ..."):
            judged = monitor_judge.judge_live(project, judge_model=judge_pick.value,
                                              rubric=team_rubric,
                                              sample_rate=judge_share.value,
                                              limit=4 if running_as_script() else 50)
    _problem.stop()
    mo.vstack([mo.callout(mo.md(judged.sentence),
                          kind="success" if judged.trust == "trusted" else "warn"),
               nb.table(monitor_judge.live_quality(project)),
               monitor_figures.quality_figure(project),
               nb.table(monitor_judge.judgements_frame(project, judge=judged.judge)[
                   ["question", "answer", "score", "passed", "reason"]])])
    return


@app.cell(hide_code=True)
def _(project, sent):
    run_drift = mo.ui.run_button(label="Compare today's inputs with the training data")
    mo.vstack([mo.md(r"""
    ## 6 · Drift: are the inputs still like the training data?

    The inputs of the last 24 hours are embedded with the bundled embeddings model and
    compared with the training split of the dataset the deployment was evaluated on: the
    distance between their mean embeddings. Its threshold is **learned, not guessed**: the
    validation split stands for "new inputs like the training data", and a thousand draws of
    as many validation inputs as the window has show how far chance alone moves the mean.
    A window further than 95% of those drifted — a new product, a new kind of customer, a
    broken upstream form. The demo's handful of inputs is far too few for a real decision
    (production checks wait for `drift_min_inputs`, 20 by default).
    """), run_drift])
    return (run_drift,)


@app.cell(hide_code=True)
def _(project, run_drift):
    mo.stop(not (run_drift.value or running_as_script()),
            mo.md("Press **Compare today's inputs with the training data**."))
    with nb.caught() as _problem:
        with mo.status.spinner("Embedding the inputs ..."):
            drift = check_drift(project, window_s=86400, min_inputs=5)
    _problem.stop()
    mo.vstack([mo.callout(mo.md(drift.sentence),
                          kind={"drift": "danger", "no drift": "success"}.get(drift.status,
                                                                             "neutral")),
               monitor_figures.drift_figure(project)])
    return


@app.cell(hide_code=True)
def _(project, sent):
    rules = monitor.rules_frame(project)
    alerts = monitor_alerts.check_alerts(project)
    mo.vstack([mo.md(r"""
    ## 7 · Alerts, and who hears about them

    Five kinds, each stored with its kind:

    - **threshold** — the card's targets monitoring can measure (latency, cost, parse rate,
      error rate, positive feedback), plus an error-rate limit of 5% when the card sets none;
    - **budget** — the month's spend projected past the monthly budget;
    - **anomaly** — p95 latency, error rate or spend far above *their own* last 7 days (a
      robust z-score: how many median deviations above the median), which a fixed threshold
      cannot see; it needs a day of history first;
    - **drift** — the latest drift check; **quality** — a *trusted* online judge below the
      card's `judge_score`.

    A window with too little traffic says "no data" instead of guessing. The **notifier**
    appends each new or resolved alert to `logs/alerts.jsonl` in the project and POSTs it to
    a webhook (`webhook_url_env` in `[monitoring]`, or `--webhook URL`), with a timeout and
    retries; an alert that keeps firing is sent again only after `renotify_after_h` hours.
    On a server, run `workbench monitor --window 1h --judge --drift --fail-on-alert` from
    cron: it exits 3 when an alert fires.
    """), nb.table(rules), nb.table(monitor.alerts_table(alerts)),
        *[mo.callout(mo.md(f"**{a.kind}** — {a.message}"), kind="danger")
          for a in alerts if a.status == "firing"],
        mo.md(f"Notifier: {alerts.delivery.sentence}" if alerts.delivery else "")])
    return


@app.cell(hide_code=True)
def _(project, sent):
    from widgets import TraceViewer
    from workbench import otlp as _otlp

    trace_viewer = mo.ui.anywidget(TraceViewer(project))
    mo.vstack([mo.md(r"""
    ## 8 · Traces: every request, step by step

    Each row is one trace: a request to the service, or a model call made outside one (an
    evaluation run's, the online judge's). Filter by status, model, prompt version, deployment
    arm, end user (type the id the client sent: it is matched against its stored hash) or
    time window, then click a trace. Its spans form a tree — the request, the content filter's
    check of the input, the model call (a second one when a repair turn was needed), the check
    of the output — each with a bar on the trace's timeline. Click a span to read what went in
    (the request, the rendered messages) and what came out (the reply, tokens, cost, the
    filter's verdict, whether the reply parsed); long values are cut, with a button to show
    them whole. The list is read a page at a time with filters in SQL, so it stays quick over
    a million spans.

    The attributes follow the OpenTelemetry GenAI conventions, so the same traces go to
    Phoenix, Langfuse or any OTLP collector: live when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
    or afterwards with `workbench traces export --otlp URL --since 1d`.
    """), trace_viewer, mo.md(_otlp.export_summary(project, since="1h"))])
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Common mistake: averages only": mo.md(
            "A mean latency of 0.8 s can hide a p95 of 6 s. Watch the tail the card sets a "
            "target for."),
        "Common mistake: counting refusals as outages": mo.md(
            "A 429 is the rate limit doing its job and a 422 a client sending the wrong "
            "fields. They are counted, but apart from the errors of the service."),
        "Tip: feedback is sparse — make it count": mo.md(
            "Few users click a thumb. Ask for the correction when they do: one corrected "
            "answer is a ready-made test case."),
        "Common mistake: counting an uncalibrated judge as quality": mo.md(
            "A judge that has never been compared with people can be confidently wrong. "
            "Show its verdicts, read them, label some, calibrate — then count them."),
        "Common mistake: paging on every check": mo.md(
            "A cron job every five minutes with a still-firing alert would page twelve times "
            "an hour. Send changes (firing, resolved) and repeat only after hours."),
    })
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 8)
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
