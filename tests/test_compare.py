"""Model comparison (phase 3) and the prompt comparison grid (phase 4).

The pure functions take plain totals and item frames, so most tests build those by hand; the
end-to-end tests run real runs with fake models on a tiny split."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench import compare, prompt_grid
from workbench.card import load_card, parse_card
from workbench.compare import (
    BASELINE_LABEL,
    CompareError,
    InvalidWeights,
    build_table,
    decision_matrix,
    item_passed,
    pareto_front,
    pareto_plot,
)
from workbench.errors import WorkbenchError
from workbench.prompt_grid import grid_from_frames
from workbench.sample import sample_card

LABELS = ["billing", "technical", "account"]


def card():
    parsed, problems = parse_card(sample_card())
    assert not problems
    return parsed  # accuracy >= 0.9, p95_latency <= 2 s, cost_per_request <= 0.002 USD


def totals(accuracy, p95, cost, *, parse_rate=1.0, errors=0, n=10):
    # The run engine's shape: unit-suffixed latency/cost keys and a metrics dict.
    return {"n": n, "errors": errors, "parse_rate": parse_rate, "p50_latency_s": p95 / 2,
            "p95_latency_s": p95, "cost_per_request_usd": cost,
            "cost_per_1k_requests_usd": cost * 1000,
            "metrics": {"accuracy": accuracy, "parse_rate": parse_rate, "p95_latency": p95,
                        "p50_latency": p95 / 2, "cost_per_request": cost}}


RUNS = {"r-big": totals(0.95, 1.5, 0.001), "r-fast": totals(0.80, 0.2, 0.0),
        "r-slow": totals(0.70, 3.0, 0.003, parse_rate=0.8, errors=2)}
CONFIGS = {"r-big": {"model": "openai/big", "prompt": "triage", "prompt_version": 2},
           "r-fast": {"model": "fake/fast", "prompt": "triage", "prompt_version": 2},
           "r-slow": {"model": "fake/slow", "prompt": "triage", "prompt_version": 2}}
BASELINE = {"accuracy": 0.85, "macro_f1": 0.84, "p95_latency": 0.001, "cost_per_request": 0.0}


@pytest.fixture
def table():
    return build_table(RUNS, configs=CONFIGS, baseline=BASELINE, baseline_method="tfidf+logreg",
                       card=card())


# -- the table -----------------------------------------------------------------------------------

def test_table_has_a_row_per_model_and_the_baseline_against_the_targets(table):
    view = table[["label", "kind", "n", "errors", "accuracy", "parse_rate", "p50_latency",
                  "p95_latency", "cost_per_request", "cost_per_1k", "accuracy_status",
                  "p95_latency_status", "cost_per_request_status", "meets_targets"]]
    assert view.astype(object).where(view.notna(), None).to_dict("records") == [
        {"label": "openai/big", "kind": "model", "n": 10, "errors": 0, "accuracy": 0.95,
         "parse_rate": 1.0, "p50_latency": 0.75, "p95_latency": 1.5, "cost_per_request": 0.001,
         "cost_per_1k": 1.0, "accuracy_status": "pass", "p95_latency_status": "pass",
         "cost_per_request_status": "pass", "meets_targets": True},
        {"label": "fake/fast", "kind": "model", "n": 10, "errors": 0, "accuracy": 0.8,
         "parse_rate": 1.0, "p50_latency": 0.1, "p95_latency": 0.2, "cost_per_request": 0.0,
         "cost_per_1k": 0.0, "accuracy_status": "fail", "p95_latency_status": "pass",
         "cost_per_request_status": "pass", "meets_targets": False},
        {"label": "fake/slow", "kind": "model", "n": 10, "errors": 2, "accuracy": 0.7,
         "parse_rate": 0.8, "p50_latency": 1.5, "p95_latency": 3.0, "cost_per_request": 0.003,
         "cost_per_1k": 3.0, "accuracy_status": "fail", "p95_latency_status": "fail",
         "cost_per_request_status": "fail", "meets_targets": False},
        {"label": BASELINE_LABEL, "kind": "baseline", "n": None, "errors": None,
         "accuracy": 0.85, "parse_rate": None, "p50_latency": None, "p95_latency": 0.001,
         "cost_per_request": 0.0, "cost_per_1k": 0.0, "accuracy_status": "fail",
         "p95_latency_status": "pass", "cost_per_request_status": "pass",
         "meets_targets": False},
    ]
    assert table.loc[3, "model"] == "tfidf+logreg"
    assert table.attrs["quality_metric"] == "accuracy"
    assert table.attrs["targets"]["cost_per_request"]["target"] == 0.002


def test_target_in_another_unit_is_compared_in_canonical_units():
    raw = sample_card()
    raw["metrics"][1] = {"name": "p95_latency", "target": 500, "direction": "<=", "unit": "ms"}
    parsed, problems = parse_card(raw)
    assert not problems
    t = build_table({"a": totals(0.9, 0.4, 0.0), "b": totals(0.9, 0.6, 0.0)},
                    configs={"a": {"model": "m/a"}, "b": {"model": "m/b"}}, card=parsed)
    assert t["p95_latency_status"].tolist() == ["pass", "fail"]
    assert t.attrs["targets"]["p95_latency"]["target"] == 0.5


def test_the_same_model_twice_gets_distinct_labels():
    t = build_table({"x1": totals(0.5, 1, 0), "x2": totals(0.6, 1, 0)},
                    configs={"x1": {"model": "fake/a", "prompt_version": 1},
                             "x2": {"model": "fake/a", "prompt_version": 2}})
    assert t["label"].tolist() == ["fake/a", "fake/a (v2)"]
    assert "meets_targets" not in t  # no card, no target columns


def test_flat_totals_in_the_cards_names_work_too():
    t = build_table({"a": {"n": 3, "accuracy": 0.5, "p95_latency": 1.0, "cost_per_request": 0.01,
                           "cost_per_1k": 10.0, "parse_rate": 1.0}}, configs={"a": {"model": "m"}})
    assert t[["accuracy", "p95_latency", "cost_per_request", "cost_per_1k"]].iloc[0].tolist() \
        == [0.5, 1.0, 0.01, 10.0]


def test_import_compare_loads_no_heavy_module():
    import json
    import subprocess
    import sys

    code = ("import sys, json, workbench.compare; print(json.dumps([m for m in "
            "('pandas', 'plotly', 'litellm', 'anywidget') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# -- the decision matrix -------------------------------------------------------------------------

def test_decision_matrix_normalises_weights_and_ranks(table):
    m = decision_matrix(table)
    assert m[["rank", "label", "quality_score", "latency_score", "cost_score", "total"]] \
        .to_dict("records") == [
        {"rank": 1, "label": "openai/big", "quality_score": 1.0, "latency_score": 0.5357,
         "cost_score": 0.6667, "total": 0.8006},
        {"rank": 2, "label": "fake/fast", "quality_score": 0.4, "latency_score": 1.0,
         "cost_score": 1.0, "total": 0.7},
        {"rank": 3, "label": "fake/slow", "quality_score": 0.0, "latency_score": 0.0,
         "cost_score": 0.0, "total": 0.0},
    ]
    assert BASELINE_LABEL not in m["label"].tolist()  # a reference, not a candidate
    assert m.attrs["weights"] == {"quality": 0.5, "latency": 0.25, "cost": 0.25,
                                  "parse_rate": 0.0}


def test_editing_weights_changes_the_ranking(table):
    # Care only about speed and price: the fast free model wins.
    m = decision_matrix(table, {"quality": 0, "latency": 3, "cost": 1})
    assert m["label"].tolist()[0] == "fake/fast"
    assert m.attrs["weights"] == {"quality": 0.0, "latency": 0.75, "cost": 0.25,
                                  "parse_rate": 0.0}
    with_baseline = decision_matrix(table, include_baseline=True)
    assert BASELINE_LABEL in with_baseline["label"].tolist()


@pytest.mark.parametrize(("weights", "words"), [
    ({"qualty": 1}, "unknown criterion 'qualty'. Did you mean 'quality'?"),
    ({"cost": -1}, "cannot be negative"),
    ({"cost": "high"}, "not a number"),
    ({"cost": math.nan}, "not a number"),
    ({"quality": 0, "latency": 0, "cost": 0}, "Every weight is 0"),
    ([1, 2], "must be a dict"),
])
def test_bad_weights_are_refused_in_words(table, weights, words):
    with pytest.raises(InvalidWeights) as err:
        decision_matrix(table, weights)
    assert words in str(err.value)


def test_equal_values_all_score_best_and_missing_values_worst():
    t = build_table({"a": totals(0.9, 1.0, 0.0), "b": totals(0.9, 1.0, 0.0)},
                    configs={"a": {"model": "m/a"}, "b": {"model": "m/b"}})
    m = decision_matrix(t)
    assert m["total"].tolist() == [1.0, 1.0]
    t.loc[0, "accuracy"] = math.nan
    assert decision_matrix(t).set_index("label").loc["m/a", "quality_score"] == 0.0


# -- Pareto ----------------------------------------------------------------------------------------

def test_pareto_front_keeps_the_undominated_models(table):
    # big: best quality; fast: cheapest and fastest; slow: beaten by both on everything.
    assert pareto_front(table) == ["openai/big", "fake/fast"]
    dominated = build_table({"a": totals(0.9, 1.0, 0.001), "b": totals(0.9, 1.0, 0.002)},
                            configs={"a": {"model": "m/a"}, "b": {"model": "m/b"}})
    assert pareto_front(dominated) == ["m/a"]  # equal quality and latency, dearer


def test_pareto_plot_marks_the_front_and_draws_baseline_and_targets(table):
    fig = pareto_plot(table)
    points = fig.data[0]
    assert list(points.text) == ["openai/big", "fake/fast", "fake/slow"]
    assert list(points.marker.symbol) == ["star", "star", "circle"]
    assert list(points.marker.color) == [1.5, 0.2, 3.0]  # colour = p95 latency
    assert points.marker.size[2] > points.marker.size[0] > points.marker.size[1]
    assert fig.data[1].name == "Pareto front"
    lines = {(s.type, s.y0 if s.type == "line" and s.y0 == s.y1 else s.x0)
             for s in fig.layout.shapes}
    assert ("line", 0.85) in lines  # the baseline's accuracy
    assert ("line", 0.9) in lines  # the accuracy target
    assert ("line", 0.002) in lines  # the cost target (vertical)
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert BASELINE_LABEL in notes and "accuracy >= 0.9" in notes
    assert "p95_latency <= 2 s" in fig.layout.title.text
    fig.to_html(include_plotlyjs=False)  # serialisable


# -- choosing --------------------------------------------------------------------------------------

def test_choose_records_the_model_and_the_reason(sample_project):
    compare.choose(sample_project, "fake/fast", "cheapest model that is fast enough")
    card_now = load_card(sample_project)
    assert card_now.model.chosen == "fake/fast"
    assert card_now.model.reason == "cheapest model that is fast enough"
    assert card_now.decisions[-1].phase == 3
    with pytest.raises(CompareError, match="needs a reason"):
        compare.choose(sample_project, "fake/fast", " ")
    with pytest.raises(CompareError, match="reference"):
        compare.choose(sample_project, BASELINE_LABEL, "it is cheap")


# -- the comparison grid -------------------------------------------------------------------------

def items(outputs, expected=("billing", "technical", "account", "billing"), errors=None):
    rows = []
    for i, (out, exp) in enumerate(zip(outputs, expected, strict=True)):
        ok = out == exp
        rows.append({"item_id": f"T{i}", "input": f"message {i}", "expected": exp,
                     "output": out, "parsed": out, "parse_ok": out is not None,
                     "error": (errors or {}).get(i),
                     "scores": {"normalized_match": {"value": float(ok), "passed": ok,
                                                     "reason": ""}}})
    return pd.DataFrame(rows)


def test_grid_marks_items_that_flipped_between_consecutive_versions():
    v1 = items(["billing", "billing", "account", "billing"])
    v2 = items(["billing", "technical", "billing", "billing"])
    v3 = items(["billing", "technical", "billing", "account"])
    grid = grid_from_frames({"v1": v1, "v2": v2, "v3": v3})
    assert [(c["label"], c["passed"], c["n"], c["score"]) for c in grid.columns] == [
        ("v1", 3, 4, 0.75), ("v2", 3, 4, 0.75), ("v3", 2, 4, 0.5)]
    assert grid.flipped == ["T1", "T2", "T3"]
    flips = {i["item_id"]: i["flips"] for i in grid.items}
    assert flips == {
        "T0": [],
        "T1": [{"from": "v1", "to": "v2", "direction": "fixed"}],
        "T2": [{"from": "v1", "to": "v2", "direction": "broke"}],
        "T3": [{"from": "v2", "to": "v3", "direction": "broke"}],
    }
    assert [c["passed"] for c in grid.items[1]["cells"]] == [False, True, True]
    frame = grid.frame()
    assert frame.columns.tolist() == ["item_id", "input", "expected", "flipped", "v1",
                                      "v1 passed", "v2", "v2 passed", "v3", "v3 passed"]
    assert frame["flipped"].tolist() == [False, True, True, True]


def test_an_item_missing_from_a_run_is_not_a_flip_and_errors_fail():
    v1 = items(["billing", "technical", "account", "billing"])
    v2 = items(["billing", None, "account", "billing"], errors={1: "ModelError: 500"}).iloc[:3]
    grid = grid_from_frames({"v1": v1, "v2": v2})
    assert grid.flipped == ["T1"]  # the error turned a pass into a fail
    t3 = grid.items[3]
    assert t3["cells"][1] == {"output": None, "raw": None, "passed": None,
                              "error": "not in this run"}
    assert not t3["flipped"]


def test_item_passed_reads_every_shape_of_scores():
    engine = items(["billing", "x", "account", "billing"])
    assert list(item_passed(engine)) == [True, False, True, True]
    numeric = pd.DataFrame({"item_id": ["a", "b"], "output": ["x", "y"], "error": [None, None],
                            "score.exact_match": [1.0, 0.0]})
    assert list(item_passed(numeric)) == [True, False]
    assert list(item_passed(numeric, "exact_match")) == [True, False]
    flagged = pd.DataFrame({"item_id": ["a", "b"], "output": ["x", "y"], "correct": [False, True]})
    assert list(item_passed(flagged)) == [False, True]
    assert list(item_passed(pd.DataFrame({"item_id": ["a"], "output": ["x"]}))) == [None]
    with pytest.raises(WorkbenchError, match="no score 'f1'"):
        item_passed(numeric, "f1")


def test_the_grid_and_the_statistics_judge_an_item_the_same_way():
    """One rule for "did this item pass?": the phase-4 grid, the phase-6 statistics and the
    gate read the same verdicts — the primary scorer's, with a failed call a failure."""
    from workbench.evaluate import stats

    run = items(["billing", "technical", None, "billing"], errors={2: "timed out"})
    for row, extra in zip(run["scores"], [0.0, 1.0, 0.0, 0.0], strict=True):
        row["length_ok"] = {"value": extra, "passed": bool(extra)}  # a second scorer
    run.loc[2, "scores"] = None  # the failed call was never scored
    grid = grid_from_frames({"v1": run})
    in_grid = [grid.items[i]["cells"][0]["passed"] for i in range(4)]
    # the second scorer's failures (items 0 and 3) do not decide; the failed call does
    assert in_grid == list(stats.item_passed(run)) == [True, True, False, True]
    assert grid.columns[0]["passed"] == 3 and grid.columns[0]["n"] == 4


