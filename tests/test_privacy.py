"""The card's privacy rules: one reading for every module, and the rules enforced for real
(redacted hosted calls, redacted traces and feedback, trace retention)."""

from __future__ import annotations

import json
import time

import pytest

from workbench import card as card_module
from workbench import privacy
from workbench.tracing import Span, spans, write_span

# (rule, forbids external PII, forbids raw logging, retention days)
WORDINGS = [
    ("no PII to external APIs", True, False, None),
    ("PII prohibited in hosted models", True, False, None),
    ("Never send personal data to third-party vendors", True, False, None),
    ("personal information must not leave for cloud providers", True, False, None),
    ("don't send customer data to the cloud", True, False, None),
    ("PII must stay on-prem", True, False, None),
    ("PII only to local models", True, False, None),
    ("redact PII before calling OpenAI", True, False, None),
    ("PII allowed to hosted APIs", False, False, None),
    ("PII is fine for external APIs", False, False, None),
    ("do not log raw inputs", False, True, None),
    ("no raw prompts in logs", False, True, None),
    ("never store user messages verbatim", False, True, None),
    ("log everything", False, False, None),
    ("delete traces after 30 days", False, False, 30),
    ("Keep logs for 2 weeks", False, False, 14),
    ("retain traces 6 months", False, False, 180),
    ("keep data in the EU", False, False, None),
    ("do not log raw inputs and delete traces after 7 days", False, True, 7),
    ("never send PII to hosted APIs, never log raw prompts", True, True, None),
]


def _set_privacy(project, rules):
    def change(c):
        c.setdefault("constraints", {})["privacy"] = rules
    project.update_card(change)


@pytest.mark.parametrize("rule, external, raw, days", WORDINGS)
def test_one_reading_of_each_wording(project, rule, external, raw, days):
    assert privacy.forbids_external_pii(rule) is external
    assert privacy.forbids_raw_logging(rule) is raw
    assert privacy.retention_days(rule) == days
    # The card module, the gateway's check and the policy agree: one reading, one place.
    _set_privacy(project, [rule])
    assert card_module.privacy_forbids_external_pii(card_module.load_card(project)) is external
    assert privacy.project_policy(project).external_pii_forbidden is external
    got = privacy.project_policy(project)
    assert (got.external_pii_forbidden, got.raw_logging_forbidden,
            got.trace_retention_days) == (external, raw, days)
    # A rule the workbench does nothing about is reported as such, not silently kept.
    assert (rule in got.unenforced) is not (external or raw or days is not None)


def test_every_suggested_rule_is_enforced():
    p = privacy.policy(card_module.PRIVACY_SUGGESTIONS)
    assert p.external_pii_forbidden and p.raw_logging_forbidden
    assert p.trace_retention_days == 30 and p.unenforced == ()


def test_effects_say_what_is_done_and_what_is_not():
    effects = privacy.policy(["no PII to external APIs", "keep data in the EU",
                              "delete traces after 7 days", "keep logs for 30 days"]).effects()
    assert any("hosted models" in e for e in effects)
    assert any("older than 7 days" in e for e in effects)  # the shortest retention holds
    assert any("'keep data in the EU'" in e and "cannot enforce" in e for e in effects)


def test_card_form_lists_the_effects(project):
    from widgets.card_form import CardForm

    _set_privacy(project, ["do not log raw inputs", "keep data in the EU"])
    form = CardForm(project)
    assert any("placeholders" in e for e in form.privacy_effects)
    assert any("cannot enforce" in e for e in form.privacy_effects)
    form.constraints = {**form.constraints, "privacy": []}
    assert form.privacy_effects == []


def test_policy_follows_card_edits(project):
    _set_privacy(project, [])
    assert not privacy.project_policy(project).raw_logging_forbidden
    time.sleep(0.01)  # a new modification time
    _set_privacy(project, ["do not log raw inputs"])
    assert privacy.project_policy(project).raw_logging_forbidden


def _stored_span(project, span_id):
    project.store.flush()
    row = project.store.db.execute("SELECT attributes FROM spans WHERE span_id = ?",
                                   (span_id,)).fetchone()
    return json.loads(row[0])


@pytest.mark.parametrize("rules, raw_kept", [([], True), (["do not log raw inputs"], False)])
def test_traces_keep_raw_text_only_when_allowed(project, rules, raw_kept):
    from workbench.llm import gateway

    _set_privacy(project, rules)
    text = "I'm Priya Raghunathan, write to priya@example.com or call +44 20 7946 0958."
    result = gateway.complete(text, "fake/echo", project=project, cache=False)
    assert result.text == text  # the model itself got the text as written (it runs here)
    project.store.flush()
    (span,) = spans(project, name="llm.call")
    stored = json.dumps(span.attributes)
    for value in ("priya@example.com", "+44 20 7946 0958", "Priya Raghunathan"):
        assert (value in stored) is raw_kept, stored
    if not raw_kept:
        assert "<EMAIL_1>" in stored and span.attributes["workbench.logged_redacted"] is True


def test_feedback_text_is_redacted_under_the_rule(project):
    from workbench.monitor import feedback_frame, record_feedback
    from workbench.tracing import start_span

    _set_privacy(project, ["do not log raw inputs"])
    span = start_span("serve.request", {"workbench.request_id": "r1",
                                        "workbench.request": {"input": "jane@example.com"}})
    span.end_time = span.start_time
    write_span(project, span)
    project.store.flush()
    record_feedback(project, rating="down", request_id="r1",
                    comment="wrong, I am jane@example.com", correction="Refund to 4111 1111 1111 1111")
    row = feedback_frame(project).iloc[0]
    assert "jane@example.com" not in row["comment"] and "<EMAIL_1>" in row["comment"]
    assert "4111" not in row["correction"]
    assert "jane@example.com" not in json.dumps(_stored_span(project, span.span_id))


def test_retention_deletes_old_spans_and_keeps_new_ones(project):
    now = time.time()

    def span(age_days):
        s = Span(name="llm.call", trace_id=f"t{age_days}", span_id=f"s{age_days}",
                 parent_id=None, start_time=now - age_days * 86400,
                 end_time=now - age_days * 86400 + 1)
        write_span(project, s)

    for age in (45, 31, 29, 1):
        span(age)
    project.store.flush()
    assert privacy.sweep_traces(project, force=True) == 0  # no rule, nothing deleted
    _set_privacy(project, ["delete traces after 30 days"])
    assert privacy.sweep_traces(project, force=True) == 2
    assert sorted(s.span_id for s in spans(project)) == ["s1", "s29"]
    # Not more than hourly unless forced; and a project opened again sweeps at once.
    span(40)
    assert privacy.sweep_traces(project) == 0


def test_opening_a_project_applies_its_retention(tmp_path):
    import workbench
    from workbench.project import forget_open_projects

    project = workbench.init_project(tmp_path / "p")
    _set_privacy(project, ["delete traces after 30 days"])
    old = Span(name="llm.call", trace_id="t", span_id="old", parent_id=None,
               start_time=time.time() - 60 * 86400, end_time=time.time() - 60 * 86400)
    project.store.defer("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (old.span_id, old.trace_id, None, old.name, old.start_time,
                         old.end_time, "ok", None, "{}"))
    project.store.flush()
    project.store.close()
    forget_open_projects()
    reopened = workbench.open_project(tmp_path / "p")
    assert spans(reopened) == []
