"""The project card: validation in words, one-call load/save, decisions, targets."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest

from workbench.card import (
    MEASURABLE_METRICS,
    NO_EXTERNAL_PII,
    CardProblems,
    Constraints,
    MetricNotInCard,
    ProjectCard,
    SuccessMetric,
    UseCase,
    add_decision,
    choose_model,
    compare_to_targets,
    load_card,
    metric_status,
    parse_card,
    privacy_forbids_external_pii,
    save_card,
    where_measured,
)
from workbench.errors import InvalidCard


def sample_raw(project) -> dict:
    return tomllib.loads(project.card_path.read_text())


def write_toml(project, text: str) -> None:
    project.card_path.write_text(text, encoding="utf-8")


HEADER = '[workbench]\nformat = 1\n\n[project]\nname = "t"\n\n'


def test_sample_card_loads_as_a_typed_card(sample_project):
    card = load_card(sample_project)

    assert card.use_case.task_type == "classification"
    assert [str(m) for m in card.metrics] == [
        "accuracy >= 0.9 fraction", "p95_latency <= 2 s", "cost_per_request <= 0.002 USD"]
    assert card.constraints == Constraints(monthly_budget_usd=200, expected_requests_per_day=3000,
                                           latency_budget_s=2.0, privacy=[NO_EXTERNAL_PII])
    assert card.decisions == [] and card.model.chosen is None
    assert card.problems() == [] and card.missing() == []


def test_a_new_project_has_an_empty_but_valid_card(project):
    card = load_card(project)
    assert card == ProjectCard()
    assert "use_case.task_type is not set" in " ".join(card.missing())


def test_every_problem_in_a_hand_edit_is_named_at_once(project):
    write_toml(project, HEADER + """
[use_case]
task_type = "qa"

[[metrics]]
name = "accuracy"
target = 90
direction = ">="
unit = "fraction"

[[metrics]]
name = "happiness"
target = 1
direction = ">="
unit = "smiles"

[[metrics]]
name = "p95_latency"
target = 2.0
direction = "<="

[[metrics]]
name = "p50_latency"
target = "fast"
direction = "=>"
unit = "s"
unti = "s"

