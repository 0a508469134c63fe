"""Switch or retrain? The models compared in phase 3 and the newest adapter of phase 5, run again
on the production cases beside what is deployed, and judged on the card's targets.

    >>> verdict = switch_or_retrain(project)
    >>> verdict.table        # one row per configuration: targets met, pass rates, paired tests
    >>> verdict.sentence     # "Switch to fake/better: ..." / "Retrain: ..." / "Keep ..."

Every configuration runs the deployed prompt version on the same items (``scope``): the
production cases in the test split (``maintain.CASE_PREFIX``), plus the blessed baseline's items
by default so that a candidate that fixes the new cases but breaks old ones shows it. Each is
compared with the deployed configuration item by item (``evaluate.stats.compare_runs``):
McNemar's exact test on pass/fail, Wilcoxon on latency and cost.

A candidate **beats** the deployed configuration when it loses none of the card's targets the
deployed one meets, is not significantly worse on pass/fail, and either meets a target the
deployed one misses or passes significantly more items. It is **worse** when it loses a target
or passes significantly fewer; otherwise there is **no real difference**. The advice: switch to
the best candidate that beats it (the adapter counts as "retrain", done); when none does and the
production cases still fail, retrain (a new adapter, phase 5, on training data that covers these
failures — never on the test cases themselves); else keep what is deployed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project
    from workbench.runs import Run

DEPLOYED = "deployed"
SCOPES = ("cases", "baseline", "test")
TABLE_COLUMNS = ["configuration", "model", "run_id", "items", "pass_rate", "cases_pass_rate",
                 "targets_met", "targets_lost", "targets_gained", "quality_vs_deployed",
                 "quality_p", "latency_p", "cost_p", "p95_latency", "cost_per_request",
                 "verdict", "note"]


class SwitchError(WorkbenchError):
    """The candidates cannot be compared as asked."""


def candidate_models(project: Project) -> list[str]:
    """The models compared in phase 3 (finished runs on the validation split, newest first),
    then the card's chosen model."""
    seen: dict[str, None] = {}
    for row in project.store.query(
            "SELECT model FROM runs WHERE split = 'validation' AND status = 'finished' "
            "ORDER BY created_at DESC"):
        seen.setdefault(row["model"], None)
    chosen = (project.card().get("model") or {}).get("chosen")
    if chosen:
        seen.setdefault(str(chosen), None)
    return list(seen)


def latest_adapter(project: Project) -> str | None:
    """The newest LoRA adapter of the project (by when its files were written), or None."""
    from workbench.finetune.adapters import is_adapter_dir

    folder = project.adapters_dir
    found = [p for p in folder.iterdir() if is_adapter_dir(p)] if folder.is_dir() else []
    if not found:
        return None

    def written(path: Path) -> float:
        return max(f.stat().st_mtime for f in path.iterdir() if f.is_file())

    return max(found, key=written).name


def _configurations(project: Project, spec: Any, models: list[str] | None,
                    adapter: str | None) -> list[tuple[str, str, str | None]]:
    """(label, model, adapter) to run: the deployed one first, then the candidates."""
    from workbench.llm.local import MODEL_ID as BUNDLED

    deployed_id = f"{spec.model}:{spec.adapter}" if spec.adapter else spec.model
    out = [(DEPLOYED, spec.model, spec.adapter)]
    taken = {deployed_id}
    for model in (candidate_models(project) if models is None else models):
        if model not in taken:
            taken.add(model)
            out.append((model, model, None))
    name = latest_adapter(project) if adapter == "latest" else adapter
    if name and f"{BUNDLED}:{name}" not in taken:
        out.append((f"adapter {name}", f"{BUNDLED}:{name}", None))
    return out


def _ids(project: Project, prompt: str, dataset: str, scope: str) -> list[str] | None:
    from workbench.data.splitting import load_split
    from workbench.evaluate.baseline_runs import blessed
    from workbench.maintain import CASE_PREFIX
    from workbench.runs import load_run

    if scope == "test":
        return None
    test = load_split(project, dataset, "test")
    cases = [i for i in test["id"].astype(str) if i.startswith(CASE_PREFIX)]
    baseline = blessed(project, prompt)
    if scope == "cases" or baseline is None:
        if not cases:
            raise SwitchError(f"The test split of {dataset} holds no production case yet, and "
                              + ("no baseline is blessed." if baseline is None else
                                 "scope='cases' runs only those."),
                              "Add cases first (maintain.add_test_cases, or the label queue), "
                              "or use scope='test' for the whole test split.")
        return cases
    return list(dict.fromkeys([*load_run(project, baseline).items["item_id"].astype(str),
                               *cases]))