def test_column_labels_say_what_differs():
    labels = prompt_grid._column_labels
    assert labels([{"prompt": "p", "prompt_version": 1, "model": "m"},
                   {"prompt": "p", "prompt_version": 2, "model": "m"}], ["a", "b"]) == ["v1", "v2"]
    assert labels([{"prompt": "p", "prompt_version": 1, "model": "m1"},
                   {"prompt": "p", "prompt_version": 1, "model": "m2"}], ["a", "b"]) \
        == ["m1", "m2"]
    assert labels([{"prompt": "p", "prompt_version": 1, "model": "m"},
                   {"prompt": "p", "prompt_version": 1, "model": "m"}], ["a", "b"]) \
        == ["v1 [a]", "v1 [b]"]


# -- end to end with the run engine and fake models -----------------------------------------------

@pytest.fixture
def tiny_project(make_split_project):
    """A sample-card project with a 60-row, 3-label dataset split 70/15/15 (9 validation)."""
    pytest.importorskip("workbench.runs", reason="the run engine (workbench.runs) is not in this "
                        "checkout yet")
    return make_split_project(LABELS, 60,
                              text=lambda i, label: f"message {i} about {label} number {i * 7}")


@pytest.fixture
def cmp_fakes(fake_model):
    """``fake/cmp-good`` finds the label in the message; ``fake/cmp-bad`` always says billing."""
    fake_model("cmp-good", lambda m: next(lb for lb in LABELS if lb in m[-1]["content"]))
    fake_model("cmp-bad", ["billing"])