[constraint]
monthly_budget_usd = 5
""")
    with pytest.raises(InvalidCard) as info:
        load_card(project)

    assert isinstance(info.value, CardProblems)
    assert info.value.problems == [
        "[constraint] is not a card table; did you mean [constraints]?",
        "[use_case] task_type is 'qa', which is not allowed; use one of 'classification', "
        "'extraction', 'generation', 'question_answering', 'chat' (did you mean "
        "'question_answering'?).",
        "metrics[0] 'accuracy' target 90 fraction is above the maximum: write 0.9 (a fraction) "
        "or set unit = \"%\".",
        "metrics[1] 'happiness' cannot be measured by any phase; use one of "
        + ", ".join(MEASURABLE_METRICS) + ".",
        "metrics[2] 'p95_latency' has no unit: add unit = \"s\".",
        "metrics[3] 'p50_latency' target is 'fast', which is not a number: write target = 2.0 "
        "(no quotes, no unit; the unit has its own key).",
        "metrics[3] 'p50_latency' direction is '=>', which is not allowed; use one of '>=', "
        "'<=' (p50_latency is better when lower: '<=').",
        "metrics[3] 'p50_latency' has an unknown key 'unti': did you mean 'unit'? the keys are "
        "name, target, direction, unit.",
    ]
    # The exception's one line says where and how to fix, for the CLI.
    assert str(project.card_path) in str(info.value) and "8 problems" in str(info.value)
    assert "card form" in info.value.fix


@pytest.mark.parametrize(("metric", "extra", "expected"), [
    ({"name": "accuracy", "target": 0.9, "direction": "<=", "unit": "fraction"}, {},
     "metrics[0] 'accuracy' is better when higher, so its target needs direction = \">=\", "
     "not \"<=\"."),
    ({"name": "p95_latency", "target": 2, "direction": "<=", "unit": "USD"}, {},
     "metrics[0] 'p95_latency' has unit 'USD', but p95_latency is measured in 's' or 'ms': set "
     "unit = \"s\"."),
    ({"name": "macro_f1", "target": 0.8, "direction": ">=", "unit": "fraction"},
     {"use_case": {"task_type": "generation"}},
     "metrics[0] 'macro_f1' does not apply to generation tasks"),
    ({"name": "p95_latency", "target": 3000, "direction": "<=", "unit": "ms"},
     {"constraints": {"latency_budget_s": 2.0}},
     "metrics[0] 'p95_latency' target 3000 ms is above the latency budget of 2 s in "
     "[constraints]: lower the target or raise latency_budget_s."),
    ({"name": "cost_per_request", "target": 0.01, "direction": "<=", "unit": "USD"},
     {"constraints": {"monthly_budget_usd": 200, "expected_requests_per_day": 3000}},
     "metrics[0] 'cost_per_request' target $0.01 × 3,000 requests a day × 30 days is $900.00 a "
     "month, above the monthly budget of $200"),
    ({"name": "accuracy", "target": 0.9, "direction": ">="}, {},
     "metrics[0] 'accuracy' has no unit: add unit = \"fraction\"."),
    ({"name": "latency_p95", "target": 2, "direction": "<=", "unit": "s"}, {},
     "metrics[0] 'latency_p95' cannot be measured by any phase; did you mean 'p95_latency'? "
     "Otherwise use one of"),
])
def test_semantic_rules(metric, extra, expected):
    card, problems = parse_card({"metrics": [metric], **extra})
    assert card is None
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_percent_and_milliseconds_are_accepted_and_converted():
    card, problems = parse_card({"metrics": [
        {"name": "accuracy", "target": 90, "direction": ">=", "unit": "%"},
        {"name": "p95_latency", "target": 800, "direction": "<=", "unit": "ms"},
    ]})
    assert problems == []
    assert metric_status(card, "accuracy", 0.93) == ("pass", "accuracy 93% (target >= 90%): pass")
    assert metric_status(card, "accuracy", 0.85)[0] == "fail"
    assert metric_status(card, "p95_latency", 0.9) == (
        "fail", "p95_latency 900 ms (target <= 800 ms): fail")


def test_metric_status_against_the_sample_targets(sample_project):
    card = load_card(sample_project)
    assert metric_status(card, "accuracy", 0.9) == ("pass", "accuracy 0.9 (target >= 0.9): pass")
    assert metric_status(card, "p95_latency", 2.5) == (
        "fail", "p95_latency 2.5 s (target <= 2 s): fail")
    assert metric_status(card, "cost_per_request", float("nan"))[0] == "fail"
    with pytest.raises(MetricNotInCard, match="no target for 'macro_f1'"):
        metric_status(card, "macro_f1", 0.5)
    rows = compare_to_targets(card, {"accuracy": 0.95, "p95_latency": 3.0})
    assert [(r["metric"], r["status"]) for r in rows] == [
        ("accuracy", "pass"), ("p95_latency", "fail"), ("cost_per_request", "not measured")]


def test_save_round_trips_and_keeps_other_tables(sample_project):
    sample_project.update_card(lambda c: c.update(prompt={"chosen": "triage-v2"}))
    card = load_card(sample_project)
    changed = card.model_copy(update={
        "metrics": [*card.metrics, SuccessMetric(name="macro_f1", target=0.85, direction=">=",
                                                 unit="fraction")]})

    saved = save_card(sample_project, changed)

    assert saved == changed == load_card(sample_project)
    raw = sample_raw(sample_project)
    assert raw["workbench"]["format"] == 1 and raw["project"]["name"] == "Help desk triage"
    assert raw["prompt"] == {"chosen": "triage-v2"}
    assert raw["metrics"][-1] == {"name": "macro_f1", "target": 0.85, "direction": ">=",
                                  "unit": "fraction"}
    # Nothing unset is written: no empty [model] table or decision log appears.
    assert "model" not in raw and "decisions" not in raw


def test_save_refuses_an_invalid_card_and_leaves_the_file(sample_project):
    before = sample_project.card_path.read_text()
    card = load_card(sample_project)
    bad = card.model_copy(update={"metrics": [
        SuccessMetric(name="p95_latency", target=2, direction="<=", unit="")]})
    with pytest.raises(InvalidCard, match=r"metrics\[0\] 'p95_latency' has no unit"):
        save_card(sample_project, bad)
    assert sample_project.card_path.read_text() == before


def test_save_only_some_sections_keeps_a_concurrent_choice(sample_project):
    stale = load_card(sample_project)  # a form opened before phase 3 chose a model
    choose_model(sample_project, "fake/echo", "cheapest that meets the targets")
    edited = stale.model_copy(update={"use_case": stale.use_case.model_copy(
        update={"users": "Tier-1 agents"})})

    save_card(sample_project, edited, sections=["use_case", "metrics", "constraints"])

    card = load_card(sample_project)
    assert card.use_case.users == "Tier-1 agents"
    assert card.model.chosen == "fake/echo" and len(card.decisions) == 1


def test_decisions_and_model_choice(sample_project):
    entry = add_decision(sample_project, 1, "Start with a hosted API", "fastest to build",
                         date=dt.date(2026, 11, 1))
    card = choose_model(sample_project, "local/smollm2-135m", "runs offline; no PII leaves")

    assert card.model.chosen == "local/smollm2-135m"
    assert card.model.reason == "runs offline; no PII leaves"
    assert card.decisions[0] == entry
    assert card.decisions[1].phase == 3
    assert card.decisions[1].decision == "Use local/smollm2-135m as the project's model."
    raw = sample_raw(sample_project)
    assert raw["model"]["chosen"] == "local/smollm2-135m"  # the key the gateway reads
    assert raw["decisions"][0]["date"] == dt.date(2026, 11, 1)  # a TOML date, not a string
    assert load_card(sample_project) == card

    from workbench.llm.gateway import default_model
    assert default_model(sample_project) == "local/smollm2-135m"


def test_bad_decisions_and_model_ids_are_refused(sample_project):
    with pytest.raises(InvalidCard, match=r"phase is 12; it must be 9 or less"):
        add_decision(sample_project, 12, "x")
    with pytest.raises(InvalidCard, match='decision is empty: write decision = "what was'):
        add_decision(sample_project, 1, "  ")
    with pytest.raises(InvalidCard, match="is not a model id"):
        choose_model(sample_project, "  ", "no reason")
    assert "decisions" not in sample_raw(sample_project)


def test_hand_written_dates_and_model_extras_are_read(project):
    write_toml(project, HEADER + """