def _cases_pass_rate(run: Run, scorer: str | None) -> float:
    from workbench.evaluate.stats import item_passed
    from workbench.maintain import CASE_PREFIX

    items = run.items
    mine = items[items["item_id"].astype(str).str.startswith(CASE_PREFIX)]
    if mine.empty or scorer is None:
        return math.nan
    passed = [p for p in item_passed(mine, scorer) if p is not None]
    return sum(bool(p) for p in passed) / len(passed) if passed else math.nan


def _pass_rate(run: Run, scorer: str | None) -> float:
    from workbench.evaluate.stats import item_passed

    passed = [p for p in item_passed(run.items, scorer) if p is not None] if scorer else []
    return sum(bool(p) for p in passed) / len(passed) if passed else math.nan


def _targets(run: Run) -> dict[str, str]:
    table = run.compare_to_card()
    return {r["metric"]: r["status"] for r in table.to_dict("records")} if len(table) else {}


@dataclass
class SwitchReport:
    """What ``switch_or_retrain`` found: one row per configuration (the deployed one first),
    the runs, the paired comparisons with the deployed run, and the advice."""

    table: pd.DataFrame
    runs: dict[str, Run]
    failures: dict[str, str] = field(default_factory=dict)
    advice: str = "keep"  # "switch", "retrain" or "keep"
    choice: str | None = None  # the configuration to switch to
    sentence: str = ""

    def _repr_markdown_(self) -> str:
        return self.sentence


def _verdict(lost: list[str], gained: list[str], quality: Any) -> str:
    worse = quality.significant and quality.difference < 0
    better = quality.significant and quality.difference > 0
    if lost or worse:
        return "worse"
    if gained or better:
        return "beats"
    return "no real difference"


def switch_or_retrain(project: Project, *, models: list[str] | None = None,
                      adapter: str | None = "latest", scope: str = "baseline",
                      dataset: str | None = None, cache: bool = False, concurrency: int = 8,
                      confirm: bool = False, progress: Any = False) -> SwitchReport:
    """Run the deployed configuration and each candidate (``models``, default the phase-3
    models, and ``adapter``, default the newest) on the same items, and advise: switch, retrain
    or keep (see the module docstring). ``scope``: "cases" (the production cases only),
    "baseline" (the blessed baseline's items and the cases; the default), "test" (the whole test
    split). A candidate that cannot run here (no key, a fake model of another process) is listed
    in ``failures``. The cache is off by default: a hosted model can change behind its id."""
    import pandas as pd

    from workbench.data.versioning import find_split
    from workbench.evaluate.stats import compare_runs, primary_scorer
    from workbench.costs import CostNotConfirmed
    from workbench.runs import start_run
    from workbench.serve import latest_deployment

    if scope not in SCOPES:
        raise SwitchError(f"scope={scope!r} is not one of {', '.join(SCOPES)}.",
                          "Use 'baseline' (the default), 'cases' or 'test'.")
    spec = latest_deployment(project).value
    if dataset is None:
        found = find_split(project, prefer=spec.few_shot_dataset)
        if found is None:
            raise SwitchError("There is no split dataset to run on.", "Split one in phase 2.")
        dataset = found.name
    ids = _ids(project, spec.prompt, dataset, scope)
    runs: dict[str, Run] = {}
    failures: dict[str, str] = {}
    for label, model, adapter_name in _configurations(project, spec, models, adapter):
        options = {"adapter": adapter_name} if adapter_name else {}
        try:
            runs[label] = start_run(project, spec.prompt, version=spec.prompt_version,
                                    dataset=dataset, split="test", model=model, ids=ids,
                                    cache=cache, concurrency=concurrency, confirm=confirm,
                                    progress=progress, name=f"switch or retrain: {label}",
                                    **options)
        except CostNotConfirmed:
            raise
        except WorkbenchError as exc:
            if label == DEPLOYED:
                raise
            failures[label] = exc.one_line()
    deployed = runs[DEPLOYED]
    scorer = primary_scorer(deployed.items)
    base_targets = _targets(deployed)
    rows = []
    verdicts: dict[str, str] = {}
    from workbench.compare import flat_totals

    for label, run in runs.items():
        totals = flat_totals(run.totals)
        targets = _targets(run)
        met = sum(1 for s in targets.values() if s == "pass")
        row = {"configuration": label, "model": run.model, "run_id": run.run_id,
               "items": int(run.totals.get("n") or len(run.items)),
               "pass_rate": _pass_rate(run, scorer),
               "cases_pass_rate": _cases_pass_rate(run, scorer),
               "targets_met": f"{met}/{len(targets)}",
               "p95_latency": totals.get("p95_latency"),
               "cost_per_request": totals.get("cost_per_request")}
        if label == DEPLOYED:
            row.update(targets_lost="", targets_gained="", quality_vs_deployed=None,
                       quality_p=None, latency_p=None, cost_p=None, verdict="deployed",
                       note="what is served now")
        else:
            lost = [m for m, s in base_targets.items() if s == "pass" and targets.get(m) == "fail"]
            gained = [m for m, s in base_targets.items()
                      if s != "pass" and targets.get(m) == "pass"]
            quality = compare_runs(project, deployed.run_id, run.run_id, scorer=scorer)
            latency = compare_runs(project, deployed.run_id, run.run_id, field="latency_s")
            cost = compare_runs(project, deployed.run_id, run.run_id, field="cost_usd")
            verdict = _verdict(lost, gained, quality)
            verdicts[label] = verdict
            note = quality.verdict.replace(deployed.run_id, DEPLOYED).replace(run.run_id,
                                                                                label)
            if verdict == "no real difference" and cost.significant and cost.difference < 0:
                note += " It is significantly cheaper at the same quality."
            row.update(targets_lost=", ".join(lost), targets_gained=", ".join(gained),
                       quality_vs_deployed=quality.difference, quality_p=quality.p_value,
                       latency_p=latency.p_value, cost_p=cost.p_value, verdict=verdict,
                       note=f"On pass/fail: {note}")
        rows.append(row)
    for label, reason in failures.items():
        rows.append({**{c: None for c in TABLE_COLUMNS}, "configuration": label,
                     "verdict": "did not run", "note": reason})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return _advise(table, runs, failures, verdicts)