def test_compare_models_runs_each_model_on_the_same_split(tiny_project, cmp_fakes):
    from workbench.prompts import PromptVersion, save_prompt

    save_prompt(tiny_project, "triage", PromptVersion(template="Classify: {{ input }}",
                                                      labels=LABELS, model="fake/cmp-good"))
    cmp = compare.compare_models(tiny_project, "triage",
                                 ["fake/cmp-good", "fake/cmp-bad:latency=20ms", "fake/missing"],
                                 dataset="tiny", progress=False)
    assert list(cmp.run_ids) == ["fake/cmp-good", "fake/cmp-bad:latency=20ms"]
    assert "no fake model 'fake/missing'" in cmp.failures["fake/missing"]

    table = cmp.table()
    assert table["label"].tolist() == ["fake/cmp-good", "fake/cmp-bad:latency=20ms"]
    assert table["n"].tolist() == [9, 9]
    assert table["accuracy"].tolist() == [1.0, pytest.approx(1 / 3)]
    assert table["cost_per_request"].tolist() == [0.0, 0.0]
    assert table["accuracy_status"].tolist() == ["pass", "fail"]
    assert table["meets_targets"].tolist() == [True, False]
    assert any("fake/missing did not run" in n for n in table.attrs["notes"])
    assert cmp.matrix()["label"].iloc[0] == "fake/cmp-good"
    assert "fake/cmp-good" in cmp.pareto_front()
    cmp.plot()

    grid = cmp.grid()
    assert [c["label"] for c in grid.columns] == ["fake/cmp-good", "fake/cmp-bad:latency=20ms"]
    assert [c["score"] for c in grid.columns] == [1.0, pytest.approx(0.3333, abs=1e-4)]
    assert len(grid.flipped) == 6  # every non-billing item broke


