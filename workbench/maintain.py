"""Phase 9: maintenance — what failed in production becomes a test case, then re-evaluate.

1. ``cases_from_feedback``: thumbs-down answers with the user's correction are test cases with a
   known answer; thumbs down without a correction, and requests the service failed on, are
   listed as needing a label (``cases_from_failures``).
2. ``add_test_cases``: a new dataset version with the labelled cases added to the test split;
   a case whose input is already in the dataset is skipped as a duplicate, or reported as a
   conflict when the dataset gives it another label (one of the two labels is wrong — a person
   decides). Nothing is half-added: the version is saved whole or not at all.
3. ``re_evaluate``: run the prompt on the new version's test split, compare with the blessed
   baseline item by item, score the new cases on their own, and check the gate (the CI step:
   ``workbench maintain PROMPT --dataset D`` exits 3 when it fails).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evaluate.baseline_runs import BaselineDiff
    from workbench.evaluate.gate import Gate
    from workbench.project import Project
    from workbench.records import Stored
    from workbench.runs import Run

CASE_PREFIX = "case-"
CASE_COLUMNS = ["case_id", "input", "expected", "output", "source", "comment"]


class MaintenanceError(WorkbenchError):
    """Test cases could not be added or evaluated."""


def _key(text: Any) -> str:
    return " ".join(unicodedata.normalize("NFKC", str(text)).casefold().split())


def cases_from_feedback(project: Project, *, since: float | None = None) -> pd.DataFrame:
    """Thumbs-down feedback as test cases: ``expected`` is the user's correction (None when
    they gave none: the case needs a label before it can be added)."""
    import pandas as pd

    from workbench.monitor import feedback_frame

    said = feedback_frame(project, since=since)
    bad = said[(said["rating"] < 0) & said["input"].notna()]
    rows = [{"case_id": f"{CASE_PREFIX}{r['feedback_id']}", "input": r["input"],
             "expected": (r["correction"].strip() if isinstance(r["correction"], str)
                          and r["correction"].strip() else None),
             "output": r["output"], "source": f"feedback {r['feedback_id']}",
             "comment": r["comment"]} for r in bad.to_dict("records")]
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def cases_from_failures(project: Project, *, since: float | None = None) -> pd.DataFrame:
    """Requests the service failed on (5xx) or answered with an unparsable reply, as cases that
    need a label."""
    import pandas as pd

    from workbench.monitor import requests_frame

    frame = requests_frame(project, since=since, source="service")
    rows = []
    if len(frame):
        failed = frame[(frame["status"] >= 500) | (frame["parse_ok"] == False)]  # noqa: E712
        spans = {s["trace_id"]: s for s in _request_spans(project, set(failed["trace_id"]))}
        for r in failed.to_dict("records"):
            attrs = spans.get(r["trace_id"], {})
            variables = attrs.get("workbench.request") or {}
            if "input" not in variables:
                continue
            rows.append({"case_id": f"{CASE_PREFIX}{r['trace_id'][:16]}",
                         "input": variables["input"], "expected": None,
                         "output": attrs.get("workbench.output"),
                         "source": f"failed request (HTTP {r['status']})"
                         if r["status"] >= 500 else "unparsable answer",
                         "comment": r["error"]})
    return pd.DataFrame(rows, columns=CASE_COLUMNS).drop_duplicates("input")


def _request_spans(project: Project, trace_ids: set[str]) -> list[dict[str, Any]]:
    import json

    out = []
    for trace_id in trace_ids:
        for row in project.store.query("SELECT trace_id, attributes FROM spans WHERE "
                                       "trace_id = ? AND name = 'serve.request'", (trace_id,)):
            out.append({"trace_id": row["trace_id"], **json.loads(row["attributes"])})
    return out


@dataclass
class AddedCases:
    """What ``add_test_cases`` did: the new version (None when nothing was added) and why each
    case that was not added was left out."""

    dataset: str
    version: Stored | None
    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)

    @property
    def sentence(self) -> str:
        where = (f"{self.dataset} v{self.version.version}" if self.version is not None
                 else "no new version")
        parts = [f"{len(self.added)} test cases added ({where})"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already in the dataset")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflict with the dataset's label (review them)")
        if self.unlabelled:
            parts.append(f"{len(self.unlabelled)} need a label first")
        return "; ".join(parts) + "."

    def _repr_markdown_(self) -> str:
        return self.sentence


def add_test_cases(project: Project, dataset: str, cases: pd.DataFrame, *,
                   split: str = "test") -> AddedCases:
    """Add labelled ``cases`` (columns ``case_id``, ``input``, ``expected``) to ``split`` of the
    latest version of ``dataset`` as a new version."""
    import pandas as pd

    from workbench.data.versioning import get_version, load, save_version

    missing = {"case_id", "input", "expected"} - set(cases.columns)
    if missing:
        raise MaintenanceError(f"The cases have no column(s) {sorted(missing)}.",
                               "Build them with cases_from_feedback or cases_from_failures.")
    parent = get_version(project, dataset)
    if not parent.value.splits:
        raise MaintenanceError(f"{dataset} v{parent.version} is not split, so there is no test "
                               "split to add cases to.", "Split it in phase 2 first.")
    if split not in parent.value.splits:
        raise MaintenanceError(f"{dataset} v{parent.version} has no '{split}' split (it has "
                               f"{', '.join(parent.value.splits)}).",
                               "Add cases to the test split (split='test').")
    current = load(project, dataset, parent.version)
    known = {_key(text): (row_id, label) for row_id, text, label in
             zip(current["id"], current["input"], current["expected"], strict=True)}
    result = AddedCases(dataset, None)
    new_rows = []
    for case in cases.to_dict("records"):
        case_id = str(case["case_id"])
        label = case.get("expected")
        if label is None or pd.isna(label) or str(label).strip() == "":
            result.unlabelled.append(case_id)
            continue
        key = _key(case["input"])
        if key in known:
            row_id, label = known[key]
            if _key(label) == _key(case["expected"]):
                result.duplicates.append(case_id)
            else:
                result.conflicts.append({"case_id": case_id, "row_id": row_id,
                                         "input": case["input"], "dataset_label": label,
                                         "case_label": case["expected"]})
            continue
        if case_id in set(current["id"]):
            result.duplicates.append(case_id)
            continue
        known[key] = (case_id, case["expected"])
        new_rows.append({"id": case_id, "input": case["input"], "expected": case["expected"],
                         "split": split})
        result.added.append(case_id)
    if new_rows:
        combined = pd.concat([current, pd.DataFrame(new_rows)], ignore_index=True)
        result.version = save_version(
            project, dataset, combined, transform="add_test_cases", parent=parent.version,
            params={"split": split, "cases": result.added,
                    "sources": sorted({str(c.get("source", "")) for c in
                                       cases.to_dict("records")
                                       if str(c["case_id"]) in result.added})})
    return result


def ensure_baseline(project: Project, prompt: str, evidence_run: str | None) -> str | None:
    """The blessed baseline of ``prompt``; when none is blessed, bless ``evidence_run`` (the
    evaluation a deployment was based on) and return it."""
    from workbench.evaluate.baseline_runs import bless, blessed

    found = blessed(project, prompt)
    if found is None and evidence_run:
        bless(project, evidence_run, note="the evaluation the deployment was based on")
        found = evidence_run
    return found


@dataclass
class Maintenance:
    """The re-evaluation after adding cases: the run, the comparison with the blessed baseline
    (None when nothing is blessed), the new cases' results, and the gate."""

    run: Run
    versus_baseline: BaselineDiff | None
    new_cases: pd.DataFrame
    gate: Gate
    cases_must_pass: float = 1.0

    @property
    def cases_pass_rate(self) -> float:
        scored = self.new_cases["passed"].dropna()
        return float(scored.mean()) if len(scored) else float("nan")

    @property
    def passed(self) -> bool:
        """The gate passes and the production cases pass (at least ``cases_must_pass`` of
        them): a failure users reported must not ship again."""
        rate = self.cases_pass_rate
        return self.gate.passed and (rate != rate or rate >= self.cases_must_pass)

    @property
    def sentence(self) -> str:
        scored = self.new_cases["passed"].dropna()
        cases = (f"The {len(self.new_cases)} cases from production: {int(scored.sum())} of "
                 f"{len(scored)} now pass." if len(self.new_cases) else
                 "No case from production is in this test split.")
        versus = self.versus_baseline.sentence if self.versus_baseline is not None else \
            "Nothing is blessed yet, so there is no baseline to compare with."
        gate = "The gate passes." if self.gate.passed else "The gate FAILS: " + \
            " ".join(self.gate.reasons)
        verdict = "Ready to ship." if self.passed else "Not ready to ship" + (
            f": fewer than {self.cases_must_pass:.0%} of the production cases pass."
            if self.gate.passed else ".")
        return f"{cases} {versus} {gate} {verdict}"

    def _repr_markdown_(self) -> str:
        return self.sentence


