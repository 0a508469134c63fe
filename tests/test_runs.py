"""Runs: every item recorded, totals right, interrupted runs resume without repeats, costs gated."""

from __future__ import annotations

import threading
import time

import pytest

from workbench.llm import fake

LABELS = ["account", "billing", "shipping"]
VALIDATION = [  # (input, expected)
    ("I was charged twice", "billing"),
    ("Refund my last invoice", "billing"),
    ("Where is my parcel", "shipping"),
    ("Package arrived damaged", "shipping"),
    ("Cannot log in to my account", "account"),
    ("Reset my password please", "account"),
    ("Change my email address", "account"),
    ("My card was declined", "billing"),
    ("Delivery is late again", "shipping"),
    ("Close my account", "account"),
]
TRAIN = [("Invoice is wrong", "billing"), ("Track my order", "shipping"),
         ("Update my profile", "account")]


@pytest.fixture
def prompts():
    import workbench.prompts

    return workbench.prompts


@pytest.fixture
def tickets(project):
    import pandas as pd

    from workbench.data.versioning import save_version

    rows = [{"id": f"v{i}", "input": text, "expected": label, "split": "validation"}
            for i, (text, label) in enumerate(VALIDATION)]
    rows += [{"id": f"t{i}", "input": text, "expected": label, "split": "train"}
             for i, (text, label) in enumerate(TRAIN)]
    save_version(project, "tickets", pd.DataFrame(rows), transform="import")
    project.update_card(lambda card: card.setdefault("use_case", {}).update(
        task_type="classification"))
    return "tickets"


def make_prompt(project, prompts, name="intent", **fields):
    value = prompts.PromptVersion(system="Answer with one label: account, billing, shipping.",
                                  labels=LABELS, **fields)
    return prompts.save_prompt(project, name, value)


class Scripted:
    """A fake model that answers from a script and counts its calls per input; ``register`` is
    the test's ``fake_model`` fixture, which removes it after the test."""

    def __init__(self, register, answers: dict[str, str], name: str = "scripted", *,
                 interrupt_after: int | None = None, hold_s: float = 0.0):
        self.answers = answers
        self.calls: dict[str, int] = {}
        self.repairs = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.interrupt_after = interrupt_after
        self.hold_s = hold_s
        self.lock = threading.Lock()
        self.model = register(name, self.reply)

    def reply(self, messages: list[dict]) -> str:
        text = messages[-1]["content"]
        with self.lock:
            total = sum(self.calls.values())
            if self.interrupt_after is not None and total >= self.interrupt_after:
                raise KeyboardInterrupt
            if text in self.answers:  # repair turns are not counted as items
                self.calls[text] = self.calls.get(text, 0) + 1
            else:
                self.repairs += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.hold_s)
        with self.lock:
            self.in_flight -= 1
        return self.answers.get(text, "no idea")

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def _seven_of_ten() -> dict[str, str]:
    answers = {text: label for text, label in VALIDATION}
    # three wrong: one other label, one unparsable, one label in another case (still right)
    answers["I was charged twice"] = "shipping"
    answers["Where is my parcel"] = "I think it is about a parcel"
    answers["Close my account"] = "billing"
    answers["Reset my password please"] = "Account."
    return answers


# -- the tests ------------------------------------------------------------------------------------