def test_compare_models_with_a_baseline_and_two_prompt_versions(tiny_project, cmp_fakes):
    from workbench.baseline import run_baseline
    from workbench.data import load_split
    from workbench.prompts import PromptVersion, save_prompt

    run_baseline(tiny_project, load_split(tiny_project, "tiny", "train"),
                 load_split(tiny_project, "tiny", "test"))
    v1 = save_prompt(tiny_project, "triage", PromptVersion(template="{{ input }}", labels=LABELS,
                                                           model="fake/cmp-bad"))
    v2 = save_prompt(tiny_project, "triage", PromptVersion(template="Intent? {{ input }}",
                                                           labels=LABELS, model="fake/cmp-good"))
    from workbench.runs import start_run

    r1 = start_run(tiny_project, "triage", version=v1.version, dataset="tiny", progress=False)
    r2 = start_run(tiny_project, "triage", version=v2.version, dataset="tiny", progress=False)
    table = compare.comparison_table(tiny_project, [r1.run_id, r2.run_id])
    assert table["label"].tolist() == ["fake/cmp-bad", "fake/cmp-good", BASELINE_LABEL]
    assert table.loc[2, "kind"] == "baseline" and table.loc[2, "model"]  # the method
    assert not math.isnan(table.loc[2, "accuracy"])

    grid = prompt_grid.compare_prompts(tiny_project, [r1.run_id, r2.run_id])
    assert [c["label"] for c in grid.columns] == ["v1 fake/cmp-bad", "v2 fake/cmp-good"]
    assert len(grid.flipped) == 6
    assert all(i["flips"][0]["direction"] == "fixed" for i in grid.items if i["flipped"])


