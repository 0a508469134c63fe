"""The evaluation gate: may this run ship? One kernel call that CI (and phase 9) builds on.

A run passes when it meets every success metric of the card that it measures, does not regress
significantly against the blessed baseline, and every judge it relies on has been calibrated
against people and trusted. An untrusted judge fails the gate outright: its scores decide
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.records import Record

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.records import Stored


class GateResult(Record):
    kind: ClassVar[str] = "gate_result"
    run_id: str
    passed: bool
    reasons: list[str]
    checks: list[dict[str, Any]] = []


@dataclass
class Gate:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    stored: Stored[GateResult] | None = None

    def __str__(self) -> str:
        head = "PASS" if self.passed else "FAIL"
        return "\n".join([head, *(f"- {r}" for r in self.reasons)])


def check_gate(project: Project, run_id: str, *, judges: tuple[str, ...] = (),
               baseline: bool = True, record: bool = True) -> Gate:
    """Decide whether run ``run_id`` may ship, and say why in sentences.

    The run must have finished (a partial run proves nothing about the items it skipped).
    ``judges``: judge names (``judge.judge_name(rubric, model)``) whose scores the decision
    relies on, on top of the judges among the run's own scorers; each must be trusted
    (``calibration.require_trusted``). ``baseline``: compare with the blessed baseline when
    there is one; a significant regression fails the gate. Card targets this run does not
    measure are listed as "not measured" (they cannot pass or fail here)."""
    from workbench.errors import WorkbenchError
    from workbench.evaluate.baseline_runs import NoBaseline, blessed, compare_to_baseline
    from workbench.evaluate.calibration import require_trusted
    from workbench.runs import load_run

    run = load_run(project, run_id)
    checks: list[dict[str, Any]] = []
    reasons: list[str] = []
    if run.status != "finished":
        checks.append({"check": "run", "status": "fail", "text": f"run is {run.status}"})
        reasons.append(f"Run {run_id} is {run.status}, not finished: its scores cover only the "
                       "items it reached. Finish it with resume_run first.")
    for name in dict.fromkeys([*run.judges, *judges]):
        try:
            require_trusted(project, name)
            checks.append({"check": f"judge {name}", "status": "pass", "text": "trusted"})
        except WorkbenchError as exc:
            checks.append({"check": f"judge {name}", "status": "fail", "text": exc.message})
            reasons.append(f"Judge {name} is not trusted: {exc.message}")
    try:
        targets = run.compare_to_card()
    except WorkbenchError as exc:
        targets = None
        reasons.append(f"The card cannot be read, so no target can be checked: {exc.message}")
    if targets is not None:
        for row in targets.to_dict(orient="records"):
            checks.append({"check": f"target {row['metric']}", "status": row["status"],
                           "text": row.get("text", "")})
            if row["status"] == "fail":
                reasons.append(f"{row['metric']} misses its target: {row.get('text', '')}")
    if baseline and blessed(project, run.prompt) == run_id:
        # Compared with itself it would "pass" with 0 changes: say what it is instead.
        checks.append({"check": "baseline", "status": "pass",
                       "text": f"this run is the blessed baseline for prompt '{run.prompt}'"})
    elif baseline:
        try:
            diff = compare_to_baseline(project, run_id)
        except NoBaseline:
            checks.append({"check": "baseline", "status": "not measured",
                           "text": "no baseline is blessed"})
        else:
            worse = diff.comparison.significant and diff.comparison.difference < 0
            checks.append({"check": "baseline", "status": "fail" if worse else "pass",
                           "text": diff.sentence})
            if worse:
                reasons.append(f"Significantly worse than the blessed baseline: {diff.sentence}")
    passed = not reasons
    if passed:
        unmeasured = [c["check"].removeprefix("target ") for c in checks
                      if c["check"].startswith("target ") and c["status"] == "not measured"]
        reasons.append("Meets every measured target"
                       + (", with trusted judges" if judges or run.judges else "")
                       + " and no significant regression"
                       + (f" (not measured by this run: {', '.join(unmeasured)})"
                          if unmeasured else "") + ".")
    gate = Gate(passed, reasons, checks)
    if record:
        gate.stored = project.records.save(run_id, GateResult(run_id=run_id, passed=passed,
                                                              reasons=reasons, checks=checks))
    return gate
