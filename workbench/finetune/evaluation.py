"""Should you fine-tune, and did it help? Both answered with phase 6's own tools.

``prompting_verdict`` reads the project's best prompt evaluation against the card's targets (the
phase's rule: fine-tune only when prompting misses them). ``before_after`` runs the same prompt
version on the same test items with the base model and with the adapter, and compares them the
way phase 6 does: values with intervals, McNemar's paired test, the items that flipped, the
card's targets and the classical baseline beside them. ``record_decision`` writes the verdict to
the card's decision log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.finetune.options import FinetuneError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evaluate.stats import Comparison
    from workbench.project import Project
    from workbench.runs import Run


def _met(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    met = [r["text"] for r in rows if r["status"] == "pass"]
    missed = [r["text"] for r in rows if r["status"] == "fail"]
    unmeasured = [r["metric"] for r in rows if r["status"] == "not measured"]
    return met, missed, unmeasured


@dataclass
class PromptingVerdict:
    """What prompting alone reaches: the best run's targets, met and missed."""

    run_id: str | None
    description: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    met: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)

    @property
    def should_finetune(self) -> bool | None:
        """True when the best prompt misses a target, False when it meets them all, None when
        nothing has been evaluated yet."""
        if self.run_id is None:
            return None
        return bool(self.missed)

    @property
    def sentence(self) -> str:
        if self.run_id is None:
            return ("No prompt has been evaluated on the test or validation split yet, so "
                    "nothing says prompting falls short. Evaluate first (phase 6, or the "
                    "'before' run below) — fine-tuning is the answer only when prompting fails.")
        if not self.missed:
            return (f"Prompting already meets every measured target ({self.description}). "
                    "Fine-tuning would add cost and a model to maintain for nothing: keep the "
                    "prompt. The rest of this phase still runs as a lesson.")
        return (f"Prompting misses {len(self.missed)} target(s) ({self.description}): "
                + "; ".join(self.missed) + ". Try better prompts, few-shot examples or a "
                "stronger model first; fine-tune when those fail.")

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.targets, columns=["metric", "target", "unit", "value", "status",
                                                   "text"])


def prompting_verdict(project: Project, prompt: str | None = None) -> PromptingVerdict:
    """The best finished prompt evaluation in the project (test split first, else validation;
    runs with an adapter are left out: they are fine-tuning, not prompting), against the card's
    targets. "Best" meets the most targets, then has the highest accuracy."""
    from workbench.card import compare_to_targets, load_card
    from workbench.errors import WorkbenchError
    from workbench.runs import list_runs, load_run

    runs = list_runs(project)
    if not runs.empty:
        runs = runs[(runs["status"] == "finished") & ~runs["model"].astype(str).str.contains(":")]
        if prompt is not None:
            runs = runs[runs["prompt"] == prompt]
    try:
        card = load_card(project)
    except WorkbenchError:
        card = None
    for split in ("test", "validation"):
        candidates = runs[runs["split"] == split] if not runs.empty else runs
        if candidates.empty or card is None:
            continue
        best = None
        for run_id in candidates["run_id"]:
            run = load_run(project, run_id)
            rows = compare_to_targets(card, run.metrics)
            met, _, _ = _met(rows)
            key = (len(met), run.metrics.get("accuracy") or 0.0, run.created_at)
            if best is None or key > best[0]:
                best = (key, run, rows)
        _, run, rows = best
        met, missed, unmeasured = _met(rows)
        description = (f"'{run.prompt}' v{run.prompt_version} on {run.model}, "
                       f"{run.totals.get('n', '?')} {split} items, run {run.run_id}")
        return PromptingVerdict(run.run_id, description, rows, met, missed, unmeasured)
    return PromptingVerdict(None, "")


@dataclass
class BeforeAfter:
    """The same evaluation without (before) and with (after) the adapter."""

    before: Run
    after: Run
    adapter: str
    table: pd.DataFrame  # metric, before, after (with intervals), target, status before/after
    comparison: Comparison
    flipped: pd.DataFrame  # item_id, input, expected, before, after, change
    baseline: str | None = None  # the classical baseline's verdict, when phase 1 made one

    @property
    def improved(self) -> bool:
        return self.comparison.significant and self.comparison.difference > 0

    @property
    def sentence(self) -> str:
        b = self.before.metrics.get("accuracy")
        a = self.after.metrics.get("accuracy")
        head = (f"Accuracy {b:.0%} → {a:.0%} on {len(self.before.items)} test items. "
                if a is not None and b is not None else "")
        fixed = int((self.flipped["change"] == "fixed").sum()) if len(self.flipped) else 0
        broke = int((self.flipped["change"] == "broke").sum()) if len(self.flipped) else 0
        return (f"{head}{fixed} item(s) fixed, {broke} broken by the adapter. "
                f"{self.comparison.verdict}")

    def _repr_markdown_(self) -> str:
        return f"**Before / after `{self.adapter}`:** {self.sentence}"