def test_compare_models_needs_models(tiny_project):
    with pytest.raises(CompareError, match="No models"):
        compare.compare_models(tiny_project, "triage", [" "], dataset="tiny")


def test_recommend_prefers_a_model_meeting_every_target(table):
    ranked = decision_matrix(table)
    assert compare.recommend(table, ranked)[0] == "openai/big"  # the only one meeting targets


def test_recommend_never_lets_a_fast_wrong_model_win_on_speed():
    runs = {"r-echo": totals(0.0, 0.01, 0.0), "r-local": totals(0.0, 9.0, 0.0,
                                                                 parse_rate=0.1)}
    configs = {"r-echo": {"model": "fake/echo", "prompt": "triage", "prompt_version": 1},
               "r-local": {"model": "local/smollm2-135m", "prompt": "triage",
                           "prompt_version": 1}}
    table = build_table(runs, configs=configs, card=card())
    ranked = decision_matrix(table)
    assert ranked["model"].iloc[0] == "fake/echo"  # fastest, so best weighted...
    model, why = compare.recommend(table, ranked)
    assert model == "local/smollm2-135m" and "no candidate meets every target" in why


def test_compare_prompt_versions_saves_each_and_runs_them_on_the_same_items(
        tiny_project, cmp_fakes):
    from workbench.prompts import PromptVersion, prompt_versions

    prompts = {"plain": PromptVersion(template="Classify: {{ input }}", labels=LABELS),
               "polite": PromptVersion(system="Be brief.", template="Classify: {{ input }}",
                                       labels=LABELS)}
    result = prompt_grid.compare_prompt_versions(tiny_project, "triage", prompts, dataset="tiny",
                                             model="fake/cmp-good")
    assert result.versions == {"plain": 1, "polite": 2}
    assert prompt_versions(tiny_project, "triage")["version"].tolist() == [1, 2]
    table = result.table()
    assert table["label"].tolist() == ["plain", "polite"]
    assert table["version"].tolist() == [1, 2] and table["n"].tolist() == [9, 9]
    again = prompt_grid.compare_prompt_versions(tiny_project, "triage",
                                            {"polite": prompts["polite"]}, dataset="tiny",
                                            model="fake/cmp-good")
    assert again.versions == {"polite": 2}  # the latest version unchanged: no new version