def test_a_run_stores_every_item_and_right_totals(project, prompts, tickets, fake_model):
    import pandas as pd

    from workbench.runs import list_runs, load_run, start_run

    make_prompt(project, prompts)
    model = Scripted(fake_model, _seven_of_ten()).model
    run = start_run(project, "intent", dataset=tickets, model=model, progress=False,
                    name="first")
    assert run.status == "finished"
    items = run.items
    assert len(items) == 10 and items["item_id"].tolist() == [f"v{i}" for i in range(10)]
    first = items.iloc[0]
    assert first["messages"][-1] == {"role": "user", "content": "I was charged twice"}
    assert first["messages"][0]["role"] == "system"
    assert (first["output"], first["parsed"], first["parse_ok"]) == ("shipping", "shipping", True)
    assert first["expected"] == "billing"
    assert first["scores"]["normalized_match"] == {
        "value": 0.0, "passed": False,
        "reason": "Output 'shipping' does not equal expected 'billing'"}
    assert (first["prompt_tokens"], first["completion_tokens"]) == (11, 1)  # fake: words
    assert first["latency_s"] > 0 and first["cost_usd"] == 0.0 and not first["cached"]
    assert items["error"].isna().all()
    unparsable = items.set_index("item_id").loc["v2"]
    assert not unparsable["parse_ok"] and pd.isna(unparsable["parsed"])
    assert unparsable["repaired"] == 1 and "not one of the labels" in unparsable["parse_error"]

    t = run.totals
    assert {k: t[k] for k in ("n", "done", "answered", "errors", "parse_rate", "cached",
                              "cost_usd", "cost_per_request_usd")} == {
        "n": 10, "done": 10, "answered": 10, "errors": 0, "parse_rate": 0.9, "cached": 0,
        "cost_usd": 0.0, "cost_per_request_usd": 0.0}
    assert t["metrics"]["accuracy"] == 0.7
    assert t["metrics"]["exact_match"] == 0.7
    assert t["scores"] == {"normalized_match": 0.7, "parsed_ok": 0.9}
    assert t["completion_tokens"] == int(items["completion_tokens"].sum())
    assert t["p95_latency_s"] >= t["p50_latency_s"] > 0 and t["wall_s"] > 0
    assert t["metrics"]["macro_f1"] == pytest.approx(run.classification().macro_f1)
    assert [r["label"] for r in t["per_class"]] == LABELS
    assert t["confusion"]["labels"] == LABELS

    again = load_run(project, run.run_id)
    assert (again.status, again.totals, again.config["prompt_version"]) == \
        ("finished", t, 1)
    listed = list_runs(project)
    assert listed[["run_id", "name", "status", "accuracy"]].to_dict("records") == [
        {"run_id": run.run_id, "name": "first", "status": "finished", "accuracy": 0.7}]
    assert project.records.count("run") == 1


def test_the_card_metrics_compare_with_a_run(project, prompts, tickets, fake_model):
    from workbench.runs import start_run

    project.update_card(lambda card: card.update(metrics=[
        {"name": "accuracy", "target": 0.8, "direction": ">=", "unit": "fraction"},
        {"name": "cost_per_request", "target": 0.01, "direction": "<=", "unit": "USD"}]))
    make_prompt(project, prompts)
    model = Scripted(fake_model, _seven_of_ten()).model
    run = start_run(project, "intent", dataset=tickets, model=model, progress=False)
    rows = run.compare_to_card()[["metric", "status"]].to_dict("records")
    assert rows == [{"metric": "accuracy", "status": "fail"},
                    {"metric": "cost_per_request", "status": "pass"}]


def test_an_interrupted_run_resumes_without_repeating_finished_items(project, prompts,
                                                                     tickets, fake_model):
    from workbench.runs import load_run, resume_run, start_run

    make_prompt(project, prompts)
    script = Scripted(fake_model, _seven_of_ten(), interrupt_after=4, hold_s=0.01)
    with pytest.raises(KeyboardInterrupt):
        start_run(project, "intent", dataset=tickets, model=script.model, concurrency=2,
                  progress=False, cache=False)  # no cache: count every model call
    (run_id,) = [r[0] for r in project.store.db.execute("SELECT run_id FROM runs")]
    interrupted = load_run(project, run_id)
    assert interrupted.status == "interrupted"
    stored = dict(zip(interrupted.items["item_id"], interrupted.items["input"], strict=True))
    called_before = dict(script.calls)
    # the 5th call raised: the items whose calls returned were all kept; one (v2, whose reply
    # did not parse) was in its repair turn and is not stored
    assert 3 <= len(stored) <= 4 and set(stored.values()) <= set(called_before)
    assert interrupted.totals["done"] == len(stored)

    script.interrupt_after = None
    seen: list[tuple[int, int]] = []
    run = resume_run(project, run_id, concurrency=3, progress=lambda d, n: seen.append((d, n)))
    assert {text: script.calls[text] for text in stored.values()} == \
        {text: 1 for text in stored.values()}  # no finished item ran again
    assert set(script.calls) == {text for text, _ in VALIDATION}
    in_flight = len(called_before) - len(stored)  # started, never finished: run again
    assert script.total == 10 + in_flight
    assert seen[-1] == (10, 10) and seen[0][0] > len(stored)  # counts earlier items
    assert run.status == "finished"
    assert run.totals["metrics"]["accuracy"] == 0.7
    assert len(run.totals["segments"]) == 2
    assert project.records.count("run") == 1
    # resuming a finished run calls nothing
    calls = script.total
    resume_run(project, run_id, progress=False)
    assert script.total == calls


