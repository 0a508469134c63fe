"""The nine phases of the lifecycle, and what a project already holds for each.

Each phase names the notebook that teaches it and a check that reads the project. Later phases
store their results under the record kinds named here, so the overview stays truthful.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.project import Project

# The order a beginner follows: 1, 2, 4 → 3, 6 → 7 → 8, 9 → 5.
LEARNING_PATH = (1, 2, 4, 3, 6, 7, 8, 9, 5)


@dataclass(frozen=True)
class Phase:
    number: int
    key: str
    title: str
    purpose: str
    notebook: str


PHASES = (
    Phase(1, "problem", "Problem definition", "Use case, success metrics with thresholds, "
          "constraints, build-vs-buy, and whether an LLM is needed at all.", "01_problem.py"),
    Phase(2, "data", "Data preparation", "Import, profile, clean, redact PII, label, split and "
          "version the data.", "02_data.py"),
    Phase(3, "models", "Model selection", "Compare candidate models on quality, latency and cost; "
          "choose one.", "03_models.py"),
    Phase(4, "prompts", "Prompt engineering", "Versioned prompt templates, few-shot, "
          "chain-of-thought, structured outputs.", "04_prompts.py"),
    Phase(5, "finetuning", "Fine-tuning", "LoRA on the bundled model, evaluated before and "
          "after.", "05_finetuning.py"),
    Phase(6, "evaluation", "Evaluation", "Metrics, calibrated LLM judges, noise, red team and "
          "load tests.", "06_evaluation.py"),
    Phase(7, "deployment", "Deployment", "A served API for the chosen prompt and model, with "
          "keys, limits and a Dockerfile.", "07_deployment.py"),
    Phase(8, "monitoring", "Monitoring", "Traces, latency/cost/error dashboards, feedback and "
          "alerts.", "08_monitoring.py"),
    Phase(9, "maintenance", "Maintenance", "Failures become test cases; re-evaluate against the "
          "baseline; CI gates.", "09_maintenance.py"),
)

# Record kinds each phase leaves behind (later phases store under these names).
PHASE_RECORD_KINDS = {
    1: ("baseline",), 2: ("dataset",), 4: ("prompt",), 3: ("run",),
    6: ("blessed_baseline", "judge_trust", "judge_run"), 9: ("gate_result",),
}


def notebooks_dir() -> Path:
    """The guided notebooks: the checkout's notebooks/ folder, or the copy inside a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "notebooks", here / "_notebooks"):
        if candidate.is_dir():
            return candidate
    return here.parent / "notebooks"


def _count(project: Project, kinds: tuple[str, ...]) -> int:
    return sum(project.records.count(kind) for kind in kinds)


def _baseline_summary(project: Project) -> str:
    if not project.records.count("baseline"):
        return ""
    from workbench.baseline import latest_baseline

    stored = latest_baseline(project)
    accuracy = stored.value.metrics.get("accuracy") if stored else None
    return f"baseline accuracy {accuracy:.2f}" if accuracy is not None else "baseline run"


def _data_status(project: Project) -> tuple[str, str]:
    if not project.records.count("dataset"):
        return "todo", "nothing yet"
    from workbench.data.versioning import datasets, get_version

    parts, split_any = [], False
    for name in datasets(project):
        v = get_version(project, name)
        split_any = split_any or bool(v.value.splits)
        detail = ("split " + "/".join(str(v.value.splits.get(k, 0))
                                      for k in ("train", "validation", "test"))
                  if v.value.splits else "not split yet")
        parts.append(f"{name} v{v.version}: {v.value.rows} rows, {detail}")
    return ("done" if split_any else "started"), "; ".join(parts)


def project_status(project: Project) -> dict[str, Any]:
    """What the project holds (``Project.status``) and each phase's state (``phase_status``), as
    plain data: what ``workbench status`` prints and the overview widget shows."""
    return {**project.status(), "phases": phase_status(project)}


def phase_status(project: Project) -> list[dict[str, Any]]:
    """Each phase's state and summary, in the learning path's order (``step`` is the place on
    it), so the overview and ``workbench status`` read in the order a beginner follows."""
    card = project.card()
    nb_dir = notebooks_dir()
    by_number = {p.number: p for p in PHASES}
    out = []
    for step, number in enumerate(LEARNING_PATH, start=1):
        phase = by_number[number]
        state, summary = "todo", "nothing yet"
        n = phase.number
        if n == 1:
            metrics = card.get("metrics") or []
            if card.get("use_case", {}).get("description") and metrics:
                state, summary = "done", f"use case and {len(metrics)} success metrics"
                baseline = _baseline_summary(project)
                if baseline:
                    summary += f"; {baseline}"
            elif card.get("use_case") or metrics:
                state, summary = "started", "project card partly filled"
        elif n == 2:
            state, summary = _data_status(project)
        elif n == 3:
            chosen = card.get("model", {}).get("chosen")
            runs = _count(project, PHASE_RECORD_KINDS[3])
            if chosen:
                state, summary = "done", f"chosen model: {chosen}"
            elif runs:
                state, summary = "started", f"{runs} comparison runs"
        elif n == 5:
            # Only finished adapters count: staging folders start with a dot.
            adapters = [p.name for p in sorted(project.adapters_dir.iterdir())
                        if not p.name.startswith(".") and (p / "adapter_config.json").is_file()]
            if adapters:
                state, summary = "done", f"{len(adapters)} adapters: {', '.join(adapters[:3])}"
        elif n == 7:
            files = list(project.deploy_dir.iterdir())
            if files:
                state, summary = "done", f"{len(files)} deployment files"
        elif n == 8:
            # The same count as the monitoring dashboard's last hour (monitor.traffic).
            from workbench.monitor import traffic

            db = project.store.db
            counted = traffic(project)
            feedback = db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
            fired = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
            if counted.source == "service" or feedback:
                state = "done"
                summary = (f"{counted.label}, {feedback:,} feedback, "
                           f"{fired:,} alert{'s' * (fired != 1)} fired")
            elif counted.total:  # nothing served yet: the model calls are monitored
                state, summary = "started", counted.label
        else:
            counts = [(kind, project.records.count(kind)) for kind in PHASE_RECORD_KINDS.get(n, ())]
            if any(c for _, c in counts):
                state = "done"
                summary = ", ".join(f"{c} {kind.replace('_', ' ')} record{'s' * (c != 1)}"
                                    for kind, c in counts if c)
        out.append({
            "number": n, "step": step, "key": phase.key, "title": phase.title,
            "purpose": phase.purpose,
            "notebook": phase.notebook, "available": (nb_dir / phase.notebook).is_file(),
            "state": state, "summary": summary,
        })
    return out


def next_step(status: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first phase along the learning path that is not done yet and whose notebook exists
    (a phase whose notebook is not written yet is never where anyone is sent); None when no
    such phase is left."""
    by_number = {p["number"]: p for p in status}
    for n in LEARNING_PATH:
        phase = by_number[n]
        if phase["state"] != "done" and phase.get("available", True):
            return phase
    return None
