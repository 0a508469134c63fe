"""Statistics: known intervals, flaky items over repeats, paired tests, a run's aggregates."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench.evaluate.stats import (
    aggregate_with_intervals,
    bootstrap_interval,
    interval_text,
    paired_test,
    per_item_consistency,
    wilson_interval,
)


def test_wilson_interval_known_values():
    # Wilson score interval, z = 1.95996: 8/10 → [0.4902, 0.9433] (Newcombe 1998, table I style)
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert round(wilson_interval(10, 10)[0], 4) == 0.7225
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_bootstrap_interval_is_seeded_and_handles_edges():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    first, again = bootstrap_interval(values), bootstrap_interval(values)
    assert first == again  # same seed, same interval
    assert first[0] < 5.5 < first[1] and 2 < first[0] and first[1] < 9
    assert bootstrap_interval([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert all(math.isnan(x) for x in bootstrap_interval([1.0]))
    assert bootstrap_interval([1.0, None, float("nan"), 2.0, 3.0])[0] >= 1.0


def test_repeats_show_flaky_items():
    repeats = [pd.DataFrame({"item_id": ["a", "b", "c"], "passed": [True, True, False]}),
               pd.DataFrame({"item_id": ["a", "b", "c"], "passed": [True, False, False]}),
               pd.DataFrame({"item_id": ["a", "b", "c"], "passed": [True, True, None]})]
    table = per_item_consistency(repeats)
    assert table.to_dict("records") == [
        {"item_id": "b", "passes": 2, "repeats": 3, "pass_rate": 2 / 3, "flaky": True},
        {"item_id": "c", "passes": 0, "repeats": 2, "pass_rate": 0.0, "flaky": False},
        {"item_id": "a", "passes": 3, "repeats": 3, "pass_rate": 1.0, "flaky": False}]
    # One long frame works too, and scores columns (as run.items has) are read.
    long = pd.DataFrame({"item_id": ["a", "a"], "scores": [
        {"m": {"value": 1.0, "passed": True}}, {"m": {"value": 0.0, "passed": False}}]})
    assert per_item_consistency(long)["flaky"].tolist() == [True]


def test_mcnemar_exact_on_discordant_pairs():
    # 20 both pass, 9 only B passes, 1 only A passes: binomtest(1, 10) two-sided = 0.02148
    a = [True] * 20 + [False] * 9 + [True] + [False] * 5
    b = [True] * 20 + [True] * 9 + [False] + [False] * 5
    result = paired_test(a, b)
    assert result.test == "McNemar exact"
    assert (result.a_only, result.b_only, result.n) == (1, 9, 35)
    assert result.p_value == pytest.approx(0.021484375)
    assert result.difference == pytest.approx(8 / 35)
    assert result.interval[0] < result.difference < result.interval[1]
    assert result.verdict == "B is better than A (p = 0.02)."
    noise = paired_test([True, False, True, False], [False, True, True, False])
    assert noise.p_value == 1.0 and noise.verdict == "The difference is within noise (p = 1.00)."
    named = paired_test(b, a, names=("old", "new"))
    assert named.verdict == "Old is better than new (p = 0.02)." and not named.difference > 0
    # The interval inverts the same exact test: Clopper-Pearson for 9 of 10 discordant items
    # is [0.5550, 0.9975], times 10/35 on the 2*pi - 1 scale.
    assert result.interval == pytest.approx((10 / 35 * (2 * 0.55498 - 1),
                                             10 / 35 * (2 * 0.99747 - 1)), abs=1e-4)
    # 5 of 5 discordant items for B among 100: p = 0.0625, so the interval must include 0.
    edge = paired_test([False] * 5 + [True] * 95, [True] * 100)
    assert edge.p_value == pytest.approx(0.0625) and edge.interval[0] < 0 < edge.interval[1]
    # Nothing differs on 10 items: not proof of no difference (Clopper-Pearson 0/10: 0.3085).
    agree = paired_test([True] * 10, [True] * 10)
    assert agree.interval == pytest.approx((-0.30850, 0.30850), abs=1e-4)
    # Pairs with a missing side are left out; different lengths are refused.
    assert paired_test([True, None], [False, True]).n == 1
    with pytest.raises(ValueError):
        paired_test([True], [True, False])


def test_wilcoxon_for_scores_and_lower_is_better():
    a = [3.0, 2.0, 4.0, 3.0, 2.0, 3.0, 4.0, 2.0, 3.0, 3.0]
    b = [4.0, 4.0, 5.0, 4.0, 3.0, 4.0, 5.0, 4.0, 4.0, 5.0]
    result = paired_test(a, b)
    assert result.test == "Wilcoxon signed-rank" and result.difference == pytest.approx(1.3)
    assert result.p_value < 0.01 and result.verdict.startswith("B is better than A")
    latency = paired_test(a, b, higher_is_better=False, names=("fast", "slow"))
    assert latency.verdict.startswith("Fast is better than slow")
    # B gains on 15 of 16 items, loses a lot on one: the ranks say B, the mean says A.
    mixed = paired_test([0.0] * 16, [1.0] * 15 + [-100.0])
    assert mixed.p_value < 0.01 and mixed.verdict.startswith("B is better than A")
    assert "mean difference points the other way" in mixed.verdict and mixed.difference < 0
    same = paired_test([1.0, 2.0], [1.0, 2.0])
    assert same.p_value == 1.0 and "within noise" in same.verdict
    assert interval_text(0.8, 0.49, 0.94) == "0.80 [0.49, 0.94]"


def test_a_runs_aggregates_carry_intervals(project, fake_model):
    from workbench.data.versioning import save_version
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import start_run

    texts = [f"ticket number {i}" for i in range(10)]
    labels = ["billing" if i % 2 else "shipping" for i in range(10)]
    save_version(project, "t", pd.DataFrame({"id": [f"v{i}" for i in range(10)], "input": texts,
                                             "expected": labels,
                                             "split": ["validation"] * 10}), transform="import")
    project.update_card(lambda c: c.setdefault("use_case", {}).update(
        task_type="classification"))
    save_prompt(project, "p", PromptVersion(system="Label it.", labels=["billing", "shipping"]))
    answers = dict(zip(texts, labels, strict=True))
    answers[texts[0]], answers[texts[1]] = "billing", "shipping"  # two wrong: 8/10
    model = fake_model("stats-run", lambda m: answers[m[-1]["content"]])
    run = start_run(project, "p", dataset="t", model=model, progress=False)
    table = aggregate_with_intervals(run, n_resamples=500).set_index("metric")
    assert run.metrics["accuracy"] == 0.8
    acc = table.loc["accuracy"]
    assert (acc["value"], acc["n"], acc["method"]) == (0.8, 10, "Wilson")
    assert (round(acc["low"], 4), round(acc["high"], 4)) == (0.4902, 0.9433)
    assert table.loc["normalized_match", "value"] == 0.8
    assert table.loc["parse_rate", "value"] == 1.0 and table.loc["error_rate", "value"] == 0.0
    lat = table.loc["mean_latency_s"]
    assert lat["method"] == "bootstrap (BCa)" and lat["low"] <= lat["value"] <= lat["high"]
    assert table.loc["cost_per_request_usd", ["value", "low", "high"]].tolist() == [0.0] * 3


def test_repeated_runs_find_the_flaky_item_and_runs_compare_paired(project, fake_model):
    import threading

    from workbench.data.versioning import save_version
    from workbench.evaluate.stats import compare_runs, run_repeats
    from workbench.prompts import PromptVersion, save_prompt

    texts = ["steady one", "steady two", "wobbly"]
    save_version(project, "r", pd.DataFrame({"id": ["a", "b", "c"], "input": texts,
                                             "expected": ["yes", "no", "yes"],
                                             "split": ["validation"] * 3}), transform="import")
    save_prompt(project, "p", PromptVersion(system="Say yes or no.", labels=["yes", "no"]))
    calls, lock = {"wobbly": 0}, threading.Lock()

    def reply(messages):
        text = messages[-1]["content"]
        if text != "wobbly":
            return "yes" if text == "steady one" else "no"
        with lock:
            calls["wobbly"] += 1
            return "no" if calls["wobbly"] == 2 else "yes"  # wrong on the second repeat only

    model = fake_model("wobbly", reply)
    runs = run_repeats(project, "p", 3, dataset="r", model=model, progress=False)
    assert [r.name for r in runs] == ["p repeat 1/3", "p repeat 2/3", "p repeat 3/3"]
    assert all(r.config["cache"] is False for r in runs)
    table = per_item_consistency([r.items for r in runs])
    assert table.iloc[0].to_dict() == {"item_id": "c", "passes": 2, "repeats": 3,
                                       "pass_rate": 2 / 3, "flaky": True}
    assert table["flaky"].sum() == 1
    same = compare_runs(project, runs[0].run_id, runs[2].run_id)
    assert (same.n, same.p_value) == (3, 1.0) and "within noise" in same.verdict
    latency = compare_runs(project, runs[0].run_id, runs[1].run_id, field="latency_s")
    assert latency.test == "Wilcoxon signed-rank" and latency.n == 3