def test_failed_calls_are_recorded_and_can_be_retried(project, prompts, tickets):
    from workbench.runs import resume_run, start_run

    make_prompt(project, prompts)
    run = start_run(project, "intent", dataset=tickets, model="fake/echo:fail=500",
                    progress=False, retries=0, cache=False)
    assert run.totals["errors"] == 10 and run.totals["metrics"]["accuracy"] == 0.0
    assert run.items["error"].str.contains("server error").all()
    assert run.items["scores"][0]["normalized_match"]["reason"] == \
        "There is no output (the call failed)"
    assert resume_run(project, run.run_id, progress=False).totals["errors"] == 10
    # retry_errors re-runs them (the model is still failing, so they stay errors)
    fake.reset_counters()
    again = resume_run(project, run.run_id, progress=False, retry_errors=True)
    assert again.totals["done"] == 10


def test_concurrency_is_bounded(project, prompts, tickets, fake_model):
    from workbench.runs import start_run

    make_prompt(project, prompts)
    script = Scripted(fake_model, _seven_of_ten(), hold_s=0.03)
    start_run(project, "intent", dataset=tickets, model=script.model, concurrency=3,
              progress=False)
    assert script.most_in_flight == 3


def test_limit_and_the_cache(project, prompts, tickets, fake_model):
    from workbench.runs import start_run

    make_prompt(project, prompts)
    script = Scripted(fake_model, _seven_of_ten())
    first = start_run(project, "intent", dataset=tickets, model=script.model, limit=3,
                      progress=False)
    assert first.totals["n"] == 3 and script.total == 3
    cached = start_run(project, "intent", dataset=tickets, model=script.model, limit=3,
                       progress=False)
    assert script.total == 3 and cached.totals["cached"] == 3
    start_run(project, "intent", dataset=tickets, model=script.model, limit=3, cache=False,
              progress=False)
    assert script.total == 6


@pytest.fixture
def priced(request, fake_model):
    """A fake model billed like a hosted one (removed afterwards)."""
    name = f"priced{abs(hash(request.node.name)) % 10_000}"
    return fake_model(name, lambda messages: "billing", input_cost_per_token=0.001,
                      output_cost_per_token=0.002)


def test_the_cost_estimate_refuses_above_the_limit_until_confirmed(project, prompts, tickets,
                                                                   priced):
    from workbench.costs import CostNotConfirmed, estimate_cost
    from workbench.runs import start_run

    project.update_card(lambda card: card.setdefault("constraints", {}).update(
        run_cost_limit_usd=0.05))
    stored = make_prompt(project, prompts)
    items = [{"id": f"v{i}", "input": t, "expected": e} for i, (t, e) in enumerate(VALIDATION)]
    estimate = estimate_cost(project, stored.value, items, priced)
    # words: system prompt (7) + input; completion: the expected label (1) + 2 for formatting
    prompt_words = sum(7 + len(t.split()) for t, _ in VALIDATION) / 10
    assert estimate.est_prompt_tokens == pytest.approx(prompt_words)
    assert estimate.est_completion_tokens == 3
    assert estimate.usd_per_item == pytest.approx(prompt_words * 0.001 + 3 * 0.002)
    assert estimate.total_usd == pytest.approx(10 * estimate.usd_per_item)
    assert (estimate.limit_usd, estimate.needs_confirm) == (0.05, True)

    with pytest.raises(CostNotConfirmed, match=r"about \$0\.\d\d .*above the limit of \$0\.05"
                                               r".*confirm=True") as caught:
        start_run(project, "intent", dataset=tickets, model=priced, progress=False)
    assert caught.value.estimate == estimate
    assert project.store.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert project.store.db.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 0

    run = start_run(project, "intent", dataset=tickets, model=priced, confirm=True,
                    progress=False)
    assert run.status == "finished" and run.config["confirmed"] is True
    assert start_run(project, "intent", dataset=tickets, model=priced, limit=1,
                     progress=False).totals["n"] == 1  # one item is under the limit


