"""Blessed baselines: pick the run every later change is measured against, and compare with it.

    >>> bless(project, run_id)                        # the baseline for this run's prompt
    >>> diff = compare_to_baseline(project, new_run_id)
    >>> diff.sentence
    '3 items regressed, 5 improved (32 unchanged); accuracy 0.72 → 0.80 (+0.08, p = 0.03): B is
     better than A; cost per request +12%; p95 latency −0.4 s.'
    >>> diff.items[diff.items.change == "regressed"]  # what a reviewer reads first

A baseline is blessed for one prompt (the default: the run's prompt) or for the whole project
(``scope="global"``); ``blessed(project, prompt)`` finds the prompt's own, else the global one.
Blessings are ``BlessedBaseline`` records (kind ``"blessed_baseline"``), so every earlier
blessing stays in the history. The comparison is item by item over the items both runs have,
with McNemar's exact test on pass/fail (``stats.paired_test``): a few items flipping either way
is usually noise, and the sentence says so.

(``workbench.baseline`` is something else: the classical, non-LLM baseline of phase 1.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from workbench.errors import RecordNotFound, WorkbenchError
from workbench.records import Record, Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evaluate.stats import Comparison
    from workbench.project import Project

GLOBAL = "*"  # the record name of the project-wide baseline
CHANGES = ("regressed", "improved", "still passing", "still failing", "unscored", "new",
           "dropped")


class NoBaseline(WorkbenchError):
    """No baseline run was blessed (for this prompt or globally)."""


class BlessedBaseline(Record):
    kind: ClassVar[str] = "blessed_baseline"
    run_id: str
    prompt: str | None = None  # None: blessed for the whole project
    note: str = ""


def bless(project: Project, run_id: str, *, scope: Literal["prompt", "global"] = "prompt",
          note: str = "") -> Stored[BlessedBaseline]:
    """Bless a run as the baseline for its prompt (or, ``scope="global"``, for the project)."""
    from workbench.runs import load_run

    run = load_run(project, run_id)  # it must exist
    if run.status != "finished":
        raise NoBaseline(f"Run {run_id} is {run.status}, not finished; a partial run would make "
                         "every later comparison look better or worse than it is.",
                         "Finish it with resume_run(project, run_id) first, or bless another.")
    prompt = run.prompt if scope == "prompt" else None
    record = BlessedBaseline(run_id=run_id, prompt=prompt, note=note)
    return project.records.save(prompt or GLOBAL, record)


def blessed(project: Project, prompt: str | None = None) -> str | None:
    """The blessed baseline run id: the prompt's own, else the global one; with no prompt, the
    global one, else the most recently blessed for any prompt. None when nothing is blessed."""
    def get(name: str) -> Stored[BlessedBaseline] | None:
        try:
            return project.records.get(BlessedBaseline, name)
        except RecordNotFound:
            return None

    if prompt is not None:
        found = get(prompt) or get(GLOBAL)
        return found.value.run_id if found else None
    found = get(GLOBAL)
    if found:
        return found.value.run_id
    latest = [s for s in (get(n) for n in project.records.names(BlessedBaseline)) if s]
    return max(latest, key=lambda s: s.created_at).value.run_id if latest else None


@dataclass
class BaselineDiff:
    """A run compared item by item with its baseline.

    ``items``: item_id, baseline_passed, run_passed, change (regressed, improved, still passing,
    still failing, unscored, new, dropped), outputs, and cost and latency deltas (run minus
    baseline). ``summary``: the counts and the headline numbers; ``sentence``: the summary a
    reviewer reads."""

    baseline_id: str
    run_id: str
    items: pd.DataFrame = field(repr=False)
    summary: dict[str, Any]
    comparison: Comparison

    @property
    def sentence(self) -> str:
        return self.summary["sentence"]

    @property
    def regressed(self) -> pd.DataFrame:
        return self.items[self.items["change"] == "regressed"]

    @property
    def improved(self) -> pd.DataFrame:
        return self.items[self.items["change"] == "improved"]

    def __str__(self) -> str:
        return self.sentence

    def _repr_markdown_(self) -> str:
        return f"**{self.run_id}** against baseline **{self.baseline_id}**: {self.sentence}"


def _change(before: Any, after: Any, in_base: bool, in_run: bool) -> str:
    if not in_base:
        return "new"
    if not in_run:
        return "dropped"
    if before is None or after is None:
        return "unscored"
    if before and not after:
        return "regressed"
    if after and not before:
        return "improved"
    return "still passing" if after else "still failing"


def _percentile(values: Any, q: float) -> float:
    import numpy as np

    data = [float(v) for v in values if v is not None and v == v]
    return float(np.percentile(data, q)) if data else math.nan


def _mean(values: Any) -> float:
    data = [float(v) for v in values if v is not None and v == v]
    return sum(data) / len(data) if data else math.nan


def _signed(value: float, fmt: str) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "±") + format(abs(value), fmt)


def _quality(run: Any, passed: pd.Series, scorer: str | None) -> tuple[str, float]:
    """The headline quality number: accuracy when the run has it, else the scorer's pass rate."""
    if "accuracy" in run.metrics and run.metrics["accuracy"] is not None:
        return "accuracy", float(run.metrics["accuracy"])
    flags = [p for p in passed if p is not None]
    return (scorer or "pass rate"), (sum(flags) / len(flags) if flags else math.nan)


