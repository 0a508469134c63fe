"""Blessed baselines: bless a run, compare later runs item by item with a reviewer's summary."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.evaluate.baseline_runs import (
    BlessedBaseline,
    NoBaseline,
    bless,
    blessed,
    compare_to_baseline,
)

LABELS = ["billing", "shipping"]
TEXTS = [f"ticket {i}" for i in range(12)]
EXPECTED = [LABELS[i % 2] for i in range(12)]


def _other(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


@pytest.fixture
def tickets(project):
    from workbench.data.versioning import save_version
    from workbench.prompts import PromptVersion, save_prompt

    save_version(project, "tickets", pd.DataFrame({
        "id": [f"v{i}" for i in range(12)], "input": TEXTS, "expected": EXPECTED,
        "split": ["validation"] * 12}), transform="import")
    project.update_card(lambda c: c.setdefault("use_case", {}).update(
        task_type="classification"))
    save_prompt(project, "intent", PromptVersion(system="Label it.", labels=LABELS))
    save_prompt(project, "other", PromptVersion(system="Label it!", labels=LABELS))
    return "tickets"


def _run(project, fake_model, name: str, wrong: set[int], *, cost: float, latency: float,
         prompt: str = "intent") -> str:
    """A finished run on ``fake/<name>`` that gets the items in ``wrong`` wrong, with set costs
    and latencies."""
    from workbench.runs import start_run

    answers = {t: (_other(e) if i in wrong else e)
               for i, (t, e) in enumerate(zip(TEXTS, EXPECTED, strict=True))}
    model = fake_model(name, lambda m: answers[m[-1]["content"]])
    run_id = start_run(project, prompt, dataset="tickets", model=model, progress=False).run_id
    with project.store.write() as db:  # fake models are free and instant: set what we test
        db.execute("UPDATE run_items SET cost_usd = ?, latency_s = ? WHERE run_id = ?",
                   (cost, latency, run_id))
    return run_id


def test_bless_per_prompt_and_globally(project, tickets, fake_model):
    first = _run(project, fake_model, "m1", set(), cost=0.001, latency=1.0)
    assert blessed(project) is None and blessed(project, "intent") is None
    with pytest.raises(NoBaseline, match="bless"):
        compare_to_baseline(project, first)

    bless(project, first)
    assert blessed(project, "intent") == first
    assert blessed(project, "other") is None  # blessed for its own prompt only
    assert blessed(project) == first  # no global one: the latest blessing

    other = _run(project, fake_model, "m2", set(), cost=0.001, latency=1.0, prompt="other")
    bless(project, other, scope="global", note="project-wide")
    assert blessed(project) == other and blessed(project, "other") == other
    assert blessed(project, "intent") == first  # the prompt's own wins over the global one
    assert project.records.get(BlessedBaseline, "*").value.note == "project-wide"


def test_compare_to_baseline_item_by_item(project, tickets, fake_model):
    baseline = _run(project, fake_model, "base", {0, 1, 2, 3, 4, 5}, cost=0.0010, latency=1.0)
    # The candidate fixes 0-4, breaks 6, and still misses 5: 5 improved, 1 regressed.
    candidate = _run(project, fake_model, "cand", {5, 6}, cost=0.0012, latency=0.6)
    bless(project, baseline)
    diff = compare_to_baseline(project, candidate)
    assert diff.baseline_id == baseline and diff.run_id == candidate
    items = diff.items.set_index("item_id")
    assert items.loc["v6", "change"] == "regressed" and items.loc["v0", "change"] == "improved"
    assert items.loc["v5", "change"] == "still failing"
    assert items.loc["v7", "change"] == "still passing"
    assert diff.regressed["item_id"].tolist() == ["v6"]
    assert diff.items["change"].tolist()[:6] == ["regressed"] + ["improved"] * 5  # worst first
    assert items.loc["v6", ["baseline_output", "run_output"]].tolist() == ["billing", "shipping"]
    assert items.loc["v0", "cost_delta_usd"] == pytest.approx(0.0002)
    assert items.loc["v0", "latency_delta_s"] == pytest.approx(-0.4)

    s = diff.summary
    assert {k: s[k] for k in ("regressed", "improved", "unchanged", "new", "dropped",
                              "paired", "metric")} == {
        "regressed": 1, "improved": 5, "unchanged": 6, "new": 0, "dropped": 0, "paired": 12,
        "metric": "accuracy"}
    assert (s["baseline_value"], s["run_value"]) == pytest.approx((0.5, 10 / 12))
    assert s["p_value"] == pytest.approx(0.21875)  # binomtest(1, 6): within noise
    assert s["cost_change"] == pytest.approx(0.2)
    assert s["p95_latency_delta_s"] == pytest.approx(-0.4)
    assert diff.sentence == ("1 item regressed, 5 improved (6 unchanged); accuracy 0.50 → 0.83 "
                             "(+0.33, p = 0.22: within noise); cost per request +20%; "
                             "p95 latency −0.4 s.")
    assert not diff.comparison.significant


def test_a_real_improvement_and_an_explicit_baseline(project, tickets, fake_model):
    worse = _run(project, fake_model, "worse", set(range(10)), cost=0.0, latency=1.0)
    better = _run(project, fake_model, "better", set(), cost=0.0, latency=1.0)
    diff = compare_to_baseline(project, better, baseline_id=worse)  # nothing blessed needed
    assert diff.summary["improved"] == 10 and diff.summary["p_value"] == pytest.approx(2 / 1024)
    assert diff.sentence == ("0 items regressed, 10 improved (2 unchanged); accuracy 0.17 → 1.00 "
                             "(+0.83, p = 0.002: a real improvement); cost per request $0 both; "
                             "p95 latency ±0.00 s.")
    assert diff.comparison.verdict == "This run is better than the baseline (p = 0.002)."


def test_the_version_people_work_on_by_default(project, tickets, fake_model):
    """Deployed, else tagged production, then candidate, else the blessed baseline's version,
    else the newest: never simply the newest when something says otherwise."""
    from workbench.prompts import PromptVersion, save_prompt, tag_prompt
    from workbench.prompts.defaults import default_version

    assert default_version(project, "intent") == (1, "newest")
    run_v1 = _run(project, fake_model, "m9", set(), cost=0.001, latency=1.0)
    save_prompt(project, "intent", PromptVersion(system="Label it, briefly.", labels=LABELS))
    assert default_version(project, "intent") == (2, "newest")
    bless(project, run_v1)
    assert default_version(project, "intent") == (1, "the blessed baseline's")
    save_prompt(project, "intent", PromptVersion(system="Label it now.", labels=LABELS))
    tag_prompt(project, "intent", 2, "candidate")
    assert default_version(project, "intent") == (2, "tagged candidate")
    tag_prompt(project, "intent", 3, "production")
    assert default_version(project, "intent") == (3, "tagged production")
