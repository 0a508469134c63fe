# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 5: fine-tuning — LoRA on the bundled model on a laptop CPU, with the same evaluation
before and after."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="05 · Fine-tuning")

with app.setup:

    import json

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import callout, running_as_script
    from widgets.training import TrainingMonitor

    import workbench as wb
    from workbench import sample
    from workbench.data.versioning import find_split
    from workbench.finetune import (
        FineTune,
        before_after,
        build_training_data,
        export_axolotl,
        export_openai,
        import_adapter,
        list_adapters,
        make_options,
        prompting_verdict,
        record_decision,
        validate_openai_jsonl,
    )
    from workbench.finetune.options import TARGETABLE_MODULES
    from workbench.prompts import list_prompts


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 5 · Fine-tuning

    **What:** teach the bundled model (SmolLM2-135M) your task with **LoRA** — a few small
    matrices trained beside frozen weights — on your laptop's CPU, then run **the same
    evaluation before and after**.

    **Why — and when not:** fine-tune **only when prompting fails**. A better prompt,
    few-shot examples or a stronger model cost minutes; a fine-tuned model is a new artefact
    to train, evaluate, serve and keep fresh. Fine-tuning pays when a small, cheap, private
    model must do one narrow job well, or when the output format will not stick by prompting.

    **The one rule of this phase:** the model must be trained on **exactly** the text it will
    be asked at inference — the same system prompt, template, few-shot turns and chat
    template. The workbench checks that token by token and refuses to train if they drift.

    **Prerequisites:** the card, a split dataset and a prompt (one click fills them from the
    sample). **You leave behind:** an adapter in `adapters/<name>/` (standard PEFT files and
    its training record), usable at once as `local/smollm2-135m:<name>` in runs, the
    playground, evaluation, the gate and the service; and a decision in the card's log.
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
    mo.stop(not nb.fill_prerequisites(project, 5, fill))
    dataset = find_split(project, prefer=sample.SAMPLE_DATASET)
    prompt_names = list_prompts(project)
    return dataset, prompt_names


@app.cell(hide_code=True)
def _(prompt_names):
    prompt_pick = mo.ui.dropdown(
        prompt_names, label="Prompt",
        value=sample.SAMPLE_PROMPT if sample.SAMPLE_PROMPT in prompt_names else prompt_names[0])
    return (prompt_pick,)


@app.cell(hide_code=True)
def _(project, prompt_pick):
    verdict = prompting_verdict(project, prompt_pick.value)
    kind = {None: "info", True: "warn", False: "success"}[verdict.should_finetune]
    mo.vstack([
        mo.md("## 1 · Should you fine-tune at all?"),
        prompt_pick,
        mo.callout(mo.md(verdict.sentence), kind=kind),
        nb.table(verdict.frame()[["metric", "target", "value", "status"]])
        if verdict.targets else mo.md(""),
    ])
    return (verdict,)


@app.cell(hide_code=True)
def _(dataset):
    available = dataset.value.splits.get("train", 8)
    n_train = mo.ui.slider(8, available, step=8,
                           value=min(64 if running_as_script() else 128, available),
                           label="train examples", show_value=True)
    max_length = mo.ui.number(64, 4096, step=32, value=384, label="max length (tokens)")
    mo.vstack([mo.md(f"""
    ## 2 · The training data

    Each example is one row of the **train split** of `{dataset.name}` v{dataset.version}: the
    prompt rendered for it (exactly what the gateway sends) and the expected answer written
    the way the prompt's parser reads it. The loss counts **the answer's tokens only** — the
    model is not taught to write customer messages. The **validation split** scores the model
    during training (early stopping); the **test split** is never touched here.

    A slice is fine on a laptop: {available} train rows are available; a label-balanced
    slice keeps every class. The guide's advice is 50–100 examples at least, 500+ ideally.
    """), mo.hstack([n_train, max_length])])
    return max_length, n_train


