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

    from workbench import monitor, sample
    from workbench.serve import latest_deployment, start_server


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 8 · Monitoring

    **What:** watch the deployed service — every request is a **trace** (the request, the
    model calls inside it, tokens, cost, cache, fallback); the **dashboard** shows requests,
    errors, latency and cost over time against the card's targets; users' **feedback**
    (thumbs up/down, a correction) is tied to the exact answer; **alerts** fire when a window
    misses a target.

    **Why:** the evaluation of phase 6 was a sample of yesterday's inputs. Traffic drifts,
    providers slow down, prices change, and users find failures no test set had. Monitoring
    is how you hear about it before they stop telling you.

    **Prerequisites:** a deployment (phase 7; one click makes a demo deployment of the sample
    prompt). **You leave behind:** traces, feedback and fired alerts in `workbench.db`.
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
    mo.vstack([mo.md(r"""
    ## 2 · The dashboard

    Per time bucket: requests, errors (the service failed) and refusals (no key, bad input,
    over the rate limit — counted apart: they never reached a model); p50/p95 latency and cost
    per request with the card's targets as dashed red lines; the share of positive feedback.
    The table is the last hour, in the card's metric names.
    """), mo.md(f"**{monitor.traffic(project).label}**"),
        nb.table(monitor.summary_frame(project)), figure])
    return


@app.cell(hide_code=True)
def _(project, sent):
    said = monitor.feedback_frame(project).sort_values("rating")
    mo.vstack([mo.md(r"""
    ## 3 · Feedback

    Each thumbs up or down is stored with the request it is about, so you can read the exact
    question and answer — and the correction the user gave. Thumbs down with a correction
    are the best test cases you will ever get: phase 9 turns them into a new dataset version
    and re-evaluates.
    """), nb.table(said[["rating", "input", "output", "correction", "comment"]])])
    return


@app.cell(hide_code=True)
def _(project, sent):
    rules = monitor.rules_frame(project)
    alerts = monitor.check_alerts(project)
    mo.vstack([mo.md(r"""
    ## 4 · Alerts

    The rules are the card's targets that monitoring can measure (latency, cost, parse rate,
    error rate, positive feedback), plus an error-rate limit of 5% when the card sets none.
    A window with too little traffic says "no data" instead of guessing. On a server, run
    `workbench monitor --window 1h --fail-on-alert` from cron: it exits 3 when an alert fires.
    """), nb.table(rules),
        *[mo.callout(mo.md(f"**{a.status}** — {a.message}"),
                     kind={"firing": "danger", "ok": "success"}.get(a.status, "neutral"))
          for a in alerts]])
    return


@app.cell(hide_code=True)
def _(project, sent):
    from workbench import otlp as _otlp

    tree = monitor.request_trace(project)
    mo.vstack([mo.md(r"""
    ## 5 · One request, traced

    The last answered request and the model calls inside it (a repair turn shows up as a
    second call). The attributes follow the OpenTelemetry GenAI conventions, so the same
    traces go to Phoenix, Langfuse or any OTLP collector: live when
    `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or afterwards with
    `workbench traces export --otlp URL --since 1d`.
    """), nb.table(tree), mo.md(_otlp.export_summary(project, since="1h"))])
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