def compare_to_baseline(project: Project, run_id: str, baseline_id: str | None = None, *,
                        scorer: str | None = None) -> BaselineDiff:
    """Compare a run with ``baseline_id`` (default: the blessed baseline of the run's prompt),
    item by item: which items regressed (pass → fail) or improved (fail → pass), per-item cost
    and latency deltas, and whether the quality difference is real (McNemar's exact test).

    Pass/fail comes from ``scorer`` (default: the baseline's first pass/fail scorer)."""
    import pandas as pd

    from workbench.evaluate.stats import format_p, item_passed, paired_test, primary_scorer
    from workbench.runs import load_run

    run = load_run(project, run_id)
    baseline_id = baseline_id or blessed(project, run.prompt)
    if baseline_id is None:
        raise NoBaseline(f"No baseline is blessed for prompt '{run.prompt}' or the project, so "
                         f"there is nothing to compare run {run_id} with.",
                         "Bless a run with bless(project, run_id), or pass baseline_id=...")
    base = load_run(project, baseline_id)
    base_items, run_items = base.items, run.items
    scorer = scorer or primary_scorer(base_items) or primary_scorer(run_items)
    b = pd.DataFrame({"item_id": base_items["item_id"].astype(str),
                      "baseline_passed": item_passed(base_items, scorer),
                      "baseline_output": base_items["output"],
                      "baseline_cost_usd": base_items["cost_usd"],
                      "baseline_latency_s": base_items["latency_s"], "_in_base": True})
    r = pd.DataFrame({"item_id": run_items["item_id"].astype(str),
                      "input": run_items["input"], "expected": run_items["expected"],
                      "run_passed": item_passed(run_items, scorer),
                      "run_output": run_items["output"], "run_cost_usd": run_items["cost_usd"],
                      "run_latency_s": run_items["latency_s"], "_in_run": True})
    merged = b.merge(r, on="item_id", how="outer", sort=False)
    merged = merged.astype(object).where(merged.notna(), None)
    merged["change"] = [_change(bp, rp, bool(ib), bool(ir)) for bp, rp, ib, ir in zip(
        merged["baseline_passed"], merged["run_passed"], merged["_in_base"], merged["_in_run"],
        strict=True)]

    def delta(after: Any, before: Any) -> float:
        if after is None or before is None:
            return math.nan
        return float(after) - float(before)

    merged["cost_delta_usd"] = [delta(a, b) for a, b in zip(
        merged["run_cost_usd"], merged["baseline_cost_usd"], strict=True)]
    merged["latency_delta_s"] = [delta(a, b) for a, b in zip(
        merged["run_latency_s"], merged["baseline_latency_s"], strict=True)]
    order = {c: i for i, c in enumerate(CHANGES)}
    merged = merged.sort_values("change", key=lambda s: s.map(order), kind="stable")
    columns = ["item_id", "change", "input", "expected", "baseline_passed", "run_passed",
               "baseline_output", "run_output", "baseline_cost_usd", "run_cost_usd",
               "cost_delta_usd", "baseline_latency_s", "run_latency_s", "latency_delta_s"]
    items = merged[columns].reset_index(drop=True)

    paired = items[items["change"].isin(["regressed", "improved", "still passing",
                                         "still failing"])]
    comparison = paired_test([bool(x) for x in paired["baseline_passed"]],
                             [bool(x) for x in paired["run_passed"]],
                             names=("the baseline", "this run"))
    counts = {c: int((items["change"] == c).sum()) for c in CHANGES}
    metric, before = _quality(base, b["baseline_passed"], scorer)
    _, after = _quality(run, r["run_passed"], scorer)
    base_answered = base_items[base_items["output"].notna()]
    run_answered = run_items[run_items["output"].notna()]
    cost_before, cost_after = _mean(base_answered["cost_usd"]), _mean(run_answered["cost_usd"])
    p95_before = _percentile(base_answered["latency_s"], 95)
    p95_after = _percentile(run_answered["latency_s"], 95)
    summary: dict[str, Any] = {
        "baseline_id": baseline_id, "run_id": run_id, "scorer": scorer, **counts,
        "unchanged": counts["still passing"] + counts["still failing"],
        "paired": comparison.n, "metric": metric, "baseline_value": before,
        "run_value": after, "difference": after - before, "test": comparison.test,
        "p_value": comparison.p_value, "verdict": comparison.verdict,
        "significant": comparison.significant,
        "baseline_cost_per_request_usd": cost_before, "run_cost_per_request_usd": cost_after,
        "cost_change": (cost_after - cost_before) / cost_before if cost_before else math.nan,
        "baseline_p95_latency_s": p95_before, "run_p95_latency_s": p95_after,
        "p95_latency_delta_s": p95_after - p95_before,
    }
    summary["sentence"] = _sentence(summary, format_p)
    return BaselineDiff(baseline_id, run_id, items, summary, comparison)