@app.cell(hide_code=True)
def _(dataset, max_length, n_train, project, prompt_pick):
    with nb.caught() as _problem:
        data = build_training_data(project, prompt_pick.value, dataset.name,
                                   limit=n_train.value,
                                   options=make_options(max_length=max_length.value,
                                                        too_long="drop"))
    _problem.stop()
    shown = data.preview(2)
    mo.vstack([
        nb.table([{"": k, "value": v} for k, v in data.summary().items()],
                 label="What the model will learn from"),
        *[mo.callout(mo.md(w), kind="warn") for w in data.warnings],
        mo.accordion({f"Example {ex['id']} as the model reads it": mo.md(
            f"**Prompt** (not learnt):\n\n```\n{ex['prompt']}\n```\n\n"
            f"**Answer** (learnt):\n\n```\n{ex['answer']}\n```") for ex in shown}),
        data.lengths_figure(),
    ])
    return (data,)


@app.cell(hide_code=True)
def _(prompt_pick):
    rank = mo.ui.dropdown(["4", "8", "16", "32"], value="8", label="LoRA rank r")
    alpha = mo.ui.number(1, 256, value=16, label="alpha")
    dropout = mo.ui.slider(0.0, 0.3, step=0.05, value=0.05, label="dropout", show_value=True)
    modules = mo.ui.multiselect(list(TARGETABLE_MODULES), value=["q_proj", "v_proj"],
                                label="target modules")
    learning_rate = mo.ui.dropdown(["1e-4", "3e-4", "1e-3", "2e-3"], value="1e-3",
                                   label="learning rate")
    epochs = mo.ui.slider(1, 5, value=1, label="epochs", show_value=True)
    batch_size = mo.ui.dropdown(["1", "2", "4", "8"], value="4", label="batch size")
    accumulation = mo.ui.slider(1, 8, value=1, label="gradient accumulation", show_value=True)
    seed = mo.ui.number(0, 10_000, value=0, label="seed")
    adapter_name = mo.ui.text(value=f"{prompt_pick.value}-lora", label="adapter name")
    replace = mo.ui.checkbox(value=True, label="replace an adapter of that name when done")
    resume = mo.ui.checkbox(value=False, label="resume an interrupted training of that name")
    mo.vstack([mo.md(r"""
    ## 3 · Options, and what they will cost

    The defaults work for SmolLM2-135M on two cores: rank 8 on the attention's query and value
    projections, learning rate 1e-3 (LoRA tolerates rates ten times a full fine-tune's), batches
    of four, one epoch. **Estimate** times two real steps on this machine before you commit.
    """), mo.hstack([rank, alpha, dropout, modules]),
        mo.hstack([learning_rate, epochs, batch_size, accumulation, seed]),
        mo.hstack([adapter_name, replace, resume])])
    return (accumulation, adapter_name, alpha, batch_size, dropout, epochs, learning_rate,
            modules, rank, replace, resume, seed)


@app.cell(hide_code=True)
def _(accumulation, adapter_name, alpha, batch_size, data, dropout, epochs, learning_rate,
      max_length, modules, project, rank, replace, resume, seed):
    with nb.caught() as _problem:
        options = make_options(rank=int(rank.value), alpha=float(alpha.value),
                               dropout=dropout.value, target_modules=list(modules.value),
                               learning_rate=float(learning_rate.value), epochs=epochs.value,
                               batch_size=int(batch_size.value),
                               gradient_accumulation=accumulation.value,
                               max_length=max_length.value, seed=int(seed.value),
                               too_long="drop")
        job = FineTune(project, data, adapter_name.value, options=options,
                       overwrite=replace.value, resume=resume.value)
    _problem.stop()
    estimate_button = mo.ui.run_button(label="Estimate time and memory")
    discarded = (mo.callout(mo.md(f"An interrupted training of `{job.name}` (step "
                                  f"{job.discards_checkpoint}) will be discarded when you "
                                  "press Train; tick *resume* to continue it instead."),
                            kind="warn") if job.discards_checkpoint is not None else mo.md(""))
    mo.vstack([mo.callout(mo.md(f"{job.parity} {job.total_steps} steps "
                                f"({job.steps_per_epoch} an epoch), validation every "
                                f"{job.eval_every}."), kind="success"), discarded,
               estimate_button])
    return estimate_button, job


@app.cell(hide_code=True)
def _(estimate_button, job):
    mo.stop(not (estimate_button.value or running_as_script()),
            mo.md("Press **Estimate** to time real steps first."))
    with mo.status.spinner("Timing two steps on this machine ..."):
        estimate = job.estimate()
    mo.callout(mo.md(str(estimate)), kind="info")
    return