[model]
chosen = "fake/echo"
adapter = "adapters/lora-1"

[[decisions]]
date = 2026-11-26T10:00:00Z
phase = 3
decision = "Use fake/echo"
""")
    card = load_card(project)
    assert card.decisions[0].date == dt.date(2026, 11, 26)
    assert card.model.chosen == "fake/echo"
    save_card(project, card)
    assert sample_raw(project)["model"]["adapter"] == "adapters/lora-1"


def test_structure_mistakes_in_hand_edits(project):
    write_toml(project, HEADER + '[metrics]\nname = "accuracy"\n\n[use_case]\nbudget = 3\n')
    with pytest.raises(CardProblems) as info:
        load_card(project)
    assert info.value.problems == [
        "[use_case] has an unknown key 'budget': the keys are description, users, task_type, "
        "inputs, outputs.",
        "metrics must be a list of [[metrics]] tables, one per entry, not a table: write "
        "[[metrics]] (double brackets) above each.",
    ]


@pytest.mark.parametrize(("rule", "forbids"), [
    (NO_EXTERNAL_PII, True),
    ("No PII sent to external APIs", True),
    ("never send personal data to third-party vendors", True),
    ("customer personal information must not leave for hosted models", True),
    ("keep data in the EU", False),
    ("PII may be sent to external APIs", False),
])
def test_privacy_rule_reading(rule, forbids):
    card = ProjectCard(constraints=Constraints(privacy=[rule]))
    assert privacy_forbids_external_pii(card) is forbids


def test_missing_lists_what_phase_one_still_needs():
    card = ProjectCard(use_case=UseCase(description="Route tickets", task_type="classification"),
                       metrics=[SuccessMetric(name="accuracy", target=0.9, direction=">=",
                                              unit="fraction")])
    assert card.missing() == [
        "use_case.users is empty: describe who uses the output.",
        "use_case.inputs is empty: describe what one input looks like.",
        "use_case.outputs is empty: describe what one output looks like.",
        "No latency target yet: add p95_latency (seconds).",
        "No cost target yet: add cost_per_request (USD).",
        "constraints.monthly_budget_usd is not set.",
        "constraints.expected_requests_per_day is not set.",
    ]


def test_every_measurable_metric_is_well_formed():
    for name, spec in MEASURABLE_METRICS.items():
        assert spec.name == name and spec.units and spec.phases
        assert all(1 <= p <= 9 for p in spec.phases)
        card, problems = parse_card({"metrics": [
            {"name": name, "target": 0.5, "direction": spec.direction, "unit": spec.units[0]}]})
        assert problems == [], (name, problems)


def test_phase_one_modules_import_light():
    import subprocess
    import sys

    code = ("import sys, workbench.card, workbench.sketch, workbench.buildvsbuy, "
            "workbench.baseline; heavy = ['pandas', 'sklearn', 'plotly', 'litellm', 'torch', "
            "'anywidget']; loaded = [m for m in heavy if m in sys.modules]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_cost_limit_is_a_known_constraint(sample_project):
    from workbench.card import load_card
    from workbench.costs import run_cost_limit

    sample_project.update_card(lambda c: c["constraints"].update(run_cost_limit_usd=0.5))
    assert load_card(sample_project).constraints.run_cost_limit_usd == 0.5
    assert run_cost_limit(sample_project) == 0.5


def test_where_measured_names_each_metric_target_and_phases(sample_project):
    assert where_measured(load_card(sample_project)) == [
        {"metric": "accuracy", "target": ">= 0.9 fraction",
         "measured in phases": "1, 3, 4, 5, 6, 9"},
        {"metric": "p95_latency", "target": "<= 2 s", "measured in phases": "1, 3, 4, 6, 8, 9"},
        {"metric": "cost_per_request", "target": "<= 0.002 USD",
         "measured in phases": "1, 3, 4, 6, 8, 9"},
    ]
