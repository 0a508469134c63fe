"""The card form driven through its traits, as the front end drives it; no browser here."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from workbench.card import choose_model, load_card


def on_disk(project) -> dict:
    return tomllib.loads(project.card_path.read_text())


def front_end_save(widget, **fields) -> None:
    """What the Save button sends: the draft sections and a bumped save_requests, together."""
    widget.set_state({**fields, "save_requests": widget.save_requests + 1})


def test_import_is_lazy_and_registered():
    code = ("import sys, widgets; assert 'anywidget' not in sys.modules;"
            "from widgets import CardForm; assert 'anywidget' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_form_shows_the_sample_card(sample_project):
    from widgets import CardForm

    w = CardForm(sample_project)
    assert w.project_path == str(sample_project.path)
    assert w.use_case["task_type"] == "classification"
    assert w.metrics == [
        {"name": "accuracy", "target": 0.9, "direction": ">=", "unit": "fraction"},
        {"name": "p95_latency", "target": 2.0, "direction": "<=", "unit": "s"},
        {"name": "cost_per_request", "target": 0.002, "direction": "<=", "unit": "USD"},
    ]
    assert w.constraints == {"monthly_budget_usd": 200, "expected_requests_per_day": 3000,
                             "latency_budget_s": 2.0, "privacy": ["no PII to external APIs"],
                             "blocked_terms": []}
    assert (w.errors, w.missing, w.status, w.saved_count) == ([], [], "loaded", 0)
    assert "p95_latency" in [m["name"] for m in w.metric_catalog]
    assert w.task_types[0] == "classification"


def test_saving_a_valid_edit_writes_the_file(sample_project):
    from widgets import CardForm

    w = CardForm(sample_project)
    metrics = [dict(m) for m in w.metrics]
    metrics[0]["target"] = "0.95"  # input boxes send text
    metrics.append({"name": "macro_f1", "target": "0.9", "direction": ">=", "unit": "fraction"})
    metrics.append({"name": "", "target": "", "direction": "", "unit": ""})  # added, left blank
    front_end_save(w, metrics=metrics,
                   use_case={**w.use_case, "users": "  Tier-1 agents "},
                   constraints={**w.constraints, "expected_requests_per_day": "3,300"})

    assert (w.errors, w.status, w.saved_count, w.save_answers) == ([], "saved", 1, 1)
    assert "Saved to" in w.message
    raw = on_disk(sample_project)
    assert raw["metrics"][0]["target"] == 0.95
    assert raw["metrics"][3] == {"name": "macro_f1", "target": 0.9, "direction": ">=",
                                 "unit": "fraction"}
    assert len(raw["metrics"]) == 4
    assert raw["use_case"]["users"] == "Tier-1 agents"
    assert raw["constraints"]["expected_requests_per_day"] == 3300
    assert raw["project"]["name"] == "Help desk triage"  # untouched tables stay
    # The form now shows the saved, normalised card.
    assert w.metrics[0]["target"] == 0.95 and len(w.metrics) == 4


def test_invalid_draft_lists_every_problem_and_writes_nothing(sample_project):
    from widgets import CardForm

    before = sample_project.card_path.read_text()
    w = CardForm(sample_project)
    metrics = [dict(m) for m in w.metrics]
    metrics.insert(0, {"name": "", "target": "", "direction": "", "unit": ""})  # blank row 0
    metrics[2]["unit"] = ""  # p95_latency, form row 2
    metrics.append({"name": "happiness", "target": "high", "direction": ">=", "unit": ""})
    front_end_save(w, metrics=metrics,
                   constraints={**w.constraints, "monthly_budget_usd": "lots"})

    assert w.status == "invalid" and w.saved_count == 0 and w.save_answers == 1
    assert w.errors == [
        "[constraints] monthly_budget_usd is 'lots', which is not a number: write "
        "monthly_budget_usd = 200 (a plain number, no quotes).",
        'metrics[2] \'p95_latency\' has no unit: add unit = "s".',
        "metrics[4] 'happiness' target is 'high', which is not a number: write target = 0.9 "
        "(no quotes, no unit; the unit has its own key).",
    ]
    assert w.message == "Not saved: 3 problems to fix first."
    assert sample_project.card_path.read_text() == before

    # Saving the same bad draft again still answers (the front end stops waiting).
    front_end_save(w)
    assert w.save_answers == 2 and w.status == "invalid"

    # Fixed: saved, errors cleared.
    metrics[2]["unit"] = "s"
    metrics[4] = {"name": "error_rate", "target": "0.01", "direction": "<=", "unit": "fraction"}
    front_end_save(w, metrics=metrics, constraints={**w.constraints, "monthly_budget_usd": 250})
    assert (w.errors, w.status, w.saved_count) == ([], "saved", 1)
    assert [m.name for m in load_card(sample_project).metrics][-1] == "error_rate"


def test_a_save_keeps_a_model_chosen_meanwhile(sample_project):
    from widgets import CardForm

    w = CardForm(sample_project)
    choose_model(sample_project, "fake/echo", "cheapest")  # another notebook, after the form opened
    front_end_save(w, use_case={**w.use_case, "outputs": "One label."})
    card = load_card(sample_project)
    assert card.model.chosen == "fake/echo" and card.use_case.outputs == "One label."
    assert w.chosen_model == "fake/echo" and len(w.decisions) == 1


def test_a_broken_hand_edit_is_shown_and_can_be_fixed_in_the_form(sample_project):
    from widgets import CardForm

    text = sample_project.card_path.read_text().replace('"fraction"', '"percent"')
    sample_project.card_path.write_text(text)
    w = CardForm(sample_project)
    assert w.status == "invalid"
    assert w.errors == ["metrics[0] 'accuracy' has unit 'percent', but accuracy is measured in "
                        "'fraction' or '%': set unit = \"fraction\"."]
    assert w.metrics[0]["unit"] == "percent"  # loaded as written, so it can be fixed here

    metrics = [dict(m) for m in w.metrics]
    metrics[0].update(unit="%", target=90)
    front_end_save(w, metrics=metrics)
    assert w.status == "saved"
    assert load_card(sample_project).metrics[0].target_in_canonical_unit() == 0.9

    # A hand edit made while the form is open appears on Reload.
    sample_project.card_path.write_text(
        sample_project.card_path.read_text().replace("Support agents", "Agents"))
    w.set_state({"reload_requests": 1})
    assert w.use_case["users"].startswith("Agents") and w.status == "loaded"


def test_an_empty_project_and_a_missing_one(project, tmp_path):
    from widgets import CardForm

    w = CardForm(project)
    assert w.metrics == [] and w.errors == [] and w.missing
    front_end_save(w, use_case={"description": "Answer HR questions", "task_type": "chat"},
                   metrics=[{"name": "judge_score", "target": "0.8", "direction": ">=",
                             "unit": "fraction"}])
    assert w.status == "saved"
    assert on_disk(project)["use_case"] == {"description": "Answer HR questions",
                                            "task_type": "chat"}
    assert "No latency target yet: add p95_latency (seconds)." in w.missing

    gone = CardForm(str(tmp_path / "nowhere"))
    assert gone.status == "error" and "workbench init" in gone.errors[0]
    front_end_save(gone)
    assert gone.status == "error" and gone.saved_count == 0