def _advise(table: pd.DataFrame, runs: dict[str, Run], failures: dict[str, str],
            verdicts: dict[str, str]) -> SwitchReport:
    winners = table[table["verdict"] == "beats"].copy()
    deployed = table.iloc[0]
    cases_rate = deployed["cases_pass_rate"]
    if len(winners):
        winners["_met"] = winners["targets_met"].map(lambda t: int(str(t).split("/")[0]))
        winners["_cost"] = winners["cost_per_request"].fillna(math.inf)
        best = winners.sort_values(["_met", "pass_rate", "_cost"],
                                   ascending=[False, False, True]).iloc[0]
        retrained = str(best["configuration"]).startswith("adapter ")
        sentence = (f"Switch to {best['configuration']}"
                    + (" (the retrained adapter)" if retrained else "")
                    + f": it meets {best['targets_met']} of the card's targets against "
                      f"{deployed['targets_met']} for what is deployed, and passes "
                      f"{_rate(best['pass_rate'])} of the items against "
                      f"{_rate(deployed['pass_rate'])}. Deploy it through the gate "
                      "(phase 7).")
        return SwitchReport(table, runs, failures, "switch", str(best["configuration"]),
                            sentence)
    tried = len(verdicts)
    none = ("No candidate beats what is deployed" if tried else
            "There was no candidate to try (compare models in phase 3, train an adapter in "
            "phase 5)")
    if cases_rate == cases_rate and cases_rate < 1:
        sentence = (f"Retrain. {none}, and the deployed configuration passes only "
                    f"{_rate(cases_rate)} of the production cases: fine-tune a new adapter "
                    "(phase 5) on training data that covers these failures — new examples "
                    "like them in the train split, never the test cases themselves — or "
                    "change the prompt (phase 4).")
        return SwitchReport(table, runs, failures, "retrain", None, sentence)
    sentence = f"Keep the deployed configuration. {none} on the card's targets."
    return SwitchReport(table, runs, failures, "keep", None, sentence)


def _rate(value: Any) -> str:
    return "—" if value is None or value != value else f"{float(value):.0%}"