def re_evaluate(project: Project, prompt: str, dataset: str, *, model: str | None = None,
                version: int | str | None = None, judges: tuple[str, ...] = (),
                concurrency: int = 8, confirm: bool = False, progress: Any = False,
                cases_must_pass: float = 1.0, cache: bool = False,
                scope: str = "test") -> Maintenance:
    """Run ``prompt`` on the latest version's test split, compare it with the blessed baseline
    (over the items both have), score the production cases on their own, check the gate.
    ``Maintenance.passed`` also needs ``cases_must_pass`` of the production cases to pass.

    The response cache is off by default: a hosted model can change behind the same id, and
    a re-evaluation answered from the cache would hide exactly that drift.

    ``scope="test"`` runs the whole test split; ``"baseline"`` only the blessed baseline's
    items plus the production cases — quicker, and still item by item against the baseline,
    but the card's targets are then measured on fewer items."""
    import pandas as pd

    from workbench.data.splitting import load_split
    from workbench.evaluate.baseline_runs import blessed, compare_to_baseline
    from workbench.evaluate.gate import check_gate
    from workbench.evaluate.stats import item_passed, primary_scorer
    from workbench.runs import load_run, start_run

    if scope not in ("test", "baseline"):
        raise MaintenanceError(f"scope={scope!r} is not 'test' or 'baseline'.",
                               "Use 'test' for the whole test split.")
    baseline = blessed(project, prompt)
    ids = None
    if scope == "baseline":
        if baseline is None:
            raise MaintenanceError("scope='baseline' needs a blessed baseline, and none is.",
                                   "Bless a run first, or use scope='test'.")
        test = load_split(project, dataset, "test")
        cases = [i for i in test["id"].astype(str) if i.startswith(CASE_PREFIX)]
        ids = [*load_run(project, baseline).items["item_id"].astype(str), *cases]
    run = start_run(project, prompt, version=version, dataset=dataset, split="test",
                    model=model, concurrency=concurrency, confirm=confirm, progress=progress,
                    name="maintenance", cache=cache, ids=ids)
    versus = compare_to_baseline(project, run.run_id) if baseline else None
    items = run.items
    mine = items[items["item_id"].astype(str).str.startswith(CASE_PREFIX)]
    scorer = primary_scorer(items)
    passed = item_passed(mine, scorer) if len(mine) and scorer else pd.Series(dtype=object)
    new_cases = pd.DataFrame({"case_id": list(mine["item_id"]), "input": list(mine["input"]),
                              "expected": list(mine["expected"]),
                              "output": list(mine["output"]),
                              "passed": list(passed) if len(passed) else [None] * len(mine)})
    gate = check_gate(project, run.run_id, judges=judges)
    return Maintenance(run, versus, new_cases, gate, cases_must_pass)