def _sentence(s: dict[str, Any], format_p: Any) -> str:
    def items_word(n: int) -> str:
        return f"{n} item{'s' if n != 1 else ''}"

    parts = [f"{items_word(s['regressed'])} regressed, {s['improved']} improved "
             f"({s['unchanged']} unchanged"]
    extra = [f"{s[k]} {k}" for k in ("new", "dropped", "unscored") if s[k]]
    parts[0] += (", " + ", ".join(extra) if extra else "") + ")"
    before, after = s["baseline_value"], s["run_value"]
    if before == before and after == after:
        verdict = "within noise" if not s["significant"] else \
            ("a real improvement" if after > before else "a real regression")
        parts.append(f"{s['metric']} {before:.2f} → {after:.2f} "
                     f"({_signed(after - before, '.2f')}, {format_p(s['p_value'])}: {verdict})")
    cb, ca = s["baseline_cost_per_request_usd"], s["run_cost_per_request_usd"]
    if cb == cb and ca == ca:
        if cb:
            parts.append(f"cost per request {_signed(100 * (ca - cb) / cb, '.0f')}%")
        elif ca:
            parts.append(f"cost per request $0 → ${ca:.4g}")
        else:
            parts.append("cost per request $0 both")
    delta = s["p95_latency_delta_s"]
    if delta == delta:
        parts.append(f"p95 latency {_signed(delta, '.1f' if abs(delta) >= 0.1 else '.2f')} s")
    return "; ".join(parts) + "."
