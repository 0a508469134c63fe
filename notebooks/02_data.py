# /// script
# requires-python = ">=3.11"
# dependencies = ["llmops-workbench", "marimo"]
# ///
"""Phase 2: import, profile, clean, redact, label, split and version the data."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="02 · Data preparation")

with app.setup:

    import marimo as mo

    import widgets.notebook as nb
    from widgets.notebook import running_as_script

    from workbench import data, pii, sample
    from workbench.data.cleaning import (
        apply_steps,
        drop_near_duplicates,
        filter_length,
        step_from_dict,
    )
    from workbench.data.importing import describe_import, describe_version, reimport_losses
    from workbench.bridges.data import export_dataset


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Phase 2 · Data collection and preparation

    **What:** bring your examples into the project and make them trustworthy: profile them, clean
    them, remove personal data, fix wrong labels, split them into train / validation / test, and
    keep every step as a **version** you can go back to.

    **Why:** every later number — model comparison, prompt scores, fine-tuning, evaluation — is
    only as good as this data. *Quality over quantity:* a few hundred clean, correctly labelled
    examples beat thousands of noisy ones.

    **Prerequisites:** the project card from phase 1 (one click below fills it from the sample).
    **You leave behind:** dataset versions with their lineage, ready for phases 3–6.
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
    use_sample_card = mo.ui.run_button(label="Fill the card from the sample project")
    missing_card = not project.card().get("use_case")
    (mo.vstack([mo.callout(mo.md("Phase 1 has not been done: the card has no use case, so the "
                                 "task type (and the labels) are unknown."), kind="warn"),
                use_sample_card])
     if missing_card else mo.md(""))
    return (use_sample_card,)


@app.cell(hide_code=True)
def _(project, use_sample_card):
    mo.stop(project is None)
    if use_sample_card.value or (running_as_script() and not project.card().get("use_case")):
        sample.fill_sample_card(project)
    card_ready = bool(project.card().get("use_case"))
    return (card_ready,)


@app.cell(hide_code=True)
def _():
    source = mo.ui.text(value=str(sample.datasets_dir() / "support_messages.csv"),
                        label="File (CSV, TSV, JSONL, JSON or Parquet)", full_width=True)
    dataset_name = mo.ui.text(value=sample.SAMPLE_DATASET, label="Dataset name")
    input_column = mo.ui.text(value="text", label="Input column")
    expected_column = mo.ui.text(value="intent", label="Expected output column (optional)")
    id_column = mo.ui.text(value="ticket_id", label="Id column (optional)")
    metadata_columns = mo.ui.text(value="channel", label="Metadata columns (comma separated)")
    do_import = mo.ui.run_button(label="Import")
    confirm_import = mo.ui.run_button(label="Import anyway", kind="danger")
    mo.vstack([
        mo.md(r"""
        ## 1 · Import

        Map your file's columns to the workbench's: the **input** the model sees, the
        **expected** output (a label or a reference answer), an **id**, and metadata to keep.
        The encoding is detected (UTF-8 first, then the Western European code pages); if two
        encodings would read a line differently, the import names the line, shows both readings
        and asks you to choose. A bad row or a missing column is reported with its line, and
        nothing is imported until the whole file is valid.
        """),
        source, mo.hstack([dataset_name, input_column, expected_column]),
        mo.hstack([id_column, metadata_columns]), do_import,
    ])
    return (confirm_import, dataset_name, do_import, expected_column, id_column, input_column,
            metadata_columns, source)


@app.cell(hide_code=True)
def _(card_ready, confirm_import, dataset_name, do_import, expected_column, id_column,
      input_column, metadata_columns, project, source):
    mo.stop(project is None or not card_ready)
    name = dataset_name.value.strip() or sample.SAMPLE_DATASET
    imported, _problem = None, None
    # Importing again starts over from the raw file: say what the new version would lack.
    losses = reimport_losses(project, name)
    asked = bool(do_import.value and losses and not confirm_import.value)
    if not asked and (do_import.value or confirm_import.value
                      or (running_as_script() and name not in data.datasets(project))):
        with nb.caught() as _problem:
            imported = data.import_data(
                project, source.value, name=name, input=input_column.value.strip(),
                expected=expected_column.value.strip() or None,
                id=id_column.value.strip() or None,
                metadata=[c.strip() for c in metadata_columns.value.split(",") if c.strip()])
    if asked:
        import_view = mo.vstack([mo.callout(mo.md(
            f"Dataset **{name}** has had work done since its file was imported. Importing "
            f"again makes a new version from the raw file, **without**:\n\n"
            + "\n".join(f"- {loss}" for loss in losses)
            + "\n\nEarlier versions stay as they are. Import a changed file under a new "
              "dataset name instead, or go ahead:"), kind="warn"), confirm_import])
    elif _problem:
        import_view = _problem.view
    elif imported is not None:
        import_view = mo.md(describe_import(imported).replace("\n", "  \n"))
    elif name in data.datasets(project):
        import_view = mo.md(describe_version(data.get_version(project, name)))
    else:
        import_view = mo.md("Press **Import** to bring the file into the project.")
    import_view
    return imported, name


@app.cell(hide_code=True)
def _(imported, name, project):
    mo.stop(project is None or name not in data.datasets(project))
    imported  # re-run after an import
    raw_frame = data.load(project, name)
    near_threshold = mo.ui.slider(0.85, 0.99, step=0.01,
                                  value=sample.SAMPLE_NEAR_DUPLICATE_THRESHOLD,
                                  label="near-duplicate similarity", show_value=True)
    mo.vstack([mo.md(r"""
    ## 2 · Profile

    Sizes, lengths, empties, label balance and duplicates. **Near duplicates** are found with
    the bundled sentence embeddings: two messages above the similarity threshold say the same
    thing. Too low a threshold also catches *different* customers asking the same question —
    look at the pairs before you drop anything.
    """), near_threshold])
    return near_threshold, raw_frame


@app.cell(hide_code=True)
def _(near_threshold, raw_frame):
    with mo.status.spinner("Profiling (embedding every message) ..."):
        data_profile = data.profile(raw_frame, threshold=near_threshold.value)
    figures = data_profile.figures()
    mo.vstack([
        nb.table(data_profile.summary),
        mo.hstack([figures[k] for k in ("lengths", "labels") if k in figures], widths="equal"),
        mo.accordion({"Near-duplicate pairs": nb.table(
            data.near_duplicates(raw_frame, threshold=near_threshold.value))}),
    ])
    return


@app.cell(hide_code=True)
def _(raw_frame):
    with mo.status.spinner("Looking for likely label errors ..."):
        suspects = None
        with nb.caught() as _problem:
            suspects = data.label_issues(raw_frame)
    (_problem.view if _problem else mo.vstack([
        mo.md(f"""
        ### Likely label errors

        A classical model trained on the *other* folds predicts each row's label
        (out-of-fold), and confident learning flags rows whose given label it finds
        implausible. **{nb.plural(len(suspects), 'row')}**
        {'looks' if len(suspects) == 1 else 'look'} suspicious; review them in step 5.
        """),
        nb.table(suspects.head(20)),
    ]))
    return (suspects,)


@app.cell(hide_code=True)
def _():
    steps_wanted = mo.ui.multiselect(
        options=["normalize_unicode", "normalize_whitespace", "drop_empty",
                 "drop_exact_duplicates", "drop_near_duplicates"],
        value=["normalize_unicode", "normalize_whitespace", "drop_empty",
               "drop_exact_duplicates", "drop_near_duplicates"],
        label="Cleaning steps, in order")
    min_chars = mo.ui.number(0, 1000, value=0, label="drop inputs shorter than (chars)")
    apply_cleaning = mo.ui.run_button(label="Apply: save a cleaned version")
    mo.vstack([mo.md(r"""
    ## 3 · Clean

    Each step is recorded in the new version's transform, with how many rows it changed or
    dropped, so the cleaning can be read and repeated. The preview below changes nothing.
    """), steps_wanted, min_chars, apply_cleaning])
    return apply_cleaning, min_chars, steps_wanted


@app.cell(hide_code=True)
def _(apply_cleaning, min_chars, name, near_threshold, project, raw_frame, steps_wanted):
    chosen_steps = [
        drop_near_duplicates(near_threshold.value) if s == "drop_near_duplicates"
        else step_from_dict(s) for s in steps_wanted.value]
    if min_chars.value:
        chosen_steps.append(filter_length(min_chars=int(min_chars.value)))
    cleaned = None
    if chosen_steps:
        preview, cleaning_report = apply_steps(raw_frame, chosen_steps)
        if apply_cleaning.value or running_as_script():
            cleaned = data.clean(project, name, chosen_steps)
        clean_view = mo.vstack([
            nb.table(cleaning_report),
            mo.md(f"Saved **version {cleaned.version}** "
                  f"({nb.plural(cleaned.value.rows, 'row')})." if cleaned
                  else f"Preview: {len(raw_frame):,} → {nb.plural(len(preview), 'row')}."),
        ])
    else:
        clean_view = mo.md("Pick at least one step.")
    clean_view
    return (cleaned,)


@app.cell(hide_code=True)
def _():
    redact_mode = mo.ui.dropdown(["placeholder", "mask"], value="placeholder",
                                 label="Redaction")
    do_redact = mo.ui.run_button(label="Redact: save a version without personal data")
    mo.vstack([mo.md(r"""
    ## 4 · Personal data (PII)

    Support messages carry e-mail addresses, phone numbers, names, addresses, card numbers and
    IBANs. The scanner combines Presidio with spaCy's English model and checksum-validated
    patterns (Luhn for cards, mod-97 for IBANs). **Placeholders** keep the text readable and
    consistent — the same address becomes the same `<EMAIL_1>` everywhere; **mask** blanks it.

    With the card's rule *"no PII to external APIs"*, the gateway also redacts every prompt
    bound for a hosted model, whatever the data says.
    """), redact_mode, do_redact])
    return do_redact, redact_mode


@app.cell(hide_code=True)
def _(cleaned, do_redact, name, project, redact_mode):
    cleaned  # after cleaning
    before_redaction = data.load(project, name)
    with mo.status.spinner("Scanning for personal data ..."):
        found = pii.scan(before_redaction["input"].tolist())
    redacted = None
    if (do_redact.value or running_as_script()) and not found.empty:
        redacted = pii.redact_dataset(project, name, mode=redact_mode.value)
    redaction_note = (f"Saved **version {redacted.version}**: "
                      + pii.describe_redaction(redacted.value.transform.params)
                      if redacted else "")
    mo.vstack([
        mo.md(f"**{nb.plural(len(found), 'personal detail')}** in "
              f"**{nb.plural(found['row'].nunique() if not found.empty else 0, 'message')}**."),
        nb.table(pii.counts_by_type(found)),
        mo.md(redaction_note),
    ])
    return (redacted,)


@app.cell(hide_code=True)
def _():
    with mo.status.spinner("Scoring the scanner on its two labelled PII sets ..."):
        pii_tuning = pii.evaluate()
        pii_held_out = pii.evaluate(pii.EVAL_PATH)
    pii_columns = ["precision", "recall", "f1", "leak_rate", "support"]
    pii_compare = (pii_held_out[pii_columns].round(3)
                   .join(pii_tuning[pii_columns].round(3), rsuffix=" (tuning)"))
    mo.vstack([mo.md(rf"""
    ### How good is the scanner?

    Precision, recall and the **leak rate** — the share of personal values still in the text
    after redaction — per type on two labelled sets shipped with the workbench. A detector
    measured only on the sample it was tuned on looks better than it is: read the
    **independent** set's figures, written without looking at the detector; the tuning
    sample's are in the *(tuning)* columns beside them.

    Independent set: **{pii_held_out.at["ALL", "leak_rate"]:.0%}** of personal values leak
    (tuning sample: {pii_tuning.at["ALL", "leak_rate"]:.0%}); names leak most
    ({pii_held_out.at["PERSON", "leak_rate"]:.0%}). False alarms on texts without any PII:
    {pii_held_out.attrs["pii_free_false_positives"]} in {pii_held_out.attrs["pii_free_texts"]}
    texts. Redaction lowers the risk; it does not remove it — keep the card's rule for hosted
    models and look at a sample of redacted rows before sharing data.
    """), nb.table(pii_compare)])
    return


@app.cell(hide_code=True)
def _(name, project, redacted, suspects):
    redacted  # after redaction
    from widgets import Annotator

    labels = data.get_version(project, name).value.labels or []
    review_items = data.review_items(data.load(project, name),
                                     suspects["id"] if suspects is not None else [])
    annotator = mo.ui.anywidget(Annotator(review_items, labels)) if review_items and labels \
        else None
    save_labels = mo.ui.run_button(label="Save the reviewed labels as a new version")
    mo.vstack([
        mo.md(r"""
        ## 5 · Label

        Review the rows flagged as likely label errors: press a number key for a label,
        **S** to skip, **U** to undo. For a team, push the data to a real
        [Label Studio](https://labelstud.io) server instead (below) and pull the annotations
        back as a new version.
        """),
        annotator if annotator is not None else mo.md("_Nothing to review._"),
        save_labels,
    ])
    return annotator, save_labels


@app.cell(hide_code=True)
def _(annotator, name, project, save_labels):
    relabelled = None
    if annotator is not None and save_labels.value:
        with nb.caught() as _problem:
            relabelled = annotator.widget.save(project, name)
            label_view = mo.md(f"Saved **version {relabelled.version}**.")
        if _problem:
            label_view = _problem.view
    else:
        label_view = mo.md("")
    label_view
    return (relabelled,)


@app.cell(hide_code=True)
def _():
    from workbench import labelstudio

    ls_url = mo.ui.text(value="http://127.0.0.1:8080", label="Label Studio URL")
    ls_token = mo.ui.text(kind="password", label="API token")
    ls_push = mo.ui.run_button(label="Push to Label Studio")
    ls_pull = mo.ui.run_button(label="Pull annotations back")
    mo.accordion({"Label with a team in Label Studio": mo.vstack([
        mo.md(f"""
        Start a local server (in its own environment; `scripts/setup.sh` makes
        `.venv-labelstudio`):

        ```
        {labelstudio.start_command(8080)}
        ```

        then push the dataset (a project with a labelling config for the card's task type is
        made for you), annotate in the browser, and pull: the annotations become a new
        version with `transform = label`.
        """),
        ls_url, ls_token, mo.hstack([ls_push, ls_pull]),
    ])})
    return labelstudio, ls_pull, ls_push, ls_token, ls_url


@app.cell(hide_code=True)
def _(labelstudio, ls_pull, ls_push, ls_token, ls_url, name, project):
    mo.stop(not (ls_push.value or ls_pull.value))
    with nb.caught() as _problem:
        client = labelstudio.LabelStudio(ls_url.value, ls_token.value or None)
        if ls_push.value:
            ls_project = labelstudio.push(project, name, client=client)
            ls_view = mo.md(f"Pushed to Label Studio project {ls_project}.")
        else:
            pulled = labelstudio.pull(project, name, client=client)
            ls_view = mo.md(f"Pulled annotations into **version {pulled.version}**.")
    if _problem:
        ls_view = _problem.view
    ls_view
    return


@app.cell(hide_code=True)
def _():
    train_share = mo.ui.slider(0.5, 0.9, step=0.05, value=0.7, label="train", show_value=True)
    validation_share = mo.ui.slider(0.05, 0.3, step=0.05, value=0.15, label="validation",
                                    show_value=True)
    seed = mo.ui.number(0, 10_000, value=0, label="seed")
    do_split = mo.ui.run_button(label="Split: save a version with a split column")
    mo.vstack([mo.md(r"""
    ## 6 · Split

    Train (for few-shot examples and fine-tuning), validation (for choosing prompts and
    settings) and test (touched only to report). Stratified by label, fixed by the seed, and
    near duplicates are kept in the same split — otherwise the test set leaks answers.
    """), mo.hstack([train_share, validation_share, seed]), do_split])
    return do_split, seed, train_share, validation_share


@app.cell(hide_code=True)
def _(do_split, name, near_threshold, project, redacted, relabelled, seed, train_share,
      validation_share):
    redacted, relabelled  # after the earlier steps
    test_share = round(1 - train_share.value - validation_share.value, 2)
    splitted, _problem = None, None
    if do_split.value or running_as_script():
        with nb.caught() as _problem:
            splitted = data.split(project, name,
                                  ratios=(train_share.value, validation_share.value, test_share),
                                  seed=int(seed.value),
                                  near_duplicate_threshold=near_threshold.value)
    if _problem:
        split_view = _problem.view
    elif splitted is not None:
        leaks = data.version_leaks(project, name, splitted.version,
                                   near_duplicate_threshold=near_threshold.value)
        split_view = mo.vstack([
            mo.md(f"Saved **version {splitted.version}**: "
                  + ", ".join(nb.plural(n, f"{part} row") for part, n
                              in splitted.value.splits.items()) + "."),
            mo.callout(mo.md("No item or near duplicate sits in two splits."), kind="success")
            if leaks.empty else nb.table(leaks),
        ])
    else:
        split_view = mo.md(f"Test share: {test_share:.2f}. Press **Split** to save.")
    split_view
    return (splitted,)


@app.cell(hide_code=True)
def _(name, project, splitted):
    splitted  # after the split
    lineage = data.versions(project, name)
    version_numbers = [str(v) for v in lineage["version"]]
    diff_from = mo.ui.dropdown(version_numbers, value=version_numbers[0], label="from")
    diff_to = mo.ui.dropdown(version_numbers, value=version_numbers[-1], label="to")
    mo.vstack([mo.md(r"""
    ## 7 · Versions

    Every step above made an immutable version: a Parquet file named by its content hash, its
    parent and the transform that made it. Pick two to see what changed.
    """), nb.table(lineage.drop(columns=["params"])),
        mo.hstack([diff_from, diff_to])])
    return diff_from, diff_to


@app.cell(hide_code=True)
def _(diff_from, diff_to, name, project):
    changes = data.diff(project, name, int(diff_from.value), int(diff_to.value))
    mo.vstack([
        mo.md(f"**{(changes['change'] == 'added').sum():,}** added, "
              f"**{(changes['change'] == 'removed').sum():,}** removed, "
              f"**{(changes['change'] == 'changed').sum():,}** changed cells."),
        nb.table(changes.head(200)),
    ])
    return


@app.cell(hide_code=True)
def _():
    mo.accordion({
        "How this relates to DVC": mo.md(
            "DVC versions data *files* next to git: it hashes each file, keeps the content in a "
            "cache or remote, and commits a small pointer. The workbench does the same inside "
            "the project — Parquet files named by content hash in `data/`, and a record per "
            "version in `workbench.db` with its parent and transform — so lineage is queryable "
            "from notebooks. For a team, put `data/` under DVC (`dvc add data`) to share it."),
        "Common mistake: sending PII to external APIs": mo.md(
            "Copying real tickets into a hosted model's prompt sends your customers' details "
            "to a third party. Redact first, and set the card's privacy rule so the gateway "
            "redacts anything that slips through."),
        "Common mistake: more data instead of better data": mo.md(
            "Doubling a noisy dataset doubles the noise. Fix the flagged labels and remove "
            "duplicates first; then measure whether more data still helps."),
    })
    return


@app.cell(hide_code=True)
def _(name, splitted):
    splitted  # after the split
    export_format = mo.ui.dropdown(["csv", "jsonl", "parquet"], value="parquet",
                                   label="format")
    export_data = mo.ui.run_button(label="Export the latest version")
    mo.vstack([mo.md(f"""
    ### Take it to other tools (DVC, spreadsheets, other pipelines)

    The latest version of `{name}` goes out as one file and `{name}.lineage.json` beside it
    (which version, every transform that made it, how to import it again) in
    `exports/data/{name}/`. Track that folder with `dvc add exports/data/{name}`, and export
    again after each new version; importing the file again gives the same content hash.
    """), mo.hstack([export_format, export_data])])
    return export_data, export_format


@app.cell(hide_code=True)
def _(export_data, export_format, name, project):
    mo.stop(not (export_data.value or running_as_script()))
    _made = export_dataset(project, name, format=export_format.value)
    mo.callout(mo.md(_made.sentence), kind="success")
    return


@app.cell(hide_code=True)
def _(project):
    mo.stop(project is None)
    exercise_view, exercise_pick, exercise_check = nb.exercises_panel(project, 2)
    exercise_view
    return exercise_check, exercise_pick


@app.cell(hide_code=True)
def _(exercise_check, exercise_pick, project):
    nb.exercise_result(project, exercise_pick, exercise_check)
    return


@app.cell(hide_code=True)
def _(project, splitted):
    splitted
    mo.stop(project is None)
    nb.what_next(project)
    return


if __name__ == "__main__":
    app.run()