@app.cell(hide_code=True)
def _(job):
    monitor = mo.ui.anywidget(TrainingMonitor(job))
    train_button = mo.ui.run_button(label="Train")
    mo.vstack([mo.md(r"""
    ## 4 · Train

    Watch both curves. The **train loss** falls as the model fits the examples it sees; the
    **validation loss** says whether that carries over to rows it has not seen. When validation
    turns up while train keeps falling, the model is **overfitting** — memorising — and
    training stops early, keeping the best checkpoint (the green line). **Stop** ends after
    the current step and keeps the best weights too; a killed or interrupted training resumes
    from its last checkpoint (tick *resume* above, or `workbench finetune ... --resume`).
    """), train_button, monitor])
    return (train_button,)


@app.cell(hide_code=True)
def _(job, train_button):
    mo.stop(not (train_button.value or running_as_script()), mo.md("Press **Train**."))
    if running_as_script():
        job.run(progress=False)  # headless: wait for it
    else:
        job.start(mo.Thread)  # a background thread: the Stop button stays live
    started = True
    return (started,)


@app.cell(hide_code=True)
def _(started):
    mo.stop(not started)
    show_adapter = mo.ui.run_button(label="Show the adapter (after training)")
    mo.vstack([mo.md("## 5 · The adapter"), show_adapter])
    return (show_adapter,)


@app.cell(hide_code=True)
def _(job, project, show_adapter):
    mo.stop(not (show_adapter.value or running_as_script()))
    mo.stop(not job.state.done, mo.callout(mo.md("Training is still running; press again when "
                                                 "it has finished."), kind="info"))
    try:
        result = job.wait(timeout=0)
        result_problem = None
    except (wb.WorkbenchError, KeyboardInterrupt) as exc:
        result, result_problem = None, exc
    mo.stop(result is None, callout(result_problem) if isinstance(result_problem,
                                                                  wb.WorkbenchError)
            else mo.md(job.state.message))
    mo.vstack([
        mo.callout(mo.md(str(result)), kind="success"),
        mo.md(f"Saved in `{result.adapter_dir}`: "
              + ", ".join(f"`{f}`" for f in sorted(result.record.files)) + ", `training.json`."
              f" Call it anywhere as **`{result.model_id}`**."),
        nb.table(list_adapters(project), label="Adapters in this project"),
    ])
    return (result,)


@app.cell(hide_code=True)
def _(dataset, result):
    available_test = dataset.value.splits.get("test", 4)
    n_test = mo.ui.slider(4, available_test, step=2,
                          value=min(12 if running_as_script() else 16, available_test),
                          label="test items", show_value=True)
    compare_button = mo.ui.run_button(label="Evaluate before and after")
    mo.vstack([mo.md(f"""
    ## 6 · Before and after

    The same prompt version on the same **test** items, once with the base model and once with
    `{result.model_id}` — phase 6's evaluation: values with intervals, McNemar's paired test
    on the items both answered, the items that flipped, and the card's targets and the
    classical baseline beside them.
    """), n_test, compare_button])
    return compare_button, n_test


@app.cell(hide_code=True)
def _(compare_button, n_test, project, prompt_pick, result, verdict):
    mo.stop(not (compare_button.value or running_as_script()))
    with mo.status.progress_bar(
            total=2 * n_test.value,
            title=f"Evaluating without and with the adapter on "
                  f"{nb.plural(n_test.value, 'test item')}",
            subtitle="the base model's run from section 1 is reused when it matches",
            completion_title="Before and after done") as bar:
        compared = before_after(project, prompt_pick.value, result.name,
                                dataset=result.record.dataset,
                                version=result.record.prompt_version, limit=n_test.value,
                                before_run=verdict.run_id, progress=nb.progress_callback(bar))
    mo.vstack([
        mo.callout(mo.md(compared.sentence), kind="success" if compared.improved else "warn"),
        nb.table(compared.table, label="Before and after, with 95% intervals"),
        mo.md(f"**Classical baseline:** {compared.baseline}") if compared.baseline
        else mo.md(""),
        nb.table(compared.flipped, label="Items that flipped"),
    ])
    return (compared,)


