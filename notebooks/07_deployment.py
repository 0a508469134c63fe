# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 7: deployment — the chosen prompt and model as a served API, gated by the evaluation,
with API keys, rate limits, input validation, fallbacks and a Dockerfile."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="07 · Deployment")

with app.setup:

    import json
    import secrets

    import httpx
    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import running_as_script
    from workbench import sample
    from workbench.bridges.promptfoo import export_promptfoo
    from workbench.data.versioning import find_split
    from workbench.evaluate import loadtest
    from workbench.runs import start_run
    from workbench.serve import DeploymentRefused, plan_deployment, rollout, start_server


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 7 · Deployment

    **What:** put the chosen prompt and model behind an HTTP API — with **API keys**, a
    **rate limit** per key, **input validation**, the response **cache**, **retries** and
    **fallback** models — and write the **Dockerfile** that ships it.

    **Why:** a prompt that works in a notebook is not a product yet. The service is where
    abuse, bursts, outages of a provider and malformed input arrive; each needs an answer
    before the first user does.

    **The gate:** the workbench deploys only a configuration that passed the evaluation of
    phase 6 (the card's targets, the blessed baseline, trusted judges). You can force a
    failing one through — that is written to the card's decision log with the reasons.

    **Prerequisites:** the card, a split dataset and a prompt (one click fills them from the
    sample). **You leave behind:** `deploy/service.json`, `deploy/Dockerfile` and a
    `deployment` record.
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
    mo.stop(not nb.fill_prerequisites(project, 7, fill))
    dataset = find_split(project, prefer=sample.SAMPLE_DATASET)
    return (dataset,)


@app.cell(hide_code=True)
def _(dataset, project):
    usable = nb.usable_models()
    # Every prompt version the project holds, set to the one phase 6 blessed or tagged.
    version_pick = nb.prompt_version_dropdown(project, prefer=sample.SAMPLE_PROMPT)
    model_pick = nb.model_dropdown(project, usable)
    fallback_pick = mo.ui.multiselect(usable, label="Fallbacks (in order)")
    n_items = nb.test_items_slider(dataset)
    run_eval = mo.ui.run_button(label="Evaluate this configuration")
    mo.vstack([mo.md(r"""
    ## 1 · The evaluation that justifies it

    A deployment names the evaluation run that shows it meets the targets: the prompt
    version on the model, on the **test split**. (Phase 6 goes deeper: repeats, intervals,
    judges. Here one run is the evidence the gate reads.)
    """), version_pick, mo.hstack([model_pick, fallback_pick, n_items]), run_eval])
    return fallback_pick, model_pick, n_items, run_eval, version_pick


@app.cell(hide_code=True)
def _(dataset, model_pick, n_items, project, run_eval, version_pick):
    mo.stop(not (run_eval.value or running_as_script()),
            mo.md("Press **Evaluate this configuration**."))
    mo.stop(version_pick.value is None, mo.md("Save a prompt in phase 4 first."))
    deploy_prompt, deploy_version = version_pick.value
    with nb.caught() as _problem:
        with mo.status.progress_bar(total=n_items.value,
                                    title=f"{model_pick.value} on {n_items.value} test items",
                                    completion_title="Evaluation done") as bar:
            evidence = start_run(project, deploy_prompt, version=deploy_version,
                                 dataset=dataset.name, split="test", model=model_pick.value,
                                 limit=n_items.value, progress=nb.progress_callback(bar))
    _problem.stop()
    mo.vstack([mo.md(f"Run `{evidence.run_id}` against the card's targets:"),
               nb.table(evidence.compare_to_card())])
    return deploy_prompt, deploy_version, evidence


@app.cell(hide_code=True)
def _():
    rate_limit = mo.ui.slider(10, 600, step=10, value=60, label="requests a minute per key",
                              show_value=True)
    burst = mo.ui.slider(1, 50, value=5, label="burst", show_value=True)
    force = mo.ui.checkbox(value=running_as_script(),
                           label="Deploy even if the gate fails (written to the decision log)")
    deploy_now = mo.ui.run_button(label="Check the gate and deploy")
    mo.vstack([mo.md(r"""
    ## 2 · The gate, then the deployment files

    The gate reads the run: every target of the card it measures must be met, it must not be
    significantly worse than the blessed baseline, and every judge it used must be trusted.
    The bundled 135M model usually **fails** it on the sample task — the gate says why.
    Forcing it through is allowed for a demo and recorded for everyone to see.
    """), mo.hstack([rate_limit, burst]), force, deploy_now])
    return burst, deploy_now, force, rate_limit


@app.cell(hide_code=True)
def _(
    burst,
    deploy_now,
    deploy_prompt,
    deploy_version,
    evidence,
    fallback_pick,
    force,
    project,
    rate_limit,
):
    mo.stop(not (deploy_now.value or running_as_script()),
            mo.md("Press **Check the gate and deploy**."))
    try:
        deployment = plan_deployment(project, deploy_prompt, version=deploy_version,
                                     model=evidence.config["model"],
                                     fallbacks=list(fallback_pick.value), run_id=evidence.run_id,
                                     force=force.value, rate_limit_per_minute=rate_limit.value,
                                     burst=burst.value)
        refused = None
    except DeploymentRefused as exc:
        deployment, refused = None, mo.vstack([
            mo.callout(mo.md(f"**Refused.** {exc.message}\n\n{exc.fix}"), kind="warn"),
            mo.md("Tick the box above to force it through for this walk-through.")])
    mo.stop(deployment is None, refused)
    files = {path.name: path.read_text() for path in deployment.files}
    mo.vstack([
        mo.callout(mo.md(str(deployment)), kind="warn" if deployment.spec.forced else "success"),
        mo.md("\n".join(f"- {r}" for r in deployment.spec.gate_reasons)),
        mo.accordion({f"deploy/{name}": mo.md(f"```\n{text}\n```") for name, text in
                      files.items()}),
    ])
    return (deployment,)


@app.cell(hide_code=True)
def _(deployment):
    start = mo.ui.run_button(label="Start the service on this machine")
    mo.vstack([mo.md(f"""
    ## 3 · Run the service

    The service is a FastAPI app (`workbench.serve.create_app`); here it runs on a background
    thread on 127.0.0.1 with a key made for this session (it lives in memory only — keys are
    never written to the project). Outside a notebook: `WORKBENCH_API_KEYS=... workbench
    serve`, or build the Docker image from `deploy/Dockerfile`. Deployment
    v{deployment.version} answers `POST /v1/predict` with a JSON object of the template's
    variables: `{json.dumps({v: "..." for v in deployment.spec.variables})}`.
    """), start])
    return (start,)


@app.cell(hide_code=True)
def _(deployment, project, start):
    # Until the service runs, the sections below show what they do and wait for it.
    service = client = None
    if start.value or running_as_script():
        demo_key = "wb-" + secrets.token_urlsafe(16)
        service = start_server(project, api_keys=[demo_key])
        client = httpx.Client(base_url=service.url, timeout=60, trust_env=False,
                              headers={"Authorization": f"Bearer {demo_key}"})
    mo.md(f"""
    Serving deployment v{deployment.version} at **{service.url}** (API docs at
    [{service.url}/docs]({service.url}/docs)).

    ```bash
    curl -s {service.url}/v1/predict -H "Authorization: Bearer {demo_key}" \\
         -H "Content-Type: application/json" -d '{{"input": "Where is my parcel?"}}'
    ```
    """) if service is not None else mo.md("Press **Start the service on this machine**.")
    return client, service


@app.cell(hide_code=True)
def _(client):
    message = mo.ui.text_area(value="I was charged twice for my order this month.",
                              label="Customer message", full_width=True)
    send = mo.ui.run_button(label="Send")
    mo.vstack([mo.md("## 4 · Call it — and misuse it"),
               *((message, send) if client is not None
                 else (nb.waiting_for("the service: start it in section 3"),))])
    return message, send


@app.cell(hide_code=True)
def _(client, message, send, service):
    mo.stop(client is None)
    mo.stop(not (send.value or running_as_script()), mo.md("Press **Send**."))
    answered = client.post("/v1/predict", json={"input": message.value})
    anonymous = httpx.post(f"{service.url}/v1/predict", json={"input": message.value},
                           trust_env=False, timeout=60)
    malformed = client.post("/v1/predict", json={"text": message.value, "admin": True})
    mo.vstack([
        mo.md(f"**With the key** — HTTP {answered.status_code}:"),
        mo.md(f"```json\n{json.dumps(answered.json(), indent=2)}\n```"),
        mo.md(f"**Without a key** — HTTP {anonymous.status_code}: "
              f"{anonymous.json().get('error')}"),
        mo.md(f"**Wrong fields** — HTTP {malformed.status_code}: "
              f"{malformed.json().get('error')} *{malformed.json().get('fix')}*"),
    ])
    return


@app.cell
def _(client, deployment, message, send, service):
    # The same service through OpenAI's SDK: any client that speaks OpenAI's API (the openai
    # package, promptfoo, LangChain) works with base URL .../v1 and the prompt's name as model.
    mo.stop(client is None or not (send.value or running_as_script()))
    from openai import OpenAI as _OpenAI

    _sdk = _OpenAI(base_url=f"{service.url}/v1", max_retries=0, timeout=60,
                   api_key=client.headers["Authorization"].removeprefix("Bearer "))
    _chat = _sdk.chat.completions.create(
        model=deployment.spec.prompt, user="notebook-07",  # user: your end user's id
        messages=[{"role": "user", "content": message.value}])
    mo.md(f"""
    **Through the `openai` SDK** — `{_chat.choices[0].message.content}`
    ({_chat.usage.total_tokens} tokens, id `{_chat.id}`, parsed as
    `{_chat.workbench['parsed']}`). For people rather than programs, the page at
    [{service.url}/]({service.url}/) asks and collects thumbs up or down with corrections.
    """)
    return


@app.cell(hide_code=True)
def _(client, deployment):
    burst_button = mo.ui.run_button(label=f"Send {deployment.spec.burst + 3} requests at once")
    mo.vstack([mo.md(f"""
    ## 5 · The rate limit at work

    Each key may send **{deployment.spec.burst}** requests at once and
    **{deployment.spec.rate_limit_per_minute}** a minute (a token bucket). Beyond that the
    service answers **429** with a `Retry-After` header, before any model is called — a
    runaway client costs nothing.
    """), burst_button if client is not None
        else nb.waiting_for("the service: start it in section 3")])
    return (burst_button,)


@app.cell(hide_code=True)
def _(burst_button, client, deployment):
    mo.stop(client is None or not (burst_button.value or running_as_script()))
    codes = [client.post("/v1/predict", json={"input": "Where is my parcel?"}).status_code
             for _ in range(deployment.spec.burst + 3)]
    mo.md(f"Status codes in order: `{codes}` — **{codes.count(200)}** answered, "
          f"**{codes.count(429)}** limited.")
    return


@app.cell(hide_code=True)
def _(service):
    run_load = mo.ui.run_button(label="Load test the service")
    mo.vstack([mo.md(r"""
    ## 6 · Load test the service

    The load test of phase 6, pointed at the service: a closed loop at each concurrency level
    for a few seconds. Two things to read in it: the same message every time means the
    **cache** answers after the first request (what you measure is the service itself), and
    the **rate limit** turns the excess into HTTP 429 errors — to measure capacity, give the
    load test a key with a higher limit.
    """), run_load if service is not None
        else nb.waiting_for("the service: start it in section 3")])
    return (run_load,)


@app.cell(hide_code=True)
def _(client, run_load, service):
    mo.stop(service is None or not (run_load.value or running_as_script()))
    with mo.status.spinner("Load testing ..."):
        load = loadtest.load_test(f"{service.url}/v1/predict", concurrency_levels=(1, 4),
                                  duration_s=1.0 if running_as_script() else 3.0,
                                  max_requests=8 if running_as_script() else 200,
                                  headers={"Authorization": client.headers["Authorization"]})
    mo.vstack([mo.md(load.summary()), nb.table(load.levels()), nb.table(load.errors()),
               loadtest.plot(load)])
    return


@app.cell(hide_code=True)
def _(deployment, service):
    _others = [m for m in nb.usable_models() if m != deployment.spec.model]
    _others = _others or [deployment.spec.model]
    canary_model = mo.ui.dropdown(_others, value=_others[0], label="Candidate model")
    canary_share = mo.ui.slider(5, 50, step=5, value=25, label="share of end users (%)",
                                show_value=True)
    canary_force = mo.ui.checkbox(value=running_as_script(),
                                  label="Stage it even if the gate fails (decision log)")
    canary_go = mo.ui.run_button(label="Evaluate, stage the canary, serve 12 end users")
    mo.vstack([mo.md(r"""
    ## 7 · A canary beside it

    A new model or prompt version meets real traffic a little at a time. **Stage** it as a
    **canary** for a share of the end users (`workbench deploy PROMPT --canary 10%`): it
    passes the same gate, the running service picks it up within a second without a restart,
    and each end user (named in an `X-Workbench-User` header, else the key) stays on one arm.
    Compare the arms, then **promote** it or **roll back**. `--shadow` instead calls the
    candidate on every request and shows its answers to nobody.
    """), *((mo.hstack([canary_model, canary_share]), canary_force, canary_go)
            if service is not None else (nb.waiting_for("the service: start it in section 3"),))])
    return canary_force, canary_go, canary_model, canary_share


@app.cell(hide_code=True)
def _(canary_force, canary_go, canary_model, canary_share, client, dataset, deploy_prompt,
      deploy_version, n_items, project):
    mo.stop(client is None or not (canary_go.value or running_as_script()))
    with mo.status.spinner(f"Evaluating {canary_model.value} ..."):
        _run = start_run(project, deploy_prompt, version=deploy_version, dataset=dataset.name,
                         split="test", model=canary_model.value, limit=n_items.value,
                         progress=False)
    with nb.caught() as _refused:
        staged = plan_deployment(project, deploy_prompt, version=deploy_version,
                                 model=canary_model.value,
                                 run_id=_run.run_id, canary=canary_share.value / 100,
                                 force=canary_force.value)
    _refused.stop()
    with mo.status.spinner("One request for each of 12 end users ..."):
        _seen = rollout.ask_end_users(
            client, ["Where is my parcel?", "I was charged twice.", "I cannot log in.",
                     "The app crashes when I open it."], users=12, version=staged.version)
    _arms = rollout.arm_metrics(project)
    mo.vstack([
        mo.callout(mo.md(str(staged)), kind="warn" if staged.spec.candidate.forced
                   else "success"),
        mo.hstack([nb.table(_seen), nb.table(_arms[["arm", "configuration", "requests",
                                                    "error_rate", "p95_latency_ms",
                                                    "thumbs_up_rate"]])]),
        rollout.arm_figure(_arms)])
    return (staged,)


@app.cell(hide_code=True)
def _(staged):
    canary_decision = mo.ui.radio({"Promote it to live": "promote",
                                   "Roll it back": "rollback"}, value="Roll it back")
    canary_decide = mo.ui.run_button(label="Decide")
    mo.vstack([mo.md(f"""
    Promote the {staged.spec.canary_share:.0%} canary, or roll it back? Either is a new
    deployment version (`deploy/` rewritten) and an entry in the card's decision log with the
    arms' figures; the running service follows it. From a shell: `workbench promote` or
    `workbench rollback`.
    """), canary_decision, canary_decide])
    return canary_decide, canary_decision


@app.cell(hide_code=True)
def _(canary_decide, canary_decision, project):
    mo.stop(not (canary_decide.value or running_as_script()))
    _done = getattr(rollout, canary_decision.value)(project, reason="Decided in notebook 07.")
    mo.vstack([mo.callout(mo.md(str(_done)), kind="success"),
               mo.md(f"Decision log: *{project.card()['decisions'][-1]['decision']}*")])
    return


@app.cell(hide_code=True)
def _(service):
    stop = mo.ui.run_button(label="Stop the service")
    stop if service is not None else None
    return (stop,)


@app.cell(hide_code=True)
def _(client, service, stop):
    mo.stop(service is None or not (stop.value or running_as_script()))
    client.close()
    service.stop()
    mo.md("The service is stopped.")
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Common mistake: deploying what was never evaluated": mo.md(
            "A prompt edited after its evaluation is a different prompt. The deployment names "
            "the prompt version and the run that justified it; change either and the gate "
            "runs again."),
        "Common mistake: keys in the code or the image": mo.md(
            "Keys come from the environment (`WORKBENCH_API_KEYS`, provider keys) at run "
            "time. Nothing in `deploy/` or the project holds one, so the image can be shared."),
        "Tip: fallbacks need their own evaluation": mo.md(
            "A fallback model answers when the main one fails — with its own quality. Evaluate "
            "it too, and watch how often it is used (phase 8)."),
    })
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    from workbench.runs import list_runs

    _runs = list_runs(project).head(20)
    pf_run = mo.ui.dropdown(list(_runs["run_id"]), label="evaluation run",
                            value=(list(_runs["run_id"]) or [None])[0])
    pf_url = mo.ui.text(value="http://127.0.0.1:8000", label="served at")
    pf_go = mo.ui.run_button(label="Write the promptfoo config")
    mo.vstack([mo.md(r"""
    ## Check the service with promptfoo

    An evaluation run becomes a `promptfooconfig.yaml` whose provider is this deployment's
    OpenAI-compatible endpoint and whose tests are the run's items with its scorers as
    assertions. Run `promptfoo eval -c exports/promptfoo/<run>/promptfooconfig.yaml` with
    `WORKBENCH_API_KEY` set to one of the service's keys (the key is never written in the
    file).
    """), mo.hstack([pf_run, pf_url, pf_go])])
    return pf_go, pf_run, pf_url


@app.cell(hide_code=True)
def _(pf_go, pf_run, pf_url, project):
    mo.stop(not pf_go.value or not pf_run.value)
    with nb.caught() as _problem:
        _view = mo.md(export_promptfoo(project, pf_run.value, base_url=pf_url.value).sentence)
    if _problem:
        _view = _problem.view
    _view
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 7)
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
