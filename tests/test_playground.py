"""The prompt playground, driven through its traits as the front end drives it (no browser)."""

from __future__ import annotations

import pytest

LABELS = ["billing", "technical", "account"]


@pytest.fixture
def project(make_split_project, fake_model):
    """A sample-card project with a small split dataset and a fake model that reads the label
    out of the message (and says 'unsure' when the template hides it)."""
    proj = make_split_project(LABELS, 40, metadata={"channel": "email"})

    def reader(messages):
        text = messages[-1]["content"]
        return next((lb for lb in LABELS if lb in text), "unsure")

    fake_model("pg-reader", reader)
    fake_model("pg-billing", ["billing"])
    return proj


def save_v1(project, **kw):
    from workbench.prompts import PromptVersion, save_prompt

    values = {"template": "Label: {{ input }}", "labels": LABELS, "model": "fake/pg-billing"}
    return save_prompt(project, "triage", PromptVersion(**{**values, **kw}))


def make(project, **kw):
    from widgets import Playground

    return Playground(project, "triage", dataset="tiny", n_items=4, **kw)


def state(w) -> dict:
    return {"version": w.version, "system": w.system, "template": w.template, "model": w.model,
            "temperature": w.temperature, "max_tokens": w.max_tokens, "status": w.status,
            "error": w.error}


def test_opens_the_latest_version_with_sample_items_and_usable_models(project):
    save_v1(project, params={"temperature": 0.3})
    w = make(project)
    assert state(w) == {"version": 1, "system": "", "template": "Label: {{ input }}",
                        "model": "fake/pg-billing", "temperature": 0.3, "max_tokens": 256,
                        "status": "ready", "error": ""}
    assert len(w.items) == 4
    assert set(w.items[0]) == {"item_id", "input", "expected"}
    ids = [c["id"] for c in w.model_choices]
    assert {"fake/echo", "fake/pg-reader", "fake/pg-billing"} <= set(ids)
    assert "openai/gpt-4o-mini" not in ids  # hosted calls are off in tests: not usable
    assert w.message == "Editing triage v1."


def test_run_shows_the_draft_beside_the_saved_version_then_save_makes_v2(project):
    save_v1(project)
    w = make(project)
    w.model = "fake/pg-reader"  # what the front end's select sends
    w.run_requests += 1  # the Run button: runs on a thread
    w.wait()
    assert (w.status, w.running, w.progress, w.progress_total) == ("ran", False, 8, 8)
    assert [o["match"] for o in w.outputs] == [True] * 4
    assert [o["parsed"] for o in w.previous_outputs] == ["billing"] * 4
    assert w.previous_label == "v1"
    assert [o["item_id"] for o in w.outputs] == [i["item_id"] for i in w.items]
    assert w.message == "Ran 4 items: 4 answered, 4 of 4 match the expected answer."

    w.description = "use the reader model"
    w.save_requests += 1
    assert (w.status, w.saved_version, w.version) == ("saved", 2, 2)
    assert w.message == "Saved triage v2."
    from workbench.prompts import load_prompt

    saved = load_prompt(project, "triage").value
    assert (saved.model, saved.description, saved.template) == (
        "fake/pg-reader", "use the reader model", "Label: {{ input }}")
    assert saved.params == {}  # untouched defaults are not written

    # Saving again without a change stores nothing and says so.
    w.save_requests += 1
    assert (w.status, w.saved_version) == ("unchanged", 2)
    assert w.message.startswith("No change")

    # The next run compares with v2, whose outputs are the ones just run (no new calls).
    w.template = "Which team? {{ input }}"
    w.run()
    assert w.previous_label == "v2"
    assert w.progress_total == 4
    assert [o["match"] for o in w.previous_outputs] == [True] * 4


def test_a_template_error_names_the_variable_and_line(project):
    save_v1(project)
    w = make(project)
    w.template = "Channel: {{ channel }}\nCustomer: {{ customer_name }}"
    w.run()
    assert w.status == "error"
    assert w.template_error["variable"] == "customer_name"
    assert w.template_error["line"] == 2
    assert w.template_error["part"] == "template"
    assert "customer_name" in w.error and "line 2" in w.error
    assert w.outputs == []

    w.template = "{{ input "  # a syntax error: Save refuses it too
    assert w.save() == 0
    assert w.status == "error" and w.template_error["line"] == 1
    assert "syntax error" in w.error

    w.template = "{{ expected }}"  # label leakage is refused with the reason
    w.run()
    assert "label leakage" in w.error


def test_model_errors_are_shown_per_item(project):
    save_v1(project)
    w = make(project)
    w.model = "fake/echo:fail=500"
    w.run()
    assert w.status == "ran"
    assert all(o["error"] for o in w.outputs)
    assert w.message.startswith("Ran 4 items: 0 answered")


def test_a_new_prompt_starts_from_input_and_saves_version_1(project):
    w = make(project)
    assert (w.version, w.template, w.status) == (0, "{{ input }}", "ready")
    assert w.message == "triage is new: Save stores it as version 1."
    w.model = "fake/pg-reader"
    w.system = "You route support messages."
    w.run()
    assert w.previous_outputs == [] and w.previous_label == ""
    assert w.save() == 1
    from workbench.prompts import load_prompt

    assert load_prompt(project, "triage").value.system == "You route support messages."


def test_changed_parameters_are_saved(project):
    save_v1(project)
    w = make(project)
    w.temperature = 0.7
    w.max_tokens = 32
    assert w.save() == 2
    from workbench.prompts import load_prompt

    assert load_prompt(project, "triage").value.params == {"temperature": 0.7, "max_tokens": 32}


def test_save_without_an_edit_makes_no_version_even_with_integer_parameters(project):
    """A version saved with temperature=0 (the starter prompts do that) opens in the slider as
    0.0; saving it untouched used to store a copy whose diff showed no change."""
    from workbench.prompts import diff_prompts, prompt_versions, save_prompt, starter_prompts

    save_prompt(project, "triage", starter_prompts(LABELS)["role_system"])
    w = make(project)
    assert w.temperature == 0.0
    assert w.save() == 1
    assert (w.status, w.saved_version, w.version) == ("unchanged", 1, 1)
    assert w.message == "No change: the draft is the same as v1, so nothing was saved."
    w.save_requests += 1  # the button, twice more
    w.save_requests += 1
    assert len(prompt_versions(project, "triage")) == 1

    w.template += "!"  # one character is a change
    assert w.save() == 2
    assert w.status == "saved"
    assert diff_prompts(project, "triage", 1, 2).changed_fields == ["template"]


def test_save_of_a_draft_equal_to_an_older_version_names_it(project):
    save_v1(project)
    w = make(project)
    w.template = "Team? {{ input }}"
    assert w.save() == 2
    w.template = "Label: {{ input }}"  # back to v1's template
    w.description = "back to the label template"
    assert w.save() == 1
    assert (w.status, w.version, w.saved_version, w.previous_label) == ("unchanged", 1, 1, "v1")
    assert w.message == ("No change: the draft is the same as v1 (v2 is the newest), so nothing "
                         "was saved. Only the description differs; a description alone makes "
                         "no version.")
    from workbench.prompts import prompt_versions

    assert len(prompt_versions(project, "triage")) == 2


def test_a_missing_dataset_is_a_message_not_a_traceback(project):
    from widgets import Playground

    w = Playground(project, "triage", dataset="nope")
    assert w.status == "error"
    assert "nope" in w.error