def test_the_limit_defaults_to_a_share_of_the_monthly_budget(project):
    from workbench.costs import DEFAULT_RUN_COST_LIMIT_USD, run_cost_limit

    assert run_cost_limit(project) == DEFAULT_RUN_COST_LIMIT_USD
    project.update_card(lambda card: card.setdefault("constraints", {}).update(
        monthly_budget_usd=200))
    assert run_cost_limit(project) == 20.0


def test_hosted_estimates_need_no_call_and_hosted_runs_are_refused_in_tests(project, prompts,
                                                                            tickets):
    from workbench.errors import HostedCallsDisabled
    from workbench.costs import estimate_cost
    from workbench.runs import start_run

    stored = make_prompt(project, prompts)
    items = [{"id": "a", "input": "Where is my parcel", "expected": "shipping"}]
    estimate = estimate_cost(project, stored.value, items, "openai/gpt-4o-mini")
    assert estimate.tokens_from == "litellm token_counter"
    assert estimate.est_prompt_tokens > 10 and estimate.total_usd > 0
    assert estimate.price_known and not estimate.needs_confirm
    unknown = estimate_cost(project, stored.value, items, "openrouter/nobody/no-such-model")
    assert not unknown.price_known and unknown.needs_confirm  # unknown price: ask first
    with pytest.raises(HostedCallsDisabled):
        start_run(project, "intent", dataset=tickets, model="openai/gpt-4o-mini",
                  confirm=True, progress=False)
    assert project.store.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_unknown_runs_and_empty_splits_say_what_to_do(project, prompts, tickets):
    from workbench.runs import RunError, load_run, start_run

    make_prompt(project, prompts)
    with pytest.raises(RunError, match="list_runs"):
        load_run(project, "nope")
    with pytest.raises(RunError, match="no test items"):
        start_run(project, "intent", dataset=tickets, split="test", model="fake/echo",
                  progress=False)


def test_importing_runs_loads_no_heavy_module():
    import json
    import subprocess
    import sys

    code = ("import sys, json, workbench.runs, workbench.evaluate; print(json.dumps([m for m in "
            "('litellm', 'pandas', 'sklearn', 'torch', 'transformers', 'jinja2') "
            "if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_ctrl_c_stops_between_items_and_keeps_every_finished_one(project, prompts, tickets,
                                                                 fake_model):
    import os
    import signal

    from workbench.runs import load_run, resume_run, start_run

    make_prompt(project, prompts)
    script = Scripted(fake_model, _seven_of_ten(), hold_s=0.02)
    original = script.reply

    pressed = []

    def reply(messages):
        answer = original(messages)
        if script.total >= 3 and not pressed:  # the user presses Ctrl-C once, mid-run
            pressed.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return answer

    script.reply = reply
    fake_model("scripted", reply)
    with pytest.raises(KeyboardInterrupt):
        start_run(project, "intent", dataset=tickets, model=script.model, concurrency=2,
                  cache=False, progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    (run_id,) = [r[0] for r in project.store.db.execute("SELECT run_id FROM runs")]
    interrupted = load_run(project, run_id)
    # the items in flight finished and were kept: every item the model was asked about
    assert interrupted.status == "interrupted"
    assert set(interrupted.items["input"]) == set(script.calls) and len(script.calls) < 10
    resumed = resume_run(project, run_id, progress=False)
    assert resumed.status == "finished" and set(script.calls.values()) == {1}