def _interval_columns(run: Run) -> dict[str, str]:
    from workbench.evaluate.stats import aggregate_with_intervals, interval_text

    out = {}
    for row in aggregate_with_intervals(run, n_resamples=500).to_dict("records"):
        fmt = ".3f" if "latency" in row["metric"] else (".2e" if "cost" in row["metric"]
                                                          else ".2f")
        out[row["metric"]] = interval_text(row["value"], row["low"], row["high"], fmt)
    return out


def before_after(project: Project, prompt: str, adapter: str, *, dataset: str | None = None,
                 version: int | str | None = None, limit: int | None = None,
                 before_run: str | None = None, progress: Any = False) -> BeforeAfter:
    """Run ``prompt`` (its latest version, or ``version``) on the test split with the bundled
    model, then with ``local/smollm2-135m:ADAPTER``, on the same items, and compare them.
    ``before_run`` reuses a finished base-model run of the same prompt version and items."""
    import pandas as pd

    from workbench.card import compare_to_targets, load_card
    from workbench.data.versioning import find_split
    from workbench.errors import WorkbenchError
    from workbench.evaluate.stats import compare_runs, item_passed, primary_scorer
    from workbench.llm.gateway import BUNDLED_MODEL
    from workbench.prompts import load_prompt
    from workbench.runs import load_run, start_run

    if dataset is None:
        found = find_split(project)
        if found is None:
            raise FinetuneError("No split dataset to evaluate on.", "Split one in phase 2.")
        dataset = found.name
    stored = load_prompt(project, prompt, version)
    common = dict(version=stored.version, dataset=dataset, split="test", limit=limit,
                  progress=progress)
    before = None
    if before_run is not None:
        before = load_run(project, before_run)
        if (before.prompt, before.prompt_version, before.model, before.split) != \
                (prompt, stored.version, BUNDLED_MODEL, "test") or before.status != "finished":
            before = None  # not the same evaluation: run it
    if before is None:
        before = start_run(project, prompt, model=BUNDLED_MODEL, **common)
    after = start_run(project, prompt, model=f"{BUNDLED_MODEL}:{adapter}",
                      ids=list(before.items["item_id"].astype(str)), **{**common, "limit": None})
    comparison = compare_runs(project, before.run_id, after.run_id)

    try:
        card = load_card(project)
    except WorkbenchError:
        card = None
    b_int, a_int = _interval_columns(before), _interval_columns(after)
    rows = []
    targets = {r["metric"]: r for r in compare_to_targets(card, before.metrics)} if card else {}
    targets_after = {r["metric"]: r for r in compare_to_targets(card, after.metrics)} \
        if card else {}
    for metric in [m for m in b_int if m in a_int]:
        t = targets.get(metric, {})
        rows.append({"metric": metric, "before": b_int[metric], "after": a_int[metric],
                     "target": t.get("target", ""),
                     "before vs target": t.get("status", ""),
                     "after vs target": targets_after.get(metric, {}).get("status", "")})
    table = pd.DataFrame(rows, columns=["metric", "before", "after", "target",
                                        "before vs target", "after vs target"])

    b_items, a_items = before.items, after.items
    scorer = primary_scorer(b_items) or primary_scorer(a_items)
    left = b_items.assign(before_passed=item_passed(b_items, scorer))[
        ["item_id", "input", "expected", "parsed", "before_passed"]]
    right = a_items.assign(after_passed=item_passed(a_items, scorer))[
        ["item_id", "parsed", "after_passed"]]
    merged = left.merge(right, on="item_id", suffixes=(" before", " after"))
    flips = merged[merged["before_passed"] != merged["after_passed"]].copy()
    flips["change"] = ["fixed" if a else "broke" for a in flips["after_passed"]]
    flips = flips.rename(columns={"parsed before": "before", "parsed after": "after"})[
        ["item_id", "input", "expected", "before", "after", "change"]]

    baseline = None
    if project.records.count("baseline"):
        from workbench.baseline import latest_baseline

        found_baseline = latest_baseline(project)
        if found_baseline is not None:
            v = found_baseline.value
            acc = v.metrics.get("accuracy")
            baseline = (f"{v.method}: accuracy {acc:.2f} — {v.verdict}" if acc is not None
                        else f"{v.method}: {v.verdict}")
    return BeforeAfter(before, after, adapter, table, comparison, flips.reset_index(drop=True),
                       baseline)


def record_decision(project: Project, result: BeforeAfter, *, adopt: bool | None = None,
                    reason: str = ""):
    """Write the before/after verdict to the card's decision log (phase 5). ``adopt`` defaults
    to "the adapter is significantly better"."""
    from workbench.card import add_decision

    adopt = result.improved if adopt is None else adopt
    model = f"local/smollm2-135m:{result.adapter}"
    decision = (f"Use the fine-tuned adapter {model} for '{result.before.prompt}'."
                if adopt else f"Keep '{result.before.prompt}' without the adapter "
                              f"{result.adapter}.")
    because = reason or (f"{result.sentence} Runs {result.before.run_id} (before) and "
                         f"{result.after.run_id} (after).")
    return add_decision(project, 5, decision, because)