@app.cell(hide_code=True)
def _(compared):
    decide = mo.ui.run_button(label="Write the decision to the card")
    mo.vstack([mo.md("The verdict goes to the card's decision log, with both run ids, so the "
                     "choice can be checked later."), decide])
    return (decide,)


@app.cell(hide_code=True)
def _(compared, decide, project):
    mo.stop(not (decide.value or running_as_script()))
    entry = record_decision(project, compared)
    mo.callout(mo.md(f"Logged: *{entry.decision}* — {entry.reason}"), kind="success")
    return


@app.cell(hide_code=True)
def _():
    export_openai_button = mo.ui.run_button(label="Export OpenAI chat JSONL")
    export_axolotl_button = mo.ui.run_button(label="Export an Axolotl config")
    import_path = mo.ui.text(label="PEFT adapter folder to import", full_width=True)
    import_name = mo.ui.text(value="imported-lora", label="as")
    import_button = mo.ui.run_button(label="Import the adapter")
    mo.vstack([mo.md(r"""
    ## 7 · Beyond the laptop

    The same training data, rendered the same way, for a GPU machine: the **OpenAI** chat
    fine-tuning format (each line checked against the documented shape) or an **Axolotl**
    config with the same base model, LoRA options and the model's own chat template. An
    adapter trained elsewhere comes back with **Import** — after checking that its base model
    is SmolLM2-135M-Instruct and that its weights fit. `workbench.finetune.merge_adapter`
    writes a standalone merged model folder.
    """), mo.hstack([export_openai_button, export_axolotl_button]),
        mo.hstack([import_path, import_name, import_button])])
    return (export_axolotl_button, export_openai_button, import_button, import_name,
            import_path)


@app.cell(hide_code=True)
def _(data, export_openai_button, job, project):
    mo.stop(not (export_openai_button.value or running_as_script()))
    openai_files = export_openai(data, project.path / "exports" / f"{data.prompt}-openai")
    problems = validate_openai_jsonl(openai_files["train"])
    first_line = json.loads(openai_files["train"].read_text().splitlines()[0])
    mo.vstack([mo.md("Wrote " + ", ".join(f"`{p}`" for p in openai_files.values())
                     + (" — every line matches OpenAI's chat format." if not problems
                        else f" — problems: {problems}")),
               mo.md(f"```json\n{json.dumps(first_line, indent=2)[:1500]}\n```")])
    return


@app.cell(hide_code=True)
def _(data, export_axolotl_button, job, project):
    mo.stop(not (export_axolotl_button.value or running_as_script()))
    axolotl_files = export_axolotl(data, job.options,
                                   project.path / "exports" / f"{data.prompt}-axolotl")
    mo.vstack([mo.md(f"Wrote `{axolotl_files['config']}`; on a GPU machine run "
                     "`axolotl train axolotl.yaml` in that folder."),
               mo.md(f"```yaml\n{axolotl_files['config'].read_text()}\n```")])
    return


@app.cell(hide_code=True)
def _(import_button, import_name, import_path, project):
    mo.stop(not import_button.value)
    with nb.caught() as _problem:
        imported = import_adapter(project, import_path.value, import_name.value)
        shown_import = mo.callout(mo.md(f"Imported as `local/smollm2-135m:{imported.name}`."),
                                  kind="success")
    if _problem:
        shown_import = _problem.view
    shown_import
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "Common mistake: too little data": mo.md(
            "With a few dozen examples the validation loss bottoms out within an epoch and "
            "then climbs: the model memorises. More (and more varied) examples beat more "
            "epochs; the guide's advice is 50–100 at least, 500+ ideally."),
        "Common mistake: training on one prompt, serving another": mo.md(
            "An adapter learns the exact text around the answer. Edit the system prompt after "
            "training and the model is asked something it never saw — quality drops silently. "
            "The parity check refuses to train on drifted data; retrain after a prompt change."),
        "Common mistake: judging the adapter on the data it saw": mo.md(
            "Train and validation rows say how well it fits; only the untouched **test** split "
            "says how it will do. The before/after here uses test items only."),
        "Tip: rank and learning rate": mo.md(
            "Rank 8 is plenty for one narrow task; a higher rank mostly adds time. If the loss "
            "jumps around, halve the learning rate; if it barely moves, double it."),
    })
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 5)
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
